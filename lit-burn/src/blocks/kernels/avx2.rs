//! The Q8_0, Q4_0 and Q4_1 row kernels written with AVX2 + FMA intrinsics.
//!
//! Each block's quants are widened to 8-lane f32 vectors and multiplied with the activations into
//! a block sum, which is scaled by the block's `d` into a row accumulator: no horizontal sum until
//! the row ends. Measured against the portable kernels (autovectorised, a horizontal sum per block)
//! on SmolLM2's matrices: see `docs/benchmarks.md`.

use super::f16;
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
}

impl Layout {
    const fn bytes(self) -> usize {
        match self {
            Layout::Q8_0 => 34,
            Layout::Q4_0 => 18,
            Layout::Q4_1 => 20,
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
    let blocks = x.len() / 32;
    assert!(
        x.len() == blocks * 32
            && row_bytes == blocks * layout.bytes()
            && xsums.len() == blocks
            && rows.len() >= out.len() * row_bytes,
        "rows are whole blocks of the activations' length"
    );
    for (r, o) in out.iter_mut().enumerate() {
        let row = &rows[r * row_bytes..(r + 1) * row_bytes];
        *o = match layout {
            Layout::Q8_0 => row_q8_0(row, x),
            Layout::Q4_0 => row_q4(row, x, xsums, false),
            Layout::Q4_1 => row_q4(row, x, xsums, true),
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
