//! One `.safetensors` file, read with positioned reads (no mapping, so a file changed under the
//! export gives an error instead of SIGBUS). The header is parsed and validated by the
//! `safetensors` crate: offsets in order, no overlaps or gaps, shape × dtype = bytes, and the data
//! section exactly as long as the file.

use super::{Listed, SourceTensor, TensorData, check_tensor};
use crate::layer_file::from_safetensors_dtype;
use lit_core::{Error, Result};
use safetensors::tensor::Metadata;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Largest safetensors header accepted (the safetensors crate's own limit).
const MAX_HEADER_LEN: u64 = 100_000_000;

/// A safetensors file opened for export.
pub type SafetensorsFile = Listed<SafetensorsData>;

/// The open file and where each listed tensor's data starts in it.
#[derive(Debug)]
pub struct SafetensorsData {
    file: File,
    /// Absolute file offset of each tensor's data.
    offsets: Vec<u64>,
}

impl Listed<SafetensorsData> {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let invalid = |reason: String| Error::InvalidCheckpoint {
            file: shown.clone(),
            reason,
        };
        let file = File::open(path).map_err(|e| Error::io(&shown, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&shown, e))?.len();
        let mut len_bytes = [0u8; 8];
        file.read_exact_at(&mut len_bytes, 0).map_err(|_| {
            invalid(format!(
                "only {file_len} bytes long: not a safetensors file"
            ))
        })?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_LEN || header_len > file_len.saturating_sub(8) {
            return Err(invalid(format!(
                "header length {header_len} is impossible for a {file_len}-byte file (truncated or not safetensors)"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact_at(&mut header, 8)
            .map_err(|e| Error::io(&shown, e))?;
        let header = std::str::from_utf8(&header)
            .map_err(|e| invalid(format!("header is not UTF-8: {e}")))?;
        let data_start = 8 + header_len;
        let named = |(tensor, reason): (String, String)| Error::InvalidTensor {
            file: shown.clone(),
            tensor,
            reason,
        };
        let metadata: Metadata = serde_json::from_str(header).map_err(|e| {
            // The safetensors crate's messages often do not say which tensor is wrong: find it.
            match diagnose(header, file_len - data_start) {
                Some(found) => named(found),
                None => invalid(format!("invalid header: {e}")),
            }
        })?;
        let data_len = metadata.data_len() as u64;
        if data_start + data_len != file_len {
            if let Some(found) = diagnose(header, file_len - data_start) {
                return Err(named(found));
            }
            return Err(invalid(format!(
                "header describes {data_len} bytes of data but the file holds {} (truncated or padded)",
                file_len - data_start
            )));
        }
        let mut tensors = Vec::new();
        let mut offsets = Vec::new();
        let mut by_offset: Vec<(String, &safetensors::tensor::TensorInfo)> =
            metadata.tensors().into_iter().collect();
        by_offset.sort_by_key(|(_, info)| info.data_offsets);
        for (name, info) in by_offset {
            let dtype = from_safetensors_dtype(info.dtype).ok_or_else(|| Error::InvalidTensor {
                file: shown.clone(),
                tensor: name.clone(),
                reason: format!("dtype {:?} is not supported by lit", info.dtype),
            })?;
            let t = SourceTensor {
                name,
                dtype,
                shape: info.shape.iter().map(|&d| d as u64).collect(),
            };
            check_tensor(&shown, &t)?;
            offsets.push(data_start + info.data_offsets.0 as u64);
            tensors.push(t);
        }
        Ok(Listed::new(
            shown,
            tensors,
            SafetensorsData { file, offsets },
        ))
    }
}

impl TensorData for SafetensorsData {
    fn read_into(
        &self,
        file: &str,
        index: usize,
        t: &SourceTensor,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let len = lit_core::manifest::tensor_byte_len(file, t.dtype, &t.shape)? as usize;
        if out.capacity() < len {
            // A fresh allocation: growing would copy the old contents for nothing.
            *out = Vec::with_capacity(len);
        }
        out.resize(len, 0);
        self.file
            .read_exact_at(out, self.offsets[index])
            .map_err(|e| {
                t.invalid(
                    file,
                    format!("cannot read its {len} bytes: {e} (file changed during export?)"),
                )
            })
    }
}

/// The first tensor of a refused header and what is wrong with it, read leniently from the JSON:
/// an unknown dtype, a shape that does not match its byte range, a range past the `data_len`
/// bytes the file holds, or a range that overlaps or leaves a gap after the previous tensor.
fn diagnose(header: &str, data_len: u64) -> Option<(String, String)> {
    let entries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(header).ok()?;
    let mut spans = Vec::new();
    for (name, info) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let bad = |why: String| Some((name.clone(), why));
        let Some(dtype) = info.get("dtype").and_then(|d| d.as_str()) else {
            return bad("no dtype".into());
        };
        let size: u64 = match dtype {
            "F64" | "I64" | "U64" | "C64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
            other => return bad(format!("unknown dtype `{other}`")),
        };
        let shape: Option<Vec<u64>> = info
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|dims| dims.iter().map(|d| d.as_u64()).collect());
        let Some(shape) = shape else {
            return bad("shape is not a list of sizes".into());
        };
        let offsets: Option<Vec<u64>> = info
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| o.iter().map(|v| v.as_u64()).collect());
        let Some([start, end]) = offsets
            .as_deref()
            .and_then(|o| <[u64; 2]>::try_from(o).ok())
        else {
            return bad("data_offsets is not [start, end]".into());
        };
        if end < start {
            return bad(format!(
                "data_offsets [{start}, {end}] end before they start"
            ));
        }
        let Some(bytes) = shape.iter().try_fold(size, |n, &d| n.checked_mul(d)) else {
            return bad(format!("shape {shape:?} of {dtype} overflows"));
        };
        if bytes != end - start {
            return bad(format!(
                "shape {shape:?} of {dtype} is {bytes} bytes but data_offsets [{start}, {end}] span {}",
                end - start
            ));
        }
        if end > data_len {
            return bad(format!(
                "data_offsets [{start}, {end}] run past the {data_len} bytes of data in the file"
            ));
        }
        spans.push((start, end, name.clone()));
    }
    spans.sort();
    let mut at = 0;
    for (start, end, name) in spans {
        if start < at {
            return Some((
                name,
                format!("data_offsets [{start}, {end}] overlap the previous tensor"),
            ));
        }
        if start > at {
            return Some((
                name,
                format!("data_offsets [{start}, {end}] leave a gap after byte {at}"),
            ));
        }
        at = end;
    }
    None
}
