//! `--stats-json FILE`: the report a run writes, checked against what is known without it (the
//! store's own layer sizes from `lit inspect --json`, the tokens printed, the checkpoint's bytes),
//! and `lit bench`, which reads its child processes' reports.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_file(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key} in {v:#}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v:#}"))
}

/// Bytes of the layer `name` in `lit inspect --json`'s report.
fn layer_bytes(inspect: &Value, name: &str) -> u64 {
    let layers = inspect["layers"].as_array().unwrap();
    let layer = layers.iter().find(|l| l["name"] == name);
    u(layer.unwrap_or_else(|| panic!("no layer {name}")), "bytes")
}

/// A seeded synthetic Llama store and what `lit inspect --json` says of it.
fn llama_store(dir: &Path) -> (std::path::PathBuf, Value) {
    let store = dir.join("llama.lit");
    let out = lit(&["synth", "llama", s(&store), "--params", "2M", "--seed", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lit(&["inspect", s(&store), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    (store, serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn a_streamed_run_reports_what_it_read_and_generated() {
    let dir = tempfile::tempdir().unwrap();
    let (store, inspect) = llama_store(dir.path());
    let total = u(&inspect, "total_bytes");
    let largest = u(&inspect, "largest_layer_bytes");
    let layers = inspect["layers"].as_array().unwrap();
    assert_eq!(
        layers.iter().map(|l| u(l, "bytes")).sum::<u64>(),
        total,
        "{inspect:#}"
    );
    // A budget of the largest layer holds one layer at a time: nothing can stay resident, so
    // every pass reads every layer.
    let report = dir.path().join("report.json");
    let out = lit(&[
        "run",
        "llama",
        s(&store),
        "--ids",
        "--prompt",
        "1,2,3",
        "--max-tokens",
        "4",
        "--budget",
        &format!("{largest}B"),
        "--prefetch",
        "0",
        "--stats-json",
        s(&report),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let tokens = stdout(&out).lines().next().unwrap().split(',').count() as u64;
    assert_eq!(tokens, 4, "{}", stdout(&out));

    let r = json_file(&report);
    assert_eq!(r["executor"], "streamed", "{r:#}");
    assert_eq!(u(&r, "model_bytes"), total);
    assert_eq!(u(&r, "layers"), layers.len() as u64);
    assert_eq!(u(&r, "largest_layer"), largest);
    assert_eq!(u(&r, "budget"), largest);
    assert_eq!(u(&r, "prefetch"), 0);
    // One pass for the prompt (yielding the first token), then one per further token.
    assert_eq!(u(&r, "passes"), tokens, "{r:#}");
    assert_eq!(u(&r, "resident_bytes"), 0, "{r:#}");
    assert_eq!(u(&r, "resident_layers"), 0, "{r:#}");
    // Every pass reads every layer but the embedding table (the head is not tied), of which it
    // reads its tokens' rows by range: 3 for the prompt, then one per pass.
    let embed = layer_bytes(&inspect, "model.embed_tokens");
    let read = u(&r, "bytes_read");
    let rows = read - tokens * (total - embed);
    let row_count = 3 + tokens - 1;
    assert!(
        rows > 0 && rows.is_multiple_of(row_count) && rows / row_count < embed / 100,
        "rows read: {rows} bytes\n{r:#}"
    );
    // Within the budget, and the largest layer was held once.
    assert_eq!(u(&r, "peak_held"), largest, "{r:#}");
    assert!(u(&r, "peak_rss") > largest, "{r:#}");

    let pass_ms: Vec<f64> = r["pass_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(pass_ms.len() as u64, tokens, "{r:#}");
    assert!(pass_ms.iter().all(|&t| t > 0.0), "{r:#}");
    let seconds = f(&r, "seconds");
    assert!(
        (pass_ms.iter().sum::<f64>() / 1e3 - seconds).abs() < 1e-6,
        "{r:#}"
    );
    let first = f(&r, "open_to_first_compute_ms");
    assert!(first > 0.0 && first < 60_000.0, "{r:#}");
    let g = &r["generation"];
    assert_eq!(u(g, "prompt_tokens"), 3);
    assert_eq!(u(g, "new_tokens"), tokens);
    assert!((f(g, "prefill_ms") - pass_ms[0]).abs() < 1e-9, "{r:#}");
    assert!(f(g, "tokens_per_second") > 0.0, "{r:#}");
    assert!(u(g, "kv_cache_bytes") > 0, "{r:#}");

    // The stderr lines people and scripts read say the same.
    let stats = err
        .lines()
        .find(|l| l.starts_with("stats "))
        .expect("a stats line");
    for (key, value) in [
        ("passes", tokens),
        ("bytes_read", read),
        ("resident_bytes", 0),
        ("budget", largest),
        ("largest_layer", largest),
        ("peak_rss", u(&r, "peak_rss")),
    ] {
        assert!(
            stats
                .split_whitespace()
                .any(|kv| kv == format!("{key}={value}")),
            "{key}={value} not in {stats}"
        );
    }
    assert!(err.contains("timing open_to_first_compute_ms="), "{err}");
    assert!(err.contains("4 passes in"), "{err}");
}

#[test]
fn plain_burn_and_export_write_reports_too() {
    let dir = tempfile::tempdir().unwrap();
    let (store, inspect) = llama_store(dir.path());
    let total = u(&inspect, "total_bytes");
    let report = dir.path().join("plain.json");
    let out = lit(&[
        "run",
        "llama",
        s(&store),
        "--ids",
        "--prompt",
        "7",
        "--max-tokens",
        "2",
        "--plain",
        "--stats-json",
        s(&report),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json_file(&report);
    assert_eq!(r["executor"], "plain", "{r:#}");
    assert_eq!(u(&r, "passes"), 2, "{r:#}");
    assert_eq!(u(&r, "bytes_read"), total, "read once: {r:#}");
    assert_eq!(u(&r, "resident_bytes"), total, "{r:#}");
    assert!(r["budget"].is_null() && r["prefetch"].is_null(), "{r:#}");
    assert!(stderr(&out).contains("plain Burn: whole model in memory"));

    // Export: 3 layers of 1 MiB.
    let ckpt = dir.path().join("three.safetensors");
    synthetic_checkpoint(&ckpt, 3, 1 << 20);
    let dst = dir.path().join("three.lit");
    let report = dir.path().join("export.json");
    let exported = lit(&["export", s(&ckpt), s(&dst), "--stats-json", s(&report)]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let r = json_file(&report);
    let out = lit(&["inspect", s(&dst), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Each layer object is its tensor data plus a small header.
    assert_eq!(u(&r, "bytes_written"), u(&written, "total_bytes"), "{r:#}");
    assert!(u(&r, "bytes_written") >= 3 << 20, "{r:#}");
    let largest = u(&written, "largest_layer_bytes");
    assert_eq!(u(&r, "largest_layer"), largest, "{r:#}");
    assert_eq!((u(&r, "layers"), u(&r, "tensors")), (3, 3), "{r:#}");
    assert!(u(&r, "peak_rss") > largest, "{r:#}");
    assert_eq!(r["destination"], s(&dst), "{r:#}");
    let summary = stdout(&exported);
    assert!(
        summary.starts_with("exported 3 layers, 3 tensors"),
        "{summary}"
    );

    // A report that cannot be written fails the command, naming the file.
    let out = lit(&[
        "run",
        "llama",
        s(&store),
        "--ids",
        "--prompt",
        "7",
        "--max-tokens",
        "1",
        "--stats-json",
        s(&dir.path().join("no-such-dir/r.json")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no-such-dir"), "{}", stderr(&out));
}

/// `lit bench` runs each mode in a child process and takes its figures from the child's report.
#[test]
fn bench_takes_each_mode_from_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let (store, inspect) = llama_store(dir.path());
    let total = u(&inspect, "total_bytes");
    let largest = u(&inspect, "largest_layer_bytes");
    let out = lit(&[
        "bench",
        s(&store),
        "--budget",
        &format!("{largest}B"),
        "--passes",
        "3",
        "--no-mmap",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&b, "model_bytes"), total);
    let runs = b["runs"].as_array().unwrap();
    let warm = |mode: &str| {
        runs.iter()
            .find(|r| r["mode"] == mode && r["cache"] == "warm")
            .unwrap_or_else(|| panic!("no warm {mode} run in {b:#}"))
    };
    for r in runs {
        assert!(u(r, "peak_rss") > 0, "{r:#}");
        assert!(f(r, "first_pass_ms") > 0.0, "{r:#}");
        assert!(f(r, "pass_ms") > 0.0, "{r:#}");
        if r["mode"] != "plain-burn" {
            assert!(f(r, "open_to_first_compute_ms") > 0.0, "{r:#}");
        }
    }
    // Everything resident after the first pass: later passes read nothing.
    let resident = warm("resident");
    assert_eq!(u(resident, "resident_bytes"), total, "{resident:#}");
    assert_eq!(f(resident, "bytes_read_per_pass"), 0.0, "{resident:#}");
    assert_eq!(u(warm("plain-burn"), "resident_bytes"), total);
    // A budget of one layer: every pass reads the whole model but the embedding table, of which
    // it reads the step's rows.
    let embed = layer_bytes(&inspect, "model.embed_tokens");
    let naive = warm("load-then-compute");
    assert_eq!(u(naive, "resident_bytes"), 0, "{naive:#}");
    let per_pass = f(naive, "bytes_read_per_pass");
    let rest = (total - embed) as f64;
    assert!(
        per_pass > rest && per_pass < rest + embed as f64 / 100.0,
        "{naive:#}"
    );
    assert_eq!(u(naive, "budget"), largest, "{naive:#}");
    let streamed = warm("lit");
    assert!(f(streamed, "bytes_read_per_pass") > rest, "{streamed:#}");
}
