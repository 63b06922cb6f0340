//! Where a forward pass gets each submodule's weights from: streamed by the [`Streamer`] or
//! already in memory ([`Resident`]). Models are written once against [`Weights`] and run either way.

use crate::blocks;
use crate::error::Result;
use crate::executor::{Loaded, Streamer};
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use std::ops::Deref;

/// Where a forward pass gets each submodule's weights from.
///
/// [`Streamer`] fills a clone of each submodule from the store and releases it when dropped;
/// [`Resident`] runs a model that is already filled (loaded whole).
pub trait Weights {
    /// A filled module, alive while it is used.
    type Held<M: Module>: Deref<Target = M>;

    /// `module` (a submodule of the model the pass runs) with its weights.
    fn load<M: Module>(&self, module: &M) -> Result<Self::Held<M>>;

    /// Rows `ids` of the 2-D float parameter `weight` (an embedding table of the model),
    /// `[ids.len(), cols]`: only those rows are read or decoded where that can be done.
    fn rows(&self, weight: &Param<Tensor<2>>, ids: &[usize]) -> Result<Tensor<2>>;

    /// Called at the end of each forward pass (one token step).
    fn end_pass(&self) {}

    /// Whether the model should load the pieces it declared
    /// ([`StreamOptions::with_piece`](crate::StreamOptions::with_piece)) one at a time rather
    /// than their whole layers (see [`Streamer::loads_pieces`]). Default: `false`.
    fn loads_pieces(&self) -> bool {
        false
    }
}

impl Weights for Streamer {
    type Held<M: Module> = Loaded<M>;

    fn load<M: Module>(&self, module: &M) -> Result<Loaded<M>> {
        Streamer::load(self, module)
    }

    fn rows(&self, weight: &Param<Tensor<2>>, ids: &[usize]) -> Result<Tensor<2>> {
        Streamer::rows(self, weight, ids)
    }

    fn end_pass(&self) {
        Streamer::end_pass(self)
    }

    fn loads_pieces(&self) -> bool {
        Streamer::loads_pieces(self)
    }
}

/// Weights already in the model: `load` returns a (cheap, `Arc`-sharing) clone of the module.
///
/// Use it with a model loaded whole (for example by [`crate::load_module`] on the skeleton).
/// On a lazy skeleton it would initialise random weights.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resident;

/// A module [`Resident`] hands out.
#[derive(Debug)]
pub struct Held<M>(M);

impl<M> Deref for Held<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.0
    }
}

impl Weights for Resident {
    type Held<M: Module> = Held<M>;

    fn load<M: Module>(&self, module: &M) -> Result<Held<M>> {
        Ok(Held(module.clone()))
    }

    fn rows(&self, weight: &Param<Tensor<2>>, ids: &[usize]) -> Result<Tensor<2>> {
        blocks::rows(weight, ids)
    }
}
