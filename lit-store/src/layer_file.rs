//! Serialising one layer as a safetensors file whose tensor data is aligned.
//!
//! Layout: the standard safetensors framing (8-byte little-endian header length, JSON header,
//! data), with the header padded with spaces (allowed by the spec) so the data section starts at a
//! multiple of [`DATA_ALIGNMENT`] bytes from the start of the file, and tensors ordered by element
//! size, largest first, so each tensor starts at a multiple of its own element size. safetensors
//! requires tensors to be contiguous (no gaps), so this is the strongest alignment possible
//! without padding tensors; it is what zero-copy needs: a mapped page or a 64-byte aligned buffer
//! can be reinterpreted as `&[f32]`/`&[f64]` in place.

use lit_core::checksum::StreamingChecksum;
use lit_core::{DType, Error, QuantScheme, Result, TensorEntry};
use safetensors::tensor::{Metadata, TensorInfo};
use std::io::Write;

/// Alignment of the data section inside every layer object, in bytes (one cache line).
pub const DATA_ALIGNMENT: usize = 64;

/// A tensor to write: name, dtype and shape, with its data produced on demand.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Full dotted name.
    pub name: String,
    /// Element type as stored.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

/// What was written: length, checksum and each tensor's entry.
#[derive(Debug, Clone)]
pub struct WrittenLayer {
    /// Bytes written.
    pub byte_len: u64,
    /// XXH3-64 of the bytes written.
    pub checksum: u64,
    /// Tensor entries with offsets from the start of the object.
    pub tensors: Vec<TensorEntry>,
}

/// Maps lit's dtype to safetensors'.
pub fn to_safetensors_dtype(d: DType) -> safetensors::Dtype {
    use safetensors::Dtype as S;
    match d {
        DType::F64 => S::F64,
        DType::F32 => S::F32,
        DType::F16 => S::F16,
        DType::BF16 => S::BF16,
        DType::I64 => S::I64,
        DType::I32 => S::I32,
        DType::I16 => S::I16,
        DType::I8 => S::I8,
        DType::U64 => S::U64,
        DType::U32 => S::U32,
        DType::U16 => S::U16,
        DType::U8 => S::U8,
        DType::Bool => S::BOOL,
    }
}

/// Maps safetensors' dtype to lit's, or `None` for types lit does not store (FP8, FP4, complex).
pub fn from_safetensors_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::F64 => DType::F64,
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::I64 => DType::I64,
        S::I32 => DType::I32,
        S::I16 => DType::I16,
        S::I8 => DType::I8,
        S::U64 => DType::U64,
        S::U32 => DType::U32,
        S::U16 => DType::U16,
        S::U8 => DType::U8,
        S::BOOL => DType::Bool,
        _ => return None,
    })
}

/// The order in which [`write_layer`] stores (and asks for) `tensors`: largest element size first,
/// the caller's order among equals.
pub fn write_order(tensors: &[TensorSpec]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tensors[i].dtype.size()));
    order
}

/// Writes `tensors` as one aligned safetensors object to `out`, calling `data(i)` for the bytes of
/// `tensors[i]` one tensor at a time, in [`write_order`] (so only one converted tensor is in memory at once).
/// `file` names the object in errors.
pub fn write_layer<W: Write, D: AsRef<[u8]>>(
    out: W,
    file: &str,
    tensors: &[TensorSpec],
    data: impl FnMut(usize) -> Result<D>,
) -> Result<WrittenLayer> {
    write_layer_quantized(out, file, tensors, &[], data)
}

/// Like [`write_layer`], with `quant[i]` (when present and `Some`) the block quantization of
/// `tensors[i]`: such a tensor's spec has dtype `U8` and its logical element shape; its bytes
/// (the scheme's blocks, [`QuantScheme::byte_len`] long) are stored as a 1-D `U8` safetensors
/// tensor and its manifest entry records the scheme and the logical shape.
pub fn write_layer_quantized<W: Write, D: AsRef<[u8]>>(
    out: W,
    file: &str,
    tensors: &[TensorSpec],
    quant: &[Option<QuantScheme>],
    mut data: impl FnMut(usize) -> Result<D>,
) -> Result<WrittenLayer> {
    let order = write_order(tensors);
    let quant_of = |i: usize| quant.get(i).copied().flatten();

    let mut infos = Vec::with_capacity(tensors.len());
    let mut offset: u64 = 0;
    for &i in &order {
        let t = &tensors[i];
        let len = lit_core::manifest::stored_byte_len(
            &format!("{file}: tensor `{}`", t.name),
            t.dtype,
            quant_of(i),
            &t.shape,
        )?;
        let stored_shape = match quant_of(i) {
            Some(_) => vec![len],
            None => t.shape.clone(),
        };
        let shape = stored_shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| {
                Error::InvalidArgument(format!(
                    "{file}: tensor `{}`: shape too large for this platform",
                    t.name
                ))
            })?;
        infos.push((
            t.name.clone(),
            TensorInfo {
                dtype: to_safetensors_dtype(t.dtype),
                shape,
                data_offsets: (offset as usize, (offset + len) as usize),
            },
        ));
        offset += len;
    }
    let data_len = offset;
    let metadata =
        Metadata::new(None, infos).map_err(|e| Error::InvalidArgument(format!("{file}: {e}")))?;
    let mut header = serde_json::to_vec(&metadata)
        .map_err(|e| Error::InvalidArgument(format!("{file}: {e}")))?;
    let padded = (8 + header.len()).next_multiple_of(DATA_ALIGNMENT) - 8;
    header.resize(padded, b' ');
    let data_start = 8 + header.len() as u64;

    let mut out = HashingWriter::new(out);
    let io = |e: std::io::Error| Error::io(file, e);
    out.write_all(&(header.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&header).map_err(io)?;

    let mut entries = Vec::with_capacity(tensors.len());
    let mut at = data_start;
    for &i in &order {
        let t = &tensors[i];
        let len = lit_core::manifest::stored_byte_len(file, t.dtype, quant_of(i), &t.shape)?;
        let bytes = data(i)?;
        let bytes = bytes.as_ref();
        if bytes.len() as u64 != len {
            return Err(Error::InvalidTensor {
                file: file.to_string(),
                tensor: t.name.clone(),
                reason: format!(
                    "{} bytes of data for shape {:?} of {} ({len} bytes)",
                    bytes.len(),
                    t.shape,
                    t.dtype
                ),
            });
        }
        out.write_all(bytes).map_err(io)?;
        entries.push(TensorEntry {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            offset: at,
            len,
            quant: quant_of(i),
            checksum: Some(lit_core::checksum::checksum(bytes)),
        });
        at += len;
    }
    out.flush().map_err(io)?;
    debug_assert_eq!(out.written, data_start + data_len);
    Ok(WrittenLayer {
        byte_len: out.written,
        checksum: out.hasher.digest(),
        tensors: entries,
    })
}

/// Counts and hashes everything written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: StreamingChecksum,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: StreamingChecksum::new(),
            written: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
