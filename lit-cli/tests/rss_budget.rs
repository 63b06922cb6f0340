//! A model at least 4× larger than its budget runs with peak RSS (VmHWM from /proc, file-backed
//! pages included) ≤ budget + 2 × largest layer + 64 MiB, and reads model − resident per pass.

mod common;
use common::*;

fn stat(stderr: &str, key: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("stats "))
        .expect("a stats line");
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse::<f64>()
        .unwrap() as u64
}

#[test]
fn streamed_llama_stays_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("llama.lit");
    let out = lit(&[
        "synth",
        "llama",
        store.to_str().unwrap(),
        "--params",
        "60M",
        "--seed",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = lit_store::LocalSource::open(&store).unwrap();
    let m = lit_core::WeightSource::manifest(&manifest);
    let model = m.total_bytes;
    let largest = m.largest_layer_bytes();
    let budget = model / 4;
    assert!(
        budget >= largest,
        "test model shape: budget {budget} < largest layer {largest}"
    );
    for prefetch in ["0", "2"] {
        let out = lit(&[
            "run",
            "llama",
            store.to_str().unwrap(),
            "--ids",
            "--prompt",
            "1,2,3",
            "--max-tokens",
            "3",
            "--budget",
            &format!("{budget}B"),
            "--prefetch",
            prefetch,
        ]);
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        let peak_rss = stat(&err, "peak_rss");
        let bound = budget + 2 * largest + (64 << 20);
        assert!(
            peak_rss > 0 && peak_rss <= bound,
            "prefetch {prefetch}: peak RSS {peak_rss} > bound {bound}\n{err}"
        );
        assert!(stat(&err, "peak_held") <= budget, "{err}");
        let passes = stat(&err, "passes");
        let resident = stat(&err, "resident_bytes");
        // First pass reads everything; later passes read model − resident.
        assert_eq!(
            stat(&err, "bytes_read"),
            model + (passes - 1) * (model - resident),
            "{err}"
        );
    }
}
