//! Reading checkpoints to export: safetensors files, Hugging Face model directories, PyTorch
//! `.bin`/`.pt` files, Burn burnpack files and llama.cpp GGUF files, all behind [`Checkpoint`].
//!
//! Every reader validates its input up front (through the format's own maintained crate) and reads
//! tensor data lazily, one tensor at a time, so export memory stays bounded by one layer.

#[cfg(feature = "burnpack")]
mod burnpack;
pub mod gguf;
mod hf_dir;
#[cfg(feature = "pytorch")]
mod pytorch;
mod safetensors_file;

pub use gguf::GgufFile;
pub use hf_dir::{CARRIED_FILES, HfDirectory, HfShards};
pub use safetensors_file::{SafetensorsData, SafetensorsFile};

use lit_core::{DType, Error, QuantScheme, Result};
use std::borrow::Cow;
use std::path::Path;

/// A tensor listed by a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTensor {
    /// Full dotted name.
    pub name: String,
    /// Element type as stored in the checkpoint.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

impl SourceTensor {
    /// [`Error::InvalidTensor`]: this tensor of checkpoint `file` is wrong for `reason`.
    pub fn invalid(&self, file: &str, reason: impl Into<String>) -> Error {
        Error::InvalidTensor {
            file: file.to_string(),
            tensor: self.name.clone(),
            reason: reason.into(),
        }
    }
}

/// A checkpoint being exported.
pub trait Checkpoint: Send + Sync {
    /// The file or directory, for messages.
    fn path(&self) -> &str;
    /// Every tensor, in any order.
    fn tensors(&self) -> &[SourceTensor];
    /// The block quantization of `tensors()[index]` (`None`: plain elements). A quantized
    /// tensor is listed with dtype `U8` and its logical shape, and reads as its blocks.
    fn quant(&self, index: usize) -> Option<QuantScheme> {
        let _ = index;
        None
    }
    /// Raw little-endian bytes of `tensors()[index]`, exactly `shape × dtype size` long (for a
    /// quantized tensor: [`QuantScheme::byte_len`] bytes of blocks).
    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>>;
    /// Like [`Checkpoint::read`], into `out` (replacing its contents), so a caller can reuse one
    /// buffer for many tensors instead of faulting in fresh memory for each.
    fn read_into(&self, index: usize, out: &mut Vec<u8>) -> Result<()> {
        let bytes = self.read(index)?;
        out.clear();
        out.extend_from_slice(&bytes);
        Ok(())
    }
    /// Files carried along into the store (name, bytes): `config.json`, `tokenizer.json`, ….
    fn aux_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(Vec::new())
    }
}

/// How one checkpoint format reads the bytes of a tensor it listed (see [`Listed`]).
pub trait TensorData: Send + Sync {
    /// Reads tensor `index` (described by `t`) of checkpoint `file` into `out`, replacing its
    /// contents (reusing its capacity where the format reads into a buffer).
    fn read_into(
        &self,
        file: &str,
        index: usize,
        t: &SourceTensor,
        out: &mut Vec<u8>,
    ) -> Result<()>;
}

/// A checkpoint whose tensors are listed when it is opened, each read on demand by the format's
/// [`TensorData`]: the one [`Checkpoint`] implementation the importers share.
#[derive(Debug)]
pub struct Listed<D> {
    path: String,
    tensors: Vec<SourceTensor>,
    data: D,
    aux: Vec<(String, Vec<u8>)>,
}

impl<D: TensorData> Listed<D> {
    /// The checkpoint at `path` (as messages show it) holding `tensors`, read through `data`.
    pub fn new(path: String, tensors: Vec<SourceTensor>, data: D) -> Self {
        Listed {
            path,
            tensors,
            data,
            aux: Vec::new(),
        }
    }

    /// The same, carrying `aux` files (name, bytes) into the store.
    pub fn with_aux(mut self, aux: Vec<(String, Vec<u8>)>) -> Self {
        self.aux = aux;
        self
    }
}

impl<D: TensorData> Checkpoint for Listed<D> {
    fn path(&self) -> &str {
        &self.path
    }

    fn tensors(&self) -> &[SourceTensor] {
        &self.tensors
    }

    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>> {
        let mut buf = Vec::new();
        self.read_into(index, &mut buf)?;
        Ok(Cow::Owned(buf))
    }

    fn read_into(&self, index: usize, out: &mut Vec<u8>) -> Result<()> {
        self.data
            .read_into(&self.path, index, &self.tensors[index], out)
    }

    fn aux_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.aux.clone())
    }
}

/// Opens `path` by its kind: a directory (Hugging Face layout), `.safetensors`, `.bin`/`.pt`/`.pth`
/// (PyTorch), `.bpk`/`.burnpack` (Burn) or `.gguf` (llama.cpp).
pub fn open_checkpoint(path: &Path) -> Result<Box<dyn Checkpoint>> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(&shown, e))?;
    if meta.is_dir() {
        return Ok(Box::new(HfDirectory::open(path)?));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "safetensors" => Ok(Box::new(SafetensorsFile::open(path)?)),
        "gguf" => Ok(Box::new(GgufFile::open(path)?)),
        #[cfg(feature = "pytorch")]
        "bin" | "pt" | "pth" => Ok(Box::new(pytorch::PytorchFile::open(path)?)),
        #[cfg(feature = "burnpack")]
        "bpk" | "burnpack" => Ok(Box::new(burnpack::BurnpackFile::open(path)?)),
        _ => Err(Error::InvalidCheckpoint {
            file: shown,
            reason:
                "unknown checkpoint kind: expected a directory, .safetensors, .bin/.pt/.pth, .bpk or .gguf"
                    .into(),
        }),
    }
}

/// Checks a listed tensor's name, rank and size against lit's limits.
pub(crate) fn check_tensor(file: &str, t: &SourceTensor) -> Result<()> {
    let invalid = |reason: String| t.invalid(file, reason);
    if t.name.is_empty() {
        return Err(invalid("empty tensor name".into()));
    }
    if t.name.len() as u64 > lit_core::limits::MAX_NAME_LEN {
        return Err(invalid(format!(
            "name is {} bytes, above the limit of {}",
            t.name.len(),
            lit_core::limits::MAX_NAME_LEN
        )));
    }
    if t.name.chars().any(char::is_control) {
        return Err(invalid("name contains control characters".into()));
    }
    lit_core::manifest::tensor_byte_len(
        &format!("{file}: tensor `{}`", t.name),
        t.dtype,
        &t.shape,
    )?;
    Ok(())
}
