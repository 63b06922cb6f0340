//! 64-byte aligned buffers handed out as [`Bytes`].
//!
//! Layers read into ordinary `Vec<u8>` are only guaranteed 1-byte alignment; Burn's zero-copy
//! paths reinterpret tensor bytes as `f32`/`f64` slices and need the element alignment, and SIMD
//! kernels prefer cache-line alignment. Since stored tensors are aligned to their element size
//! relative to a 64-byte aligned data section, a 64-byte aligned buffer keeps every tensor aligned.

use bytes::Bytes;

/// One cache line.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A zero-initialised, 64-byte aligned, growable-once byte buffer.
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` zero bytes. Large buffers come from `calloc`-style allocation, so the
    /// kernel's zero pages are used instead of a memset.
    pub(crate) fn zeroed(len: usize) -> Self {
        let lines = bytemuck::allocation::zeroed_vec(len.div_ceil(64));
        AlignedBuf { lines, len }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

/// Copies `data` into a 64-byte aligned [`Bytes`].
pub(crate) fn aligned_copy(data: &[u8]) -> Bytes {
    let mut buf = AlignedBuf::zeroed(data.len());
    buf.as_mut_slice().copy_from_slice(data);
    buf.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_exact_length() {
        for len in [0, 1, 63, 64, 65, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let b = aligned_copy(&data);
            assert_eq!(b.as_ref(), data.as_slice());
            assert_eq!(b.as_ptr() as usize % 64, 0);
        }
    }
}
