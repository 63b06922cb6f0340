//! The architecture registry: each built-in store's `config.json` resolves to its architecture,
//! unknown ones are refused with the supported list; synthetic stores hold exactly the tensors
//! of the model's skeleton, under Hugging Face's names and shapes.

use burn::tensor::Device;
use lit_burn::models::arch::{Task, architecture_for, architecture_named, architecture_of};
use lit_burn::models::gpt2::Gpt2Config;
use lit_burn::models::llama::LlamaConfig;
use lit_burn::models::synth::{Synth, SynthConfig, synthesizable};
use lit_burn::{NameMap, StreamOptions};
use lit_core::{DType, WeightSource};
use lit_store::{LocalSource, StoreWriter};
use std::collections::BTreeMap;
use std::sync::Arc;

/// all-MiniLM-L6-v2's `config.json`, as published.
const MINILM_CONFIG: &str = r#"{
  "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 6,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "transformers_version": "4.8.2",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
}"#;

/// Mistral-7B-v0.1's `config.json` (runs as Llama).
const MISTRAL_CONFIG: &str = r#"{
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000
}"#;

fn write(config: SynthConfig) -> (Arc<dyn WeightSource>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("store");
    Synth::new(config, 1)
        .write_store(
            StoreWriter::create_local(&dst).unwrap(),
            &lit_core::NoObserver,
        )
        .unwrap();
    (Arc::new(LocalSource::open(&dst).unwrap()), tmp)
}

fn small_llama() -> LlamaConfig {
    LlamaConfig {
        hidden_size: 32,
        intermediate_size: 72,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        num_hidden_layers: 2,
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

/// Tied head, q/k/v/o and MLP biases, a head width other than hidden / heads.
fn odd_llama() -> LlamaConfig {
    LlamaConfig {
        tie_word_embeddings: true,
        attention_bias: true,
        mlp_bias: true,
        head_dim: Some(16),
        ..small_llama()
    }
}

fn small_gpt2() -> Gpt2Config {
    Gpt2Config {
        n_embd: 32,
        n_head: 2,
        n_layer: 2,
        n_positions: 16,
        vocab_size: 50,
        n_inner: Some(48),
        layer_norm_epsilon: 1e-5,
        activation_function: "gelu_new".into(),
        scale_attn_weights: true,
        scale_attn_by_inverse_layer_idx: false,
        eos_token_id: None,
        bos_token_id: None,
    }
}

#[test]
fn registry_resolves_each_built_in_config() {
    let names: Vec<&str> = lit_burn::models::architectures()
        .iter()
        .map(|a| a.model_type())
        .collect();
    assert_eq!(names, ["bert", "llama", "gpt2"]);

    // Stores written by lit: their config.json names their architecture.
    for (config, want, task) in [
        (SynthConfig::Llama(small_llama()), "llama", Task::Generate),
        (SynthConfig::Gpt2(small_gpt2()), "gpt2", Task::Generate),
        (
            SynthConfig::llama_with_params(1_000_000),
            "llama",
            Task::Generate,
        ),
        (
            SynthConfig::gpt2_with_params(1_000_000),
            "gpt2",
            Task::Generate,
        ),
    ] {
        let (source, _tmp) = write(config);
        let arch = architecture_of(source.as_ref()).unwrap();
        assert_eq!(arch.model_type(), want);
        assert_eq!(arch.task(), task);
        // The registry's decoder streams the store: every parameter found under its name.
        let decoder = arch.decoder(source.as_ref(), &Device::flex()).unwrap();
        let options = arch.stream_options(source.as_ref(), StreamOptions::default());
        decoder.streamer(source, options).unwrap();
    }

    // Published configs.
    let bert = architecture_for(MINILM_CONFIG.as_bytes()).unwrap();
    assert_eq!((bert.model_type(), bert.task()), ("bert", Task::Embed));
    let mistral = architecture_for(MISTRAL_CONFIG.as_bytes()).unwrap();
    assert_eq!(mistral.model_type(), "llama");
    assert_eq!(architecture_named("gpt2").unwrap().model_type(), "gpt2");
    let (minilm, _tmp) = store_with_config(Some(MINILM_CONFIG));
    assert_eq!(architecture_of(&minilm).unwrap().model_type(), "bert");
    // An encoder is not a decoder, and says so.
    let err = bert
        .decoder(&minilm, &Device::flex())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("bert") && err.contains("not a decoder"),
        "{err}"
    );
    // Its skeleton has MiniLM's tensors under Hugging Face's names.
    let paths = bert
        .skeleton_params(MINILM_CONFIG.as_bytes(), &Device::flex())
        .unwrap();
    let names = bert.names(None);
    let found: BTreeMap<String, Vec<usize>> = paths
        .iter()
        .map(|(_, p)| (names.resolve(p).name, p.shape.clone()))
        .collect();
    assert_eq!(found["embeddings.word_embeddings.weight"], [30522, 384]);
    assert_eq!(
        found["encoder.layer.5.attention.self.query.weight"],
        [384, 384]
    );
    assert_eq!(
        found["encoder.layer.0.intermediate.dense.weight"],
        [1536, 384]
    );
    assert_eq!(found["embeddings.LayerNorm.bias"], [384]);
    assert_eq!(found.len(), 101);
}

/// A one-tensor store with `config` as its config.json (none if `None`).
fn store_with_config(config: Option<&str>) -> (LocalSource, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("store");
    let mut w = StoreWriter::create_local(&dst).unwrap();
    let spec = lit_store::layer_file::TensorSpec {
        name: "x".into(),
        dtype: DType::F32,
        shape: vec![1],
    };
    w.write_layer("x", &[spec], |_| Ok(vec![0u8; 4])).unwrap();
    if let Some(c) = config {
        w.write_aux("config.json", c.as_bytes()).unwrap();
    }
    w.finish("test", vec![]).unwrap();
    (LocalSource::open(&dst).unwrap(), tmp)
}

#[test]
fn unknown_model_types_are_refused_with_the_supported_list() {
    let err = architecture_for(br#"{"model_type": "falcon", "hidden_size": 8}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`falcon`"), "{err}");
    for name in ["bert", "llama", "mistral", "gpt2"] {
        assert!(err.contains(name), "{err} lacks {name}");
    }
    let err = architecture_for(br#"{"hidden_size": 8}"#)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model_type") && err.contains("gpt2"), "{err}");
    assert!(architecture_for(b"not json").is_err());

    // A store without a config.json.
    let (none, _tmp) = store_with_config(None);
    let err = architecture_of(&none).err().unwrap().to_string();
    assert!(
        err.contains("config.json") && err.contains("llama"),
        "{err}"
    );
    assert_eq!(synthesizable(), ["llama", "gpt2"]);
}

/// Hugging Face's names and shapes for a Llama checkpoint, written out by hand from
/// `modeling_llama.py` (the reference the derived list is checked against).
fn hf_llama(c: &LlamaConfig) -> BTreeMap<String, Vec<u64>> {
    let (h, i, v) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.vocab_size as u64,
    );
    let hd = c.head_dim() as u64;
    let (q, kv) = (c.num_attention_heads as u64 * hd, c.kv_heads() as u64 * hd);
    let mut m = BTreeMap::new();
    m.insert("model.embed_tokens.weight".into(), vec![v, h]);
    m.insert("model.norm.weight".into(), vec![h]);
    if !c.tie_word_embeddings {
        m.insert("lm_head.weight".into(), vec![v, h]);
    }
    for l in 0..c.num_hidden_layers {
        let p = format!("model.layers.{l}");
        m.insert(format!("{p}.input_layernorm.weight"), vec![h]);
        m.insert(format!("{p}.post_attention_layernorm.weight"), vec![h]);
        for (n, out, inp) in [("q", q, h), ("k", kv, h), ("v", kv, h), ("o", h, q)] {
            m.insert(format!("{p}.self_attn.{n}_proj.weight"), vec![out, inp]);
            if c.attention_bias {
                m.insert(format!("{p}.self_attn.{n}_proj.bias"), vec![out]);
            }
        }
        for (n, out, inp) in [("gate", i, h), ("up", i, h), ("down", h, i)] {
            m.insert(format!("{p}.mlp.{n}_proj.weight"), vec![out, inp]);
            if c.mlp_bias {
                m.insert(format!("{p}.mlp.{n}_proj.bias"), vec![out]);
            }
        }
    }
    m
}

/// Hugging Face's names and shapes for GPT-2 (`Conv1D` weights are `[in, out]`).
fn hf_gpt2(c: &Gpt2Config) -> BTreeMap<String, Vec<u64>> {
    let (h, i) = (c.n_embd as u64, c.inner() as u64);
    let mut m = BTreeMap::new();
    m.insert("wte.weight".into(), vec![c.vocab_size as u64, h]);
    m.insert("wpe.weight".into(), vec![c.n_positions as u64, h]);
    m.insert("ln_f.weight".into(), vec![h]);
    m.insert("ln_f.bias".into(), vec![h]);
    for l in 0..c.n_layer {
        let p = format!("h.{l}");
        for (n, din, dout) in [
            ("attn.c_attn", h, 3 * h),
            ("attn.c_proj", h, h),
            ("mlp.c_fc", h, i),
            ("mlp.c_proj", i, h),
        ] {
            m.insert(format!("{p}.{n}.weight"), vec![din, dout]);
            m.insert(format!("{p}.{n}.bias"), vec![dout]);
        }
        for n in ["ln_1", "ln_2"] {
            m.insert(format!("{p}.{n}.weight"), vec![h]);
            m.insert(format!("{p}.{n}.bias"), vec![h]);
        }
    }
    m
}

#[test]
fn synthetic_tensors_are_the_skeletons_parameters() {
    let cases = [
        (SynthConfig::Llama(small_llama()), hf_llama(&small_llama())),
        (SynthConfig::Llama(odd_llama()), hf_llama(&odd_llama())),
        (SynthConfig::Gpt2(small_gpt2()), hf_gpt2(&small_gpt2())),
    ];
    for (config, hf) in cases {
        let what = config.describe();
        let arch = config.architecture();
        let tensors = config.tensors(DType::BF16).unwrap();
        let listed: BTreeMap<String, Vec<u64>> = tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        assert_eq!(listed.len(), tensors.len(), "{what}: a name twice");
        assert!(tensors.iter().all(|t| t.dtype == DType::BF16));
        // Hugging Face's checkpoint layout, written independently.
        assert_eq!(listed, hf, "{what}");
        // The skeleton's parameters, through the architecture's names.
        let paths = arch
            .skeleton_params(&config.config_json(), &Device::flex())
            .unwrap();
        let names = arch.names(None);
        let from_skeleton: BTreeMap<String, usize> = paths
            .iter()
            .map(|(_, p)| (names.resolve(p).name, p.shape.iter().product()))
            .collect();
        assert_eq!(
            from_skeleton.keys().collect::<Vec<_>>(),
            listed.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (name, n) in &from_skeleton {
            assert_eq!(
                *n as u64,
                listed[name].iter().product::<u64>(),
                "{what}: {name}"
            );
        }
        let total: u64 = listed.values().map(|s| s.iter().product::<u64>()).sum();
        assert_eq!(total, config.num_params(), "{what}");
        // Every layer holds what the store's default grouping would give it.
        let layers = config.layers(DType::F32).unwrap();
        let in_layers: usize = layers.iter().map(|l| l.tensors.len()).sum();
        assert_eq!(in_layers, tensors.len(), "{what}");
        // And a store written from it streams: every parameter found with its shape.
        let (source, _tmp) = write(config.clone());
        let skeleton = arch.decoder(source.as_ref(), &Device::flex()).unwrap();
        skeleton
            .streamer(
                source.clone(),
                arch.stream_options(source.as_ref(), StreamOptions::default()),
            )
            .unwrap();
    }
}

#[test]
fn synthetic_layers_in_execution_order() {
    let layers = |c: SynthConfig| -> Vec<String> {
        c.layers(DType::F32)
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect()
    };
    assert_eq!(
        layers(SynthConfig::Llama(small_llama())),
        [
            "model.embed_tokens",
            "model.layers.0",
            "model.layers.1",
            "model.norm",
            "lm_head"
        ]
    );
    assert_eq!(
        layers(SynthConfig::Gpt2(small_gpt2())),
        ["wte", "wpe", "h.0", "h.1", "ln_f"]
    );
}

#[test]
fn least_budgets_are_what_the_streamer_needs() {
    // Nothing is held through a pass (tied heads load the embedding again as the pass's last
    // layer): every model streams within its largest layer, and not below it.
    for (arch, config) in [
        ("llama", SynthConfig::Llama(odd_llama())),
        ("llama", SynthConfig::Llama(small_llama())),
        ("gpt2", SynthConfig::Gpt2(small_gpt2())),
    ] {
        let (source, _tmp) = write(config);
        let m = source.manifest();
        let arch = architecture_named(arch).unwrap();
        let least = arch.min_budget(m);
        assert_eq!(least, m.largest_layer_bytes());
        let decoder = arch.decoder(source.as_ref(), &Device::flex()).unwrap();
        let options = |b: u64| {
            arch.stream_options(source.as_ref(), StreamOptions::default())
                .with_budget(b)
        };
        assert!(decoder.streamer(source.clone(), options(least)).is_ok());
        let err = decoder
            .streamer(source.clone(), options(least - 1))
            .err()
            .unwrap();
        assert!(err.to_string().contains("too small"), "{err}");
    }
}
