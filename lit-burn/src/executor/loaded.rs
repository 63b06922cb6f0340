//! [`Loaded`]: a filled clone of a submodule; dropping it releases its weights.

use super::Inner;
use crate::load::LoadReport;
use burn::module::ParamId;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A submodule filled with its weights by [`Streamer::load`](crate::Streamer::load).
///
/// Use it as the module (`loaded.forward(x)` through `Deref`). Dropping it releases the layers
/// it holds and returns their bytes to the streamer's budget.
pub struct Loaded<M> {
    // Dropped first: the tensors go before the budget is credited.
    module: M,
    /// The module's parameters, and those whose bytes were copied, for [`Loaded::report`].
    ids: Vec<ParamId>,
    copied: Vec<ParamId>,
    guard: Guard,
}

struct Guard {
    inner: Arc<Inner>,
    owned: u64,
    layers: Vec<usize>,
    /// The layers' mappings, checked after use (see `Inner::finish`).
    watches: Vec<lit_store::MappedWatch>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.inner.finish(self.owned, &self.layers, &self.watches);
    }
}

impl<M> Loaded<M> {
    pub(crate) fn new(
        module: M,
        ids: Vec<ParamId>,
        copied: Vec<ParamId>,
        inner: Arc<Inner>,
        owned: u64,
        layers: Vec<usize>,
        watches: Vec<lit_store::MappedWatch>,
    ) -> Self {
        Loaded {
            module,
            ids,
            copied,
            guard: Guard {
                inner,
                owned,
                layers,
                watches,
            },
        }
    }

    /// What the load did (tensors applied, unused, copied), by store name. Built on demand
    /// from the streamer's plan: loading itself handles no names.
    pub fn report(&self) -> LoadReport {
        let inner = &self.guard.inner;
        let layers = &inner.source.manifest().layers;
        LoadReport::of(
            &inner.plan,
            &self.ids,
            &self.copied,
            self.guard.layers.iter().map(|&l| &layers[l]),
        )
    }

    /// Indices (in the manifest) of the layers this module was filled from.
    pub fn layers(&self) -> &[usize] {
        &self.guard.layers
    }

    /// Bytes of non-resident layers this module holds against the budget.
    pub fn owned_bytes(&self) -> u64 {
        self.guard.owned
    }

    /// The module itself, no longer counted against the budget: the streamer forgets it, so
    /// keeping it alive holds memory the budget does not see.
    pub fn into_inner(self) -> M {
        let Loaded { module, guard, .. } = self;
        drop(guard);
        module
    }
}

impl<M> Deref for Loaded<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.module
    }
}

impl<M: fmt::Debug> fmt::Debug for Loaded<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("layers", &self.guard.layers)
            .field("owned_bytes", &self.guard.owned)
            .field("module", &self.module)
            .finish()
    }
}
