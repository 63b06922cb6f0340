//! [`LitModuleStore`]: a lit store as a burn-store [`ModuleStore`], for models that fit in memory.
//!
//! `model.load_from(&mut LitModuleStore::new(source))` loads every tensor at once through
//! burn-store's `Applier`, with its adapters (`PyTorchToBurnAdapter`, …) and report. Tensors are
//! wrapped without a copy where aligned, as in [`crate::load`]. To stream instead, use a
//! [`Streamer`](crate::Streamer).

use crate::dtype::to_burn;
use crate::error::Error;
use crate::load::wrap_bytes;
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::{ApplyResult, ModuleAdapter, ModuleSnapshot, ModuleStore};
use lit_core::{WeightSource, WeightSourceExt};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A read-only burn-store [`ModuleStore`] over a lit [`WeightSource`].
pub struct LitModuleStore {
    source: Arc<dyn WeightSource>,
    adapter: Option<Box<dyn ModuleAdapter>>,
    allow_partial: bool,
    cache: Option<BTreeMap<String, PackTensor>>,
}

impl fmt::Debug for LitModuleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LitModuleStore")
            .field("source", &self.source.location())
            .field("adapter", &self.adapter.is_some())
            .field("allow_partial", &self.allow_partial)
            .finish()
    }
}

impl LitModuleStore {
    /// A store reading from `source`; nothing is read until a tensor is asked for.
    pub fn new(source: Arc<dyn WeightSource>) -> Self {
        LitModuleStore {
            source,
            adapter: None,
            allow_partial: false,
            cache: None,
        }
    }

    /// Adapts tensors on load (e.g. burn-store's `PyTorchToBurnAdapter` for Hugging Face names).
    pub fn with_adapter(mut self, adapter: impl ModuleAdapter + 'static) -> Self {
        self.adapter = Some(Box::new(adapter));
        self
    }

    /// Accepts models whose parameters the store does not all fill.
    pub fn allow_partial(mut self, allow: bool) -> Self {
        self.allow_partial = allow;
        self
    }
}

impl ModuleStore for LitModuleStore {
    type Error = Error;

    fn collect_from<M: ModuleSnapshot>(&mut self, _module: &M) -> Result<(), Error> {
        Err(Error::InvalidArgument(format!(
            "{}: a lit store is read-only through burn-store (export with `lit export`)",
            self.source.location()
        )))
    }

    fn apply_to<M: ModuleSnapshot>(&mut self, module: &mut M) -> Result<ApplyResult, Error> {
        let tensors = self.get_all_tensors()?.values().cloned().collect();
        let adapter = self.adapter.as_ref().map(|a| a.clone_box());
        let result = module.apply(tensors, None, adapter, false);
        if !self.allow_partial && (!result.errors.is_empty() || !result.missing.is_empty()) {
            let mut lines: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
            lines.extend(
                result
                    .missing
                    .iter()
                    .map(|(path, _)| format!("`{path}` is missing from the store")),
            );
            return Err(Error::InvalidArgument(format!(
                "{}: {} tensor(s) could not be loaded:\n  - {}",
                self.source.location(),
                lines.len(),
                lines.join("\n  - ")
            )));
        }
        Ok(result)
    }

    fn get_tensor(&mut self, name: &str) -> Result<Option<&PackTensor>, Error> {
        Ok(self.get_all_tensors()?.get(name))
    }

    fn get_all_tensors(&mut self) -> Result<&BTreeMap<String, PackTensor>, Error> {
        if self.cache.is_none() {
            let mut all = BTreeMap::new();
            for index in 0..self.source.manifest().layers.len() {
                let layer = futures::executor::block_on(self.source.read_layer(index))?;
                for (entry, bytes) in layer.tensors() {
                    let shape: Vec<usize> = entry.shape.iter().map(|&d| d as usize).collect();
                    let (bytes, _) = wrap_bytes(bytes, entry.dtype);
                    let tensor = PackTensor::new(
                        entry.name.clone(),
                        to_burn(entry.dtype),
                        shape,
                        None,
                        bytes,
                    );
                    all.insert(entry.name.clone(), tensor);
                }
            }
            self.cache = Some(all);
        }
        Ok(self.cache.as_ref().expect("filled above"))
    }

    fn keys(&mut self) -> Result<Vec<String>, Error> {
        Ok(self.get_all_tensors()?.keys().cloned().collect())
    }
}
