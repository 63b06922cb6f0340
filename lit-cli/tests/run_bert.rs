//! `lit run bert` on the real all-MiniLM-L6-v2, streamed under a budget smaller than the model.

mod common;
use common::*;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn run_bert_embeds_texts_under_a_budget() {
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("minilm.lit");
    let store_s = store.to_str().unwrap();
    let out = lit(&["export", model.to_str().unwrap(), store_s]);
    assert!(out.status.success(), "{}", stderr(&out));

    let texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market crashed after the announcement of new tariffs.",
    ];
    let mut args = vec![
        "run",
        "bert",
        store_s,
        "--json",
        "--budget",
        "60MiB",
        "--prefetch",
        "1",
    ];
    args.extend(texts);
    let out = lit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let vectors: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!((dot(v, v).sqrt() - 1.0).abs() < 1e-5);
    }
    let (food, bread, stocks) = (&vectors[0], &vectors[1], &vectors[2]);
    assert!(
        dot(food, bread) > dot(food, stocks) + 0.3,
        "{} vs {}",
        dot(food, bread),
        dot(food, stocks)
    );
    let report = stderr(&out);
    assert!(
        report.contains("ms/pass") && report.contains("peak RSS"),
        "{report}"
    );

    // Plain output: one line of 384 numbers per text, the same values; one pass per text, twice,
    // reported with --stats-json.
    let report = dir.path().join("report.json");
    let mut args = vec![
        "run",
        "bert",
        store_s,
        "--batch-size",
        "1",
        "--repeat",
        "2",
        "--stats-json",
        report.to_str().unwrap(),
    ];
    args.extend(texts);
    let out = lit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["passes"], 6, "{r:#}");
    assert_eq!(r["repeat_ms"].as_array().map(Vec::len), Some(2), "{r:#}");
    assert_eq!(r["pass_ms"], serde_json::json!([]), "{r:#}");
    assert!(r["generation"].is_null(), "{r:#}");
    // No budget given: the automatic one holds the whole model on this machine, so the first pass
    // read every layer mean pooling uses (all but the pooler) once and kept it resident; the
    // others read nothing.
    assert!(
        stderr(&out).contains("budget: all") && stderr(&out).contains("resident"),
        "{}",
        stderr(&out)
    );
    let inspected = lit(&["inspect", store_s, "--json"]);
    let inspect: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let used: u64 = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"] != "pooler")
        .map(|l| l["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(r["model_bytes"], inspect["total_bytes"], "{r:#}");
    assert_eq!(r["bytes_read"], used, "{r:#}");
    assert_eq!(r["resident_bytes"], used, "{r:#}");
    assert_eq!(r["budget"], used, "{r:#}");
    assert!(
        stderr(&out).contains("timing embed_ms="),
        "{}",
        stderr(&out)
    );
    let plain: Vec<Vec<f32>> = stdout(&out)
        .lines()
        .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(plain.len(), 3);
    for (p, v) in plain.iter().zip(&vectors) {
        assert!(dot(p, v) > 1.0 - 1e-5);
    }

    // 16 MiB, a third of the largest layer (the 47 MiB embeddings): the embedding tables are
    // read by rows and never held, the encoder layers (7 MiB) stream; the same vectors.
    let mut args = vec!["run", "bert", store_s, "--budget", "16MiB"];
    args.extend(texts);
    let out = lit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let small: Vec<Vec<f32>> = stdout(&out)
        .lines()
        .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(small.len(), 3);
    for (p, v) in small.iter().zip(&vectors) {
        assert!(dot(p, v) > 1.0 - 1e-5);
    }

    // A budget below the largest encoder layer is a clear error naming it.
    let out = lit(&["run", "bert", store_s, "--budget", "4MiB", "hello"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("too small") && stderr(&out).contains("encoder.layer"),
        "{}",
        stderr(&out)
    );
}
