//! Shared checks for the decoders: synthetic stores and HF directories, the numpy reference,
//! streamed vs resident, KV cache vs recompute.
#![allow(dead_code, unreachable_pub)]

use burn::tensor::Device;
use lit_burn::models::decoder::{Resident, Weights};
use lit_burn::models::generate::{CausalLm, GenerateOptions, generate, logits};
use lit_burn::models::synth::{Synth, SynthConfig};
use lit_burn::{LoadOptions, NameRules, ParamPaths, StreamOptions, Streamer, load_module};
use lit_core::{LayerData, WeightSource, WeightSourceExt};
use lit_store::{LocalSource, StoreWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A synthetic model written twice: as a store and as a Hugging Face directory.
pub struct Fixture {
    pub source: Arc<dyn WeightSource>,
    pub hf_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Writes `config` with `seed` (f32, spread `std`) as a store and an HF directory.
pub fn fixture(config: SynthConfig, seed: u64, std: f32) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let synth = Synth::new(config, seed).with_std(std);
    let store = tmp.path().join("store");
    synth
        .write_store(
            StoreWriter::create_local(&store).unwrap(),
            &lit_core::NoObserver,
        )
        .unwrap();
    let hf_dir = tmp.path().join("hf");
    synth.write_hf_dir(&hf_dir).unwrap();
    Fixture {
        source: Arc::new(LocalSource::open(&store).unwrap()),
        hf_dir,
        _tmp: tmp,
    }
}

/// The venv python of the references: `$LIT_PYTHON`, or the last line of
/// `scripts/setup-python.sh`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("LIT_PYTHON")
        && !p.is_empty()
    {
        return p;
    }
    let root = workspace_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/setup-python.sh"))
        .output()
        .expect("cannot run scripts/setup-python.sh (set LIT_PYTHON)");
    assert!(
        out.status.success(),
        "scripts/setup-python.sh failed (set LIT_PYTHON): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("setup-python.sh printed nothing")
        .trim()
        .to_string()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The reference's logits (every prompt position, f64) and greedy continuation.
pub fn reference(
    script: &str,
    hf_dir: &Path,
    ids: &[u32],
    generate: usize,
) -> (Vec<Vec<f64>>, Vec<u32>) {
    let tokens: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let out = Command::new(python())
        .arg(workspace_root().join("scripts/reference").join(script))
        .arg(hf_dir)
        .args([
            "--tokens",
            &tokens.join(","),
            "--generate",
            &generate.to_string(),
        ])
        .output()
        .expect("cannot run the reference");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logits = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    let generated = v["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    (logits, generated)
}

/// `max |a - b| / max |b|` over all positions.
pub fn max_rel_err(ours: &[Vec<f32>], reference: &[Vec<f64>]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    let mut diff = 0f64;
    let mut scale = 0f64;
    for (a, b) in ours.iter().zip(reference) {
        assert_eq!(a.len(), b.len());
        for (&x, &y) in a.iter().zip(b) {
            diff = diff.max((x as f64 - y).abs());
            scale = scale.max(y.abs());
        }
    }
    diff / scale
}

/// Checks logits and greedy ids against the reference; returns the relative error.
pub fn check_against_reference<M: CausalLm>(
    fx: &Fixture,
    model: &M,
    names: NameRules,
    script: &str,
    ids: &[u32],
    n: usize,
) -> f64 {
    let streamer = Streamer::new(
        fx.source.clone(),
        model,
        StreamOptions::default().with_names(names),
    )
    .unwrap();
    let ours = logits(&streamer, model, ids).unwrap();
    let (theirs, their_ids) = reference(script, &fx.hf_dir, ids, n);
    let err = max_rel_err(&ours, &theirs);
    eprintln!("{script}: max relative logit error {err:.3e}");
    assert!(err < 1e-4, "{script}: relative error {err}");
    let out = generate(&streamer, model, ids, &GenerateOptions::greedy(n)).unwrap();
    assert_eq!(out.tokens, their_ids, "{script}: greedy ids");
    err
}

/// Every layer of the store.
pub fn all_layers(source: &dyn WeightSource) -> Vec<LayerData> {
    (0..source.manifest().layers.len())
        .map(|i| futures::executor::block_on(source.read_layer(i)).unwrap())
        .collect()
}

/// The model loaded whole (resident).
pub fn resident<M: CausalLm>(source: &dyn WeightSource, skeleton: &M, names: NameRules) -> M {
    let paths = ParamPaths::from_module(skeleton);
    let options = LoadOptions::default().with_names(names);
    load_module(skeleton, &paths, &all_layers(source), &options)
        .unwrap()
        .0
}

fn bits(rows: &[Vec<f32>]) -> Vec<u32> {
    rows.iter().flatten().map(|x| x.to_bits()).collect()
}

/// Logits and generated ids (greedy and sampled) of one run.
fn run<M: CausalLm, W: Weights>(w: &W, model: &M, ids: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let l = bits(&logits(w, model, ids).unwrap());
    let greedy = generate(w, model, ids, &GenerateOptions::greedy(6)).unwrap();
    let sampled = generate(
        w,
        model,
        ids,
        &GenerateOptions::greedy(6).with_temperature(0.9, 11),
    )
    .unwrap();
    assert_eq!(greedy.last_logits.len(), model.vocab_size());
    (l, greedy.tokens, sampled.tokens)
}

/// Streamed == resident, bit for bit, for prefetch 0/1/3 and budgets of about two layers, half
/// the model and the whole model; and with the model's pieces declared, at budgets of one and
/// one and a half layers (pieces streamed one at a time when prefetching).
pub fn check_streamed_equals_resident<M: CausalLm>(
    fx: &Fixture,
    skeleton: &M,
    names: NameRules,
    ids: &[u32],
) {
    let whole = resident(fx.source.as_ref(), skeleton, names.clone());
    let expected = run(&Resident, &whole, ids);
    let m = fx.source.manifest();
    let largest = m.layers.iter().map(|l| l.byte_len).max().unwrap();
    let budgets = [2 * largest, (m.total_bytes / 2).max(2 * largest), u64::MAX];
    let declared = !skeleton
        .with_pieces(StreamOptions::default())
        .pieces
        .is_empty();
    for prefetch in [0, 1, 3] {
        // Whole layers at budgets of two layers and more; the model's pieces declared at one
        // and one and a half.
        let whole = budgets.iter().map(|&b| (b, false));
        let pieces = [largest, largest * 3 / 2].into_iter().map(|b| (b, true));
        for (budget, with_pieces) in whole.chain(pieces) {
            let options = StreamOptions::default()
                .with_names(names.clone())
                .with_prefetch(prefetch)
                .with_budget(budget);
            let options = if with_pieces {
                skeleton.with_pieces(options)
            } else {
                options
            };
            let streamer = Streamer::new(fx.source.clone(), skeleton, options).unwrap();
            assert_eq!(
                streamer.loads_pieces(),
                with_pieces && declared && prefetch > 0
            );
            let got = run(&streamer, skeleton, ids);
            assert!(
                got == expected,
                "prefetch {prefetch}, budget {budget}, pieces {with_pieces}: differs from resident"
            );
            let stats = streamer.stats();
            assert!(stats.peak_bytes_held <= budget, "{stats:?}");
        }
    }
    assert!(lit_burn::paths::is_lazy(skeleton));
}

/// Each cached step's logits equal a full recompute's last position.
pub fn check_kv_cache_equals_recompute<M: CausalLm>(
    fx: &Fixture,
    skeleton: &M,
    names: NameRules,
    ids: &[u32],
) {
    let streamer = Streamer::new(
        fx.source.clone(),
        skeleton,
        StreamOptions::default().with_names(names),
    )
    .unwrap();
    let mut cache = skeleton.new_cache();
    let first = skeleton
        .forward_tokens(&streamer, &ids[..2], &mut cache, false)
        .unwrap();
    let mut step = lit_burn::models::generate::to_rows(first).unwrap();
    let mut worst = 0f64;
    for k in 2..=ids.len() {
        let full = logits(&streamer, skeleton, &ids[..k]).unwrap();
        let want: Vec<Vec<f64>> = vec![full[k - 1].iter().map(|&x| x as f64).collect()];
        let err = max_rel_err(&step, &want);
        worst = worst.max(err);
        assert!(err < 1e-5, "position {}: cached vs recomputed {err}", k - 1);
        if k < ids.len() {
            let t = skeleton
                .forward_tokens(&streamer, &ids[k..k + 1], &mut cache, false)
                .unwrap();
            step = lit_burn::models::generate::to_rows(t).unwrap();
        }
    }
    assert_eq!(cache.len(), ids.len());
    eprintln!("KV cache vs recompute: max relative error {worst:.3e}");
}

/// The Flex CPU device.
pub fn device() -> Device {
    Device::flex()
}
