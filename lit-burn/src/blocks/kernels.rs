//! Dot products of f32 activations with rows of GGML blocks, computed on the blocks.
//!
//! A weight `w = d·q (+ m)` never exists as a float: each block contributes
//! `d·Σ qᵢxᵢ (+ m·Σ xᵢ)`, with `Σ xᵢ` computed once per activation block and shared by every
//! row. Q8_0, Q4_0 and Q4_1 have portable kernels, and they, Q4_K and Q6_K AVX2+FMA ones
//! ([`avx2`]) picked at run time where the CPU has them. Otherwise the K-quants decode one row at
//! a time into a scratch buffer and take a plain dot (Q5_K always: rare in GGUF files).

#[cfg(target_arch = "x86_64")]
mod avx2;

use lit_core::quant::{self, QuantScheme};

/// One block scheme's dot product: `block · x` for one block of `ELEMS` activations whose sum is
/// `xsum`.
pub(super) trait Kernel {
    const BYTES: usize;
    const ELEMS: usize;
    #[cfg(target_arch = "x86_64")]
    const AVX2: avx2::Layout;
    fn dot(block: &[u8], x: &[f32], xsum: f32) -> f32;
}

/// The f16 at `b[at..at + 2]` as f32, inline and branch-free for finite values: the exponent and
/// mantissa moved into f32's places and rebiased by a multiplication by 2¹¹² (exact, subnormals
/// included). `half`'s conversion is a call per block, which cost more than the block's 32 MACs.
#[inline(always)]
fn f16(b: &[u8], at: usize) -> f32 {
    let h = u16::from_le_bytes([b[at], b[at + 1]]);
    if h & 0x7C00 == 0x7C00 {
        // Infinity or NaN (never in a sane block; kept exact all the same).
        return half::f16::from_bits(h).to_f32();
    }
    let magnitude = f32::from_bits(u32::from(h & 0x7FFF) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(magnitude.to_bits() | (u32::from(h & 0x8000) << 16))
}

#[inline(always)]
fn sum8(acc: [f32; 8]) -> f32 {
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `Σ qᵢxᵢ` for 32 signed bytes.
#[inline(always)]
fn dot_i8(q: &[u8; 32], x: &[f32; 32]) -> f32 {
    let mut acc = [0f32; 8];
    for c in 0..4 {
        for l in 0..8 {
            acc[l] += f32::from(q[c * 8 + l] as i8) * x[c * 8 + l];
        }
    }
    sum8(acc)
}

/// `Σ qᵢxᵢ` for 32 nibbles: the low nibbles of `q` are elements 0–15, the high ones 16–31.
#[inline(always)]
fn dot_u4(q: &[u8; 16], x: &[f32; 32]) -> f32 {
    let mut lo = [0f32; 8];
    let mut hi = [0f32; 8];
    for c in 0..2 {
        for l in 0..8 {
            let b = q[c * 8 + l];
            lo[l] += f32::from(b & 0x0F) * x[c * 8 + l];
            hi[l] += f32::from(b >> 4) * x[16 + c * 8 + l];
        }
    }
    sum8(lo) + sum8(hi)
}

fn array<const N: usize, T: Copy + Default>(s: &[T]) -> [T; N] {
    let mut a = [T::default(); N];
    a.copy_from_slice(&s[..N]);
    a
}

pub(super) struct Q8_0;
pub(super) struct Q4_0;
pub(super) struct Q4_1;

impl Kernel for Q8_0 {
    const BYTES: usize = 34;
    const ELEMS: usize = 32;
    #[cfg(target_arch = "x86_64")]
    const AVX2: avx2::Layout = avx2::Layout::Q8_0;
    #[inline(always)]
    fn dot(b: &[u8], x: &[f32], _: f32) -> f32 {
        f16(b, 0) * dot_i8(&array(&b[2..]), &array(x))
    }
}

impl Kernel for Q4_0 {
    const BYTES: usize = 18;
    const ELEMS: usize = 32;
    #[cfg(target_arch = "x86_64")]
    const AVX2: avx2::Layout = avx2::Layout::Q4_0;
    #[inline(always)]
    fn dot(b: &[u8], x: &[f32], xsum: f32) -> f32 {
        // w = d·(q − 8)
        f16(b, 0) * (dot_u4(&array(&b[2..]), &array(x)) - 8.0 * xsum)
    }
}

impl Kernel for Q4_1 {
    const BYTES: usize = 20;
    const ELEMS: usize = 32;
    #[cfg(target_arch = "x86_64")]
    const AVX2: avx2::Layout = avx2::Layout::Q4_1;
    #[inline(always)]
    fn dot(b: &[u8], x: &[f32], xsum: f32) -> f32 {
        // w = d·q + m
        f16(b, 0) * dot_u4(&array(&b[4..]), &array(x)) + f16(b, 2) * xsum
    }
}

/// `out[r] = row r · x` for the rows of `rows` (each `row_bytes` long), `xsums` holding the sum
/// of each `K::ELEMS` activations. Plain loops, no iterator adaptors: an adaptor's `fold` may be
/// left out of line, compiled for the baseline CPU, when this is compiled for AVX2.
#[inline(always)]
fn rows_generic<K: Kernel>(
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    xsums: &[f32],
    out: &mut [f32],
) {
    let blocks = row_bytes / K::BYTES;
    for (r, o) in out.iter_mut().enumerate() {
        let row = &rows[r * row_bytes..(r + 1) * row_bytes];
        let mut acc = 0f32;
        for k in 0..blocks {
            acc += K::dot(
                &row[k * K::BYTES..(k + 1) * K::BYTES],
                &x[k * K::ELEMS..(k + 1) * K::ELEMS],
                xsums[k],
            );
        }
        *o = acc;
    }
}

fn rows_dispatch<K: Kernel>(
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    xsums: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() && !PORTABLE.with(|p| p.get()) {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { avx2::rows(K::AVX2, rows, row_bytes, x, xsums, out) };
    }
    rows_generic::<K>(rows, row_bytes, x, xsums, out)
}

thread_local! {
    /// Tests set this to check the portable kernels on a CPU that has AVX2.
    static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the portable kernels on this thread (for tests).
#[cfg(test)]
pub(super) fn portable<T>(f: impl FnOnce() -> T) -> T {
    PORTABLE.with(|p| p.set(true));
    let out = f();
    PORTABLE.with(|p| p.set(false));
    out
}

/// Rows of a K-quant: each decoded into `scratch`, then a plain dot.
fn rows_decoded(
    scheme: QuantScheme,
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    out: &mut [f32],
) -> Result<(), quant::QuantError> {
    let mut scratch = Vec::with_capacity(x.len());
    for (row, o) in rows.chunks_exact(row_bytes).zip(out.iter_mut()) {
        scratch.clear();
        quant::dequantize(scheme, row, &mut scratch)?;
        let mut acc = [0f32; 8];
        for (w, v) in scratch.chunks_exact(8).zip(x.chunks_exact(8)) {
            for l in 0..8 {
                acc[l] += w[l] * v[l];
            }
        }
        *o = sum8(acc);
    }
    Ok(())
}

/// `out[r] = row r · x` for whole rows of `scheme` blocks (`rows.len()` a multiple of
/// `row_bytes`, `x.len()` the row's element count, a multiple of the block).
pub(super) fn rows_dot(
    scheme: QuantScheme,
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    out: &mut [f32],
) -> Result<(), quant::QuantError> {
    let xsums: Vec<f32> = x.chunks_exact(32).map(|c| c.iter().sum()).collect();
    match scheme {
        QuantScheme::Q8_0 => rows_dispatch::<Q8_0>(rows, row_bytes, x, &xsums, out),
        QuantScheme::Q4_0 => rows_dispatch::<Q4_0>(rows, row_bytes, x, &xsums, out),
        QuantScheme::Q4_1 => rows_dispatch::<Q4_1>(rows, row_bytes, x, &xsums, out),
        QuantScheme::Q4K | QuantScheme::Q6K => {
            #[cfg(target_arch = "x86_64")]
            if avx2::available() && !PORTABLE.with(|p| p.get()) {
                let layout = if scheme == QuantScheme::Q4K {
                    avx2::Layout::Q4K
                } else {
                    avx2::Layout::Q6K
                };
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                unsafe { avx2::rows(layout, rows, row_bytes, x, &xsums, out) };
                return Ok(());
            }
            return rows_decoded(scheme, rows, row_bytes, x, out);
        }
        QuantScheme::Q5K => return rows_decoded(scheme, rows, row_bytes, x, out),
    }
    Ok(())
}
