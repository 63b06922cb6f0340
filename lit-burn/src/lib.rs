//! # lit-burn
//!
//! Streamed, layer-wise inference of [Burn](https://burn.dev) models from a lit store.
//!
//! A model is built as a Burn *skeleton* (lazy parameters, no weight memory). Before a
//! submodule runs, a [`Streamer`] fills a clone of it with its tensors from a
//! [`WeightSource`](lit_core::WeightSource); when the clone is dropped its memory returns.
//! Layers ahead are prefetched in the background within a byte budget, and the first layers stay
//! resident while they fit.
//!
//! - [`device`]: choosing Flex, NdArray or CUDA (probed, never panics);
//! - [`paths`]: the `ParamId → path` map built once from the skeleton;
//! - [`names`]: from module paths to store names and layouts (per-model adapters);
//! - [`plan`]: every parameter's tensor resolved and checked once, with how it is built;
//! - [`blocks`]: quantized weights kept as their blocks and computed on directly;
//! - [`load`]: filling a module clone from layer bytes by following the plan, zero-copy where
//!   possible;
//! - [`executor`]: the [`Streamer`], with prefetch, residency and a memory budget;
//! - [`memory`]: the memory available to the process (cgroup limits included), for the default
//!   budget;
//! - [`weights`]: where a forward pass gets its weights ([`Weights`]: streamed or [`Resident`]);
//! - [`layer_major`]: one submodule over many micro-batches before the next (a weight pass per
//!   chunk of inputs, not per batch), with the activations spilled to disk beyond a budget;
//! - [`interop`]: a lit store as a burn-store `ModuleStore`, to load a model that fits whole;
//! - [`models`]: built-in architectures (BERT sentence embeddings, Llama, GPT-2), built from the
//!   config kept in the store, each behind one [`models::Architecture`] in a registry.
//!
//! ```no_run
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Device, Tensor};
//! use lit_burn::{StreamOptions, Streamer};
//! use std::sync::Arc;
//!
//! #[derive(Module, Debug)]
//! struct Net {
//!     layers: Vec<Linear>,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::flex();
//! // A skeleton: lazy parameters, nothing allocated.
//! let net = Net { layers: (0..8).map(|_| LinearConfig::new(64, 64).init(&device)).collect() };
//! let source = Arc::new(lit_store::LocalSource::open("net.lit")?);
//! let options = StreamOptions::default().with_budget(1 << 20).with_prefetch(2);
//! let streamer = Streamer::new(source, &net, options)?;
//! let mut x = Tensor::<2>::ones([1, 64], &device);
//! for layer in &net.layers {
//!     x = streamer.load(layer)?.forward(x); // filled, run, released
//! }
//! println!("{:?}", streamer.stats());
//! # Ok(())
//! # }
//! ```

pub mod blocks;
pub mod device;
pub mod dtype;
pub mod error;
pub mod executor;
pub mod interop;
pub mod layer_major;
pub mod load;
pub mod memory;
pub mod models;
pub mod names;
pub mod paths;
pub mod plan;
pub mod save;
pub mod weights;

pub use device::{DeviceKind, LitDevice};
pub use error::{Error, LoadErrors, Problem, Result};
pub use executor::{Budget, BudgetChoice, Loaded, PassStats, StreamOptions, StreamStats, Streamer};
pub use interop::LitModuleStore;
pub use load::{LoadOptions, LoadReport, load_module};
pub use names::{Identity, Layout, NameMap, NameRules, StoreTensor};
pub use paths::{ParamInfo, ParamKind, ParamPaths};
pub use plan::{LoadPlan, PlanEntry, Step};
pub use weights::{Resident, Weights};

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
