//! [`StoreWriter`]: builds a store layer by layer and publishes it with its manifest last.

use crate::layer_file::{TensorSpec, write_layer_quantized};
use crate::sink::{LocalDirSink, StoreSink};
use lit_core::checksum::checksum;
use lit_core::manifest::{aux_key, layer_key};
use lit_core::{AuxFile, Error, LayerEntry, Manifest, Result};
use std::io::Write;
use std::path::Path;

/// Writes a store. Nothing is visible at the destination until [`StoreWriter::finish`]; dropping
/// the writer (or the process dying) before then leaves no valid store.
pub struct StoreWriter {
    sink: Box<dyn StoreSink>,
    layers: Vec<LayerEntry>,
    aux_files: Vec<AuxFile>,
    /// Whether [`StoreWriter::ensure_space`] checks (see [`StoreWriter::skip_space_check`]).
    check_space: bool,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("location", &self.sink.location())
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl StoreWriter {
    /// A writer for a new store in local directory `dst` (which must not exist).
    pub fn create_local(dst: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(Box::new(LocalDirSink::create(dst)?)))
    }

    /// A writer over any sink.
    pub fn new(sink: Box<dyn StoreSink>) -> Self {
        StoreWriter {
            sink,
            layers: Vec::new(),
            aux_files: Vec::new(),
            check_space: true,
        }
    }

    /// Where the store will appear.
    pub fn location(&self) -> String {
        self.sink.location()
    }

    /// Refuses to start writing `bytes` when the destination has less free space than that
    /// ([`lit_core::Error::InsufficientSpace`], naming the destination, the bytes needed and
    /// those available). Object stores, and destinations whose free space cannot be told, are
    /// not checked; nor is anything after [`StoreWriter::skip_space_check`].
    pub fn ensure_space(&self, bytes: u64) -> Result<()> {
        if !self.check_space {
            return Ok(());
        }
        crate::space::check(self.sink.location(), bytes, self.sink.free_space())
    }

    /// Makes [`StoreWriter::ensure_space`] pass whatever the free space (`--force`: try anyway).
    pub fn skip_space_check(&mut self) {
        self.check_space = false;
    }

    /// The local staging directory objects are written to before the store is published, if
    /// the destination has one: what a failed [`crate::copy_store`] keeps for resuming.
    pub fn staging(&self) -> Option<String> {
        self.sink.staging()
    }

    /// Layers written so far.
    pub fn layers(&self) -> &[LayerEntry] {
        &self.layers
    }

    /// Writes the next layer (in execution order) with `tensors`, whose bytes `data(i)` produces
    /// one at a time.
    pub fn write_layer<D: AsRef<[u8]>>(
        &mut self,
        name: &str,
        tensors: &[TensorSpec],
        data: impl FnMut(usize) -> Result<D>,
    ) -> Result<&LayerEntry> {
        self.write_layer_quantized(name, tensors, &[], data)
    }

    /// Like [`StoreWriter::write_layer`], with block-quantized tensors (see
    /// [`crate::layer_file::write_layer_quantized`]).
    pub fn write_layer_quantized<D: AsRef<[u8]>>(
        &mut self,
        name: &str,
        tensors: &[TensorSpec],
        quant: &[Option<lit_core::QuantScheme>],
        data: impl FnMut(usize) -> Result<D>,
    ) -> Result<&LayerEntry> {
        if self.layers.iter().any(|l| l.name == name) {
            return Err(Error::InvalidArgument(format!(
                "layer `{name}` written twice"
            )));
        }
        let key = layer_key(self.layers.len());
        let file = format!("{}/{key}", self.sink.location());
        let mut object = self.sink.create_object(&key)?;
        let written = write_layer_quantized(&mut object, &file, tensors, quant, data)?;
        object.finish()?;
        self.layers.push(LayerEntry {
            name: name.to_string(),
            key,
            byte_len: written.byte_len,
            checksum: written.checksum,
            tensors: written.tensors,
        });
        Ok(self.layers.last().expect("just pushed"))
    }

    /// Writes a layer whose bytes were produced elsewhere (copying a store), verbatim.
    pub fn write_raw_layer(&mut self, entry: &LayerEntry, bytes: &[u8]) -> Result<()> {
        let key = layer_key(self.layers.len());
        let mut object = self.sink.create_object(&key)?;
        object.write_all(bytes).map_err(|e| Error::io(&key, e))?;
        object.finish()?;
        self.layers.push(LayerEntry {
            key,
            checksum: checksum(bytes),
            byte_len: bytes.len() as u64,
            ..entry.clone()
        });
        Ok(())
    }

    /// Leaves what was written in place if the store is never finished, so a later copy to the
    /// same destination can resume (see [`crate::copy_store`]).
    pub fn keep_on_failure(&mut self) {
        self.sink.keep_on_failure();
    }

    /// Keeps layer `entry` (the next one, from a store being copied) if the destination already
    /// holds it with the same length and checksum, as an interrupted copy leaves it. Returns
    /// whether it was kept; if not, write it with [`StoreWriter::write_raw_layer`].
    pub fn reuse_layer(&mut self, entry: &LayerEntry) -> Result<bool> {
        let key = layer_key(self.layers.len());
        if !self
            .sink
            .existing_object(&key, entry.byte_len, entry.checksum)?
        {
            return Ok(false);
        }
        self.layers.push(LayerEntry {
            key,
            ..entry.clone()
        });
        Ok(true)
    }

    /// Like [`StoreWriter::reuse_layer`], for the next auxiliary file.
    pub fn reuse_aux(&mut self, file: &AuxFile) -> Result<bool> {
        let key = aux_key(self.aux_files.len());
        if !self
            .sink
            .existing_object(&key, file.byte_len, file.checksum)?
        {
            return Ok(false);
        }
        self.aux_files.push(AuxFile {
            key,
            ..file.clone()
        });
        Ok(true)
    }

    /// Adds an auxiliary file (`config.json`, `tokenizer.json`, …).
    pub fn write_aux(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        if self.aux_files.iter().any(|a| a.name == name) {
            return Err(Error::InvalidArgument(format!(
                "auxiliary file `{name}` written twice"
            )));
        }
        let key = aux_key(self.aux_files.len());
        let mut object = self.sink.create_object(&key)?;
        object.write_all(bytes).map_err(|e| Error::io(&key, e))?;
        object.finish()?;
        self.aux_files.push(AuxFile {
            name: name.to_string(),
            key,
            byte_len: bytes.len() as u64,
            checksum: checksum(bytes),
        });
        Ok(())
    }

    /// Writes the manifest last and publishes the store.
    pub fn finish(self, model_name: &str, metadata: Vec<(String, String)>) -> Result<Manifest> {
        let manifest = Manifest {
            model_name: model_name.to_string(),
            tool_version: lit_core::TOOL_VERSION.to_string(),
            total_bytes: self.layers.iter().map(|l| l.byte_len).sum(),
            total_tensors: self.layers.iter().map(|l| l.tensors.len() as u64).sum(),
            layers: self.layers,
            aux_files: self.aux_files,
            metadata,
        };
        let bytes = manifest.encode()?;
        self.sink.commit(&bytes)?;
        Ok(manifest)
    }
}
