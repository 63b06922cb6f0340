//! GPT-2: logits and greedy ids against the numpy reference, streamed == resident, KV cache ==
//! recompute, on small seeded synthetic models.

mod decoders;

use decoders::*;
use lit_burn::models::generate::{GenerateOptions, generate};
use lit_burn::models::gpt2::{Gpt2, Gpt2Config};
use lit_burn::models::synth::SynthConfig;
use lit_burn::{StreamOptions, Streamer};

const IDS: [u32; 7] = [3, 60, 7, 7, 21, 0, 44];

fn tiny() -> Gpt2Config {
    Gpt2Config {
        n_embd: 32,
        n_head: 4,
        n_layer: 3,
        n_positions: 24,
        vocab_size: 64,
        n_inner: None,
        layer_norm_epsilon: 1e-5,
        activation_function: "gelu_new".into(),
        scale_attn_weights: true,
        scale_attn_by_inverse_layer_idx: false,
        eos_token_id: None,
        bos_token_id: None,
    }
}

fn model(fx: &Fixture) -> Gpt2 {
    Gpt2::from_source(fx.source.as_ref(), &device()).unwrap()
}

#[test]
fn logits_and_greedy_ids_match_the_reference() {
    let exact = Gpt2Config {
        activation_function: "gelu".into(),
        scale_attn_by_inverse_layer_idx: true,
        n_inner: Some(48),
        ..tiny()
    };
    for (config, seed) in [(tiny(), 1), (exact, 2)] {
        let fx = fixture(SynthConfig::Gpt2(config), seed, 0.1);
        let m = model(&fx);
        let names = Gpt2::names_for(fx.source.as_ref());
        check_against_reference(&fx, &m, names, "gpt2_reference.py", &IDS, 8);
    }
}

#[test]
fn streamed_equals_resident() {
    let fx = fixture(SynthConfig::Gpt2(tiny()), 3, 0.1);
    check_streamed_equals_resident(&fx, &model(&fx), Gpt2::names(), &IDS);
}

#[test]
fn kv_cache_equals_recompute() {
    let fx = fixture(SynthConfig::Gpt2(tiny()), 4, 0.1);
    check_kv_cache_equals_recompute(&fx, &model(&fx), Gpt2::names(), &IDS);
}

#[test]
fn context_limit_is_an_error() {
    let fx = fixture(SynthConfig::Gpt2(tiny()), 5, 0.1);
    let m = model(&fx);
    let streamer = Streamer::new(
        fx.source.clone(),
        &m,
        StreamOptions::default().with_names(Gpt2::names()),
    )
    .unwrap();
    let err = generate(&streamer, &m, &IDS, &GenerateOptions::greedy(20)).unwrap_err();
    assert!(err.to_string().contains("24 positions"), "{err}");
    // Exactly filling the context works.
    let out = generate(&streamer, &m, &IDS, &GenerateOptions::greedy(18)).unwrap();
    assert_eq!(out.tokens.len(), 18);
    assert_eq!(out.passes(), 18);
    let bad = generate(&streamer, &m, &[64], &GenerateOptions::greedy(1)).unwrap_err();
    assert!(bad.to_string().contains("outside the vocabulary"), "{bad}");
}
