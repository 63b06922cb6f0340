//! # lit-burn
//!
//! Streamed, layer-wise inference of [Burn](https://burn.dev) models from a lit store.
//!
//! A model is built as a Burn *skeleton* (lazy parameters, no weight memory). Before a
//! submodule runs, a `Streamer` fills a clone of it with its tensors from a
//! [`WeightSource`](lit_core::WeightSource); when the clone is dropped its memory returns.
//! Layers ahead are prefetched in the background within a byte budget, and the first layers stay
//! resident while they fit.
//!
//! - [`device`]: choosing Flex, NdArray or CUDA (probed, never panics);
//! - [`paths`]: the `ParamId → path` map built once from the skeleton;
//! - [`names`]: from module paths to store names and layouts (per-model adapters);
//! - [`load`]: filling a module clone from layer bytes, zero-copy where possible;


pub mod device;
pub mod dtype;
pub mod error;
pub mod load;
pub mod names;
pub mod paths;

pub use device::{DeviceKind, LitDevice};
pub use error::{Error, LoadErrors, Problem, Result};
pub use load::{LoadOptions, LoadReport, load_module};
pub use names::{Identity, Layout, NameMap, NameRules, StoreTensor};
pub use paths::{ParamInfo, ParamKind, ParamPaths};
