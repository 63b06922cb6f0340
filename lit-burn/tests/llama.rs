//! Llama: logits and greedy ids against the numpy reference, streamed == resident, KV cache ==
//! recompute, on small seeded synthetic models.

mod decoders;

use decoders::*;
use lit_burn::models::llama::{Llama, LlamaConfig};
use lit_burn::models::synth::SynthConfig;

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
fn a_tied_embedding_counts_in_the_least_budget() {
    use lit_burn::models::arch::Architecture;
    use lit_burn::models::llama::LlamaArch;
    use lit_burn::{Error, StreamOptions, Streamer};
    let fx = fixture(SynthConfig::Llama(tied()), 3, 0.1);
    let m = model(&fx);
    let options = || LlamaArch.stream_options(fx.source.as_ref(), StreamOptions::default());
    let manifest = fx.source.manifest();
    let embed = manifest.layers[manifest.layer_index("model.embed_tokens").unwrap()].byte_len;
    let other = manifest
        .layers
        .iter()
        .filter(|l| l.name != "model.embed_tokens")
        .map(|l| l.byte_len)
        .max()
        .unwrap();
    let least = embed + other;
    let err = Streamer::new(fx.source.clone(), &m, options().with_budget(least - 1)).unwrap_err();
    match &err {
        Error::BudgetTooSmall { needed, what, .. } => {
            assert_eq!(*needed, least);
            assert!(
                what.contains("model.embed_tokens") && what.contains("held through"),
                "{err}"
            );
        }
        other => panic!("expected BudgetTooSmall, got {other}"),
    }
    let streamer = Streamer::new(fx.source.clone(), &m, options().with_budget(least)).unwrap();
    let resident = Streamer::new(fx.source.clone(), &m, options()).unwrap();
    let opts = lit_burn::models::generate::GenerateOptions::greedy(4);
    let a = lit_burn::models::generate::generate(&streamer, &m, &IDS, &opts).unwrap();
    let b = lit_burn::models::generate::generate(&resident, &m, &IDS, &opts).unwrap();
    assert_eq!(a.tokens, b.tokens);
}
