//! What the decoders share: the [`KvCache`] (from [`super::kv`]), rotary position embeddings ([`Rope`]), causal
//! (grouped-query) attention, and their `f32` compute ([`with_f32_compute`]). How weights arrive
//! ([`Weights`], [`Resident`]) is [`crate::weights`], re-exported here.

use crate::StreamOptions;
use crate::error::Result;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, FloatDType, Tensor, TensorData};
use lit_core::{DType, WeightSource};

pub use super::kv::KvCache;
pub use crate::weights::{Held, Resident, Weights};

/// How RoPE frequencies are rescaled (`rope_scaling` in a Hugging Face config).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Every frequency divided by `factor` (position interpolation).
    Linear {
        /// Divisor.
        factor: f64,
    },
    /// Llama 3's wavelength-dependent scaling.
    Llama3 {
        /// Divisor of low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are scaled fully.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Context length of the pretrained model.
        original_max_position_embeddings: f64,
    },
}

/// Rotary position embeddings in Hugging Face's `rotate_half` convention: dimension `j` pairs
/// with `j + head_dim / 2`. Tables are computed on the host in `f64`.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f64>,
}

impl Rope {
    /// Frequencies `theta^(-2i/head_dim)`, rescaled by `scaling`.
    pub fn new(head_dim: usize, theta: f64, scaling: Option<&RopeScaling>) -> Self {
        let inv = (0..head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64));
        let inv_freq = match scaling {
            None => inv.collect(),
            Some(RopeScaling::Linear { factor }) => inv.map(|f| f / factor).collect(),
            Some(&RopeScaling::Llama3 {
                factor,
                low_freq_factor: lo,
                high_freq_factor: hi,
                original_max_position_embeddings: old,
            }) => inv
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < old / hi {
                        f
                    } else if wavelen > old / lo {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - lo) / (hi - lo);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect(),
        };
        Rope { inv_freq }
    }

    /// `cos` and `sin` tables (`[len, head_dim]`) for positions `start..start + len`.
    pub fn tables(&self, start: usize, len: usize, device: &Device) -> RopeTables {
        let d = self.inv_freq.len() * 2;
        let mut cos = Vec::with_capacity(len * d);
        let mut sin = Vec::with_capacity(len * d);
        for p in start..start + len {
            for _ in 0..2 {
                for f in &self.inv_freq {
                    let (s, c) = (p as f64 * f).sin_cos();
                    cos.push(c as f32);
                    sin.push(s as f32);
                }
            }
        }
        let table = |v: Vec<f32>| {
            Tensor::<2>::from_data(TensorData::new(v, [len, d]), device).unsqueeze::<4>()
        };
        RopeTables {
            cos: table(cos),
            sin: table(sin),
        }
    }
}

/// `cos`/`sin` tables for one pass, `[1, 1, len, head_dim]`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
}

impl RopeTables {
    /// Rotates `x` (`[batch, heads, len, head_dim]`): `x * cos + rotate_half(x) * sin`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let d = x.dims()[3];
        let x1 = x.clone().narrow(3, 0, d / 2);
        let x2 = x.clone().narrow(3, d / 2, d / 2);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

/// Causal attention of `q` (`[b, heads, s, d]`) over `k`, `v` (`[b, kv_heads, t, d]`, the last
/// `s` of the `t` positions being the queries'); query head `j` uses key/value head
/// `j / (heads / kv_heads)`. Returns `[b, heads, s, d]`.
///
/// Grouped heads are folded into the query length (`[b, kv_heads, rep * s, d]`), so keys and
/// values are never repeated in memory.
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    let [b, heads, s, d] = q.dims();
    let [_, kv_heads, t, _] = k.dims();
    let rep = heads / kv_heads;
    let q = q.reshape([b, kv_heads, rep * s, d]);
    let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    if s > 1 {
        let start = t - s;
        // Row `r` is query position `r % s`; it sees keys up to `start + r % s`.
        let mask: Vec<bool> = (0..rep * s)
            .flat_map(|r| (0..t).map(move |j| j > start + r % s))
            .collect();
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [rep * s, t]), &v.device())
            .unsqueeze::<4>()
            .expand([b, kv_heads, rep * s, t]);
        scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    }
    softmax(scores, 3).matmul(v).reshape([b, heads, s, d])
}

/// The device of a skeleton's parameters.
pub(crate) fn device_of<M: Module>(model: &M) -> Result<Device> {
    model
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| crate::Error::Skeleton("the model has no parameters, so no device".into()))
}

/// Checks that there are ids and that every one is below `vocab`.
pub(crate) fn check_ids(ids: &[u32], vocab: usize) -> Result<()> {
    if ids.is_empty() {
        return Err(crate::Error::InvalidArgument("no token ids to run".into()));
    }
    match ids.iter().find(|&&i| i as usize >= vocab) {
        Some(bad) => Err(crate::Error::InvalidArgument(format!(
            "token id {bad} is outside the vocabulary of {vocab}"
        ))),
        None => Ok(()),
    }
}

/// Whether the store holds float weights other than `f32`. The decoders compute in `f32`, so
/// such stores are run with [`crate::LoadOptions::with_float_dtype`]`(FloatDType::F32)` (one
/// conversion per load).
pub fn has_non_f32_floats(source: &dyn WeightSource) -> bool {
    source
        .manifest()
        .layers
        .iter()
        .flat_map(|l| &l.tensors)
        .any(|t| t.dtype.is_float() && t.dtype != DType::F32)
}

/// `options` with the conversion to `f32` that the decoders need when the store holds other
/// float types (see [`has_non_f32_floats`]).
pub fn with_f32_compute(source: &dyn WeightSource, mut options: StreamOptions) -> StreamOptions {
    if has_non_f32_floats(source) {
        options.load = options.load.with_float_dtype(FloatDType::F32);
    }
    options
}

/// Token ids from a config field that is an id, a list of ids, or absent.
pub(crate) fn token_ids(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| n as u32).into_iter().collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|n| n as u32))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_from_config_fields() {
        assert_eq!(token_ids(Some(&serde_json::json!([1, 2]))), [1, 2]);
        assert_eq!(token_ids(Some(&serde_json::json!(7))), [7]);
        assert!(token_ids(None).is_empty());
    }
}
