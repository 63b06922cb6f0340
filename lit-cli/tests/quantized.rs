//! Quantized stores from float checkpoints.
//!
//! - all-MiniLM-L6-v2 exported with `--quantize q8_0` (every 2-D weight matrix, embeddings
//!   included, as 8-bit blocks) and run by `lit run bert`: its sentence embeddings stay within a
//!   cosine distance of 1e-3 of the independent float64 numpy reference (measured: 1.2e-4 to
//!   1.8e-4 on four sentences), and the store is 3.4×
//!   smaller than the float one.
//! - `lit synth --quantize` writes the same blocks as `lit export --quantize` of the same weights
//!   written as a Hugging Face directory (`lit synth --hf`), and the store generates.

mod common;
use common::*;
use std::process::Command;

fn cos(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn python() -> String {
    if let Ok(p) = std::env::var("LIT_PYTHON")
        && !p.is_empty()
    {
        return p;
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/setup-python.sh"))
        .output()
        .expect("scripts/setup-python.sh");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn q8_0_minilm_stays_close_to_the_float_reference() {
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let q8 = dir.path().join("q8.lit");
    let f32_store = dir.path().join("f32.lit");
    let model_s = model.to_str().unwrap();
    let out = lit(&[
        "export",
        model_s,
        q8.to_str().unwrap(),
        "--quantize",
        "q8_0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lit(&["export", model_s, f32_store.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = |p: &std::path::Path| {
        let s = lit_store::LocalSource::open(p).unwrap();
        lit_core::WeightSource::manifest(&s).total_bytes as f64
    };
    let ratio = size(&f32_store) / size(&q8);
    assert!(ratio > 3.4, "q8_0 store only {ratio:.2}× smaller");
    let inspect = stdout(&lit(&["inspect", q8.to_str().unwrap()]));
    assert!(inspect.contains("Q8_0"), "{inspect}");

    let texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The stock market crashed after the announcement of new tariffs.",
        "Quantized weights keep their meaning.",
    ];
    let mut args = vec!["run", "bert", q8.to_str().unwrap(), "--json"];
    args.extend(texts);
    let out = lit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();

    let reference = Command::new(python())
        .arg(repo_root().join("scripts/reference/minilm_reference.py"))
        .arg(&model)
        .arg("--json")
        .args(texts)
        .output()
        .expect("run the MiniLM reference");
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let want: Vec<Vec<f64>> = serde_json::from_slice(&reference.stdout).unwrap();
    assert_eq!(got.len(), want.len());
    let distances: Vec<f64> = got
        .iter()
        .zip(&want)
        .map(|(g, w)| 1.0 - cos(g, w))
        .collect();
    eprintln!("q8_0 MiniLM cosine distances to the float64 reference: {distances:?}");
    for d in &distances {
        assert!(*d <= 1e-3, "{distances:?}");
    }
}

#[test]
fn synth_quantize_equals_export_quantize_of_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let s = |path: &std::path::Path| path.to_str().unwrap().to_string();
    let synth = |extra: &[&str], dst: &str| {
        let mut args = vec!["synth", "llama", dst, "--params", "3M", "--seed", "9"];
        args.extend(extra);
        let out = lit(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    for scheme in ["q8_0", "q4_0", "q4_1"] {
        let (synthesized, hf, exported) = (
            p(&format!("s-{scheme}")),
            p("hf"),
            p(&format!("e-{scheme}")),
        );
        synth(&["--quantize", scheme], &s(&synthesized));
        if !hf.exists() {
            synth(&["--hf"], &s(&hf));
        }
        let out = lit(&["export", &s(&hf), &s(&exported), "--quantize", scheme]);
        assert!(out.status.success(), "{}", stderr(&out));

        let a = lit_store::LocalSource::open(&synthesized).unwrap();
        let b = lit_store::LocalSource::open(&exported).unwrap();
        let tensors = |src: &lit_store::LocalSource| {
            let mut all = std::collections::BTreeMap::new();
            for i in 0..lit_core::WeightSource::manifest(src).layers.len() {
                let layer =
                    futures::executor::block_on(lit_core::WeightSourceExt::read_layer(src, i))
                        .unwrap();
                for (t, bytes) in layer.tensors() {
                    all.insert(t.name.clone(), (t.quant, t.shape.clone(), bytes.to_vec()));
                }
            }
            all
        };
        let (ta, tb) = (tensors(&a), tensors(&b));
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
        let mut quantized = 0;
        for (name, x) in &ta {
            assert_eq!(x, &tb[name], "{scheme}: tensor `{name}` differs");
            quantized += usize::from(x.0.is_some());
        }
        assert!(quantized > 0, "{scheme}: nothing was quantized");

        let out = lit(&[
            "run",
            "llama",
            &s(&synthesized),
            "--ids",
            "--prompt",
            "1,2,3",
            "--max-tokens",
            "2",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}
