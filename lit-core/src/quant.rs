//! Block-quantized tensors: GGML's block layouts, kept byte for byte as llama.cpp writes them.
//!
//! A quantized tensor of logical shape `[.., rows, cols]` is stored row-major as whole blocks:
//! every row of `cols` elements is `cols / block_elems` consecutive blocks (the innermost
//! dimension must be a multiple of the block size), rows follow each other with no padding. So a
//! row is a contiguous byte range of `row_bytes(cols)` bytes, and the whole tensor is
//! `rows × row_bytes` bytes. Each block decodes to `block_elems` consecutive elements of its row.
//!
//! Block layouts (all multi-byte fields little-endian; `f16` is IEEE binary16):
//!
//! | scheme | elements | bytes | layout | element `i` |
//! |---|---|---|---|---|
//! | `Q8_0` | 32 | 34 | `d: f16, qs: [i8; 32]` | `d · qs[i]` |
//! | `Q4_0` | 32 | 18 | `d: f16, qs: [u8; 16]` | `d · (nib(i) − 8)`, `nib(i)` = low nibble of `qs[i]` for `i < 16`, high nibble of `qs[i−16]` otherwise |
//! | `Q4_1` | 32 | 20 | `d: f16, m: f16, qs: [u8; 16]` | `d · nib(i) + m` |
//! | `Q4_K` | 256 | 144 | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]` | 8 sub-blocks of 32, see [`dequantize`] |
//! | `Q5_K` | 256 | 176 | `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]` | as `Q4_K` with a fifth bit from `qh` |
//! | `Q6_K` | 256 | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` | 16 sub-blocks of 16 |
//!
//! Dequantization computes in `f32` in the same order as ggml's reference C code and llama.cpp's
//! `gguf` Python package (`gguf.quants.dequantize`), so results are bit-identical to both.
//! Quantization (`Q8_0`, `Q4_0`, `Q4_1`) follows ggml's `quantize_row_*_ref` (round to nearest).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A GGML block quantization scheme.
///
/// Exhaustive on purpose: a new scheme is a new store format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QuantScheme {
    /// 32 elements: an f16 scale and 32 signed bytes.
    Q8_0,
    /// 32 elements: an f16 scale and 32 4-bit values offset by 8.
    Q4_0,
    /// 32 elements: an f16 scale, an f16 minimum and 32 4-bit values.
    Q4_1,
    /// 256-element super-block of 8×32: 4-bit values with 6-bit scales and minimums.
    Q4K,
    /// 256-element super-block of 8×32: 5-bit values with 6-bit scales and minimums.
    Q5K,
    /// 256-element super-block of 16×16: 6-bit values with 8-bit scales.
    Q6K,
}

/// Why a quantized tensor cannot be sized, decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// The shape does not suit the scheme (no dimensions, or an innermost dimension that is not a
    /// whole number of blocks).
    #[error("shape {shape:?} cannot be stored as {scheme}: {reason}")]
    Shape {
        /// The scheme.
        scheme: QuantScheme,
        /// The logical shape.
        shape: Vec<u64>,
        /// What is wrong.
        reason: String,
    },
    /// A byte or element count that does not match.
    #[error("{scheme}: {reason}")]
    Length {
        /// The scheme.
        scheme: QuantScheme,
        /// What does not match.
        reason: String,
    },
    /// lit cannot produce this scheme (only decode it).
    #[error("{0} can be read but not produced by lit (quantize supports Q8_0, Q4_0, Q4_1)")]
    CannotQuantize(QuantScheme),
}

/// Elements per K-quant super-block.
const QK_K: usize = 256;

impl QuantScheme {
    /// Every scheme, in declaration order.
    pub const ALL: [QuantScheme; 6] = [
        QuantScheme::Q8_0,
        QuantScheme::Q4_0,
        QuantScheme::Q4_1,
        QuantScheme::Q4K,
        QuantScheme::Q5K,
        QuantScheme::Q6K,
    ];

    /// Elements per block.
    pub const fn block_elems(self) -> u64 {
        match self {
            QuantScheme::Q8_0 | QuantScheme::Q4_0 | QuantScheme::Q4_1 => 32,
            QuantScheme::Q4K | QuantScheme::Q5K | QuantScheme::Q6K => QK_K as u64,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> u64 {
        match self {
            QuantScheme::Q8_0 => 34,
            QuantScheme::Q4_0 => 18,
            QuantScheme::Q4_1 => 20,
            QuantScheme::Q4K => 144,
            QuantScheme::Q5K => 176,
            QuantScheme::Q6K => 210,
        }
    }

    /// The name as ggml spells it (`"Q8_0"`, `"Q4_K"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            QuantScheme::Q8_0 => "Q8_0",
            QuantScheme::Q4_0 => "Q4_0",
            QuantScheme::Q4_1 => "Q4_1",
            QuantScheme::Q4K => "Q4_K",
            QuantScheme::Q5K => "Q5_K",
            QuantScheme::Q6K => "Q6_K",
        }
    }

    /// Whether [`quantize`] can produce this scheme.
    pub const fn can_quantize(self) -> bool {
        matches!(
            self,
            QuantScheme::Q8_0 | QuantScheme::Q4_0 | QuantScheme::Q4_1
        )
    }

    /// Bytes of one row of `cols` elements, or an error when `cols` is not a whole number of
    /// blocks (or the size overflows).
    pub fn row_bytes(self, cols: u64) -> Result<u64, QuantError> {
        self.byte_len(&[cols])
    }

    /// Bytes of a tensor of logical `shape` (row-major; blocks run along the innermost dimension),
    /// with overflow-checked arithmetic. Scalars and shapes whose innermost dimension is not a
    /// multiple of [`QuantScheme::block_elems`] are refused.
    pub fn byte_len(self, shape: &[u64]) -> Result<u64, QuantError> {
        let bad = |reason: String| QuantError::Shape {
            scheme: self,
            shape: shape.to_vec(),
            reason,
        };
        let Some((&cols, outer)) = shape.split_last() else {
            return Err(bad("a scalar has no rows of blocks".into()));
        };
        if cols % self.block_elems() != 0 {
            return Err(bad(format!(
                "the innermost dimension {cols} is not a multiple of the {}-element block",
                self.block_elems()
            )));
        }
        let row = (cols / self.block_elems())
            .checked_mul(self.block_bytes())
            .ok_or_else(|| bad("size overflows".into()))?;
        outer
            .iter()
            .try_fold(row, |n, &d| n.checked_mul(d))
            .ok_or_else(|| bad("size overflows".into()))
    }
}

impl fmt::Display for QuantScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QuantScheme {
    type Err = String;

    /// Parses ggml names case-insensitively (`q8_0`, `Q4_K`; `q4k` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuantScheme::ALL
            .into_iter()
            .find(|q| {
                q.as_str().eq_ignore_ascii_case(s)
                    || q.as_str().replace('_', "").eq_ignore_ascii_case(s)
            })
            .ok_or_else(|| {
                format!(
                    "unknown quantization `{s}` (expected one of Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)"
                )
            })
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    match b.get(at..at + 2) {
        Some(&[lo, hi]) => half::f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32(),
        _ => 0.0,
    }
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// Decodes whole blocks of `scheme` from `bytes` into `f32` elements appended to `out`.
///
/// `bytes` must be a whole number of blocks. The arithmetic matches ggml's `dequantize_row_*`
/// and `gguf.quants` exactly (f32, no fused multiply-add):
/// - `Q4_K`/`Q5_K`: sub-block `j` (32 elements) has a 6-bit scale `sc` and minimum `mn` unpacked
///   from `scales` (bytes 0–3 hold the low 6 bits of `sc` for j < 4, bytes 4–7 those of `mn`,
///   bytes 8–11 the low/high nibbles of `sc`/`mn` for j ≥ 4 whose top 2 bits come from the top
///   bits of bytes 0–3/4–7); element = `(d·sc)·q − dmin·mn`, `q` the low (even `j`) or high (odd
///   `j`) nibble of `qs[32·(j/2) + l]`, plus `16·bit j of qh[l]` for `Q5_K`.
/// - `Q6_K`: element `e` of the super-block, with `h = e / 128`, `r = e % 128`: low 4 bits from
///   `ql[64h + r % 64]` (high nibble when `r ≥ 64`), high 2 bits from bits `2·(r / 32)` of
///   `qh[32h + r % 32]`; `q − 32` times `d · scales[e / 16]`.
pub fn dequantize(scheme: QuantScheme, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), QuantError> {
    let bb = scheme.block_bytes() as usize;
    if !bytes.len().is_multiple_of(bb) {
        return Err(QuantError::Length {
            scheme,
            reason: format!(
                "{} bytes are not a whole number of {bb}-byte blocks",
                bytes.len()
            ),
        });
    }
    let blocks = bytes.len() / bb;
    out.reserve(blocks.saturating_mul(scheme.block_elems() as usize));
    for b in bytes.chunks_exact(bb) {
        match scheme {
            QuantScheme::Q8_0 => {
                let d = f16_at(b, 0);
                out.extend(b.iter().skip(2).map(|&q| f32::from(q as i8) * d));
            }
            QuantScheme::Q4_0 => {
                let d = f16_at(b, 0);
                let qs = b.get(2..18).unwrap_or(&[]);
                out.extend(qs.iter().map(|&q| d * f32::from((q & 0x0F) as i8 - 8)));
                out.extend(qs.iter().map(|&q| d * f32::from((q >> 4) as i8 - 8)));
            }
            QuantScheme::Q4_1 => {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = b.get(4..20).unwrap_or(&[]);
                out.extend(qs.iter().map(|&q| d * f32::from(q & 0x0F) + m));
                out.extend(qs.iter().map(|&q| d * f32::from(q >> 4) + m));
            }
            QuantScheme::Q4K | QuantScheme::Q5K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = b.get(4..16).unwrap_or(&[]);
                let (qh, qs) = if scheme == QuantScheme::Q5K {
                    (b.get(16..48).unwrap_or(&[]), b.get(48..176).unwrap_or(&[]))
                } else {
                    (&[][..], b.get(16..144).unwrap_or(&[]))
                };
                for j in 0..8 {
                    let (sc, mn) = scale_min_k4(scales, j);
                    let dl = d * f32::from(sc);
                    let ml = dmin * f32::from(mn);
                    let shift = if j % 2 == 0 { 0 } else { 4 };
                    for l in 0..32 {
                        let mut q = (byte(qs, 32 * (j / 2) + l) >> shift) & 0x0F;
                        if scheme == QuantScheme::Q5K {
                            q |= ((byte(qh, l) >> j) & 1) << 4;
                        }
                        out.push(dl * f32::from(q) - ml);
                    }
                }
            }
            QuantScheme::Q6K => {
                let ql = b.get(0..128).unwrap_or(&[]);
                let qh = b.get(128..192).unwrap_or(&[]);
                let scales = b.get(192..208).unwrap_or(&[]);
                let d = f16_at(b, 208);
                for e in 0..QK_K {
                    let (h, r) = (e / 128, e % 128);
                    let lo = (byte(ql, 64 * h + r % 64) >> (4 * (r / 64))) & 0x0F;
                    let hi = (byte(qh, 32 * h + r % 32) >> (2 * (r / 32))) & 0x03;
                    let q = (lo | (hi << 4)) as i8 - 32;
                    let sc = d * f32::from(byte(scales, e / 16) as i8);
                    out.push(sc * f32::from(q));
                }
            }
        }
    }
    Ok(())
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of a `Q4_K`/`Q5_K` super-block, from its
/// 12 `scales` bytes (ggml's `get_scale_min_k4`; bytes past the slice read as 0).
pub fn scale_min_k4(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (byte(scales, j) & 63, byte(scales, j + 4) & 63)
    } else {
        let md = byte(scales, j + 4);
        (
            (md & 0x0F) | ((byte(scales, j - 4) >> 2) & 0x30),
            (md >> 4) | ((byte(scales, j) >> 2) & 0x30),
        )
    }
}

/// Encodes `values` (a whole number of 32-element blocks) as `scheme`, appending the blocks to
/// `out`. Round to nearest, as ggml's `quantize_row_q8_0_ref`, `quantize_row_q4_0_ref` and
/// `quantize_row_q4_1_ref`; scales are rounded to f16 (nearest, ties to even).
pub fn quantize(scheme: QuantScheme, values: &[f32], out: &mut Vec<u8>) -> Result<(), QuantError> {
    if !scheme.can_quantize() {
        return Err(QuantError::CannotQuantize(scheme));
    }
    let n = scheme.block_elems() as usize;
    if !values.len().is_multiple_of(n) {
        return Err(QuantError::Length {
            scheme,
            reason: format!(
                "{} values are not a whole number of {n}-element blocks",
                values.len()
            ),
        });
    }
    out.reserve((values.len() / n).saturating_mul(scheme.block_bytes() as usize));
    let f16 = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
    for x in values.chunks_exact(n) {
        match scheme {
            QuantScheme::Q8_0 => {
                let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16(d));
                out.extend(x.iter().map(|&v| ((v * id).round() as i8) as u8));
            }
            QuantScheme::Q4_0 => {
                // The value of largest magnitude, sign kept (ggml: `max`).
                let (mut amax, mut max) = (0f32, 0f32);
                for &v in x {
                    if amax < v.abs() {
                        amax = v.abs();
                        max = v;
                    }
                }
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16(d));
                let q = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(x[j]) | (q(x[j + 16]) << 4));
                }
            }
            QuantScheme::Q4_1 => {
                let min = x.iter().fold(f32::INFINITY, |a, &v| a.min(v));
                let max = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16(d));
                out.extend_from_slice(&f16(min));
                let q = |v: f32| (((v - min) * id + 0.5) as i8).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(x[j]) | (q(x[j + 16]) << 4));
                }
            }
            _ => return Err(QuantError::CannotQuantize(scheme)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in QuantScheme::ALL {
            assert_eq!(q.as_str().parse::<QuantScheme>().unwrap(), q);
            assert_eq!(q.as_str().to_lowercase().parse::<QuantScheme>().unwrap(), q);
        }
        assert!("q2_k".parse::<QuantScheme>().is_err());
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(
            QuantScheme::Q4_1.byte_len(&[192, 576]).unwrap(),
            192 * 18 * 20
        );
        assert_eq!(QuantScheme::Q6K.byte_len(&[2, 512]).unwrap(), 2 * 2 * 210);
        assert!(QuantScheme::Q8_0.byte_len(&[10, 33]).is_err());
        assert!(QuantScheme::Q8_0.byte_len(&[]).is_err());
        assert!(QuantScheme::Q8_0.byte_len(&[u64::MAX, 1 << 40]).is_err());
    }

    #[test]
    fn hand_decoded_blocks() {
        // Q4_0: d = 0.5 (f16 0x3800), nibbles 0..15 then 15..0.
        let mut b = vec![0x00, 0x38];
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let mut out = Vec::new();
        dequantize(QuantScheme::Q4_0, &b, &mut out).unwrap();
        assert_eq!(out[0], -4.0);
        assert_eq!(out[15], 3.5);
        assert_eq!(out[16], 3.5);
        assert_eq!(out[31], -4.0);
        // Q8_0: d = 2, q = -128..
        let mut b = vec![0x00, 0x40];
        b.extend((0..32).map(|j| (j as i8 - 16) as u8));
        out.clear();
        dequantize(QuantScheme::Q8_0, &b, &mut out).unwrap();
        assert_eq!(out[0], -32.0);
        assert_eq!(out[31], 30.0);
        assert!(dequantize(QuantScheme::Q8_0, &b[..33], &mut out).is_err());
    }
}
