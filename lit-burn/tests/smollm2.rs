//! The real SmolLM2-135M-Instruct (llama.cpp's Q4_1 GGUF, from PyPI) exported to a store that
//! keeps its quantized blocks, streamed under a budget of a quarter to a third of the model, computing on
//! the blocks and decoding them on load: greedy tokens
//! identical to an independent float64 numpy forward pass over the GGUF
//! (`scripts/reference/smollm2_reference.py`, llama.cpp's own row order and RoPE), first-step
//! logits within 1e-3.
//!
//! The GGUF comes from `$LIT_SMOLLM2_GGUF` or `scripts/fetch-smollm2.sh`; the python from
//! `$LIT_PYTHON` or `scripts/setup-python.sh`.

mod decoders;

use burn::tensor::Device;
use decoders::python;
use lit_burn::models::arch::architecture_named;
use lit_burn::models::generate::{GenerateOptions, generate, logits};
use lit_burn::models::llama::Llama;
use lit_burn::{StreamOptions, Streamer};
use lit_core::WeightSource;
use lit_store::{ExportOptions, LocalSource, StoreWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn gguf() -> PathBuf {
    if let Ok(p) = std::env::var("LIT_SMOLLM2_GGUF")
        && !p.is_empty()
    {
        return p.into();
    }
    let out = Command::new("bash")
        .arg(root().join("scripts/fetch-smollm2.sh"))
        .output()
        .expect("cannot run scripts/fetch-smollm2.sh (set LIT_SMOLLM2_GGUF)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .into()
}

/// Prompts as the reference's own tokenizer encodes them: "The capital of France is",
/// "def fibonacci(n):" and a ChatML "What is 2+2?" turn.
const PROMPTS: [&[u32]; 3] = [
    &[504, 3575, 282, 4649, 314],
    &[1604, 3987, 46477, 24, 94, 727],
    &[
        1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198,
    ],
];
const NEW_TOKENS: usize = 12;

struct Reference {
    generated: Vec<Vec<u32>>,
    /// The logits that choose the first new token, per prompt.
    first_logits: Vec<Vec<f64>>,
}

fn reference(gguf: &Path) -> Reference {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("scripts/reference/smollm2_reference.py"))
        .arg(gguf);
    for p in PROMPTS {
        let ids: Vec<String> = p.iter().map(u32::to_string).collect();
        cmd.args(["--tokens", &ids.join(",")]);
    }
    let out = cmd
        .args(["--max-tokens", &NEW_TOKENS.to_string(), "--logits", "full"])
        .output()
        .expect("cannot run the SmolLM2 reference");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    let ids = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect()
    };
    Reference {
        generated: results.iter().map(|r| ids(&r["generated"])).collect(),
        first_logits: results
            .iter()
            .map(|r| {
                r["logits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect(),
    }
}

#[test]
fn smollm2_streamed_from_quantized_blocks_matches_the_numpy_reference() {
    let gguf = gguf();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("smol.lit");
    lit_store::export(
        &gguf,
        StoreWriter::create_local(&store).unwrap(),
        &ExportOptions::default(),
        &lit_core::NoObserver,
    )
    .unwrap();
    let source: Arc<dyn WeightSource> = Arc::new(LocalSource::open(&store).unwrap());
    let m = source.manifest();
    assert!(
        m.layers
            .iter()
            .flat_map(|l| &l.tensors)
            .any(|t| t.quant.is_some()),
        "the store should keep the GGUF's blocks"
    );
    let device = Device::flex();
    let model = Llama::from_source(source.as_ref(), &device).unwrap();
    let reference = reference(&gguf);
    let llama = architecture_named("llama").unwrap();
    for blocks in [false, true] {
        // The architecture's options (computing on the blocks), or decoding them on load.
        let mut options =
            llama.stream_options(source.as_ref(), StreamOptions::default().with_prefetch(2));
        options.load = options.load.with_block_compute(blocks);
        let whole = Streamer::new(source.clone(), &model, options.clone()).unwrap();
        let held_all = whole.budget().model_bytes;
        drop(whole);
        // The tied embedding, loaded as the pass's last layer for the head, is the largest
        // layer: 23% of the model decoded (blocks + f32), 31% on its blocks. A quarter of the
        // model decoded, a third on the blocks.
        let budget = if blocks { held_all / 3 } else { held_all / 4 };
        let streamer = Streamer::new(source.clone(), &model, options.with_budget(budget)).unwrap();
        check_against_reference(&streamer, &model, &reference, blocks);
        let stats = streamer.stats();
        assert!(stats.peak_bytes_held <= budget);
        assert!(stats.resident_bytes < held_all, "the run did not stream");
    }
}

fn check_against_reference(
    streamer: &Streamer,
    model: &Llama,
    reference: &Reference,
    blocks: bool,
) {
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let rows = logits(streamer, model, prompt).unwrap();
        let last = rows.last().unwrap();
        let want = &reference.first_logits[i];
        assert_eq!(last.len(), want.len());
        let worst = last
            .iter()
            .zip(want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0f64, f64::max);
        assert!(
            worst <= 1e-3,
            "blocks {blocks}, prompt {i}: first-step logits differ by {worst}"
        );

        let options = GenerateOptions::greedy(NEW_TOKENS).with_stop_tokens(vec![2]);
        let out = generate(streamer, model, prompt, &options).unwrap();
        assert_eq!(
            out.tokens, reference.generated[i],
            "blocks {blocks}, prompt {i}"
        );
    }
}
