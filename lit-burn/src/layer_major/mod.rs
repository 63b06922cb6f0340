//! Layer-major ("zig-zag") schedules: each submodule, once loaded, runs over every micro-batch
//! of a chunk of inputs before the next submodule is loaded, so a weight pass serves the whole
//! chunk instead of one batch. The hidden states between submodules live in a [`SpillTier`]:
//! in memory up to its budget, on local disk beyond it.
//!
//! ```no_run
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::tensor::{Device, Tensor};
//! use lit_burn::layer_major::{LayerMajor, SpillTier};
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
//! let net = Net { layers: (0..8).map(|_| LinearConfig::new(64, 64).init(&device)).collect() };
//! let source = Arc::new(lit_store::LocalSource::open("net.lit")?);
//! let streamer = Streamer::new(source, &net, StreamOptions::default().with_budget(1 << 20))?;
//! // 1000 micro-batches; at most 4 MiB of them in memory, the rest in the temp directory.
//! let inputs = (0..1000).map(|_| Tensor::<2>::ones([16, 64], &device));
//! let tier = SpillTier::new(std::env::temp_dir(), 4 << 20)?;
//! let run = LayerMajor::new(&streamer, tier);
//! let hidden = run.inputs(inputs)?;
//! // Each layer is read once for all 1000 micro-batches.
//! let outputs = run.stages(&net.layers, hidden, |layer, _batch, x| layer.forward(x))?;
//! for y in outputs {
//!     let y = y?; // in input order, read back from disk where it spilled
//!     assert_eq!(y.dims(), [16, 64]);
//! }
//! println!("{:?}", run.tier().stats());
//! # Ok(())
//! # }
//! ```
//!
//! Stages may change the tensor's rank, and a stage's closure gets the micro-batch's index so it
//! can use per-batch inputs kept aside (masks, positions). Any [`Weights`] runs the schedule: a
//! [`Streamer`](crate::Streamer) reads each submodule once per stage (and prefetches the next
//! while the stage computes); [`Resident`](crate::Resident) runs a model loaded whole.

mod spill;

pub use spill::{Activations, SpillStats, SpillTier};

use crate::error::Result;
use crate::weights::Weights;
use burn::module::Module;
use burn::tensor::Tensor;

/// Runs submodules one at a time over many micro-batches, with the activations in a
/// [`SpillTier`]. See the [module docs](self).
#[derive(Debug)]
pub struct LayerMajor<'w, W> {
    weights: &'w W,
    tier: SpillTier,
}

impl<'w, W: Weights> LayerMajor<'w, W> {
    /// A schedule that loads submodules through `weights` and keeps activations in `tier`.
    pub fn new(weights: &'w W, tier: SpillTier) -> Self {
        LayerMajor { weights, tier }
    }

    /// The tier the activations live in (its [`SpillTier::stats`] say what spilled).
    pub fn tier(&self) -> &SpillTier {
        &self.tier
    }

    /// Puts `inputs` (one tensor per micro-batch) into the tier, in order.
    pub fn inputs<const D: usize>(
        &self,
        inputs: impl IntoIterator<Item = Tensor<D>>,
    ) -> Result<Activations<D>> {
        let mut out = self.tier.activations();
        for x in inputs {
            out.push(x)?;
        }
        Ok(out)
    }

    /// The first stage: loads `module` once and calls `f(module, i)` for micro-batches
    /// `0..count`, which builds each one's output from inputs the caller holds (token ids, …).
    pub fn start<M: Module, const D: usize>(
        &self,
        module: &M,
        count: usize,
        mut f: impl FnMut(&M, usize) -> Tensor<D>,
    ) -> Result<Activations<D>> {
        let held = self.weights.load(module)?;
        let mut out = self.tier.activations();
        for i in 0..count {
            out.push(f(&held, i))?;
        }
        Ok(out)
    }

    /// [`Self::start`] with a step that can fail (reading rows by range, …): the first error
    /// ends the stage.
    pub fn try_start<M: Module, const D: usize>(
        &self,
        module: &M,
        count: usize,
        mut f: impl FnMut(&M, usize) -> Result<Tensor<D>>,
    ) -> Result<Activations<D>> {
        let held = self.weights.load(module)?;
        let mut out = self.tier.activations();
        for i in 0..count {
            out.push(f(&held, i)?)?;
        }
        Ok(out)
    }

    /// One stage: loads `module` once and maps every activation of `input` through
    /// `f(module, i, x)`, in order (`i` is the micro-batch's index). The input's tensors are
    /// released (and their spill file removed) as they are consumed.
    pub fn stage<M: Module, const D: usize, const E: usize>(
        &self,
        module: &M,
        input: Activations<D>,
        mut f: impl FnMut(&M, usize, Tensor<D>) -> Tensor<E>,
    ) -> Result<Activations<E>> {
        let held = self.weights.load(module)?;
        let mut out = self.tier.activations();
        for (i, x) in input.enumerate() {
            out.push(f(&held, i, x?))?;
        }
        Ok(out)
    }

    /// [`LayerMajor::stage`] for each module of a stack in turn, with the same closure.
    pub fn stages<'m, M: Module + 'm, const D: usize>(
        &self,
        modules: impl IntoIterator<Item = &'m M>,
        input: Activations<D>,
        mut f: impl FnMut(&M, usize, Tensor<D>) -> Tensor<D>,
    ) -> Result<Activations<D>> {
        let mut x = input;
        for module in modules {
            x = self.stage(module, x, &mut f)?;
        }
        Ok(x)
    }
}
