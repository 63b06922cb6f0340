//! PyTorch `.bin` / `.pt` / `.pth` checkpoints through burn's `pytorch-reader` (a pure-Rust pickle
//! and ZIP reader that needs neither PyTorch nor Burn). Tensors are read lazily, one at a time.

use super::{Listed, SourceTensor, TensorData, check_tensor};
use lit_core::{DType, Error, Result};
use pytorch_reader::{DType as PtDType, PytorchReader, Tensor};
use std::path::Path;

/// A PyTorch checkpoint opened for export.
pub(crate) type PytorchFile = Listed<PytorchTensors>;

/// The reader's lazy tensor handles, in listing order.
pub(crate) struct PytorchTensors(Vec<Tensor>);

fn dtype(d: PtDType) -> DType {
    match d {
        PtDType::F64 => DType::F64,
        PtDType::F32 => DType::F32,
        PtDType::F16 => DType::F16,
        PtDType::BF16 => DType::BF16,
        PtDType::I64 => DType::I64,
        PtDType::I32 => DType::I32,
        PtDType::I16 => DType::I16,
        PtDType::I8 => DType::I8,
        PtDType::U64 => DType::U64,
        PtDType::U32 => DType::U32,
        PtDType::U16 => DType::U16,
        PtDType::U8 => DType::U8,
        PtDType::Bool => DType::Bool,
    }
}

impl Listed<PytorchTensors> {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let reader = PytorchReader::new(path).map_err(|e| Error::InvalidCheckpoint {
            file: shown.clone(),
            reason: format!("cannot read as a PyTorch checkpoint: {e}"),
        })?;
        let mut entries: Vec<(String, Tensor)> = reader.into_tensors().into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors = Vec::with_capacity(entries.len());
        let mut handles = Vec::with_capacity(entries.len());
        for (name, t) in entries {
            let st = SourceTensor {
                name,
                dtype: dtype(t.dtype()),
                shape: t.shape().iter().map(|&d| d as u64).collect(),
            };
            check_tensor(&shown, &st)?;
            tensors.push(st);
            handles.push(t);
        }
        Ok(Listed::new(shown, tensors, PytorchTensors(handles)))
    }
}

impl TensorData for PytorchTensors {
    fn read_into(
        &self,
        file: &str,
        index: usize,
        t: &SourceTensor,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        *out = self.0[index]
            .read()
            .map_err(|e| t.invalid(file, e.to_string()))?;
        Ok(())
    }
}
