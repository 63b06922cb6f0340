//! Seeded synthetic checkpoints of any size (Llama, GPT-2: every architecture whose
//! [`Architecture::synth_config`] sizes one), for models whose weights cannot be downloaded.
//!
//! The tensors are the model's own: the architecture builds its lazy skeleton from the config,
//! and each parameter becomes the store tensor its [`NameMap`] names (stored shape, transposed
//! for [`Layout::Transposed`]). Tensors are grouped into layers as `lit export` groups a
//! checkpoint (by name), in the skeleton's execution order. Weights are ≈ N(0, std²) (norm weights ≈ N(1, std²)) from a fast seeded PRNG,
//! derived per tensor from the seed and the tensor's name, so the same seed gives the same bytes
//! whatever the order or the machine. Stores are written layer by layer (one tensor in memory at
//! a time), with a Hugging Face `config.json`; [`Synth::write_hf_dir`] writes the same weights as
//! a plain `model.safetensors` for other tools.
//!
//! ```no_run
//! use lit_burn::models::synth::{Synth, SynthConfig, parse_count};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SynthConfig::llama_with_params(parse_count("2B")?);
//! let writer = lit_store::StoreWriter::create_local("llama-2b.lit")?;
//! Synth::new(config, 42).write_store(writer, &lit_core::NoObserver)?;
//! # Ok(())
//! # }
//! ```

use super::arch::Architecture;
use super::gpt2::Gpt2Config;
use super::llama::LlamaConfig;
use super::rng::{Rng, fnv1a, splitmix64};
use crate::error::{Error, Result};
use crate::names::{Layout, NameMap};
use crate::paths::ParamKind;
use burn::tensor::Device;
use lit_core::grouping::{GroupingOptions, TensorToGroup, plan_layers};
use lit_core::{DType, Event, Manifest, Observer, QuantScheme};
use lit_store::layer_file::TensorSpec;
use lit_store::{StoreWriter, quantizable};
use std::fmt;
use std::path::Path;

/// The architecture and shape of a synthetic model: an [`Architecture`] and the Hugging Face
/// `config.json` its skeleton is built from.
#[derive(Clone)]
pub struct SynthConfig {
    arch: &'static dyn Architecture,
    config: Vec<u8>,
    num_params: u64,
    description: String,
}

impl fmt::Debug for SynthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SynthConfig")
            .field("arch", &self.arch.model_type())
            .field("num_params", &self.num_params)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SynthConfig {
    fn eq(&self, other: &Self) -> bool {
        self.arch.model_type() == other.arch.model_type() && self.config == other.config
    }
}

/// One layer of the store: its name and tensors.
#[derive(Debug, Clone)]
pub struct SynthLayer {
    /// Layer name (as lit's default grouping names it).
    pub name: String,
    /// Its tensors.
    pub tensors: Vec<TensorSpec>,
}

/// Parses a parameter count: `125M`, `2B`, `1.5b`, `300k`, `7e9` or a plain number.
pub fn parse_count(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('b') | Some('g') => (&t[..t.len() - 1], 1e9),
        Some('t') => (&t[..t.len() - 1], 1e12),
        _ => (t.as_str(), 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok((n * mult).round() as u64),
        _ => Err(Error::InvalidArgument(format!(
            "invalid parameter count `{s}` (expected e.g. 125M, 2B, 1.5e9)"
        ))),
    }
}

/// Model widths tried when sizing a model; the one whose depth is closest to the architecture's
/// ideal (`width / 128` for Llama, `width / 64` for GPT-2) wins.
const WIDTHS: [usize; 15] = [
    64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 2560, 3072, 4096, 5120, 6144, 8192,
];

/// The real vocabulary for models of 100M parameters and more; smaller ones for small models,
/// whose embeddings would otherwise be most of the parameters.
pub(crate) fn vocab_for(target: u64, real: usize) -> usize {
    match target {
        100_000_000.. => real,
        10_000_000.. => 8_192,
        _ => 1_024,
    }
}

/// The config `build(width, layers)` whose parameter count is closest to `target` with a depth
/// close to `width / depth_per_width`.
pub(crate) fn best_by_depth<C>(
    target: u64,
    depth_per_width: f64,
    build: impl Fn(usize, usize) -> C,
    count: impl Fn(&C) -> u64,
) -> C {
    let mut best: Option<(f64, C)> = None;
    for &w in &WIDTHS {
        let one = count(&build(w, 1));
        let zero = count(&build(w, 0));
        let per_layer = (one - zero).max(1);
        let layers = ((target.saturating_sub(zero)) as f64 / per_layer as f64)
            .round()
            .max(1.0) as usize;
        let ideal = (w as f64 / depth_per_width).max(1.0);
        let c = build(w, layers);
        let size_err = (count(&c) as f64 / target as f64).ln().abs();
        let score = (layers as f64 / ideal).ln().abs() + 20.0 * size_err;
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, c));
        }
    }
    best.expect("WIDTHS is not empty").1
}

impl SynthConfig {
    /// A model of `arch` described by `config` (its `config.json`), of `num_params` parameters
    /// (as [`SynthConfig::layers`] will count them), its shape in words `description`.
    pub fn new(
        arch: &'static dyn Architecture,
        config: Vec<u8>,
        num_params: u64,
        description: String,
    ) -> Self {
        SynthConfig {
            arch,
            config,
            num_params,
            description,
        }
    }

    /// A Llama-style decoder of `config` (named like the variant it was).
    #[allow(non_snake_case)]
    pub fn Llama(config: LlamaConfig) -> Self {
        config.into()
    }

    /// GPT-2 of `config` (named like the variant it was).
    #[allow(non_snake_case)]
    pub fn Gpt2(config: Gpt2Config) -> Self {
        config.into()
    }

    /// A model of `arch` of about `target` parameters; an error if `arch` cannot be synthesized.
    pub fn with_params(arch: &'static dyn Architecture, target: u64) -> Result<Self> {
        arch.synth_config(target).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} models cannot be synthesized (can be: {})",
                arch.model_type(),
                synthesizable().join(", ")
            ))
        })
    }

    /// A Llama config of about `target` parameters ([`LlamaConfig::with_params`]).
    pub fn llama_with_params(target: u64) -> Self {
        LlamaConfig::with_params(target).into()
    }

    /// A GPT-2 config of about `target` parameters ([`Gpt2Config::with_params`]).
    pub fn gpt2_with_params(target: u64) -> Self {
        Gpt2Config::with_params(target).into()
    }

    /// The architecture's `model_type` (`llama`, `gpt2`).
    pub fn arch(&self) -> &'static str {
        self.arch.model_type()
    }

    /// The architecture.
    pub fn architecture(&self) -> &'static dyn Architecture {
        self.arch
    }

    /// Number of parameters.
    pub fn num_params(&self) -> u64 {
        self.num_params
    }

    /// The Hugging Face `config.json`.
    pub fn config_json(&self) -> Vec<u8> {
        self.config.clone()
    }

    /// The shape in words: `hidden 3072, 18 layers, 24 heads (6 kv), mlp 8192, vocab 32000`.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The store's tensors (names and stored shapes) in the skeleton's visiting order: each
    /// parameter of the lazy skeleton mapped through the architecture's canonical names.
    pub fn tensors(&self, dtype: DType) -> Result<Vec<TensorSpec>> {
        // A lazy skeleton allocates nothing, so the CPU device is as good as any.
        let paths = self.arch.skeleton_params(&self.config, &Device::flex())?;
        let names = self.arch.names(None);
        paths
            .iter()
            .map(|(_, info)| {
                if info.kind != ParamKind::Float {
                    return Err(Error::InvalidArgument(format!(
                        "{}: parameter `{}` is not a float tensor, which synthetic models cannot hold",
                        self.arch.model_type(),
                        info.path
                    )));
                }
                let stored = names.resolve(info);
                let mut shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
                if stored.layout == Layout::Transposed {
                    shape.reverse();
                }
                Ok(TensorSpec {
                    name: stored.name,
                    dtype,
                    shape,
                })
            })
            .collect()
    }

    /// The store's layers in execution order, each with its tensors (store names): the
    /// [`tensors`](SynthConfig::tensors) grouped as `lit export` groups a checkpoint, layers
    /// ordered by where their first tensor comes in the skeleton.
    pub fn layers(&self, dtype: DType) -> Result<Vec<SynthLayer>> {
        let tensors = self.tensors(dtype)?;
        let to_group: Vec<TensorToGroup<'_>> = tensors
            .iter()
            .map(|t| TensorToGroup {
                name: &t.name,
                bytes: t.shape.iter().product::<u64>() * dtype.size() as u64,
            })
            .collect();
        let mut planned = plan_layers(&to_group, &GroupingOptions::default())?;
        planned.sort_by_key(|l| l.members.iter().min().copied());
        Ok(planned
            .into_iter()
            .map(|l| SynthLayer {
                name: l.name,
                tensors: l.members.iter().map(|&i| tensors[i].clone()).collect(),
            })
            .collect())
    }
}

/// The `model_type`s of the architectures that can be synthesized.
pub fn synthesizable() -> Vec<&'static str> {
    super::arch::architectures()
        .iter()
        .filter(|a| a.synth_config(1_000_000).is_some())
        .map(|a| a.model_type())
        .collect()
}

/// A synthetic checkpoint: a shape, a seed, a float type and the weights' spread.
#[derive(Debug, Clone)]
pub struct Synth {
    /// Architecture and shape.
    pub config: SynthConfig,
    /// Seed of every weight.
    pub seed: u64,
    /// Float type stored.
    pub dtype: DType,
    /// Standard deviation of the weights (default 0.02).
    pub std: f32,
    /// Block quantization of the weight matrices (`None`: all `dtype`).
    pub quantize: Option<QuantScheme>,
}

/// Elements generated per independently seeded chunk (so threads split the work).
const CHUNK: usize = 1 << 20;

fn is_norm_weight(name: &str) -> bool {
    let owner = name.strip_suffix(".weight").unwrap_or("");
    let last = owner.rsplit('.').next().unwrap_or("");
    last.contains("norm") || last.starts_with("ln_")
}

impl Synth {
    /// `config` with `seed`, f32 weights of spread 0.02.
    pub fn new(config: SynthConfig, seed: u64) -> Self {
        Synth {
            config,
            seed,
            dtype: DType::F32,
            std: 0.02,
            quantize: None,
        }
    }

    /// Stores weight matrices as `scheme` blocks, as `lit export --quantize` would (see
    /// [`lit_store::quantizable`]); the values are the same seeded floats, quantized.
    pub fn with_quantize(mut self, scheme: Option<QuantScheme>) -> Self {
        self.quantize = scheme;
        self
    }

    /// Stores `dtype` (f32, f16 or bf16).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Weights with standard deviation `std`.
    pub fn with_std(mut self, std: f32) -> Self {
        self.std = std;
        self
    }

    /// Bytes of tensor data the store will hold.
    pub fn data_bytes(&self) -> u64 {
        self.config.num_params() * self.dtype.size() as u64
    }

    /// The bytes of `spec` (little-endian, `self.dtype`): the same for the same seed and name.
    pub fn tensor_bytes(&self, spec: &TensorSpec) -> lit_core::Result<Vec<u8>> {
        let n = spec.shape.iter().product::<u64>() as usize;
        let mean = if is_norm_weight(&spec.name) { 1.0 } else { 0.0 };
        let mut base = self.seed ^ fnv1a(spec.name.as_bytes());
        let base = splitmix64(&mut base);
        let mut values = vec![0f32; n];
        let chunks: Vec<(usize, &mut [f32])> = values.chunks_mut(CHUNK).enumerate().collect();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(chunks.len())
            .max(1);
        let std = self.std;
        let fill = |(k, chunk): (usize, &mut [f32])| {
            let mut rng = Rng::new(base ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for x in chunk.iter_mut() {
                *x = mean + std * rng.next_normalish();
            }
        };
        if threads == 1 {
            chunks.into_iter().for_each(fill);
        } else {
            let mut lanes: Vec<Vec<(usize, &mut [f32])>> =
                (0..threads).map(|_| Vec::new()).collect();
            for (j, c) in chunks.into_iter().enumerate() {
                lanes[j % threads].push(c);
            }
            std::thread::scope(|s| {
                for lane in lanes {
                    s.spawn(|| lane.into_iter().for_each(fill));
                }
            });
        }
        let mut bytes = Vec::with_capacity(n * 4);
        for x in &values {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        drop(values);
        if self.dtype == DType::F32 {
            return Ok(bytes);
        }
        lit_store::convert_floats(&bytes, DType::F32, self.dtype).ok_or_else(|| {
            lit_core::Error::InvalidArgument(format!(
                "synthetic weights must be f32, f16 or bf16, not {}",
                self.dtype
            ))
        })
    }

    /// The blocks of `spec` quantized to `scheme` (from the same seeded values as
    /// [`Synth::tensor_bytes`] in f32).
    fn quantized_bytes(&self, spec: &TensorSpec, scheme: QuantScheme) -> lit_core::Result<Vec<u8>> {
        let f32_synth = Synth {
            dtype: DType::F32,
            ..self.clone()
        };
        let bytes = f32_synth.tensor_bytes(spec)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut out = Vec::new();
        lit_core::quant::quantize(scheme, &values, &mut out).map_err(|e| {
            lit_core::Error::InvalidArgument(format!("tensor `{}`: {e}", spec.name))
        })?;
        Ok(out)
    }

    /// Writes the store through `writer`, layer by layer, then `config.json`; reports each layer
    /// to `observer` (`WriteStarted`, `LayerWritten`).
    pub fn write_store(
        &self,
        mut writer: StoreWriter,
        observer: &dyn Observer,
    ) -> Result<Manifest> {
        if !self.dtype.is_float() || self.dtype.size() > 4 {
            return Err(Error::InvalidArgument(format!(
                "synthetic weights must be f32, f16 or bf16, not {}",
                self.dtype
            )));
        }
        let layers = self.config.layers(self.dtype)?;
        observer.on_event(&Event::WriteStarted {
            layers: layers.len(),
            bytes: self.data_bytes(),
        });
        for (index, layer) in layers.iter().enumerate() {
            let quants: Vec<Option<QuantScheme>> = layer
                .tensors
                .iter()
                .map(|t| {
                    self.quantize
                        .filter(|&q| quantizable(&t.name, self.dtype, &t.shape, q))
                })
                .collect();
            let specs: Vec<TensorSpec> = layer
                .tensors
                .iter()
                .zip(&quants)
                .map(|(t, q)| TensorSpec {
                    dtype: if q.is_some() { DType::U8 } else { t.dtype },
                    ..t.clone()
                })
                .collect();
            writer.write_layer_quantized(&layer.name, &specs, &quants, |i| match quants[i] {
                Some(q) => self.quantized_bytes(&layer.tensors[i], q),
                None => self.tensor_bytes(&layer.tensors[i]),
            })?;
            let bytes = layer
                .tensors
                .iter()
                .map(|t| t.shape.iter().product::<u64>() * self.dtype.size() as u64)
                .sum();
            observer.on_event(&Event::LayerWritten {
                index,
                name: &layer.name,
                bytes,
            });
        }
        writer.write_aux("config.json", &self.config.config_json())?;
        let name = format!("synth-{}", self.config.arch());
        let metadata = vec![
            ("synth.seed".to_string(), self.seed.to_string()),
            ("synth.std".to_string(), self.std.to_string()),
            (
                "synth.params".to_string(),
                self.config.num_params().to_string(),
            ),
        ];
        Ok(writer.finish(&name, metadata)?)
    }

    /// Writes the store to local directory `dst` (which must not exist), without progress.
    pub fn write_local(&self, dst: &Path) -> Result<Manifest> {
        self.write_store(StoreWriter::create_local(dst)?, &lit_core::NoObserver)
    }

    /// Writes the same weights as a Hugging Face directory: `config.json` and one
    /// `model.safetensors` (tensors generated one at a time). `dir` is created if needed.
    pub fn write_hf_dir(&self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| lit_core::Error::io(dir.display(), e);
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(dir.join("config.json"), self.config.config_json()).map_err(io)?;
        let tensors: Vec<TensorSpec> = self
            .config
            .layers(self.dtype)?
            .into_iter()
            .flat_map(|l| l.tensors)
            .collect();
        let path = dir.join("model.safetensors");
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        lit_store::layer_file::write_layer(&mut out, &path.display().to_string(), &tensors, |i| {
            self.tensor_bytes(&tensors[i])
        })?;
        std::io::Write::flush(&mut out).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse() {
        assert_eq!(parse_count("2B").unwrap(), 2_000_000_000);
        assert_eq!(parse_count("125m").unwrap(), 125_000_000);
        assert_eq!(parse_count("1.5e3").unwrap(), 1500);
        assert_eq!(parse_count(" 300K ").unwrap(), 300_000);
        assert!(parse_count("lots").is_err());
        assert!(parse_count("-1M").is_err());
    }

    #[test]
    fn sizes_are_close_to_the_target() {
        for target in [
            1_000_000u64,
            20_000_000,
            125_000_000,
            2_000_000_000,
            7_000_000_000,
        ] {
            for c in [
                SynthConfig::llama_with_params(target),
                SynthConfig::gpt2_with_params(target),
            ] {
                let n = c.num_params() as f64;
                assert!(
                    (n / target as f64 - 1.0).abs() < 0.25,
                    "{target}: {n} ({})",
                    c.describe()
                );
                let layers = c.layers(DType::F32).unwrap();
                let total: u64 = layers
                    .iter()
                    .flat_map(|l| &l.tensors)
                    .map(|t| t.shape.iter().product::<u64>())
                    .sum();
                assert_eq!(total, c.num_params(), "{}", c.describe());
            }
        }
    }

    #[test]
    fn layers_follow_the_default_grouping() {
        use lit_core::grouping::{GroupingOptions, TensorToGroup, plan_layers};
        for c in [
            SynthConfig::llama_with_params(1_000_000),
            SynthConfig::gpt2_with_params(1_000_000),
        ] {
            let layers = c.layers(DType::F32).unwrap();
            let names: Vec<&str> = layers
                .iter()
                .flat_map(|l| l.tensors.iter().map(|t| t.name.as_str()))
                .collect();
            let to_group: Vec<TensorToGroup<'_>> = names
                .iter()
                .map(|&name| TensorToGroup { name, bytes: 1 })
                .collect();
            let plan = plan_layers(&to_group, &GroupingOptions::default()).unwrap();
            let mut planned: Vec<&str> = plan.iter().map(|p| p.name.as_str()).collect();
            let mut ours: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
            planned.sort();
            ours.sort();
            assert_eq!(planned, ours);
        }
    }

    #[test]
    fn weights_are_seeded_per_name() {
        let c = SynthConfig::llama_with_params(1_000_000);
        let spec = c.layers(DType::F32).unwrap()[1].tensors[0].clone();
        let a = Synth::new(c.clone(), 3);
        assert_eq!(
            a.tensor_bytes(&spec).unwrap(),
            a.tensor_bytes(&spec).unwrap()
        );
        assert_ne!(
            a.tensor_bytes(&spec).unwrap(),
            Synth::new(c.clone(), 4).tensor_bytes(&spec).unwrap()
        );
        let half = Synth::new(c, 3).with_dtype(DType::BF16);
        assert_eq!(
            half.tensor_bytes(&spec).unwrap().len() * 2,
            a.tensor_bytes(&spec).unwrap().len()
        );
        assert!(is_norm_weight("model.layers.0.input_layernorm.weight"));
        assert!(is_norm_weight("h.3.ln_1.weight"));
        assert!(!is_norm_weight("h.3.ln_1.bias"));
        assert!(!is_norm_weight("model.layers.0.mlp.up_proj.weight"));
    }
}
