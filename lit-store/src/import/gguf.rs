//! llama.cpp's GGUF files (versions 2 and 3), read by lit's own hardened parser.
//!
//! File layout (little-endian): magic `GGUF`, version `u32`, tensor count `u64`, metadata count
//! `u64`, the metadata key/value pairs (key: `u64` length + UTF-8 bytes; value type `u32`; value),
//! the tensor infos (name, `u32` rank, `u64` dimensions fastest-first, `u32` GGML type, `u64`
//! offset), padding to `general.alignment` (default 32), then the tensor data, each tensor at its
//! offset from the start of the data section.
//!
//! Every count and length is checked against a named limit and against the bytes left in the file
//! *before* anything is allocated; all arithmetic is checked; every error names the key or tensor.
//! Tensor data must lie inside the file, start at a multiple of the alignment and not overlap.
//!
//! Import maps the `llama` architecture to lit's (Hugging Face) Llama names and config:
//! - dimensions are reversed (GGUF's `ne` is fastest-first; a matrix `[ne0, ne1]` is row-major
//!   `[ne1, ne0]`);
//! - **Q/K row order**: llama.cpp's `convert_hf_to_gguf.py` permutes the rows of `q_proj` (with
//!   `n_head`) and `k_proj` (with `n_head_kv`) for its interleaved RoPE:
//!   `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2)`, i.e. inside each head of `hd`
//!   rows, GGUF row `2j + s` is Hugging Face row `s·hd/2 + j`. Import undoes this, so stored
//!   weights are in Hugging Face order for lit's half-split RoPE. For quantized tensors a row is a
//!   whole number of blocks, so this moves byte ranges and never re-quantizes;
//! - the tokenizer metadata becomes a Hugging Face `tokenizer.json` (see [`build_tokenizer`]), the
//!   chat template and special tokens a `tokenizer_config.json`.

use super::{Checkpoint, SourceTensor, check_tensor};
use lit_core::{DType, Error, QuantScheme, Result};
use serde_json::{Value as Json, json};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Most metadata key/value pairs.
pub const MAX_GGUF_KV: u64 = 1 << 16;
/// Most tensors in one file.
pub const MAX_GGUF_TENSORS: u64 = 1 << 16;
/// Longest string (key, value or tensor name), in bytes.
pub const MAX_GGUF_STRING: u64 = 16 << 20;
/// Most elements in one metadata array.
pub const MAX_GGUF_ARRAY: u64 = 1 << 22;
/// Most metadata values in all (array elements counted), bounding the parsed header's memory to
/// 128 MiB of values plus the strings' bytes, which the file itself must hold. Real models need
/// about half a million (Llama 3: 128k tokens, their types, 280k merges).
pub const MAX_GGUF_VALUES: u64 = 1 << 22;
/// Largest header (metadata and tensor infos), in bytes.
pub const MAX_GGUF_HEADER: u64 = 512 << 20;
/// Deepest nesting of metadata arrays.
const MAX_ARRAY_DEPTH: u32 = 2;
/// Highest tensor rank GGML has.
const MAX_GGUF_DIMS: u32 = 4;
/// Largest `general.alignment` accepted.
const MAX_ALIGNMENT: u64 = 1 << 20;
/// The GGUF magic.
const MAGIC: &[u8; 4] = b"GGUF";

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any integer type (u8 … i64), widened.
    Int(i128),
    /// `f32` or `f64`, widened.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array.
    Array(Vec<MetaValue>),
}

/// A tensor as the GGUF file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, fastest-first (`ne0` first), as in the file.
    pub ne: Vec<u64>,
    /// GGML type id.
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Byte length of the data.
    pub len: u64,
}

/// A parsed GGUF header: version, metadata, tensor infos, where data starts.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensors in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

impl GgufHeader {
    /// Value of metadata `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// GGML tensor types lit reads, with their storage.
enum Storage {
    Plain(DType),
    Quant(QuantScheme),
}

fn storage_of(ggml_type: u32) -> Option<Storage> {
    Some(match ggml_type {
        0 => Storage::Plain(DType::F32),
        1 => Storage::Plain(DType::F16),
        30 => Storage::Plain(DType::BF16),
        2 => Storage::Quant(QuantScheme::Q4_0),
        3 => Storage::Quant(QuantScheme::Q4_1),
        8 => Storage::Quant(QuantScheme::Q8_0),
        12 => Storage::Quant(QuantScheme::Q4K),
        13 => Storage::Quant(QuantScheme::Q5K),
        14 => Storage::Quant(QuantScheme::Q6K),
        _ => return None,
    })
}

/// A readable name for a GGML type id (for errors).
fn ggml_type_name(t: u32) -> String {
    const NAMES: [&str; 40] = [
        "F32",
        "F16",
        "Q4_0",
        "Q4_1",
        "Q4_2",
        "Q4_3",
        "Q5_0",
        "Q5_1",
        "Q8_0",
        "Q8_1",
        "Q2_K",
        "Q3_K",
        "Q4_K",
        "Q5_K",
        "Q6_K",
        "Q8_K",
        "IQ2_XXS",
        "IQ2_XS",
        "IQ3_XXS",
        "IQ1_S",
        "IQ4_NL",
        "IQ3_S",
        "IQ2_S",
        "IQ4_XS",
        "I8",
        "I16",
        "I32",
        "I64",
        "F64",
        "IQ1_M",
        "BF16",
        "Q4_0_4_4",
        "Q4_0_4_8",
        "Q4_0_8_8",
        "TQ1_0",
        "TQ2_0",
        "IQ4_NL_4_4",
        "IQ4_NL_4_8",
        "IQ4_NL_8_8",
        "MXFP4",
    ];
    match NAMES.get(t as usize) {
        Some(n) => format!("{n} (type {t})"),
        None => format!("unknown type {t}"),
    }
}

const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K";

/// A positioned, bounded reader over the header.
struct Cursor<R> {
    r: R,
    pos: u64,
    end: u64,
    file: String,
    values: u64,
}

impl<R: Read> Cursor<R> {
    fn bad(&self, reason: String) -> Error {
        Error::InvalidCheckpoint {
            file: self.file.clone(),
            reason,
        }
    }

    fn bytes<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.take_into(&mut b, what)?;
        Ok(b)
    }

    fn take_into(&mut self, b: &mut [u8], what: &dyn Fn() -> String) -> Result<()> {
        let n = b.len() as u64;
        match self.pos.checked_add(n) {
            Some(e) if e <= self.end => {}
            _ => {
                return Err(self.bad(format!(
                    "truncated: {} needs {n} bytes at offset {} but the header ends at {}",
                    what(),
                    self.pos,
                    self.end
                )));
            }
        }
        self.r.read_exact(b).map_err(|e| {
            self.bad(format!(
                "cannot read {} at offset {}: {e}",
                what(),
                self.pos
            ))
        })?;
        self.pos += n;
        Ok(())
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A length-prefixed string; `None` when the bytes are not UTF-8 (the caller names the field).
    fn string(
        &mut self,
        what: &dyn Fn() -> String,
    ) -> Result<std::result::Result<String, Vec<u8>>> {
        let len = self.u64(&|| format!("the length of {}", what()))?;
        let left = self.end.saturating_sub(self.pos);
        if len > MAX_GGUF_STRING || len > left {
            return Err(self.bad(format!(
                "{} claims {len} bytes (limit {MAX_GGUF_STRING}, {left} bytes left in the header)",
                what()
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.take_into(&mut buf, what)?;
        Ok(String::from_utf8(buf).map_err(|e| e.into_bytes()))
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<MetaValue> {
        self.values += 1;
        if self.values > MAX_GGUF_VALUES {
            return Err(self.bad(format!(
                "metadata `{key}`: more than {MAX_GGUF_VALUES} metadata values in all"
            )));
        }
        let what = || format!("the value of metadata `{key}`");
        Ok(match ty {
            0 => MetaValue::Int(self.bytes::<1>(&what)?[0].into()),
            1 => MetaValue::Int((self.bytes::<1>(&what)?[0] as i8).into()),
            2 => MetaValue::Int(u16::from_le_bytes(self.bytes(&what)?).into()),
            3 => MetaValue::Int(i16::from_le_bytes(self.bytes(&what)?).into()),
            4 => MetaValue::Int(u32::from_le_bytes(self.bytes(&what)?).into()),
            5 => MetaValue::Int(i32::from_le_bytes(self.bytes(&what)?).into()),
            6 => MetaValue::Float(f32::from_le_bytes(self.bytes(&what)?).into()),
            7 => match self.bytes::<1>(&what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(self.bad(format!("metadata `{key}`: boolean byte {b}"))),
            },
            8 => {
                MetaValue::Str(self.string(&what)?.map_err(|_| {
                    self.bad(format!("metadata `{key}`: string value is not UTF-8"))
                })?)
            }
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.bad(format!(
                        "metadata `{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let elem = self.u32(&|| format!("the element type of metadata `{key}`"))?;
                let n = self.u64(&|| format!("the length of metadata `{key}`"))?;
                let min_size: u64 = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => {
                        return Err(
                            self.bad(format!("metadata `{key}`: unknown array element type {t}"))
                        );
                    }
                };
                let left = self.end.saturating_sub(self.pos);
                if n > MAX_GGUF_ARRAY || n.saturating_mul(min_size) > left {
                    return Err(self.bad(format!(
                        "metadata `{key}`: array of {n} elements (limit {MAX_GGUF_ARRAY}) cannot fit in the {left} bytes left"
                    )));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::Int(u64::from_le_bytes(self.bytes(&what)?).into()),
            11 => MetaValue::Int(i64::from_le_bytes(self.bytes(&what)?).into()),
            12 => MetaValue::Float(f64::from_le_bytes(self.bytes(&what)?)),
            t => {
                return Err(self.bad(format!("metadata `{key}`: unknown value type {t}")));
            }
        })
    }
}

/// Parses and validates the header of a GGUF file of `file_len` bytes read from `r` (positioned
/// at its start). `file` names the file in errors. Tensor data ranges are checked against
/// `file_len`: inside the file, aligned, not overlapping, as long as the type and shape need.
pub fn parse_header<R: Read>(r: R, file_len: u64, file: &str) -> Result<GgufHeader> {
    let mut c = Cursor {
        r,
        pos: 0,
        end: file_len.min(MAX_GGUF_HEADER),
        file: file.to_string(),
        values: 0,
    };
    let magic: [u8; 4] = c.bytes(&|| "the magic".into())?;
    if &magic != MAGIC {
        return Err(c.bad("not a GGUF file (no `GGUF` magic)".into()));
    }
    let version = c.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(c.bad(format!(
            "GGUF version {version} is not supported (lit reads versions 2 and 3)"
        )));
    }
    let n_tensors = c.u64(&|| "the tensor count".into())?;
    let n_kv = c.u64(&|| "the metadata count".into())?;
    if n_tensors > MAX_GGUF_TENSORS {
        return Err(c.bad(format!(
            "tensor count {n_tensors} is above the limit of {MAX_GGUF_TENSORS}"
        )));
    }
    if n_kv > MAX_GGUF_KV {
        return Err(c.bad(format!(
            "metadata count {n_kv} is above the limit of {MAX_GGUF_KV}"
        )));
    }
    // Each pair needs at least 12 bytes, each tensor info 24: refuse counts the file cannot hold.
    let left = c.end.saturating_sub(c.pos);
    if n_kv
        .saturating_mul(12)
        .saturating_add(n_tensors.saturating_mul(24))
        > left
    {
        return Err(c.bad(format!(
            "{n_kv} metadata pairs and {n_tensors} tensors cannot fit in the {left} bytes left (truncated?)"
        )));
    }
    let mut metadata = Vec::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}"))?.map_err(|b| {
            c.bad(format!(
                "metadata key #{i} is not UTF-8 ({:?})",
                String::from_utf8_lossy(&b)
            ))
        })?;
        if metadata.iter().any(|(k, _)| *k == key) {
            return Err(c.bad(format!("metadata `{key}` appears twice")));
        }
        let ty = c.u32(&|| format!("the type of metadata `{key}`"))?;
        let v = c.value(ty, &key, 0)?;
        metadata.push((key, v));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => 32,
        Some((_, MetaValue::Int(a)))
            if *a > 0 && (*a as u64).is_power_of_two() && (*a as u64) <= MAX_ALIGNMENT =>
        {
            *a as u64
        }
        Some((_, v)) => {
            return Err(c.bad(format!(
                "metadata `general.alignment` is {v:?}, not a power of two up to {MAX_ALIGNMENT}"
            )));
        }
    };
    let mut tensors: Vec<GgufTensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names = std::collections::HashSet::new();
    for i in 0..n_tensors {
        let name = c
            .string(&|| format!("the name of tensor #{i}"))?
            .map_err(|b| {
                c.bad(format!(
                    "the name of tensor #{i} is not UTF-8 ({:?})",
                    String::from_utf8_lossy(&b)
                ))
            })?;
        let bad_tensor = |reason: String| Error::InvalidTensor {
            file: file.to_string(),
            tensor: name.clone(),
            reason,
        };
        if !names.insert(name.clone()) {
            return Err(bad_tensor("appears twice".into()));
        }
        let rank = c.u32(&|| format!("the rank of tensor `{name}`"))?;
        if rank == 0 || rank > MAX_GGUF_DIMS {
            return Err(bad_tensor(format!(
                "rank {rank} (GGML tensors have 1 to {MAX_GGUF_DIMS})"
            )));
        }
        let mut ne = Vec::with_capacity(rank as usize);
        for d in 0..rank {
            let v = c.u64(&|| format!("dimension {d} of tensor `{name}`"))?;
            if v == 0 || v > lit_core::limits::MAX_DIM {
                return Err(bad_tensor(format!("dimension {d} is {v}")));
            }
            ne.push(v);
        }
        let ggml_type = c.u32(&|| format!("the type of tensor `{name}`"))?;
        let offset = c.u64(&|| format!("the offset of tensor `{name}`"))?;
        let Some(storage) = storage_of(ggml_type) else {
            return Err(bad_tensor(format!(
                "{} is not supported (supported: {SUPPORTED_TYPES})",
                ggml_type_name(ggml_type)
            )));
        };
        let elems = ne.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let len = match storage {
            Storage::Plain(dt) => elems.and_then(|n| n.checked_mul(dt.size() as u64)),
            Storage::Quant(q) => {
                let shape: Vec<u64> = ne.iter().rev().copied().collect();
                Some(q.byte_len(&shape).map_err(|e| bad_tensor(e.to_string()))?)
            }
        }
        .filter(|&n| n <= lit_core::limits::MAX_LAYER_BYTES)
        .ok_or_else(|| bad_tensor(format!("dimensions {ne:?} are too large")))?;
        if offset % alignment != 0 {
            return Err(bad_tensor(format!(
                "data offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        tensors.push(GgufTensorInfo {
            name,
            ne,
            ggml_type,
            offset,
            len,
        });
    }
    let data_start = c
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| c.bad("data section offset overflows".into()))?;
    let data_len = file_len.checked_sub(data_start).ok_or_else(|| {
        c.bad(format!(
            "the data section would start at {data_start}, past the end of the {file_len}-byte file (truncated)"
        ))
    })?;
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(tensors.len());
    for t in &tensors {
        let end = t.offset.checked_add(t.len).filter(|&e| e <= data_len).ok_or_else(|| {
            Error::InvalidTensor {
                file: file.to_string(),
                tensor: t.name.clone(),
                reason: format!(
                    "its {} bytes at data offset {} run past the end of the file ({data_len} bytes of data; truncated, or a shape that disagrees with the data)",
                    t.len, t.offset
                ),
            }
        })?;
        spans.push((t.offset, end, &t.name));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if let [a, b] = w
            && b.0 < a.1
        {
            return Err(Error::InvalidTensor {
                file: file.to_string(),
                tensor: b.2.to_string(),
                reason: format!(
                    "its data [{}, {}) overlaps tensor `{}` [{}, {})",
                    b.0, b.1, a.2, a.0, a.1
                ),
            });
        }
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        data_start,
    })
}

/// A GGUF file opened for export as a Hugging Face-style Llama checkpoint.
#[derive(Debug)]
pub struct GgufFile {
    path: String,
    file: File,
    tensors: Vec<SourceTensor>,
    quant: Vec<Option<QuantScheme>>,
    /// Absolute offset and length of each tensor's data.
    spans: Vec<(u64, u64)>,
    /// Heads whose RoPE row permutation to undo (Q: `n_head`, K: `n_head_kv`).
    unpermute: Vec<Option<u64>>,
    aux: Vec<(String, Vec<u8>)>,
}

/// Architectures [`GgufFile`] imports.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama"];

impl GgufFile {
    /// Opens `path`, validates its header and maps it to lit's Llama layout.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(&shown, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&shown, e))?.len();
        let header = parse_header(BufReader::new(&file), file_len, &shown)?;
        Self::from_header(shown, file, header)
    }

    fn from_header(path: String, file: File, header: GgufHeader) -> Result<Self> {
        let bad = |reason: String| Error::InvalidCheckpoint {
            file: path.clone(),
            reason,
        };
        let arch = match header.get("general.architecture") {
            Some(MetaValue::Str(a)) => a.clone(),
            Some(_) => return Err(bad("metadata `general.architecture` is not a string".into())),
            None => return Err(bad("metadata `general.architecture` is missing".into())),
        };
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(bad(format!(
                "architecture `{arch}` is not supported (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let config = LlamaMeta::read(&header, &arch, &path)?;
        let mut tensors = Vec::with_capacity(header.tensors.len());
        let mut quant = Vec::with_capacity(header.tensors.len());
        let mut spans = Vec::with_capacity(header.tensors.len());
        let mut unpermute = Vec::with_capacity(header.tensors.len());
        for t in &header.tensors {
            let bad_tensor = |reason: String| Error::InvalidTensor {
                file: path.clone(),
                tensor: t.name.clone(),
                reason,
            };
            let (name, heads) = hf_name(&t.name, &config).ok_or_else(|| {
                bad_tensor(
                    "has no counterpart in lit's Llama (expected token_embd, output_norm, output, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight)".into(),
                )
            })?;
            let shape: Vec<u64> = t.ne.iter().rev().copied().collect();
            let (dtype, q) = match storage_of(t.ggml_type) {
                Some(Storage::Plain(d)) => (d, None),
                Some(Storage::Quant(q)) => (DType::U8, Some(q)),
                None => return Err(bad_tensor(ggml_type_name(t.ggml_type))),
            };
            if let Some(h) = heads {
                let rows = shape.first().copied().unwrap_or(0);
                if shape.len() != 2 || h == 0 || rows % (2 * h) != 0 {
                    return Err(bad_tensor(format!(
                        "shape {shape:?} cannot be split into {h} heads of row pairs (RoPE permutation)"
                    )));
                }
            }
            let st = SourceTensor { name, dtype, shape };
            check_tensor(&path, &st)?;
            let start = header
                .data_start
                .checked_add(t.offset)
                .ok_or_else(|| bad_tensor("offset overflows".into()))?;
            tensors.push(st);
            quant.push(q);
            spans.push((start, t.len));
            unpermute.push(heads);
        }
        if tensors.is_empty() {
            return Err(bad("the file holds no tensors".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(Error::InvalidTensor {
                    file: path.clone(),
                    tensor: t.name.clone(),
                    reason: "two GGUF tensors map to this name".into(),
                });
            }
        }
        let tied = !tensors.iter().any(|t| t.name == "lm_head.weight");
        let vocab = match &config.vocab_size {
            Some(v) => *v,
            None => tensors
                .iter()
                .find(|t| t.name == "model.embed_tokens.weight")
                .and_then(|t| t.shape.first().copied())
                .ok_or_else(|| {
                    bad("no vocab size: neither `llama.vocab_size` nor a token_embd tensor".into())
                })?,
        };
        let mut aux = vec![("config.json".to_string(), config.to_json(vocab, tied))];
        aux.extend(build_tokenizer(&header, &path)?);
        Ok(GgufFile {
            path,
            file,
            tensors,
            quant,
            spans,
            unpermute,
            aux,
        })
    }
}

impl Checkpoint for GgufFile {
    fn path(&self) -> &str {
        &self.path
    }

    fn tensors(&self) -> &[SourceTensor] {
        &self.tensors
    }

    fn quant(&self, index: usize) -> Option<QuantScheme> {
        self.quant.get(index).copied().flatten()
    }

    fn read(&self, index: usize) -> Result<Cow<'_, [u8]>> {
        let mut buf = Vec::new();
        self.read_into(index, &mut buf)?;
        Ok(Cow::Owned(buf))
    }

    fn read_into(&self, index: usize, out: &mut Vec<u8>) -> Result<()> {
        let (Some(t), Some(&(start, len))) = (self.tensors.get(index), self.spans.get(index))
        else {
            return Err(Error::InvalidArgument(format!(
                "{}: no tensor #{index}",
                self.path
            )));
        };
        let io = |e: std::io::Error| Error::InvalidTensor {
            file: self.path.clone(),
            tensor: t.name.clone(),
            reason: format!("cannot read its {len} bytes: {e} (file changed during export?)"),
        };
        let len = usize::try_from(len).map_err(|_| Error::InvalidTensor {
            file: self.path.clone(),
            tensor: t.name.clone(),
            reason: "too large for this platform".into(),
        })?;
        let heads = self.unpermute.get(index).copied().flatten();
        let mut raw = Vec::new();
        let target: &mut Vec<u8> = if heads.is_some() { &mut raw } else { out };
        if target.capacity() < len {
            *target = Vec::with_capacity(len);
        }
        target.resize(len, 0);
        self.file.read_exact_at(target, start).map_err(io)?;
        if let Some(h) = heads {
            let rows = t.shape.first().copied().unwrap_or(1);
            unpermute_rows(&raw, rows, h, out).map_err(|reason| Error::InvalidTensor {
                file: self.path.clone(),
                tensor: t.name.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    fn aux_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self.aux.clone())
    }
}

/// Undoes llama.cpp's RoPE row permutation: `bytes` holds `rows` rows of equal byte length
/// (plain elements or whole blocks) in GGUF order; `out` receives them in Hugging Face order,
/// where inside each head of `hd = rows / heads` rows, HF row `s·hd/2 + j` is GGUF row `2j + s`.
pub fn unpermute_rows(
    bytes: &[u8],
    rows: u64,
    heads: u64,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    if rows == 0
        || heads == 0
        || !rows.is_multiple_of(2 * heads)
        || !(bytes.len() as u64).is_multiple_of(rows)
    {
        return Err(format!(
            "{} bytes in {rows} rows cannot be split into {heads} heads of row pairs",
            bytes.len()
        ));
    }
    let rb = bytes.len() / rows as usize;
    let hd = (rows / heads) as usize;
    let half = hd / 2;
    out.clear();
    out.reserve(bytes.len());
    for h in 0..heads as usize {
        for s in 0..2 {
            for j in 0..half {
                let g = h * hd + 2 * j + s;
                let row = bytes
                    .get(g * rb..(g + 1) * rb)
                    .ok_or_else(|| format!("row {g} is out of range"))?;
                out.extend_from_slice(row);
            }
        }
    }
    Ok(())
}

/// The Llama hyper-parameters in GGUF metadata.
#[derive(Debug)]
struct LlamaMeta {
    n_layer: u64,
    hidden: u64,
    ffn: u64,
    n_head: u64,
    n_head_kv: u64,
    vocab_size: Option<u64>,
    eps: f64,
    rope_theta: f64,
    context: u64,
    rope_scaling: Option<Json>,
    head_dim: Option<u64>,
    bos: Option<u64>,
    eos: Option<u64>,
}

impl LlamaMeta {
    fn read(h: &GgufHeader, arch: &str, file: &str) -> Result<Self> {
        let bad = |key: &str, why: &str| Error::InvalidCheckpoint {
            file: file.to_string(),
            reason: format!("metadata `{key}` {why}"),
        };
        let int = |key: &str| -> Result<Option<u64>> {
            match h.get(key) {
                None => Ok(None),
                Some(MetaValue::Int(v)) => u64::try_from(*v)
                    .ok()
                    .filter(|&v| v <= lit_core::limits::MAX_DIM)
                    .map(Some)
                    .ok_or_else(|| bad(key, &format!("is {v}, out of range"))),
                Some(_) => Err(bad(key, "is not an integer")),
            }
        };
        let need = |key: String| -> Result<u64> {
            int(&key)?
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(&key, "is missing or zero"))
        };
        let float = |key: &str| -> Result<Option<f64>> {
            match h.get(key) {
                None => Ok(None),
                Some(MetaValue::Float(v)) if v.is_finite() => Ok(Some(*v)),
                Some(_) => Err(bad(key, "is not a finite number")),
            }
        };
        let n_head = need(format!("{arch}.attention.head_count"))?;
        let key_len = int(&format!("{arch}.attention.key_length"))?;
        let hidden = need(format!("{arch}.embedding_length"))?;
        let mut rope_scaling = None;
        if let Some(MetaValue::Str(kind)) = h.get(&format!("{arch}.rope.scaling.type")) {
            if kind == "linear" {
                let factor = float(&format!("{arch}.rope.scaling.factor"))?
                    .ok_or_else(|| bad(&format!("{arch}.rope.scaling.factor"), "is missing"))?;
                rope_scaling =
                    Some(json!({"type": "linear", "rope_type": "linear", "factor": factor}));
            } else if kind != "none" {
                return Err(bad(
                    &format!("{arch}.rope.scaling.type"),
                    &format!("is `{kind}`; lit imports `none` and `linear`"),
                ));
            }
        }
        Ok(LlamaMeta {
            n_layer: need(format!("{arch}.block_count"))?,
            hidden,
            ffn: need(format!("{arch}.feed_forward_length"))?,
            n_head,
            n_head_kv: int(&format!("{arch}.attention.head_count_kv"))?
                .filter(|&v| v > 0)
                .unwrap_or(n_head),
            vocab_size: int(&format!("{arch}.vocab_size"))?,
            eps: float(&format!("{arch}.attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
            rope_theta: float(&format!("{arch}.rope.freq_base"))?.unwrap_or(10_000.0),
            context: int(&format!("{arch}.context_length"))?.unwrap_or(2048),
            rope_scaling,
            head_dim: key_len.filter(|&k| k != hidden / n_head),
            bos: int("tokenizer.ggml.bos_token_id")?,
            eos: int("tokenizer.ggml.eos_token_id")?,
        })
    }

    fn to_json(&self, vocab: u64, tied: bool) -> Vec<u8> {
        let mut c = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.n_layer,
            "num_attention_heads": self.n_head,
            "num_key_value_heads": self.n_head_kv,
            "vocab_size": vocab,
            "rms_norm_eps": self.eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.context,
            "tie_word_embeddings": tied,
            "hidden_act": "silu",
        });
        if let Some(r) = &self.rope_scaling {
            c["rope_scaling"] = r.clone();
        }
        if let Some(d) = self.head_dim {
            c["head_dim"] = d.into();
        }
        if let Some(b) = self.bos {
            c["bos_token_id"] = b.into();
        }
        if let Some(e) = self.eos {
            c["eos_token_id"] = e.into();
        }
        serde_json::to_vec_pretty(&c).unwrap_or_default()
    }
}

/// lit's (Hugging Face) name for GGUF tensor `name`, and for Q/K the head count whose RoPE row
/// permutation import undoes.
fn hf_name(name: &str, c: &LlamaMeta) -> Option<(String, Option<u64>)> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some((f.to_string(), None));
    }
    let rest = name.strip_prefix("blk.")?;
    let (n, part) = rest.split_once('.')?;
    let layer: u64 = n.parse().ok()?;
    if layer >= c.n_layer || n != layer.to_string() {
        return None;
    }
    let (hf, heads) = match part {
        "attn_norm.weight" => ("input_layernorm.weight", None),
        "ffn_norm.weight" => ("post_attention_layernorm.weight", None),
        "attn_q.weight" => ("self_attn.q_proj.weight", Some(c.n_head)),
        "attn_k.weight" => ("self_attn.k_proj.weight", Some(c.n_head_kv)),
        "attn_v.weight" => ("self_attn.v_proj.weight", None),
        "attn_output.weight" => ("self_attn.o_proj.weight", None),
        "ffn_gate.weight" => ("mlp.gate_proj.weight", None),
        "ffn_up.weight" => ("mlp.up_proj.weight", None),
        "ffn_down.weight" => ("mlp.down_proj.weight", None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{hf}"), heads))
}

/// GGUF token types (`tokenizer.ggml.token_type`).
const TOKEN_CONTROL: i128 = 3;
const TOKEN_USER_DEFINED: i128 = 4;

/// Builds `tokenizer.json` (Hugging Face tokenizers format) and `tokenizer_config.json` from the
/// `tokenizer.ggml.*` metadata, or nothing when the file carries no tokenizer.
///
/// Supported: `tokenizer.ggml.model = gpt2` (byte-level BPE) with pre-tokenizers `smollm`
/// (digits split one by one, then GPT-2's byte-level regex, as SmolLM's own tokenizer.json),
/// `gpt2`/`default` (GPT-2's regex) and `llama-bpe` (Llama 3's split regex). Tokens whose type is
/// control become special added tokens; user-defined ones become non-special added tokens.
pub fn build_tokenizer(h: &GgufHeader, file: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = |key: &str, why: String| Error::InvalidCheckpoint {
        file: file.to_string(),
        reason: format!("metadata `{key}` {why}"),
    };
    let model = match h.get("tokenizer.ggml.model") {
        None => return Ok(Vec::new()),
        Some(MetaValue::Str(m)) => m.as_str(),
        Some(_) => return Err(bad("tokenizer.ggml.model", "is not a string".into())),
    };
    if model != "gpt2" {
        return Err(bad(
            "tokenizer.ggml.model",
            format!("is `{model}`; lit builds tokenizer.json for `gpt2` (byte-level BPE) only"),
        ));
    }
    let strings = |key: &str| -> Result<Vec<&str>> {
        match h.get(key) {
            Some(MetaValue::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    MetaValue::Str(s) => Ok(s.as_str()),
                    _ => Err(bad(key, format!("element {i} is not a string"))),
                })
                .collect(),
            Some(_) => Err(bad(key, "is not an array of strings".into())),
            None => Err(bad(key, "is missing".into())),
        }
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i128> = match h.get("tokenizer.ggml.token_type") {
        Some(MetaValue::Array(items)) if items.len() == tokens.len() => items
            .iter()
            .map(|v| match v {
                MetaValue::Int(t) => Ok(*t),
                _ => Err(bad(
                    "tokenizer.ggml.token_type",
                    "holds a non-integer".into(),
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(bad(
                "tokenizer.ggml.token_type",
                format!("is not an array of {} integers", tokens.len()),
            ));
        }
        None => vec![1; tokens.len()],
    };
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, (&tok, &ty)) in tokens.iter().zip(&types).enumerate() {
        if vocab.insert(tok.to_string(), id.into()).is_some() {
            return Err(bad(
                "tokenizer.ggml.tokens",
                format!("lists token {tok:?} twice (second at id {id})"),
            ));
        }
        if ty == TOKEN_CONTROL || ty == TOKEN_USER_DEFINED {
            added.push(json!({
                "id": id, "content": tok, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": ty != TOKEN_CONTROL, "special": ty == TOKEN_CONTROL,
            }));
        }
    }
    for (i, m) in merges.iter().enumerate() {
        if m.split(' ').count() != 2 {
            return Err(bad(
                "tokenizer.ggml.merges",
                format!("merge {i} {m:?} is not two tokens separated by one space"),
            ));
        }
    }
    let pre = match h.get("tokenizer.ggml.pre") {
        Some(MetaValue::Str(p)) => p.as_str(),
        _ => "default",
    };
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let pre_tokenizer = match pre {
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            byte_level(true),
        ]}),
        "gpt2" | "default" => byte_level(true),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
             "behavior": "Isolated", "invert": false},
            byte_level(false),
        ]}),
        other => {
            return Err(bad(
                "tokenizer.ggml.pre",
                format!("is `{other}`; lit supports smollm, gpt2, default and llama-bpe"),
            ));
        }
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": byte_level(true),
        "decoder": byte_level(true),
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": pre == "llama-bpe" || pre == "llama3",
            "vocab": Json::Object(vocab), "merges": merges,
        },
    });
    let token = |key: &str| -> Option<Json> {
        match h.get(key) {
            Some(MetaValue::Int(id)) => usize::try_from(*id)
                .ok()
                .and_then(|i| tokens.get(i))
                .map(|t| Json::from(*t)),
            _ => None,
        }
    };
    let flag = |key: &str| match h.get(key) {
        Some(MetaValue::Bool(b)) => Some(*b),
        _ => None,
    };
    let mut config: BTreeMap<&str, Json> = BTreeMap::new();
    config.insert("tokenizer_class", "GPT2Tokenizer".into());
    config.insert("clean_up_tokenization_spaces", false.into());
    for (name, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(t) = token(key) {
            config.insert(name, t);
        }
    }
    if let Some(b) = flag("tokenizer.ggml.add_bos_token") {
        config.insert("add_bos_token", b.into());
    }
    if let Some(b) = flag("tokenizer.ggml.add_eos_token") {
        config.insert("add_eos_token", b.into());
    }
    match h.get("tokenizer.chat_template") {
        Some(MetaValue::Str(t)) => {
            config.insert("chat_template", t.as_str().into());
        }
        Some(_) => return Err(bad("tokenizer.chat_template", "is not a string".into())),
        None => {}
    }
    let to_bytes = |v: &Json| serde_json::to_vec(v).map_err(|e| bad("tokenizer", e.to_string()));
    Ok(vec![
        ("tokenizer.json".to_string(), to_bytes(&tokenizer)?),
        (
            "tokenizer_config.json".to_string(),
            serde_json::to_vec_pretty(&config).map_err(|e| bad("tokenizer", e.to_string()))?,
        ),
    ])
}
