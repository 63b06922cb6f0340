//! A Llama-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU) built from a Hugging
//! Face `config.json`, named like HF checkpoints so it streams from an exported store as is.
//!
//! ```no_run
//! use lit_burn::models::generate::{GenerateOptions, generate};
//! use lit_burn::models::llama::Llama;
//! use lit_burn::{StreamOptions, Streamer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source: std::sync::Arc<dyn lit_core::WeightSource> =
//!     std::sync::Arc::new(lit_store::LocalSource::open("llama.lit")?);
//! let device = burn::tensor::Device::flex();
//! let model = Llama::from_source(source.as_ref(), &device)?; // a lazy skeleton
//! let options = StreamOptions::default().with_names(Llama::names()).with_budget(1 << 30);
//! let streamer = Streamer::new(source, &model, options)?;
//! let out = generate(&streamer, &model, &[1, 2, 3], &GenerateOptions::greedy(8))?;
//! println!("{:?}", out.tokens);
//! # Ok(())
//! # }
//! ```

use super::arch::{Architecture, Decoder, Task};
use super::decoder::{
    KvCache, Rope, RopeScaling, causal_attention, check_ids, device_of, token_ids, with_f32_compute,
};
use super::generate::CausalLm;
use super::linear::linear;
use super::packed::{Seq, logit_rows, per_sequence, split_logits};
use super::synth::{SynthConfig, best_by_depth, vocab_for};
use crate::blocks;
use crate::error::{Error, Result};
use crate::executor::StreamOptions;
use crate::names::NameRules;
use crate::paths::ParamPaths;
use crate::weights::Weights;
use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, Linear, LinearConfig, LinearLayout, RmsNorm, RmsNormConfig,
};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};
use lit_core::{Manifest, WeightSource, WeightSourceExt};
use serde::{Deserialize, Serialize};

/// The fields of a Hugging Face `LlamaConfig` that the model uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); default: `num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Context length the model was trained for (informative: RoPE runs past it).
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// The LM head reuses the token embedding (no `lm_head.weight`).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Width of one head; default `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// q/k/v/o projections have biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// MLP projections have biases.
    #[serde(default)]
    pub mlp_bias: bool,
    /// RoPE rescaling, as in the HF config (`linear` and `llama3` are supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// Activation of the MLP gate (only `silu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Token(s) that end generation, as the HF config gives them (an id or a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<serde_json::Value>,
    /// Token that starts a sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

impl LlamaConfig {
    /// Parses a Hugging Face `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid Llama config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// The config as a Hugging Face `config.json` (with `model_type` and `architectures`).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("a config serialises");
        v["model_type"] = "llama".into();
        v["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        v["num_key_value_heads"] = self.kv_heads().into();
        serde_json::to_vec_pretty(&v).expect("a value serialises")
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Number of parameters (tied embeddings counted once).
    pub fn num_params(&self) -> u64 {
        let (h, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let hd = self.head_dim() as u64;
        let (q, kv) = (
            self.num_attention_heads as u64 * hd,
            self.kv_heads() as u64 * hd,
        );
        let mut attn = 2 * h * q + 2 * h * kv;
        if self.attention_bias {
            // q, k, v biases are as wide as their outputs; o_proj's is `hidden`.
            attn += q + 2 * kv + h;
        }
        let mlp = 3 * h * i + if self.mlp_bias { 2 * i + h } else { 0 };
        let block = attn + mlp + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_hidden_layers as u64 * block + h + head
    }

    /// The token ids that end generation.
    pub fn eos_ids(&self) -> Vec<u32> {
        token_ids(self.eos_token_id.as_ref())
    }

    /// A config of about `target` parameters, for synthetic models (GQA with 4 query heads per
    /// key/value head where heads allow, SwiGLU width ≈ 8/3 of the model width, untied head,
    /// depth close to `width / 128`).
    pub fn with_params(target: u64) -> Self {
        let vocab = vocab_for(target, 32_000);
        let build = |h: usize, layers: usize| {
            let head_dim = if h >= 2560 { 128 } else { 64.min(h) };
            let heads = h / head_dim;
            let kv = if heads >= 8 && heads.is_multiple_of(4) {
                heads / 4
            } else {
                heads
            };
            LlamaConfig {
                hidden_size: h,
                intermediate_size: (8 * h / 3).next_multiple_of(64),
                num_attention_heads: heads,
                num_key_value_heads: Some(kv),
                num_hidden_layers: layers,
                rms_norm_eps: 1e-5,
                rope_theta: 10_000.0,
                vocab_size: vocab,
                max_position_embeddings: 4096,
                tie_word_embeddings: false,
                head_dim: None,
                attention_bias: false,
                mlp_bias: false,
                rope_scaling: None,
                hidden_act: "silu".into(),
                eos_token_id: None,
                bos_token_id: None,
            }
        };
        best_by_depth(target, 128.0, build, |c| c.num_params())
    }

    /// The shape in words: `hidden 3072, 18 layers, 24 heads (6 kv), mlp 8192, vocab 32000`.
    pub fn describe(&self) -> String {
        format!(
            "hidden {}, {} layers, {} heads ({} kv), mlp {}, vocab {}",
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.kv_heads(),
            self.intermediate_size,
            self.vocab_size
        )
    }

    /// The RoPE rescaling, parsed.
    pub fn rope_scaling(&self) -> Result<Option<RopeScaling>> {
        let Some(rs) = &self.rope_scaling else {
            return Ok(None);
        };
        let get = |k: &str| rs.get(k).and_then(|v| v.as_f64());
        let kind = rs
            .get("rope_type")
            .or_else(|| rs.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let need = |k: &str| {
            get(k).ok_or_else(|| Error::InvalidArgument(format!("rope_scaling: missing `{k}`")))
        };
        match kind {
            "default" => Ok(None),
            "linear" => Ok(Some(RopeScaling::Linear {
                factor: need("factor")?,
            })),
            "llama3" => Ok(Some(RopeScaling::Llama3 {
                factor: need("factor")?,
                low_freq_factor: need("low_freq_factor")?,
                high_freq_factor: need("high_freq_factor")?,
                original_max_position_embeddings: need("original_max_position_embeddings")?,
            })),
            other => Err(Error::InvalidArgument(format!(
                "unsupported rope_scaling type `{other}` (supported: linear, llama3)"
            ))),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("Llama config: {m}")));
        if self.hidden_act != "silu" {
            return bad(format!("unsupported hidden_act `{}`", self.hidden_act));
        }
        let (h, kv) = (self.num_attention_heads, self.kv_heads());
        if h == 0 || kv == 0 || !h.is_multiple_of(kv) {
            return bad(format!(
                "{h} attention heads is not a multiple of {kv} key/value heads"
            ));
        }
        if self.head_dim() == 0 || !self.head_dim().is_multiple_of(2) {
            return bad(format!("head_dim {} must be even", self.head_dim()));
        }
        if self.hidden_size == 0 || self.vocab_size == 0 {
            return bad("hidden_size and vocab_size must be positive".into());
        }
        self.rope_scaling().map(|_| ())
    }
}

/// Self-attention of one block: `model.layers.{i}.self_attn`.
#[derive(Module, Debug)]
pub struct LlamaAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub o_proj: Linear,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// SwiGLU MLP of one block: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct LlamaMlp {
    /// Gate projection.
    pub gate_proj: Linear,
    /// Up projection.
    pub up_proj: Linear,
    /// Down projection.
    pub down_proj: Linear,
}

/// One decoder block: `model.layers.{i}`.
#[derive(Module, Debug)]
pub struct LlamaBlock {
    /// Attention.
    pub self_attn: LlamaAttention,
    /// MLP.
    pub mlp: LlamaMlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
}

/// Embedding, blocks and final norm: `model`.
#[derive(Module, Debug)]
pub struct LlamaModel {
    /// Token embedding.
    pub embed_tokens: Embedding,
    /// Decoder blocks.
    pub layers: Vec<LlamaBlock>,
    /// Final norm.
    pub norm: RmsNorm,
}

/// A Llama causal LM. Built lazily (a skeleton): stream it with a [`crate::Streamer`] using
/// [`Llama::names`].
#[derive(Module, Debug)]
pub struct Llama {
    /// Embedding, blocks, final norm.
    pub model: LlamaModel,
    /// LM head; `None` when tied to the embedding.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    config: LlamaConfig,
}

fn linear_skeleton(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    // Col layout: the parameter is PyTorch's `[out, in]`, so checkpoints load without copies.
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_layout(LinearLayout::Col)
        .init(device)
}

impl LlamaBlock {
    fn new(c: &LlamaConfig, device: &Device) -> Self {
        let (h, hd, ab) = (c.hidden_size, c.head_dim(), c.attention_bias);
        let (q, kv) = (c.num_attention_heads * hd, c.kv_heads() * hd);
        let norm = || {
            RmsNormConfig::new(h)
                .with_epsilon(c.rms_norm_eps)
                .init(device)
        };
        LlamaBlock {
            self_attn: LlamaAttention {
                q_proj: linear_skeleton(h, q, ab, device),
                k_proj: linear_skeleton(h, kv, ab, device),
                v_proj: linear_skeleton(h, kv, ab, device),
                o_proj: linear_skeleton(q, h, ab, device),
                n_heads: c.num_attention_heads,
                n_kv_heads: c.kv_heads(),
                head_dim: hd,
            },
            mlp: LlamaMlp {
                gate_proj: linear_skeleton(h, c.intermediate_size, c.mlp_bias, device),
                up_proj: linear_skeleton(h, c.intermediate_size, c.mlp_bias, device),
                down_proj: linear_skeleton(c.intermediate_size, h, c.mlp_bias, device),
            },
            input_layernorm: norm(),
            post_attention_layernorm: norm(),
        }
    }

    /// Runs the block on sequences packed along the rows of `x` (`[1, Σ len, hidden]`): norms,
    /// projections and MLP once on all the rows, attention on each sequence's rows with its own
    /// positions and cache.
    pub fn forward(&self, x: Tensor<3>, seqs: &mut [Seq<'_>], layer: usize) -> Result<Tensor<3>> {
        let h = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), seqs, layer)?;
        let x = x + h;
        let m = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        Ok(x + m)
    }

    /// The block's four pieces, in the order they run (see [`LlamaBlock::forward_in_pieces`]).
    fn pieces(&self) -> LlamaPieces {
        let (a, m) = (&self.self_attn, &self.mlp);
        LlamaPieces {
            qkv: (
                self.input_layernorm.clone(),
                a.q_proj.clone(),
                a.k_proj.clone(),
                a.v_proj.clone(),
            ),
            o: a.o_proj.clone(),
            gate_up: (
                self.post_attention_layernorm.clone(),
                m.gate_proj.clone(),
                m.up_proj.clone(),
            ),
            down: m.down_proj.clone(),
        }
    }

    /// [`LlamaBlock::forward`] with its weights loaded through `weights` in four pieces, one
    /// at a time: the attention's norm and q/k/v projections, its output projection, the MLP's
    /// norm and gate/up projections, its down projection. A streamer then holds at most the
    /// largest piece while it computes and reads the next ones beside it (see
    /// [`Weights::loads_pieces`]).
    pub fn forward_in_pieces<W: Weights>(
        &self,
        weights: &W,
        x: Tensor<3>,
        seqs: &mut [Seq<'_>],
        layer: usize,
    ) -> Result<Tensor<3>> {
        let pieces = self.pieces();
        let qkv = weights.load(&pieces.qkv)?;
        let (norm, q, k, v) = &*qkv;
        let ctx = self
            .self_attn
            .context(q, k, v, norm.forward(x.clone()), seqs, layer)?;
        drop(qkv);
        let x = x + linear(&*weights.load(&pieces.o)?, ctx);
        let gate_up = weights.load(&pieces.gate_up)?;
        let (norm, gate, up) = &*gate_up;
        let h = LlamaMlp::hidden(gate, up, norm.forward(x.clone()));
        drop(gate_up);
        Ok(x + linear(&*weights.load(&pieces.down)?, h))
    }
}

/// A block's weights as the pieces [`LlamaBlock::forward_in_pieces`] loads.
struct LlamaPieces {
    qkv: (RmsNorm, Linear, Linear, Linear),
    o: Linear,
    gate_up: (RmsNorm, Linear, Linear),
    down: Linear,
}

impl LlamaAttention {
    /// Attention on packed sequences (see [`LlamaBlock::forward`]).
    fn forward(&self, x: Tensor<3>, seqs: &mut [Seq<'_>], layer: usize) -> Result<Tensor<3>> {
        let ctx = self.context(&self.q_proj, &self.k_proj, &self.v_proj, x, seqs, layer)?;
        Ok(linear(&self.o_proj, ctx))
    }

    /// Each sequence's attention context (before the output projection), with projections
    /// `q`, `k`, `v` (this module's, or the same loaded as a piece) and this module's heads.
    fn context(
        &self,
        q: &Linear,
        k: &Linear,
        v: &Linear,
        x: Tensor<3>,
        seqs: &mut [Seq<'_>],
        layer: usize,
    ) -> Result<Tensor<3>> {
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let q = linear(q, x.clone());
        let k = linear(k, x.clone());
        let v = linear(v, x);
        let qkv = Tensor::cat(vec![q, k, v], 2);
        per_sequence(qkv, seqs, |seq, qkv| {
            let s = seq.len;
            let part = |at: usize, n: usize| {
                qkv.clone()
                    .narrow(2, at * hd, n * hd)
                    .reshape([1, s, n, hd])
                    .swap_dims(1, 2)
            };
            let rope = seq
                .rope
                .as_ref()
                .expect("a Llama sequence has rotary tables");
            let q = rope.apply(part(0, nh));
            let k = rope.apply(part(nh, nkv));
            let v = part(nh + nkv, nkv);
            let (k, v) = seq.cache.append(layer, k, v)?;
            let ctx = causal_attention(q, k, v, 1.0 / (hd as f64).sqrt());
            Ok(ctx.swap_dims(1, 2).reshape([1, s, nh * hd]))
        })
    }
}

impl LlamaMlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear(
            &self.down_proj,
            Self::hidden(&self.gate_proj, &self.up_proj, x),
        )
    }

    /// `silu(gate(x)) * up(x)`, the input of the down projection.
    fn hidden(gate: &Linear, up: &Linear, x: Tensor<3>) -> Tensor<3> {
        silu(linear(gate, x.clone())) * linear(up, x)
    }
}

impl Llama {
    /// A lazy skeleton for `config` (nothing allocated).
    pub fn new(config: &LlamaConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let c = config;
        Ok(Llama {
            model: LlamaModel {
                embed_tokens: EmbeddingConfig::new(c.vocab_size, c.hidden_size).init(device),
                layers: (0..c.num_hidden_layers)
                    .map(|_| LlamaBlock::new(c, device))
                    .collect(),
                norm: RmsNormConfig::new(c.hidden_size)
                    .with_epsilon(c.rms_norm_eps)
                    .init(device),
            },
            lm_head: (!c.tie_word_embeddings)
                .then(|| linear_skeleton(c.hidden_size, c.vocab_size, false, device)),
            config: config.clone(),
        })
    }

    /// A skeleton from the store's `config.json`. A store without `lm_head.weight` is run with
    /// tied embeddings whatever the config says.
    pub fn from_source(source: &dyn WeightSource, device: &Device) -> Result<Self> {
        let bytes = futures::executor::block_on(source.read_aux("config.json"))?;
        let mut config = LlamaConfig::from_json(&bytes)?;
        if source.manifest().find_tensor("lm_head.weight").is_none() {
            config.tie_word_embeddings = true;
        }
        Self::new(&config, device)
    }

    /// The config the model was built from.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// From module paths to Hugging Face tensor names (`RmsNorm.gamma` is `weight`; linear
    /// weights are `[out, in]` as stored).
    pub fn names() -> NameRules {
        NameRules::new().rename_field("RmsNorm", "gamma", "weight")
    }
}

impl Llama {
    /// Runs each sequence of `seqs` (`(ids, cache)`: positions `cache.len()..`) through the
    /// model in one weight pass: each submodule is loaded once and applied to the rows of all the
    /// sequences at once ([`super::packed`]), attention to each with its own positions and
    /// cache. Returns each sequence's logits (every position with `all_logits`, else its last).
    fn forward_seqs<W: Weights>(
        &self,
        weights: &W,
        seqs: &mut [(&[u32], &mut KvCache)],
        all_logits: bool,
    ) -> Result<Vec<Tensor<2>>> {
        let device = device_of(self)?;
        let rope = Rope::new(
            self.config.head_dim(),
            self.config.rope_theta,
            self.config.rope_scaling()?.as_ref(),
        );
        let mut rows = Vec::new();
        let mut packed = Vec::with_capacity(seqs.len());
        for (ids, cache) in seqs.iter_mut() {
            check_ids(ids, self.config.vocab_size)?;
            rows.extend(ids.iter().map(|&i| i as usize));
            packed.push(Seq {
                len: ids.len(),
                rope: Some(rope.tables(cache.len(), ids.len(), &device)),
                cache,
            });
        }
        let lens: Vec<usize> = packed.iter().map(|s| s.len).collect();
        // Only this step's rows of the embedding: read by range when the table is not in
        // memory.
        let mut x = weights
            .rows(&self.model.embed_tokens.weight, &rows)?
            .unsqueeze::<3>();
        for (i, block) in self.model.layers.iter().enumerate() {
            x = if weights.loads_pieces() {
                block.forward_in_pieces(weights, x, &mut packed, i)?
            } else {
                weights.load(block)?.forward(x, &mut packed, i)?
            };
        }
        let norm = weights.load(&self.model.norm)?;
        let x = logit_rows(norm.forward(x), &lens, all_logits);
        drop(norm);
        let logits = match &self.lm_head {
            Some(head) => linear(&*weights.load(head)?, x),
            // Tied: the embedding is loaded again for the head, the pass's last layer.
            None => blocks::matmul_transposed(x, &weights.load(&self.model.embed_tokens)?.weight),
        };
        for seq in packed {
            seq.cache.advance(seq.len);
        }
        weights.end_pass();
        Ok(split_logits(logits, &lens, all_logits))
    }
}

impl CausalLm for Llama {
    fn forward_tokens<W: Weights>(
        &self,
        weights: &W,
        ids: &[u32],
        cache: &mut KvCache,
        all_logits: bool,
    ) -> Result<Tensor<2>> {
        let mut logits = self.forward_seqs(weights, &mut [(ids, cache)], all_logits)?;
        Ok(logits.remove(0))
    }

    fn forward_many<W: Weights>(
        &self,
        weights: &W,
        seqs: &mut [(&[u32], &mut KvCache)],
    ) -> Result<Vec<Tensor<2>>> {
        self.forward_seqs(weights, seqs, false)
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.num_hidden_layers)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_positions(&self) -> Option<usize> {
        None
    }

    fn stop_tokens(&self) -> Vec<u32> {
        self.config.eos_ids()
    }

    /// Each block in four pieces (see [`LlamaBlock::forward_in_pieces`]).
    fn with_pieces(&self, mut options: StreamOptions) -> StreamOptions {
        for block in &self.model.layers {
            let p = block.pieces();
            options = options
                .with_piece(&p.qkv)
                .with_piece(&p.o)
                .with_piece(&p.gate_up)
                .with_piece(&p.down);
        }
        options
    }
}

impl From<LlamaConfig> for SynthConfig {
    fn from(c: LlamaConfig) -> Self {
        SynthConfig::new(&LlamaArch, c.to_json(), c.num_params(), c.describe())
    }
}

/// Llama in the registry ([`super::arch::architectures`]): `model_type` `llama` (or `mistral`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LlamaArch;

impl Architecture for LlamaArch {
    fn model_type(&self) -> &'static str {
        "llama"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["mistral"]
    }

    fn description(&self) -> &'static str {
        "Llama-style decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU)"
    }

    fn task(&self) -> Task {
        Task::Generate
    }

    fn skeleton_params(&self, config: &[u8], device: &Device) -> Result<ParamPaths> {
        let model = Llama::new(&LlamaConfig::from_json(config)?, device)?;
        Ok(ParamPaths::from_module(&model))
    }

    fn names(&self, _manifest: Option<&Manifest>) -> NameRules {
        Llama::names()
    }

    /// Llama's names, f32 compute, and quantized weights computed on their blocks.
    fn stream_options(&self, source: &dyn WeightSource, options: StreamOptions) -> StreamOptions {
        let mut options = with_f32_compute(source, options.with_names(Llama::names()));
        options.load = options.load.with_block_compute(true);
        options
    }

    fn decoder(&self, source: &dyn WeightSource, device: &Device) -> Result<Box<dyn Decoder>> {
        Ok(Box::new(Llama::from_source(source, device)?))
    }

    fn synth_config(&self, params: u64) -> Option<SynthConfig> {
        Some(LlamaConfig::with_params(params).into())
    }
}
