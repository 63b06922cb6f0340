//! [`WeightSource`]: where a store's bytes come from (a local disk, RAM, an object store).
//!
//! Like object_store's `ObjectStore`, the core trait holds only what every backend must provide;
//! conveniences live in [`WeightSourceExt`], implemented for every source. Buffers are
//! [`bytes::Bytes`], so data mapped from disk or received from the network reaches a model without
//! a copy: slicing a layer into tensors only bumps a reference count.

use crate::error::{Error, Result};
use crate::manifest::{LayerEntry, Manifest, ObjectId, TensorEntry};
use async_trait::async_trait;
use bytes::Bytes;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

/// A readable lit store.
///
/// Implementations must be cheap to share across threads: the executor reads several layers
/// concurrently while one runs.
#[async_trait]
pub trait WeightSource: Send + Sync + Debug {
    /// The store's manifest, read and validated when the source was opened.
    fn manifest(&self) -> &Manifest;

    /// Where the store lives (a path or URL), for messages.
    fn location(&self) -> &str;

    /// Bytes `range` of object `id`. Not checksummed: a part of an object cannot be.
    ///
    /// Errors when `id` does not exist or `range` is not inside the object.
    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes>;

    /// The whole object `id`, checked against the manifest's length and checksum.
    ///
    /// The default reads the full range and verifies it; sources override it when they can do
    /// better (a cache hit was verified when it was filled).
    async fn read_object(&self, id: ObjectId) -> Result<Bytes> {
        let info = self.manifest().object(id)?;
        let bytes = self.read_range(id, 0..info.byte_len).await?;
        info.verify(&bytes, self.location())?;
        Ok(bytes)
    }

    /// Bytes `range` of layer `index`, a range of whole tensors, each checked against its own
    /// checksum where the manifest has one (format version 3; see
    /// [`TensorChecks`](crate::checksum::TensorChecks)).
    ///
    /// The default reads the range and then hashes it; sources override it to hash while later
    /// bytes are still being read.
    async fn read_tensors(&self, index: usize, range: Range<u64>) -> Result<Bytes> {
        let bytes = self
            .read_range(ObjectId::Layer(index), range.clone())
            .await?;
        let layer = &self.manifest().layers[index];
        let mut checks = crate::checksum::TensorChecks::new(layer, self.location(), range);
        checks.update(&bytes);
        checks.finish()?;
        Ok(bytes)
    }
}

/// Checks that `range` lies inside object `id` of `manifest`; sources call it before reading.
pub fn check_range(manifest: &Manifest, id: ObjectId, range: &Range<u64>) -> Result<()> {
    let info = manifest.object(id)?;
    if range.start > range.end || range.end > info.byte_len {
        return Err(Error::InvalidArgument(format!(
            "range {}..{} is outside `{}` ({}, {} bytes)",
            range.start, range.end, info.name, info.key, info.byte_len
        )));
    }
    Ok(())
}

/// `WeightSource` forwarded through a smart pointer.
macro_rules! forward_weight_source {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: WeightSource + ?Sized> WeightSource for $pointer<T> {
            fn manifest(&self) -> &Manifest {
                (**self).manifest()
            }
            fn location(&self) -> &str {
                (**self).location()
            }
            async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
                (**self).read_range(id, range).await
            }
            async fn read_object(&self, id: ObjectId) -> Result<Bytes> {
                (**self).read_object(id).await
            }
            async fn read_tensors(&self, index: usize, range: Range<u64>) -> Result<Bytes> {
                (**self).read_tensors(index, range).await
            }
        }
    )*};
}

forward_weight_source!(Arc, Box);

/// A verified layer: its manifest entry and its bytes, sliceable into tensors without copies.
#[derive(Debug, Clone)]
pub struct LayerData {
    /// Index of the layer in the manifest.
    pub index: usize,
    /// The layer's manifest entry.
    pub entry: LayerEntry,
    /// The whole layer object (a safetensors file).
    pub bytes: Bytes,
}

impl LayerData {
    /// Each tensor's entry with its bytes (zero-copy slices of the layer).
    pub fn tensors(&self) -> impl Iterator<Item = (&TensorEntry, Bytes)> + '_ {
        self.entry.tensors.iter().map(|t| {
            (
                t,
                self.bytes
                    .slice(t.offset as usize..(t.offset + t.len) as usize),
            )
        })
    }

    /// The bytes of tensor `name`, if this layer holds it.
    pub fn tensor(&self, name: &str) -> Option<(&TensorEntry, Bytes)> {
        self.tensors().find(|(t, _)| t.name == name)
    }
}

/// Result of [`WeightSourceExt::verify`]: which objects were checked and which failed.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Objects whose length and checksum matched.
    pub ok: Vec<String>,
    /// Objects that failed, with the error for each.
    pub failed: Vec<(String, Error)>,
    /// Bytes read.
    pub bytes: u64,
}

/// Conveniences over any [`WeightSource`]. Implemented for every source; do not implement it.
#[async_trait]
pub trait WeightSourceExt: WeightSource {
    /// Layer `index`, verified, with its manifest entry.
    async fn read_layer(&self, index: usize) -> Result<LayerData> {
        let bytes = self.read_object(ObjectId::Layer(index)).await?;
        Ok(LayerData {
            index,
            entry: self.manifest().layers[index].clone(),
            bytes,
        })
    }

    /// Layer named `name`, verified.
    async fn read_layer_named(&self, name: &str) -> Result<LayerData> {
        let index = self
            .manifest()
            .layer_index(name)
            .ok_or_else(|| Error::not_found(format!("layer `{name}` in {}", self.location())))?;
        self.read_layer(index).await
    }

    /// Auxiliary file `name` (e.g. `config.json`), verified.
    async fn read_aux(&self, name: &str) -> Result<Bytes> {
        let index = self.manifest().aux_index(name).ok_or_else(|| {
            Error::not_found(format!("auxiliary file `{name}` in {}", self.location()))
        })?;
        self.read_object(ObjectId::Aux(index)).await
    }

    /// The bytes of one tensor, read as a range (its layer's checksum is not checked).
    async fn read_tensor(&self, name: &str) -> Result<(TensorEntry, Bytes)> {
        let (layer, entry) = self
            .manifest()
            .find_tensor(name)
            .ok_or_else(|| Error::not_found(format!("tensor `{name}` in {}", self.location())))?;
        let entry = entry.clone();
        let bytes = self
            .read_range(ObjectId::Layer(layer), entry.range())
            .await?;
        Ok((entry, bytes))
    }

    /// Reads every layer and auxiliary file and checks each against the manifest, collecting
    /// every failure rather than stopping at the first. `on_object` is called after each object.
    async fn verify(
        &self,
        on_object: &(dyn for<'n> Fn(&'n str, u64, bool) + Send + Sync),
    ) -> VerifyReport {
        let m = self.manifest();
        let ids = (0..m.layers.len())
            .map(ObjectId::Layer)
            .chain((0..m.aux_files.len()).map(ObjectId::Aux));
        let mut report = VerifyReport::default();
        for id in ids {
            let Ok(info) = m.object(id) else { continue };
            let name = info.name.to_string();
            match self.read_object(id).await {
                Ok(bytes) => {
                    report.bytes += bytes.len() as u64;
                    on_object(&name, bytes.len() as u64, true);
                    report.ok.push(name);
                }
                Err(e) => {
                    on_object(&name, 0, false);
                    report.failed.push((name, e));
                }
            }
        }
        report
    }
}

impl<T: WeightSource + ?Sized> WeightSourceExt for T {}
