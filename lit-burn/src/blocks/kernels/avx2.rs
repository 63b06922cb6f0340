//! The Q8_0, Q4_0, Q4_1, Q4_K and Q6_K row kernels written with AVX2 + FMA intrinsics.
//!
//! Each block's quants are widened to 8-lane f32 vectors and multiplied with the activations into
//! a block sum, which is scaled by the block's `d` into a row accumulator: no horizontal sum until
//! the row ends. Measured against the portable kernels (autovectorised, a horizontal sum per block)
//! on SmolLM2's matrices: see `docs/benchmarks.md`.

use super::f16;
use lit_core::quant;
use std::arch::x86_64::*;

/// Whether this CPU runs these kernels.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Which block layout a row holds.
#[derive(Clone, Copy)]
pub(in crate::blocks) enum Layout {
    Q8_0,
    Q4_0,
    Q4_1,
    Q4K,
    Q6K,
}

impl Layout {
    /// Bytes and elements of one block.
    const fn block(self) -> (usize, usize) {
        match self {
            Layout::Q8_0 => (34, 32),
            Layout::Q4_0 => (18, 32),
            Layout::Q4_1 => (20, 32),
            Layout::Q4K => (144, 256),
            Layout::Q6K => (210, 256),
        }
    }
}

/// `out[r] = row r · x` for whole rows of `layout` blocks (`x.len()` elements each).
///
/// # Safety
/// The CPU must have AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn rows(
    layout: Layout,
    rows: &[u8],
    row_bytes: usize,
    x: &[f32],
    xsums: &[f32],
    out: &mut [f32],
) {
    let (block_bytes, block_elems) = layout.block();
    let blocks = x.len() / block_elems;
    assert!(
        x.len() == blocks * block_elems
            && row_bytes == blocks * block_bytes
            && xsums.len() * 32 == x.len()
            && rows.len() >= out.len() * row_bytes,
        "rows are whole blocks of the activations' length"
    );
    for (r, o) in out.iter_mut().enumerate() {
        let row = &rows[r * row_bytes..(r + 1) * row_bytes];
        *o = match layout {
            Layout::Q8_0 => row_q8_0(row, x),
            Layout::Q4_0 => row_q4(row, x, xsums, false),
            Layout::Q4_1 => row_q4(row, x, xsums, true),
            Layout::Q4K => row_q4_k(row, x, xsums),
            Layout::Q6K => row_q6_k(row, x),
        };
    }
}

/// Eight activations starting at `x[at]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_x(x: &[f32], at: usize) -> __m256 {
    let x = &x[at..at + 8];
    // SAFETY: `x` holds the 8 floats read (bounds checked just above).
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn row_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (k, block) in row.chunks_exact(34).enumerate() {
        let d = _mm256_set1_ps(f16(block, 0));
        let qs = &block[2..34];
        let mut t = _mm256_setzero_ps();
        for c in 0..4 {
            let q8 = &qs[c * 8..c * 8 + 8];
            // SAFETY: `q8` holds the 8 bytes read (bounds checked just above).
            let q = unsafe { _mm_loadl_epi64(q8.as_ptr().cast()) };
            let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
            t = _mm256_fmadd_ps(q, load_x(x, k * 32 + c * 8), t);
        }
        acc = _mm256_fmadd_ps(d, t, acc);
    }
    hsum(acc)
}

/// Sixteen nibbles (of `v`, shifted right by `shift`: 0 or 4) times the 16 activations from
/// `x[at]`, added to `t`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn fma_nibbles16(v: __m128i, high: bool, x: &[f32], at: usize, t: __m256) -> __m256 {
    let low = _mm_set1_epi8(0x0F);
    let q = if high {
        _mm_and_si128(_mm_srli_epi16::<4>(v), low)
    } else {
        _mm_and_si128(v, low)
    };
    let a = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q));
    let b = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(q)));
    _mm256_fmadd_ps(b, load_x(x, at + 8), _mm256_fmadd_ps(a, load_x(x, at), t))
}

/// A Q4_K row: super-blocks of 8 sub-blocks of 32, `w = d·sc_j·q − dmin·mn_j`, sub-blocks
/// `2p` and `2p + 1` the low and high nibbles of the same 32 bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn row_q4_k(row: &[u8], x: &[f32], xsums: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for (k, block) in row.chunks_exact(144).enumerate() {
        let (d, dmin) = (f16(block, 0), f16(block, 2));
        let scales = &block[4..16];
        for pair in 0..4 {
            let qs = &block[16 + 32 * pair..16 + 32 * pair + 32];
            // SAFETY: `qs` holds the 32 bytes read (bounds checked just above).
            let (v0, v1) = unsafe {
                (
                    _mm_loadu_si128(qs.as_ptr().cast()),
                    _mm_loadu_si128(qs[16..].as_ptr().cast()),
                )
            };
            for (high, j) in [(false, 2 * pair), (true, 2 * pair + 1)] {
                let (sc, mn) = quant::scale_min_k4(scales, j);
                let at = k * 256 + j * 32;
                let t = fma_nibbles16(v0, high, x, at, _mm256_setzero_ps());
                let t = fma_nibbles16(v1, high, x, at + 16, t);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * f32::from(sc)), t, acc);
                mins += dmin * f32::from(mn) * xsums[k * 8 + j];
            }
        }
    }
    hsum(acc) - mins
}

/// A Q6_K row: super-blocks of 16 groups of 16 with an i8 scale each, `w = d·sc_g·(q − 32)`,
/// the 6-bit `q` of element `e` (`h = e / 128`, `r = e % 128`) from the low or high nibble of
/// `ql[64h + r % 64]` and two bits of `qh[32h + r % 32]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn row_q6_k(row: &[u8], x: &[f32]) -> f32 {
    let nibble = _mm_set1_epi8(0x0F);
    let two = _mm_set1_epi8(0x03);
    let bias = _mm256_set1_epi32(32);
    let mut acc = _mm256_setzero_ps();
    for (k, block) in row.chunks_exact(210).enumerate() {
        let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
        let d = f16(block, 208);
        for (g, &sc) in scales.iter().enumerate() {
            let (h, r0) = (g / 8, (g % 8) * 16);
            let lo = &ql[64 * h + r0 % 64..64 * h + r0 % 64 + 16];
            let hi = &qh[32 * h + r0 % 32..32 * h + r0 % 32 + 16];
            // SAFETY: `lo` and `hi` hold the 16 bytes read (bounds checked just above).
            let (lo, hi) = unsafe {
                (
                    _mm_loadu_si128(lo.as_ptr().cast()),
                    _mm_loadu_si128(hi.as_ptr().cast()),
                )
            };
            let lo = _mm_and_si128(
                _mm_srl_epi16(lo, _mm_cvtsi32_si128(4 * (r0 / 64) as i32)),
                nibble,
            );
            let hi = _mm_and_si128(
                _mm_srl_epi16(hi, _mm_cvtsi32_si128(2 * (r0 / 32) as i32)),
                two,
            );
            let q = _mm_or_si128(lo, _mm_slli_epi16::<4>(hi));
            let at = k * 256 + g * 16;
            let a = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q), bias));
            let b = _mm256_cvtepi32_ps(_mm256_sub_epi32(
                _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(q)),
                bias,
            ));
            let t = _mm256_fmadd_ps(b, load_x(x, at + 8), _mm256_mul_ps(a, load_x(x, at)));
            let scale = d * f32::from(sc as i8);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), t, acc);
        }
    }
    hsum(acc)
}

/// A Q4_0 row (`w = d·(q − 8)`) or, with `min`, a Q4_1 row (`w = d·q + m`).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn row_q4(row: &[u8], x: &[f32], xsums: &[f32], min: bool) -> f32 {
    let size = if min { 20 } else { 18 };
    let low = _mm_set1_epi8(0x0F);
    let eight = _mm256_set1_epi32(8);
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for (k, block) in row.chunks_exact(size).enumerate() {
        let d = _mm256_set1_ps(f16(block, 0));
        let qs = &block[size - 16..size];
        // SAFETY: `qs` holds the 16 bytes read.
        let v = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
        // Elements 0–15 are the low nibbles, 16–31 the high ones.
        let lo = _mm_and_si128(v, low);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), low);
        let mut t = _mm256_setzero_ps();
        for (c, half) in [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
            .into_iter()
            .enumerate()
        {
            let mut q = _mm256_cvtepu8_epi32(half);
            if !min {
                q = _mm256_sub_epi32(q, eight);
            }
            t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), load_x(x, k * 32 + c * 8), t);
        }
        acc = _mm256_fmadd_ps(d, t, acc);
        if min {
            mins += f16(block, 2) * xsums[k];
        }
    }
    hsum(acc) + mins
}
