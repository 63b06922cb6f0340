//! BERT sentence embeddings on the real all-MiniLM-L6-v2 weights: against an independent numpy
//! float64 reference, streamed against resident, and a skeleton that stays lazy.
//!
//! The model comes from `LIT_MINILM_DIR` or `scripts/fetch-minilm.sh`; the reference runs with
//! the python from `LIT_PYTHON` or `scripts/setup-python.sh`.

use burn::module::Module;
use burn::tensor::Device;
use lit_burn::layer_major::SpillTier;
use lit_burn::models::bert::{BertConfig, SentenceEmbedder};
use lit_burn::paths::is_lazy;
use lit_burn::{StreamOptions, Streamer};
use lit_core::{NoObserver, WeightSource};
use lit_store::{ExportOptions, LocalSource, StoreWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The last stdout line of `bash scripts/<script>`, unless `var` is set.
fn from_env_or_script(var: &str, script: &str) -> PathBuf {
    if let Ok(v) = std::env::var(var) {
        return PathBuf::from(v);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .output()
        .unwrap_or_else(|e| panic!("bash scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().expect("a path").trim())
}

fn minilm_dir() -> PathBuf {
    from_env_or_script("LIT_MINILM_DIR", "fetch-minilm.sh")
}

/// MiniLM exported to a fresh store.
fn minilm_store() -> (Arc<dyn WeightSource>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("minilm.lit");
    let writer = StoreWriter::create_local(&store).unwrap();
    lit_store::export(
        &minilm_dir(),
        writer,
        &ExportOptions::default(),
        &NoObserver,
    )
    .unwrap();
    (Arc::new(LocalSource::open(&store).unwrap()), tmp)
}

/// `minilm_reference.py MODEL_DIR <mode> texts…` parsed from its JSON output.
fn reference<T: serde::de::DeserializeOwned>(mode: &str, texts: &[&str]) -> T {
    let python = from_env_or_script("LIT_PYTHON", "setup-python.sh");
    let out = Command::new(python)
        .arg(repo_root().join("scripts/reference/minilm_reference.py"))
        .arg(minilm_dir())
        .arg(mode)
        .arg("--")
        .args(texts)
        .output()
        .expect("the reference runs");
    assert!(
        out.status.success(),
        "minilm_reference.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn long_text() -> String {
    let sentence = "Streaming a model layer by layer keeps only a few weights in memory, \
                    while the page cache and prefetching hide most of the reading time. ";
    sentence.repeat(6) // about 190 tokens: past the shipped tokenizer's 128, under 256
}

fn texts(long: &str, very_long: &str) -> Vec<String> {
    vec![
        "A man is eating food.".into(),
        "Crème brûlée, naïve café — déjà vu? «Ça va!» 東京 🙂 (100% sure); x=3.14…".into(),
        "The stock market crashed after the announcement of new tariffs!!!".into(),
        long.into(),
        "Hi".into(),
        very_long.into(),
    ]
}

fn cosine_distance(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum();
    let na = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    1.0 - dot / (na * nb)
}

fn embedder(source: &Arc<dyn WeightSource>, options: StreamOptions) -> SentenceEmbedder {
    SentenceEmbedder::open(source.clone(), &Device::flex(), options).unwrap()
}

#[test]
fn minilm_matches_the_numpy_reference() {
    let (source, _tmp) = minilm_store();
    let (long, very_long) = (long_text(), "word ".repeat(400));
    let texts = texts(&long, &very_long);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let expected_ids: Vec<Vec<u32>> = reference("--tokens", &texts);
    let expected: Vec<Vec<f64>> = reference("--json", &texts);

    // Streamed: the embeddings stay resident, encoder layers come and go.
    let options = StreamOptions::default()
        .with_budget(64 << 20)
        .with_prefetch(2);
    let embedder = embedder(&source, options);
    let tokens = embedder.tokenize(&texts).unwrap();
    let ids: Vec<Vec<u32>> = tokens.iter().map(|t| t.ids.clone()).collect();
    assert_eq!(ids, expected_ids);
    assert!(ids[3].len() > 128 && ids[3].len() < 256, "{}", ids[3].len());
    assert_eq!(ids[5].len(), 256, "truncated at max_seq_length");

    // All texts in one padded batch, then one at a time: both match the reference.
    let batched = embedder.embed(&texts).unwrap();
    let single = embedder.with_batch_size(1).embed(&texts).unwrap();
    let mut worst = 0f64;
    for (i, want) in expected.iter().enumerate() {
        for got in [&batched[i], &single[i]] {
            assert_eq!(got.len(), 384);
            let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
            let d = cosine_distance(got, want);
            worst = worst.max(d);
            assert!(
                d <= 1e-4,
                "text {i} ({:?}): cosine distance {d:e}",
                texts[i]
            );
        }
    }
    eprintln!("max cosine distance to the float64 reference: {worst:e}");
}

#[test]
fn streamed_equals_resident_bit_for_bit() {
    let (source, _tmp) = minilm_store();
    let manifest = source.manifest();
    let size = |name: &str| manifest.layers[manifest.layer_index(name).unwrap()].byte_len;
    let (embeddings, layer) = (size("embeddings"), size("encoder.layer.0"));
    let (long, very_long) = (long_text(), "word ".repeat(50));
    let texts = texts(&long, &very_long);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    let bits = |e: Vec<Vec<f32>>| -> Vec<u32> { e.iter().flatten().map(|x| x.to_bits()).collect() };
    let resident = embedder(&source, StreamOptions::default());
    let expected = bits(resident.embed(&texts).unwrap());
    let ms = |e: &SentenceEmbedder| {
        let start = Instant::now();
        let out = bits(e.embed(&texts).unwrap());
        (out, start.elapsed().as_secs_f64() * 1e3)
    };
    let (again, resident_ms) = ms(&resident);
    assert_eq!(again, expected);
    eprintln!("resident: {resident_ms:.1} ms per batch of {}", texts.len());

    // The embeddings layer is the largest (47 MiB); encoder layers are 7 MiB each. Below the
    // embeddings layer its tables are read by rows and the layer held without them.
    for budget in [embeddings + 2 * layer, embeddings, 2 * layer, layer] {
        for prefetch in [0, 1, 3] {
            let options = StreamOptions::default()
                .with_budget(budget)
                .with_prefetch(prefetch);
            let streamed = embedder(&source, options);
            for pass in 0..2 {
                let (got, t) = ms(&streamed);
                assert_eq!(got, expected, "budget {budget}, prefetch {prefetch}");
                if pass == 1 {
                    eprintln!(
                        "budget {:.1} MiB, prefetch {prefetch}: {t:.1} ms per batch",
                        budget as f64 / (1 << 20) as f64
                    );
                }
            }
            let stats = streamed.streamer().stats();
            assert!(stats.peak_bytes_held <= budget, "{stats:?}");
            // Read at least once (the layers besides the tables may then stay resident).
            assert!(stats.passes.iter().any(|p| p.bytes_read > 0), "{stats:?}");
            let read = stats.passes.last().unwrap().bytes_read;
            if budget < embeddings {
                // The encoder layers and the rows of this batch's tokens, not the tables.
                assert!(read < 6 * layer + embeddings / 8, "{read} bytes a pass");
            }
        }
    }
    assert!(is_lazy(resident.model()));
}

#[test]
fn skeleton_allocates_nothing() {
    let (source, _tmp) = minilm_store();
    let config = BertConfig::from_json(config_json(&source).as_slice()).unwrap();
    let start = Instant::now();
    let model = config.init(&Device::flex());
    let built = start.elapsed();
    assert!(is_lazy(&model));
    assert_eq!(model.num_params(), 22_565_376, "MiniLM without its pooler");
    let streamer = Streamer::new(
        source.clone(),
        &model,
        StreamOptions::default().with_names(lit_burn::models::bert::Bert::names("")),
    )
    .unwrap();
    let embedder = embedder(&source, StreamOptions::default().with_budget(50 << 20));
    embedder.embed(&["lazy skeletons"]).unwrap();
    assert!(
        is_lazy(&model) && is_lazy(embedder.model()),
        "still lazy after a pass"
    );
    drop(streamer);
    assert!(built.as_millis() < 100, "skeleton built in {built:?}");
}

fn config_json(source: &Arc<dyn WeightSource>) -> Vec<u8> {
    use lit_core::WeightSourceExt;
    futures::executor::block_on(source.read_aux("config.json"))
        .unwrap()
        .to_vec()
}

/// `n` sentences of different lengths and vocabulary (deterministic).
fn corpus(n: usize) -> Vec<String> {
    let words = [
        "the",
        "model",
        "streams",
        "weights",
        "from",
        "disk",
        "while",
        "a",
        "small",
        "cat",
        "sleeps",
        "on",
        "warm",
        "laptop",
        "layer",
        "by",
        "layer",
        "and",
        "nobody",
        "notices",
        "München",
        "café",
        "quickly",
        "Tokyo",
        "42",
        "embeddings",
        "are",
        "unit",
        "vectors",
    ];
    (0..n)
        .map(|i| {
            let len = 1 + (i * 7919) % 37;
            let mut s: Vec<&str> = (0..len)
                .map(|j| words[(i * 31 + j * 17) % words.len()])
                .collect();
            if i % 9 == 0 {
                s.push("!");
            }
            s.join(" ")
        })
        .collect()
}

#[test]
fn layer_major_corpus_equals_batched_embedding_with_spilling() {
    let (source, _tmp) = minilm_store();
    let texts = corpus(300);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();

    // The reference: resident weights, batches of 32 in input order.
    let resident = embedder(
        &source,
        StreamOptions::default().with_budget(lit_burn::Budget::All),
    );
    let expected = resident.embed(&texts).unwrap();

    // Layer-major under a budget below the model (encoder layers come and go), the hidden
    // states of the 300 texts limited to 1 MiB in memory: most of them spill.
    let streamed = embedder(&source, StreamOptions::default().with_budget(60 << 20));
    let tokens = streamed.tokenize(&texts).unwrap();
    let spill_dir = tempfile::tempdir().unwrap();
    let tier = SpillTier::new(spill_dir.path(), 1 << 20).unwrap();
    let got = streamed.embed_layer_major(&tokens, &tier).unwrap();

    assert_eq!(got.len(), expected.len());
    let mut worst = 0f32;
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.len(), 384);
        for (a, b) in g.iter().zip(e) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= 1e-6, "largest difference {worst}");
    let spill = tier.stats();
    assert!(
        spill.tensors_spilled > 0 && spill.bytes_spilled > 1 << 20,
        "{spill:?}"
    );
    assert!(spill.peak_memory_bytes <= 1 << 20, "{spill:?}");
    // One weight pass for the whole corpus: 7 loads (embeddings, 6 layers).
    let stats = streamed.streamer().stats();
    assert_eq!(stats.passes.len(), 1, "{stats:?}");
    assert_eq!(stats.passes[0].loads, 7, "{stats:?}");

    // At 16 MiB, a third of the embeddings layer: its tables are read by rows, never held.
    let budget = 16 << 20;
    let small = embedder(&source, StreamOptions::default().with_budget(budget));
    let got = small.embed_layer_major(&tokens, &tier).unwrap();
    let worst = got
        .iter()
        .flatten()
        .zip(expected.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-6, "16 MiB: largest difference {worst}");
    let stats = small.streamer().stats();
    assert!(stats.peak_bytes_held <= budget, "{stats:?}");
    // Loading the whole embeddings module is refused with the table named.
    let err = small
        .streamer()
        .load(&small.model().embeddings)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embeddings.word_embeddings.weight") && err.contains("rows"),
        "{err}"
    );
}
