//! GPT-2 built from a Hugging Face `config.json`, named like HF checkpoints (`wte`, `h.{i}.attn.c_attn`,
//! …; an optional `transformer.` prefix is detected). HF's `Conv1D` weights are `[in, out]`, which
//! is Burn's Row layout: they load as stored. The LM head is tied to `wte`.

use super::arch::{Architecture, Decoder, Task};
use super::decoder::{KvCache, check_ids, token_ids, with_f32_compute};
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
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, gelu_approximate};
use burn::tensor::{Device, Tensor};
use lit_core::{Manifest, WeightSource, WeightSourceExt};
use serde::{Deserialize, Serialize};

/// The fields of a Hugging Face `GPT2Config` that the model uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Model width.
    pub n_embd: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Context length (rows of `wpe`).
    pub n_positions: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// MLP width; default `4 * n_embd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `gelu_new` (tanh approximation, the default) or `gelu` (exact).
    #[serde(default = "default_act")]
    pub activation_function: String,
    /// Divide attention scores by `sqrt(head_dim)`.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Also divide them by the layer number (1-based).
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Token(s) that end generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<serde_json::Value>,
    /// Token that starts a sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    /// Parses a Hugging Face `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid GPT-2 config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// The config as a Hugging Face `config.json` (with `model_type` and `architectures`).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).expect("a config serialises");
        v["model_type"] = "gpt2".into();
        v["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        serde_json::to_vec_pretty(&v).expect("a value serialises")
    }

    /// MLP width.
    pub fn inner(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Number of parameters (the head is tied to `wte`).
    pub fn num_params(&self) -> u64 {
        let (h, i) = (self.n_embd as u64, self.inner() as u64);
        let block = (3 * h * h + 3 * h) + (h * h + h) + (2 * h * i + i + h) + 4 * h;
        (self.vocab_size + self.n_positions) as u64 * h + self.n_layer as u64 * block + 2 * h
    }

    /// The token ids that end generation.
    pub fn eos_ids(&self) -> Vec<u32> {
        token_ids(self.eos_token_id.as_ref())
    }

    /// A config of about `target` parameters, for synthetic models (64-wide heads, 1024
    /// positions, depth close to `width / 64`).
    pub fn with_params(target: u64) -> Self {
        let vocab = vocab_for(target, 50_257);
        let build = |h: usize, layers: usize| Gpt2Config {
            n_embd: h,
            n_head: (h / 64).max(1),
            n_layer: layers,
            n_positions: 1024,
            vocab_size: vocab,
            n_inner: None,
            layer_norm_epsilon: 1e-5,
            activation_function: "gelu_new".into(),
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            eos_token_id: None,
            bos_token_id: None,
        };
        best_by_depth(target, 64.0, build, |c| c.num_params())
    }

    /// The shape in words: `hidden 768, 12 layers, 12 heads, mlp 3072, vocab 50257, 1024 positions`.
    pub fn describe(&self) -> String {
        format!(
            "hidden {}, {} layers, {} heads, mlp {}, vocab {}, {} positions",
            self.n_embd,
            self.n_layer,
            self.n_head,
            self.inner(),
            self.vocab_size,
            self.n_positions
        )
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("GPT-2 config: {m}")));
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu"
        ) {
            return bad(format!(
                "unsupported activation_function `{}`",
                self.activation_function
            ));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            ));
        }
        if self.vocab_size == 0 || self.n_positions == 0 {
            return bad("vocab_size and n_positions must be positive".into());
        }
        Ok(())
    }
}

/// Attention of one block: `h.{i}.attn`.
#[derive(Module, Debug)]
pub struct Gpt2Attention {
    /// Fused q/k/v projection (`[n_embd, 3 * n_embd]`).
    pub c_attn: Linear,
    /// Output projection.
    pub c_proj: Linear,
    /// Heads.
    pub n_head: usize,
    /// Score scale (`1/sqrt(head_dim)`, and `1/(layer+1)` if configured).
    pub scale: f64,
}

/// MLP of one block: `h.{i}.mlp`.
#[derive(Module, Debug)]
pub struct Gpt2Mlp {
    /// Up projection.
    pub c_fc: Linear,
    /// Down projection.
    pub c_proj: Linear,
    /// Exact erf GELU instead of the tanh approximation.
    pub exact_gelu: bool,
}

/// One block: `h.{i}`.
#[derive(Module, Debug)]
pub struct Gpt2Block {
    /// Norm before attention.
    pub ln_1: LayerNorm,
    /// Attention.
    pub attn: Gpt2Attention,
    /// Norm before the MLP.
    pub ln_2: LayerNorm,
    /// MLP.
    pub mlp: Gpt2Mlp,
}

/// GPT-2 with its LM head tied to `wte`. Built lazily (a skeleton): stream it with a
/// [`crate::Streamer`] using [`Gpt2::names`].
#[derive(Module, Debug)]
pub struct Gpt2 {
    /// Token embedding (also the LM head).
    pub wte: Embedding,
    /// Position embedding.
    pub wpe: Embedding,
    /// Blocks.
    pub h: Vec<Gpt2Block>,
    /// Final norm.
    pub ln_f: LayerNorm,
    #[module(skip)]
    config: Gpt2Config,
}

impl Gpt2Block {
    fn new(c: &Gpt2Config, layer: usize, device: &Device) -> Self {
        let h = c.n_embd;
        // Conv1D weights are `[in, out]`: Burn's default Row layout.
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let norm = || {
            LayerNormConfig::new(h)
                .with_epsilon(c.layer_norm_epsilon)
                .init(device)
        };
        let mut scale = 1.0;
        if c.scale_attn_weights {
            scale /= ((h / c.n_head) as f64).sqrt();
        }
        if c.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Gpt2Block {
            ln_1: norm(),
            attn: Gpt2Attention {
                c_attn: linear(h, 3 * h),
                c_proj: linear(h, h),
                n_head: c.n_head,
                scale,
            },
            ln_2: norm(),
            mlp: Gpt2Mlp {
                c_fc: linear(h, c.inner()),
                c_proj: linear(c.inner(), h),
                exact_gelu: c.activation_function == "gelu",
            },
        }
    }

    /// Runs the block on sequences packed along the rows of `x` (`[1, Σ len, n_embd]`): norms,
    /// projections and MLP once on all the rows, attention on each sequence's rows with its own
    /// cache.
    pub fn forward(&self, x: Tensor<3>, seqs: &mut [Seq<'_>], layer: usize) -> Result<Tensor<3>> {
        let a = self
            .attn
            .forward(self.ln_1.forward(x.clone()), seqs, layer)?;
        let x = x + a;
        Ok(x.clone() + self.mlp.forward(self.ln_2.forward(x)))
    }
}

impl Gpt2Attention {
    /// Attention on packed sequences (see [`Gpt2Block::forward`]).
    fn forward(&self, x: Tensor<3>, seqs: &mut [Seq<'_>], layer: usize) -> Result<Tensor<3>> {
        let h = x.dims()[2];
        let hd = h / self.n_head;
        let qkv = linear(&self.c_attn, x);
        let ctx = per_sequence(qkv, seqs, |seq, qkv| {
            let s = seq.len;
            let part = |j: usize| {
                qkv.clone()
                    .narrow(2, j * h, h)
                    .reshape([1, s, self.n_head, hd])
                    .swap_dims(1, 2)
            };
            let (k, v) = seq.cache.append(layer, part(1), part(2))?;
            let ctx = super::decoder::causal_attention(part(0), k, v, self.scale);
            Ok(ctx.swap_dims(1, 2).reshape([1, s, h]))
        })?;
        Ok(linear(&self.c_proj, ctx))
    }
}

impl Gpt2Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = linear(&self.c_fc, x);
        let h = if self.exact_gelu {
            gelu(h)
        } else {
            gelu_approximate(h)
        };
        linear(&self.c_proj, h)
    }
}

impl Gpt2 {
    /// A lazy skeleton for `config` (nothing allocated).
    pub fn new(config: &Gpt2Config, device: &Device) -> Result<Self> {
        config.validate()?;
        let c = config;
        Ok(Gpt2 {
            wte: EmbeddingConfig::new(c.vocab_size, c.n_embd).init(device),
            wpe: EmbeddingConfig::new(c.n_positions, c.n_embd).init(device),
            h: (0..c.n_layer)
                .map(|i| Gpt2Block::new(c, i, device))
                .collect(),
            ln_f: LayerNormConfig::new(c.n_embd)
                .with_epsilon(c.layer_norm_epsilon)
                .init(device),
            config: config.clone(),
        })
    }

    /// A skeleton from the store's `config.json`.
    pub fn from_source(source: &dyn WeightSource, device: &Device) -> Result<Self> {
        let bytes = futures::executor::block_on(source.read_aux("config.json"))?;
        Self::new(&Gpt2Config::from_json(&bytes)?, device)
    }

    /// The config the model was built from.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// From module paths to Hugging Face names (`LayerNorm` `gamma`/`beta` are
    /// `weight`/`bias`), with a `transformer.` prefix when `source` has one.
    pub fn names_for(source: &dyn WeightSource) -> NameRules {
        Self::names_in(source.manifest())
    }

    /// [`Gpt2::names_for`] a store's manifest.
    pub fn names_in(manifest: &Manifest) -> NameRules {
        let prefixed = manifest.find_tensor("wte.weight").is_none()
            && manifest.find_tensor("transformer.wte.weight").is_some();
        let rules = Self::names();
        if prefixed {
            rules.replace_prefix("", "transformer.")
        } else {
            rules
        }
    }

    /// From module paths to Hugging Face names without a prefix.
    pub fn names() -> NameRules {
        NameRules::new()
            .rename_field("LayerNorm", "gamma", "weight")
            .rename_field("LayerNorm", "beta", "bias")
    }
}

impl Gpt2 {
    /// Runs each sequence of `seqs` (`(ids, cache)`: positions `cache.len()..`) through the
    /// model in one weight pass: each submodule is loaded once and applied to the rows of all the
    /// sequences at once ([`super::packed`]), attention to each with its own cache. Returns each
    /// sequence's logits (every position with `all_logits`, else its last).
    fn forward_seqs<W: Weights>(
        &self,
        weights: &W,
        seqs: &mut [(&[u32], &mut KvCache)],
        all_logits: bool,
    ) -> Result<Vec<Tensor<2>>> {
        let (mut tokens, mut positions) = (Vec::new(), Vec::new());
        let mut packed = Vec::with_capacity(seqs.len());
        for (ids, cache) in seqs.iter_mut() {
            check_ids(ids, self.config.vocab_size)?;
            let (start, s) = (cache.len(), ids.len());
            if start + s > self.config.n_positions {
                return Err(Error::InvalidArgument(format!(
                    "{} positions exceed GPT-2's context of {}",
                    start + s,
                    self.config.n_positions
                )));
            }
            tokens.extend(ids.iter().map(|&i| i as usize));
            positions.extend(start..start + s);
            packed.push(Seq {
                len: s,
                rope: None,
                cache,
            });
        }
        let lens: Vec<usize> = packed.iter().map(|s| s.len).collect();
        // Only this step's rows of the embeddings: read by range when a table is not in memory.
        let x = weights.rows(&self.wte.weight, &tokens)?
            + weights.rows(&self.wpe.weight, &positions)?;
        let mut x = x.unsqueeze::<3>();
        for (i, block) in self.h.iter().enumerate() {
            let block = weights.load(block)?;
            x = block.forward(x, &mut packed, i)?;
        }
        let ln_f = weights.load(&self.ln_f)?;
        let x = logit_rows(ln_f.forward(x), &lens, all_logits);
        drop(ln_f);
        // The head is tied to `wte`, loaded again as the pass's last layer.
        let logits = blocks::matmul_transposed(x, &weights.load(&self.wte)?.weight);
        for seq in packed {
            seq.cache.advance(seq.len);
        }
        weights.end_pass();
        Ok(split_logits(logits, &lens, all_logits))
    }
}

impl CausalLm for Gpt2 {
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
        KvCache::new(self.config.n_layer)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn max_positions(&self) -> Option<usize> {
        Some(self.config.n_positions)
    }

    fn stop_tokens(&self) -> Vec<u32> {
        self.config.eos_ids()
    }
}

impl From<Gpt2Config> for SynthConfig {
    fn from(c: Gpt2Config) -> Self {
        SynthConfig::new(&Gpt2Arch, c.to_json(), c.num_params(), c.describe())
    }
}

/// GPT-2 in the registry ([`super::arch::architectures`]): `model_type` `gpt2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gpt2Arch;

impl Architecture for Gpt2Arch {
    fn model_type(&self) -> &'static str {
        "gpt2"
    }

    fn description(&self) -> &'static str {
        "GPT-2 decoder (LayerNorm, learned positions, head tied to the token embedding)"
    }

    fn task(&self) -> Task {
        Task::Generate
    }

    fn skeleton_params(&self, config: &[u8], device: &Device) -> Result<ParamPaths> {
        let model = Gpt2::new(&Gpt2Config::from_json(config)?, device)?;
        Ok(ParamPaths::from_module(&model))
    }

    fn names(&self, manifest: Option<&Manifest>) -> NameRules {
        match manifest {
            Some(m) => Gpt2::names_in(m),
            None => Gpt2::names(),
        }
    }

    /// GPT-2's names and f32 compute. Quantized weights are decoded on load: its linear layers
    /// are stored `[in, out]` (Conv1D), with blocks along `out`, which the block kernels do not
    /// take.
    fn stream_options(&self, source: &dyn WeightSource, options: StreamOptions) -> StreamOptions {
        with_f32_compute(source, options.with_names(Gpt2::names_for(source)))
    }

    fn decoder(&self, source: &dyn WeightSource, device: &Device) -> Result<Box<dyn Decoder>> {
        Ok(Box::new(Gpt2::from_source(source, device)?))
    }

    fn synth_config(&self, params: u64) -> Option<SynthConfig> {
        Some(Gpt2Config::with_params(params).into())
    }
}
