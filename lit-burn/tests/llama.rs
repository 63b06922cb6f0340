//! Llama: logits and greedy ids against the numpy reference, streamed == resident, KV cache ==
//! recompute, on small seeded synthetic models.

mod decoders;

use decoders::*;
use lit_burn::models::generate::{CausalLm, logits};
use lit_burn::models::llama::{Llama, LlamaConfig};
use lit_burn::models::synth::SynthConfig;
use lit_burn::{StreamOptions, Streamer};
use lit_core::WeightSource;
use lit_store::LocalSource;
use std::sync::Arc;

const IDS: [u32; 7] = [1, 17, 5, 63, 2, 40, 9];

/// GQA (4 query heads over 2 key/value heads), untied head, 3 blocks.
fn gqa() -> LlamaConfig {
    LlamaConfig {
        hidden_size: 32,
        intermediate_size: 72,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        num_hidden_layers: 3,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        vocab_size: 64,
        max_position_embeddings: 128,
        tie_word_embeddings: false,
        head_dim: None,
        attention_bias: false,
        mlp_bias: false,
        rope_scaling: None,
        hidden_act: "silu".into(),
        eos_token_id: None,
        bos_token_id: None,
    }
}

/// Multi-head, tied embeddings, q/k/v/o biases, Llama 3 RoPE scaling, another theta.
fn tied() -> LlamaConfig {
    LlamaConfig {
        num_key_value_heads: None,
        num_hidden_layers: 2,
        tie_word_embeddings: true,
        attention_bias: true,
        rope_theta: 500_000.0,
        rope_scaling: Some(serde_json::json!({
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 4
        })),
        ..gqa()
    }
}

fn model(fx: &Fixture) -> Llama {
    Llama::from_source(fx.source.as_ref(), &device()).unwrap()
}

#[test]
fn logits_and_greedy_ids_match_the_reference() {
    for (config, seed) in [(gqa(), 1), (tied(), 2)] {
        let fx = fixture(SynthConfig::Llama(config.clone()), seed, 0.1);
        let m = model(&fx);
        assert_eq!(m.config().tie_word_embeddings, config.tie_word_embeddings);
        assert_eq!(m.lm_head.is_none(), config.tie_word_embeddings);
        check_against_reference(&fx, &m, Llama::names(), "llama_reference.py", &IDS, 8);
    }
}

#[test]
fn streamed_equals_resident() {
    for (config, seed) in [(gqa(), 3), (tied(), 4)] {
        let fx = fixture(SynthConfig::Llama(config), seed, 0.1);
        check_streamed_equals_resident(&fx, &model(&fx), Llama::names(), &IDS);
    }
}

/// Streamed in pieces, each tensor is checked against its own checksum: a flipped byte in one
/// is an error naming it. A store without tensor checksums (format version 2) streams whole
/// layers, with the same logits.
#[test]
fn pieces_are_verified_and_older_stores_stream_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture(SynthConfig::Llama(gqa()), 6, 0.1);
    let m = model(&fx);
    let manifest = fx.source.manifest().clone();
    let largest = manifest.largest_layer_bytes();
    let options = || {
        m.with_pieces(
            StreamOptions::default()
                .with_names(Llama::names())
                .with_budget(largest),
        )
    };
    let copy = |to: &std::path::Path| {
        let from = fx.source.location();
        for entry in walk(std::path::Path::new(from)) {
            let dest = to.join(entry.strip_prefix(from).unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&entry, dest).unwrap();
        }
    };
    let intact = Streamer::new(fx.source.clone(), &m, options()).unwrap();
    assert!(intact.loads_pieces());
    let expected = logits(&intact, &m, &IDS).unwrap();

    // One byte of `q_proj` flipped in block 1's layer file.
    let bad = tmp.path().join("bad");
    copy(&bad);
    let (l, t) = manifest
        .find_tensor("model.layers.1.self_attn.q_proj.weight")
        .unwrap();
    let path = bad.join(&manifest.layers[l].key);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(t.offset + t.len / 2) as usize] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let source: Arc<dyn WeightSource> = Arc::new(LocalSource::open(&bad).unwrap());
    let streamer = Streamer::new(source, &m, options()).unwrap();
    let err = logits(&streamer, &m, &IDS).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.1") && err.contains("q_proj"),
        "the error should name the layer and the tensor: {err}"
    );

    // The same store in format version 2: no tensor checksums, whole layers.
    let old = tmp.path().join("old");
    copy(&old);
    std::fs::write(
        old.join(lit_core::manifest::MANIFEST_KEY),
        manifest.encode_v2().unwrap(),
    )
    .unwrap();
    let source: Arc<dyn WeightSource> = Arc::new(LocalSource::open(&old).unwrap());
    let streamer = Streamer::new(source, &m, options()).unwrap();
    assert!(!streamer.loads_pieces());
    assert_eq!(logits(&streamer, &m, &IDS).unwrap(), expected);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn kv_cache_equals_recompute() {
    let fx = fixture(SynthConfig::Llama(gqa()), 5, 0.1);
    check_kv_cache_equals_recompute(&fx, &model(&fx), Llama::names(), &IDS);
}

#[test]
fn config_round_trips_and_rejects_bad_heads() {
    let c = tied();
    let back = LlamaConfig::from_json(&c.to_json()).unwrap();
    assert_eq!(back.kv_heads(), 4);
    assert_eq!(back.rope_scaling().unwrap(), c.rope_scaling().unwrap());
    let bad = LlamaConfig {
        num_key_value_heads: Some(3),
        ..gqa()
    };
    let err = Llama::new(&bad, &device()).unwrap_err().to_string();
    assert!(err.contains("multiple"), "{err}");
}

/// A tied head keeps the embedding loaded through the pass: a budget that holds the largest
/// layer but not the embedding beside another layer is refused when the streamer is built,
/// naming both, instead of failing at the first token; the least budget runs.
#[test]
fn a_tied_embedding_streams_within_its_largest_layer() {
    use lit_burn::models::arch::Architecture;
    use lit_burn::models::llama::LlamaArch;
    use lit_burn::{Error, StreamOptions, Streamer};
    let fx = fixture(SynthConfig::Llama(tied()), 3, 0.1);
    let m = model(&fx);
    let options = || LlamaArch.stream_options(fx.source.as_ref(), StreamOptions::default());
    let largest = fx.source.manifest().largest_layer_bytes();
    let err = Streamer::new(fx.source.clone(), &m, options().with_budget(largest - 1)).unwrap_err();
    assert!(
        matches!(err, Error::BudgetTooSmall { needed, .. } if needed == largest),
        "{err}"
    );
    // Nothing is held through the pass: the embedding's rows are read by range, and the table
    // is loaded again, as a layer, for the tied head.
    let streamer = Streamer::new(fx.source.clone(), &m, options().with_budget(largest)).unwrap();
    let resident = Streamer::new(fx.source.clone(), &m, options()).unwrap();
    let opts = lit_burn::models::generate::GenerateOptions::greedy(4);
    let a = lit_burn::models::generate::generate(&streamer, &m, &IDS, &opts).unwrap();
    let b = lit_burn::models::generate::generate(&resident, &m, &IDS, &opts).unwrap();
    assert_eq!(a.tokens, b.tokens);
}

/// `Streamer::rows` reads only the rows asked for when the table's layer is not in memory, and
/// gives the table's own values, f32 and quantized alike.
#[test]
fn embedding_rows_are_read_by_range() {
    use lit_burn::models::arch::Architecture;
    use lit_burn::models::llama::LlamaArch;
    use lit_burn::{StreamOptions, Streamer};
    use lit_core::QuantScheme;
    for quantize in [None, Some(QuantScheme::Q8_0), Some(QuantScheme::Q4_1)] {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("store");
        lit_burn::models::synth::Synth::new(SynthConfig::Llama(tied()), 11)
            .with_quantize(quantize)
            .write_store(
                lit_store::StoreWriter::create_local(&store).unwrap(),
                &lit_core::NoObserver,
            )
            .unwrap();
        let source: std::sync::Arc<dyn lit_core::WeightSource> =
            std::sync::Arc::new(lit_store::LocalSource::open(&store).unwrap());
        let device = burn::tensor::Device::flex();
        let m = Llama::from_source(source.as_ref(), &device).unwrap();
        let options = LlamaArch.stream_options(source.as_ref(), StreamOptions::default());
        let largest = source.manifest().largest_layer_bytes();
        // No prefetch: nothing reads the table before the rows are asked for.
        let streamer = Streamer::new(
            source.clone(),
            &m,
            options.clone().with_budget(largest).with_prefetch(0),
        )
        .unwrap();
        let table = &m.model.embed_tokens.weight;
        let ids = [5usize, 1, 5, 2, 40];
        let got = streamer.rows(table, &ids).unwrap().into_data();
        let stats = streamer.stats();
        let hidden = tied().hidden_size;
        let row_bytes = match quantize {
            Some(q) => q.row_bytes(hidden as u64).unwrap(),
            None => hidden as u64 * 4,
        };
        // Rows 1–2, 5 and 40: three runs, four rows.
        assert_eq!(stats.passes[0].bytes_read, 4 * row_bytes, "{quantize:?}");
        assert_eq!(stats.passes[0].layers_read, 0);

        // The whole table, loaded: the same rows, bit for bit.
        let loaded = streamer.load(&m.model.embed_tokens).unwrap();
        let whole: Vec<f32> = loaded.weight.val().into_data().try_to_vec().unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&r| whole[r * hidden..(r + 1) * hidden].iter().copied())
            .collect();
        assert_eq!(got.try_to_vec::<f32>().unwrap(), want, "{quantize:?}");
        assert_eq!(got.shape().to_vec(), vec![ids.len(), hidden]);
        drop(loaded);
        let vocab = tied().vocab_size;
        let err = streamer.rows(table, &[vocab]).unwrap_err();
        assert!(
            err.to_string().contains("model.embed_tokens.weight"),
            "{err}"
        );
    }
}
