//! A model at least 4× larger than its budget runs with peak RSS (VmHWM from /proc, file-backed
//! pages included) ≤ budget + 2 × largest layer + 64 MiB, and reads model − resident per pass
//! (the embedding table but its tokens' rows).

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
    let embed = m.layers[m.layer_index("model.embed_tokens").unwrap()].byte_len;
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
        // Each pass reads what is not resident, except the embedding table, of which it may
        // read only its tokens' rows (when the table is not in memory).
        let read = stat(&err, "bytes_read");
        let least = passes * (model - resident - embed);
        let most = model + (passes - 1) * (model - resident) + passes * (embed / 100);
        assert!(
            (least..=most).contains(&read),
            "read {read} not in {least}..={most}\n{err}"
        );
    }
}

/// Export streams: its peak RSS stays within the largest layer + 64 MiB whatever the model size,
/// with large tensors on both sides of a layer of small ones (three buffers circulate there; a
/// later large tensor could grow a second large buffer while the first sat idle, which measured
/// 1.6× the largest layer on a 2 GB Llama in one run of three).
#[test]
fn export_peak_rss_stays_near_the_largest_layer() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mixed.safetensors");
    let big = 96usize << 20;
    let mut data: Vec<(String, Vec<u8>)> = vec![("a.0.w".into(), vec![1u8; big])];
    data.extend((0..5).map(|i| (format!("b.1.t{i}"), vec![2u8; 1 << 20])));
    data.push(("c.2.w".into(), vec![3u8; big]));
    let views: Vec<_> = data
        .iter()
        .map(|(name, bytes)| {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![bytes.len() / 4],
                bytes,
            )
            .unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &src).unwrap();
    drop(data);
    let dst = dir.path().join("mixed.lit");
    let out = lit(&["export", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats = stderr(&out);
    let field = |key: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
            .parse()
            .unwrap()
    };
    let (rss, largest) = (field("peak_rss"), field("largest_layer"));
    assert!(largest >= big as u64, "{stats}");
    assert!(
        rss <= largest + (64 << 20),
        "export peak RSS {rss} > largest layer {largest} + 64 MiB"
    );
}
