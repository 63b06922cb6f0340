//! Many sequences per weight pass (`generate_many`): mixed prompt lengths, sequences stopping at
//! different steps and slots refilled give what each prompt gives alone, token for token and with
//! logits within 1e-5 of their scale, for Llama (tied and untied) and GPT-2, resident and streamed; streamed,
//! the model is read once per step of all the sequences.

mod decoders;

use decoders::*;
use lit_burn::layer_major::SpillTier;
use lit_burn::models::batch::{BatchOptions, generate_many};
use lit_burn::models::generate::{CausalLm, GenerateOptions, Generation, generate};
use lit_burn::models::gpt2::{Gpt2, Gpt2Config};
use lit_burn::models::llama::{Llama, LlamaConfig};
use lit_burn::models::synth::SynthConfig;
use lit_burn::{NameRules, StreamOptions, Streamer};

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![1, 17, 5, 63, 2, 40, 9],
        vec![3],
        vec![8, 8, 8, 1],
        vec![50, 2],
        vec![7, 6, 5, 4, 3, 2, 1, 0, 9, 11],
    ]
}

/// Each prompt alone, then all of them `in_flight` at a time, with `stop` as a stop token.
fn check<M: CausalLm>(model: &M, fx: &Fixture, names: NameRules, what: &str) {
    let source = fx.source.clone();
    let streamed = |budget: Option<u64>| {
        let options = StreamOptions::default().with_names(names.clone());
        let options = match budget {
            Some(b) => options.with_budget(b),
            None => options,
        };
        Streamer::new(source.clone(), model, options).unwrap()
    };
    let largest = source.manifest().largest_layer_bytes();
    // Greedy continuations alone, without stops, to pick a stop token that ends some early.
    let long = GenerateOptions::greedy(6);
    let lone: Vec<Generation> = prompts()
        .iter()
        .map(|p| generate(&streamed(None), model, p, &long).unwrap())
        .collect();
    let stop = lone[0].tokens[2];
    let options = GenerateOptions::greedy(6).with_stop_tokens(vec![stop]);
    let alone: Vec<Generation> = prompts()
        .iter()
        .map(|p| generate(&streamed(None), model, p, &options).unwrap())
        .collect();
    assert!(
        alone.iter().any(|g| g.tokens.len() < 6),
        "{what}: some sequence should stop early"
    );
    let single_passes: usize = alone.iter().map(|g| g.passes()).sum();
    for in_flight in [1, 2, 8] {
        for budget in [None, Some(largest)] {
            let weights = streamed(budget);
            let mut got: Vec<Option<Generation>> = vec![None; prompts().len()];
            let mut order = Vec::new();
            generate_many(&weights, model, &prompts(), &options, in_flight, |i, g| {
                order.push(i);
                got[i] = Some(g);
                Ok(())
            })
            .unwrap();
            for (i, (g, a)) in got.iter().zip(&alone).enumerate() {
                let g = g
                    .as_ref()
                    .unwrap_or_else(|| panic!("{what}: prompt {i} not done"));
                assert_eq!(
                    g.tokens, a.tokens,
                    "{what}: prompt {i}, {in_flight} in flight"
                );
                // The sequences' rows share one matrix product per weight, whose sums may
                // run in another order than a lone sequence's: within 1e-5 of the logits'
                // scale.
                assert_eq!(g.last_logits.len(), a.last_logits.len());
                let worst = g
                    .last_logits
                    .iter()
                    .zip(&a.last_logits)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                let scale = a.last_logits.iter().fold(1f32, |m, x| m.max(x.abs()));
                assert!(
                    worst <= 1e-5 * scale,
                    "{what}: prompt {i}, {in_flight} in flight: logits differ by {worst}"
                );
            }
            let passes = weights
                .stats()
                .passes
                .iter()
                .filter(|p| p.loads > 0)
                .count();
            if in_flight == 1 {
                assert_eq!(passes, single_passes, "{what}");
            } else {
                // Shared passes: at most one per step of the longest-running slot chain.
                assert!(
                    passes < single_passes,
                    "{what}: {passes} passes for {in_flight}"
                );
            }
            if in_flight >= prompts().len() {
                // All in one wave: as many passes as the longest generation.
                let longest = alone.iter().map(|g| g.passes()).max().unwrap();
                assert_eq!(passes, longest, "{what}");
            }
        }
    }
}

#[test]
fn batched_llama_equals_one_at_a_time() {
    for (config, seed) in [(untied(), 21), (tied(), 22)] {
        let fx = fixture(SynthConfig::Llama(config), seed, 0.5);
        let m = Llama::from_source(fx.source.as_ref(), &burn::tensor::Device::flex()).unwrap();
        check(&m, &fx, Llama::names(), "llama");
    }
}

#[test]
fn batched_gpt2_equals_one_at_a_time() {
    let fx = fixture(SynthConfig::Gpt2(gpt2()), 23, 0.5);
    let m = Gpt2::from_source(fx.source.as_ref(), &burn::tensor::Device::flex()).unwrap();
    check(&m, &fx, Gpt2::names(), "gpt2");
}

/// Keys and values in a tier whose memory budget holds a few layers of a few sequences, or none:
/// the same tokens and the same logits, bit for bit, as caches in memory; the tier wrote and read
/// back, and all its memory is given back at the end.
#[test]
fn spilled_keys_and_values_equal_caches_in_memory() {
    let fx = fixture(SynthConfig::Llama(untied()), 25, 0.5);
    let m = Llama::from_source(fx.source.as_ref(), &burn::tensor::Device::flex()).unwrap();
    let streamer = || {
        Streamer::new(
            fx.source.clone(),
            &m,
            StreamOptions::default().with_names(Llama::names()),
        )
        .unwrap()
    };
    let options = GenerateOptions::greedy(6);
    let run = |batch: BatchOptions| {
        let mut got: Vec<Option<Generation>> = vec![None; prompts().len()];
        generate_many(&streamer(), &m, &prompts(), &options, batch, |i, g| {
            got[i] = Some(g);
            Ok(())
        })
        .unwrap();
        got.into_iter().map(Option::unwrap).collect::<Vec<_>>()
    };
    let in_memory = run(BatchOptions::new(3));
    // One layer of one sequence: 2 kv heads × 8 dims × 4 bytes × 2 (k, v) a position.
    let per_position = 2 * 8 * 4 * 2;
    let dir = tempfile::tempdir().unwrap();
    for budget in [0, 10 * per_position] {
        let tier = SpillTier::new(dir.path(), budget).unwrap();
        let spilled = run(BatchOptions::new(3).with_kv_tier(tier.clone()));
        for (i, (a, b)) in in_memory.iter().zip(&spilled).enumerate() {
            assert_eq!(a.tokens, b.tokens, "prompt {i}, budget {budget}");
            assert_eq!(a.last_logits, b.last_logits, "prompt {i}, budget {budget}");
            assert_eq!(a.kv_cache_bytes, b.kv_cache_bytes, "prompt {i}");
        }
        let stats = tier.stats();
        assert!(stats.bytes_spilled > 0, "{stats:?}");
        assert!(stats.bytes_read_back > 0, "{stats:?}");
        assert!(stats.peak_memory_bytes <= budget, "{stats:?}");
        assert_eq!(tier.memory_bytes(), 0, "every cache gave its memory back");
    }
    // Nothing is left in the directory: spill files are anonymous.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_prompts_are_refused_before_anything_runs() {
    let fx = fixture(SynthConfig::Gpt2(gpt2()), 24, 0.5);
    let m = Gpt2::from_source(fx.source.as_ref(), &burn::tensor::Device::flex()).unwrap();
    let weights = Streamer::new(
        fx.source.clone(),
        &m,
        StreamOptions::default().with_names(Gpt2::names()),
    )
    .unwrap();
    let mut called = 0;
    let long = vec![1u32; gpt2().n_positions + 1];
    for (prompts, want) in [
        (vec![vec![1], vec![]], "prompt 1 has no tokens"),
        (vec![vec![1], long], "prompt 1:"),
    ] {
        let err = generate_many(
            &weights,
            &m,
            &prompts,
            &GenerateOptions::greedy(2),
            2,
            |_, _| {
                called += 1;
                Ok(())
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert_eq!(called, 0);
    assert_eq!(weights.stats().passes[0].bytes_read, 0);
}

fn untied() -> LlamaConfig {
    let mut c = small_llama();
    c.tie_word_embeddings = false;
    c
}

fn tied() -> LlamaConfig {
    let mut c = small_llama();
    c.tie_word_embeddings = true;
    c
}

fn small_llama() -> LlamaConfig {
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

fn gpt2() -> Gpt2Config {
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
