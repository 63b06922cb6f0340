//! BERT encoder with mean pooling and L2 normalisation: sentence embeddings
//! (all-MiniLM-L6-v2 and other `sentence-transformers` BERT models).
//!
//! The skeleton mirrors the Hugging Face module tree, so [`Bert::names`] only renames
//! `layer_norm` → `LayerNorm`, `self_attention` → `self` and LayerNorm `gamma`/`beta` →
//! `weight`/`bias`. Linear layers use [`LinearLayout::Col`]: the stored PyTorch `[out, in]`
//! weights load as they are (a transposed view on Flex, no copy).
//!
//! ```no_run
//! use lit_burn::models::bert::SentenceEmbedder;
//! use lit_burn::StreamOptions;
//! use std::sync::Arc;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = Arc::new(lit_store::LocalSource::open("minilm.lit")?);
//! let device = burn::tensor::Device::flex();
//! let options = StreamOptions::default().with_budget(64 << 20).with_prefetch(2);
//! let embedder = SentenceEmbedder::open(source, &device, options)?;
//! let vectors = embedder.embed(&["A man is eating food.", "Someone eats a meal."])?;
//! let cosine: f32 = vectors[0].iter().zip(&vectors[1]).map(|(a, b)| a * b).sum();
//! println!("cosine similarity {cosine:.3}");
//! # Ok(())
//! # }
//! ```

mod embedder;
mod layer_major;

pub use super::tokenizer::tokenizer_from_json;
pub use embedder::{DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, SentenceEmbedder};

use super::linear::linear;
use crate::error::{Error, Result};
use crate::executor::{StreamOptions, Streamer};
use crate::names::NameRules;
use crate::weights::Weights;
use burn::module::Module;
use burn::nn::{
    Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, LinearLayout,
};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use lit_core::Manifest;

/// The fields of a Hugging Face BERT `config.json` that the encoder needs.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embeddings).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Token type (segment) vocabulary size.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only exact (`erf`) `"gelu"` is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Position embedding kind; only `"absolute"` is supported.
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: u32,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Parses and checks a `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: BertConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidArgument(format!("BERT config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that lit's encoder can run this configuration.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("BERT config.json: {m}")));
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act `{}` is not supported (only exact `gelu`)",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type `{}` is not supported (only `absolute`)",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }

    /// A lazy skeleton on `device`: no weight memory is allocated.
    pub fn init(&self, device: &Device) -> Bert {
        let d = self.hidden_size;
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let linear = |i, o| {
            LinearConfig::new(i, o)
                .with_layout(LinearLayout::Col)
                .init(device)
        };
        let output = |i| BertOutput {
            dense: linear(i, d),
            layer_norm: norm(),
        };
        let layer = || BertLayer {
            attention: BertAttention {
                self_attention: BertSelfAttention {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                    num_heads: self.num_attention_heads,
                },
                output: output(d),
            },
            intermediate: BertIntermediate {
                dense: linear(d, self.intermediate_size),
            },
            output: output(self.intermediate_size),
        };
        Bert {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, d).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d).init(device),
                layer_norm: norm(),
            },
            encoder: BertEncoder {
                layer: (0..self.num_hidden_layers).map(|_| layer()).collect(),
            },
        }
    }
}

/// A BERT encoder (no pooler: sentence embeddings mean-pool the last hidden state).
#[derive(Module, Debug)]
pub struct Bert {
    /// Word, position and token type embeddings.
    pub embeddings: BertEmbeddings,
    /// The encoder layers.
    pub encoder: BertEncoder,
}

/// Embeddings: the sum of three lookups, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab, hidden]`.
    pub word_embeddings: Embedding,
    /// `[max_positions, hidden]`.
    pub position_embeddings: Embedding,
    /// `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding,
    /// Stored as `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm,
}

/// The stack of encoder layers (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// One entry per layer.
    pub layer: Vec<BertLayer>,
}

/// One post-LayerNorm encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Self-attention and its output projection.
    pub attention: BertAttention,
    /// Feed-forward up-projection (followed by GELU).
    pub intermediate: BertIntermediate,
    /// Feed-forward down-projection, residual and LayerNorm.
    pub output: BertOutput,
}

/// Self-attention with its output block.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// Stored as `attention.self`.
    pub self_attention: BertSelfAttention,
    /// Projection, residual and LayerNorm.
    pub output: BertOutput,
}

/// Multi-head scaled dot-product self-attention.
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Number of heads.
    pub num_heads: usize,
}

/// The feed-forward up-projection.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    /// `hidden → intermediate`.
    pub dense: Linear,
}

/// A dense projection added to the residual, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertOutput {
    /// The projection back to the model width.
    pub dense: Linear,
    /// Stored as `…output.LayerNorm`.
    pub layer_norm: LayerNorm,
}

/// A batch ready for the encoder: ids padded to the longest sequence, and the mask.
#[derive(Debug, Clone)]
pub struct BertInput {
    /// Token ids `[batch, seq]`.
    pub ids: Tensor<2, Int>,
    /// Token type ids `[batch, seq]`.
    pub type_ids: Tensor<2, Int>,
    /// Positions `[batch, seq]` (0, 1, 2, … in every row).
    pub positions: Tensor<2, Int>,
    /// 1 for a real token, 0 for padding, `[batch, seq, 1]`.
    pub mask: Tensor<3>,
    /// 0 for a real key, a large negative for padding, `[batch, 1, 1, seq]`.
    pub attention_bias: Tensor<4>,
}

/// One tokenized text: its ids and token type ids (empty `type_ids` means all 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenIds {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Segment ids, as long as `ids` (or empty).
    pub type_ids: Vec<u32>,
}

/// What padding keys get added to their attention scores before the softmax.
const MASKED: f32 = -1e9;

impl BertInput {
    /// Pads `batch` to its longest sequence with `pad_id` and builds the masks on `device`.
    pub fn new(batch: &[TokenIds], pad_id: u32, device: &Device) -> Result<Self> {
        let (b, s) = (batch.len(), batch.iter().map(|t| t.ids.len()).max());
        let s = match s {
            Some(s) if s > 0 => s,
            _ => return Err(Error::InvalidArgument("an empty batch or text".into())),
        };
        let mut ids = vec![pad_id as i64; b * s];
        let mut types = vec![0i64; b * s];
        let mut mask = vec![0f32; b * s];
        for (row, t) in batch.iter().enumerate() {
            if t.ids.is_empty() || !(t.type_ids.is_empty() || t.type_ids.len() == t.ids.len()) {
                return Err(Error::InvalidArgument(format!(
                    "text {row}: {} ids, {} type ids",
                    t.ids.len(),
                    t.type_ids.len()
                )));
            }
            for (j, &id) in t.ids.iter().enumerate() {
                ids[row * s + j] = id as i64;
                mask[row * s + j] = 1.0;
            }
            for (j, &ty) in t.type_ids.iter().enumerate() {
                types[row * s + j] = ty as i64;
            }
        }
        let positions: Vec<i64> = (0..b).flat_map(|_| 0..s as i64).collect();
        let bias: Vec<f32> = mask.iter().map(|&m| (1.0 - m) * MASKED).collect();
        let int = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, s]), device);
        Ok(BertInput {
            ids: int(ids),
            type_ids: int(types),
            positions: int(positions),
            mask: Tensor::from_data(TensorData::new(mask, [b, s, 1]), device),
            attention_bias: Tensor::from_data(TensorData::new(bias, [b, 1, 1, s]), device),
        })
    }
}

impl BertEmbeddings {
    /// `[batch, seq, hidden]` embeddings of `input`.
    pub fn forward(&self, input: &BertInput) -> Tensor<3> {
        let x = self.word_embeddings.forward(input.ids.clone())
            + self.position_embeddings.forward(input.positions.clone())
            + self.token_type_embeddings.forward(input.type_ids.clone());
        self.layer_norm.forward(x)
    }

    /// The sum of the three lookups for `input`, `[batch, seq, hidden]` before the LayerNorm,
    /// from this step's rows of the tables ([`Weights::rows`]: read by range when a table is not
    /// in memory), so the word table never has to be loaded whole.
    pub fn lookups<W: Weights>(&self, weights: &W, input: &BertInput) -> Result<Tensor<3>> {
        let [b, s] = input.ids.dims();
        let rows = |weight, ids: &Tensor<2, Int>| weights.rows(weight, &row_ids(ids));
        let x = rows(&self.word_embeddings.weight, &input.ids)?
            + rows(&self.position_embeddings.weight, &input.positions)?
            + rows(&self.token_type_embeddings.weight, &input.type_ids)?;
        let d = x.dims()[1];
        Ok(x.reshape([b, s, d]))
    }

    /// The rows of the three tables that the ids of `inputs` use, each read once (a chunk's
    /// vocabulary: far fewer rows, and ranged reads, than one lookup per micro-batch).
    pub fn vocabulary<W: Weights>(
        &self,
        weights: &W,
        inputs: &[BertInput],
    ) -> Result<EmbeddingRows> {
        let read = |weight, pick: fn(&BertInput) -> &Tensor<2, Int>| -> Result<TableRows> {
            let mut ids: Vec<usize> = inputs.iter().flat_map(|i| row_ids(pick(i))).collect();
            ids.sort_unstable();
            ids.dedup();
            let rows = weights.rows(weight, &ids)?;
            Ok(TableRows { ids, rows })
        };
        Ok(EmbeddingRows {
            word: read(&self.word_embeddings.weight, |i| &i.ids)?,
            position: read(&self.position_embeddings.weight, |i| &i.positions)?,
            token_type: read(&self.token_type_embeddings.weight, |i| &i.type_ids)?,
        })
    }

    /// [`Self::forward`] with the weights from `weights`: the lookups by rows, then the
    /// LayerNorm loaded on its own.
    pub fn forward_rows<W: Weights>(&self, weights: &W, input: &BertInput) -> Result<Tensor<3>> {
        let x = self.lookups(weights, input)?;
        Ok(weights.load(&self.layer_norm)?.forward(x))
    }
}

/// Ids as row numbers (a negative one as `usize::MAX`: out of range, refused by the lookup).
fn row_ids(ids: &Tensor<2, Int>) -> Vec<usize> {
    ids.to_data()
        .iter::<i64>()
        .map(|i| usize::try_from(i).unwrap_or(usize::MAX))
        .collect()
}

/// Some rows of one embedding table: the rows `ids` (sorted, distinct), `[ids.len(), hidden]`.
#[derive(Debug, Clone)]
pub struct TableRows {
    ids: Vec<usize>,
    rows: Tensor<2>,
}

impl TableRows {
    /// The rows of `ids` (`[batch, seq]`), `[batch * seq, hidden]`; an id outside the set is an
    /// error.
    fn lookup(&self, ids: &Tensor<2, Int>) -> Result<Tensor<2>> {
        let at = row_ids(ids)
            .into_iter()
            .map(|id| {
                self.ids.binary_search(&id).map(|i| i as i64).map_err(|_| {
                    Error::InvalidArgument(format!("row {id} is not among the rows read"))
                })
            })
            .collect::<Result<Vec<i64>>>()?;
        let n = at.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(at, [n]), &ids.device());
        Ok(self.rows.clone().select(0, index))
    }
}

/// The rows of BERT's three embedding tables that a set of inputs uses
/// ([`BertEmbeddings::vocabulary`]).
#[derive(Debug, Clone)]
pub struct EmbeddingRows {
    word: TableRows,
    position: TableRows,
    token_type: TableRows,
}

impl EmbeddingRows {
    /// [`BertEmbeddings::lookups`] of `input` from these rows.
    pub fn lookups(&self, input: &BertInput) -> Result<Tensor<3>> {
        let [b, s] = input.ids.dims();
        let x = self.word.lookup(&input.ids)?
            + self.position.lookup(&input.positions)?
            + self.token_type.lookup(&input.type_ids)?;
        let d = x.dims()[1];
        Ok(x.reshape([b, s, d]))
    }
}

impl BertSelfAttention {
    /// Attention over `x` `[batch, seq, hidden]`; `bias` `[batch, 1, 1, seq]` masks keys.
    pub fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let (h, hd) = (self.num_heads, d / self.num_heads);
        let heads = |t: Tensor<3>| t.reshape([b, s, h, hd]).swap_dims(1, 2);
        let q = heads(linear(&self.query, x.clone()));
        let k = heads(linear(&self.key, x.clone()));
        let v = heads(linear(&self.value, x));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt());
        let probs = softmax(scores + bias.expand([b, h, s, s]), 3);
        probs.matmul(v).swap_dims(1, 2).reshape([b, s, d])
    }
}

impl BertOutput {
    /// `LayerNorm(dense(x) + residual)`.
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(linear(&self.dense, x) + residual)
    }
}

impl BertLayer {
    /// One encoder layer over `x` `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let attn = self.attention.self_attention.forward(x.clone(), bias);
        let x = self.attention.output.forward(attn, x);
        let h = gelu(linear(&self.intermediate.dense, x.clone()));
        self.output.forward(h, x)
    }
}

impl Bert {
    /// Maps this skeleton's paths to Hugging Face BERT names (`encoder.layer.3.attention.self.
    /// query.weight`, `embeddings.LayerNorm.weight`), each prefixed with `prefix` (`""`, or
    /// `"bert."` for checkpoints saved from a task model).
    pub fn names(prefix: &str) -> NameRules {
        NameRules::new()
            .rename_field("LayerNorm", "gamma", "weight")
            .rename_field("LayerNorm", "beta", "bias")
            .replace_component("layer_norm", "LayerNorm")
            .replace_component("self_attention", "self")
            .replace_prefix("", prefix)
    }

    /// [`Bert::names`] with the prefix the store uses (`bert.` or none).
    pub fn names_for(manifest: &Manifest) -> NameRules {
        Self::names(Self::prefix_of(manifest))
    }

    /// The prefix of the store's tensor names: `bert.` or none.
    fn prefix_of(manifest: &Manifest) -> &'static str {
        let prefixed = manifest
            .find_tensor("bert.embeddings.word_embeddings.weight")
            .is_some();
        if prefixed { "bert." } else { "" }
    }

    /// `options` declaring the store's three embedding tables read only by rows
    /// ([`StreamOptions::rows_only`]): [`Bert::forward`] takes their rows and never loads them,
    /// so under a budget below the model the word table (most of a small model) is never held.
    pub fn rows_only(manifest: &Manifest, mut options: StreamOptions) -> StreamOptions {
        let prefix = Self::prefix_of(manifest);
        for table in [
            "word_embeddings",
            "position_embeddings",
            "token_type_embeddings",
        ] {
            options = options.with_rows_only(format!("{prefix}embeddings.{table}.weight"));
        }
        options
    }

    /// The last hidden state `[batch, seq, hidden]`, each submodule loaded through `streamer`
    /// (the embeddings' rows and LayerNorm, then one encoder layer at a time) and released
    /// after it runs.
    pub fn forward(&self, streamer: &Streamer, input: &BertInput) -> Result<Tensor<3>> {
        let mut x = self.embeddings.forward_rows(streamer, input)?;
        for layer in &self.encoder.layer {
            x = streamer
                .load(layer)?
                .forward(x, input.attention_bias.clone());
        }
        Ok(x)
    }

    /// Sentence embeddings of a batch of tokenized texts: the encoder, mean pooling over the
    /// real (non-padding) tokens, then L2 normalisation. One vector per text.
    pub fn embed(
        &self,
        streamer: &Streamer,
        batch: &[TokenIds],
        pad_id: u32,
    ) -> Result<Vec<Vec<f32>>> {
        let device = self
            .devices()
            .first()
            .cloned()
            .ok_or_else(|| Error::Skeleton("the BERT skeleton has no parameters".into()))?;
        let input = BertInput::new(batch, pad_id, &device)?;
        let hidden = self.forward(streamer, &input)?;
        let [b, _, d] = hidden.dims();
        let pooled = mean_pool_normalize(hidden, input.mask);
        let values = pooled
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::InvalidArgument(format!("reading embeddings: {e:?}")))?;
        debug_assert_eq!(values.len(), b * d);
        Ok(values.chunks(d).map(<[f32]>::to_vec).collect())
    }
}

/// Mean over the tokens where `mask` `[b, s, 1]` is 1, then division by the L2 norm (at least
/// 1e-12, as `torch.nn.functional.normalize`). Returns `[b, d]`.
pub fn mean_pool_normalize(hidden: Tensor<3>, mask: Tensor<3>) -> Tensor<2> {
    let [b, _, d] = hidden.dims();
    let summed = (hidden * mask.clone()).sum_dim(1); // [b, 1, d]
    let mean = summed / mask.sum_dim(1); // [b, 1, 1]
    let norm = (mean.clone() * mean.clone())
        .sum_dim(2)
        .sqrt()
        .clamp_min(1e-12);
    (mean / norm).reshape([b, d])
}

/// BERT in the registry ([`super::arch::architectures`]): `model_type` `bert`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BertArch;

impl super::arch::Architecture for BertArch {
    fn model_type(&self) -> &'static str {
        "bert"
    }

    fn description(&self) -> &'static str {
        "BERT encoder for sentence embeddings (mean pooling, L2 normalisation)"
    }

    fn task(&self) -> super::arch::Task {
        super::arch::Task::Embed
    }

    fn skeleton_params(&self, config: &[u8], device: &Device) -> Result<crate::ParamPaths> {
        let model = BertConfig::from_json(config)?.init(device);
        Ok(crate::ParamPaths::from_module(&model))
    }

    fn names(&self, manifest: Option<&Manifest>) -> NameRules {
        match manifest {
            Some(m) => Bert::names_for(m),
            None => Bert::names(""),
        }
    }

    /// The largest layer without the embedding tables, which are read by rows
    /// ([`Bert::rows_only`]).
    fn min_budget(&self, manifest: &Manifest) -> u64 {
        let tables = Bert::rows_only(manifest, StreamOptions::default()).rows_only;
        manifest
            .layers
            .iter()
            .map(|l| {
                let rows_only: u64 = l
                    .tensors
                    .iter()
                    .filter(|t| tables.contains(&t.name))
                    .map(|t| t.len)
                    .sum();
                l.byte_len - rows_only
            })
            .max()
            .unwrap_or(0)
    }
}
