//! Burn burnpack (`.bpk`) files through the `burn-pack` crate, which validates the header and
//! keeps tensor data file-backed until each tensor is read.

use super::{Listed, SourceTensor, TensorData, check_tensor};
use burn_pack::{DType as BpDType, Reader, Tensor};
use lit_core::{DType, Error, Result};
use std::path::Path;

/// A burnpack file opened for export.
pub(crate) type BurnpackFile = Listed<BurnpackTensors>;

/// The file-backed tensor handles, in listing order.
pub(crate) struct BurnpackTensors(Vec<Tensor>);

impl Listed<BurnpackTensors> {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let invalid = |reason: String| Error::InvalidCheckpoint {
            file: shown.clone(),
            reason,
        };
        let reader = Reader::from_file_exact(path)
            .map_err(|e| invalid(format!("cannot read as burnpack: {e}")))?;
        let handles = reader
            .into_tensors()
            .map_err(|e| invalid(format!("cannot read as burnpack: {e}")))?;
        let mut tensors = Vec::with_capacity(handles.len());
        for t in &handles {
            let dtype = match t.dtype {
                BpDType::F64 => DType::F64,
                BpDType::F32 | BpDType::Flex32 => DType::F32,
                BpDType::F16 => DType::F16,
                BpDType::BF16 => DType::BF16,
                BpDType::I64 => DType::I64,
                BpDType::I32 => DType::I32,
                BpDType::I16 => DType::I16,
                BpDType::I8 => DType::I8,
                BpDType::U64 => DType::U64,
                BpDType::U32 => DType::U32,
                BpDType::U16 => DType::U16,
                BpDType::U8 => DType::U8,
                BpDType::Bool(_) if t.dtype.size() == 1 => DType::Bool,
                other => {
                    return Err(Error::InvalidTensor {
                        file: shown.clone(),
                        tensor: t.name.clone(),
                        reason: format!("dtype {other:?} is not supported by lit"),
                    });
                }
            };
            let st = SourceTensor {
                name: t.name.clone(),
                dtype,
                shape: t.shape.iter().map(|&d| d as u64).collect(),
            };
            check_tensor(&shown, &st)?;
            tensors.push(st);
        }
        Ok(Listed::new(shown, tensors, BurnpackTensors(handles)))
    }
}

impl TensorData for BurnpackTensors {
    fn read_into(
        &self,
        file: &str,
        index: usize,
        t: &SourceTensor,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let bytes = self.0[index]
            .to_bytes()
            .map_err(|e| t.invalid(file, e.to_string()))?;
        *out = bytes.to_vec();
        Ok(())
    }
}
