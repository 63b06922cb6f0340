//! Page-aligned buffers handed out as [`Bytes`].
//!
//! Layers read into ordinary `Vec<u8>` are only guaranteed 1-byte alignment; Burn's zero-copy
//! paths reinterpret tensor bytes as `f32`/`f64` slices and need the element alignment, and SIMD
//! kernels prefer cache-line alignment. Since stored tensors are aligned to their element size
//! relative to a 64-byte aligned data section, a 64-byte aligned buffer keeps every tensor aligned.
//! Buffers are aligned to a whole page (4096 bytes, a multiple of 64) because direct reads
//! (`O_DIRECT`, [`crate::direct`]) need the memory they fill aligned to the device's blocks.

use bytes::Bytes;
use std::sync::{Arc, Mutex, Weak};

/// Alignment (and allocation unit) of every buffer: one page.
pub(crate) const BUF_ALIGN: usize = 4096;

/// One page.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
struct Line([u8; BUF_ALIGN]);

/// A zero-initialised, page-aligned byte buffer.
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBuf {
    /// Bytes the buffer can hold without reallocating.
    fn capacity(&self) -> usize {
        self.lines.len() * BUF_ALIGN
    }

    /// A buffer of `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> Self {
        let lines = bytemuck::allocation::zeroed_vec(len.div_ceil(BUF_ALIGN));
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

/// Buffers smaller than this are not kept for reuse.
const MIN_POOLED_BYTES: usize = 1 << 20;

/// Recycles read buffers so steady-state streaming reuses memory that is already mapped and
/// faulted in: a fresh buffer costs a page fault and a zeroed page per 4 KiB, which on a fast disk
/// costs about as much as the read itself. Holds at most `max_idle_bytes` of idle buffers.
#[derive(Debug)]
pub(crate) struct BufferPool {
    idle: Mutex<Vec<AlignedBuf>>,
    max_idle_bytes: usize,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} of {} bytes)", self.len, self.capacity())
    }
}

impl BufferPool {
    pub(crate) fn new(max_idle_bytes: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            idle: Mutex::new(Vec::new()),
            max_idle_bytes,
        })
    }

    /// A buffer of `len` bytes (contents unspecified: callers overwrite all of it), reusing an idle
    /// one of a close size when there is one.
    pub(crate) fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.iter()
                .position(|b| {
                    b.capacity() >= len && b.capacity() <= len.saturating_mul(2).max(BUF_ALIGN)
                })
                .map(|i| idle.swap_remove(i))
        };
        let mut buf = reused.unwrap_or_else(|| AlignedBuf::zeroed(len));
        buf.len = len;
        PooledBuf {
            buf: Some(buf),
            pool: Arc::downgrade(self),
        }
    }

    /// Keeps `buf` for reuse, dropping the smallest idle buffers if the pool would exceed its
    /// limit.
    fn give_back(&self, buf: AlignedBuf) {
        // Small buffers (ranged reads of a few rows) cost little to allocate, and keeping them
        // would push out the large ones the layers need.
        if buf.capacity() > self.max_idle_bytes || buf.capacity() < MIN_POOLED_BYTES {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(buf);
        while idle.iter().map(AlignedBuf::capacity).sum::<usize>() > self.max_idle_bytes {
            // The smallest goes first: a large buffer costs the most to fault in again, and a
            // model's largest layer (a tied embedding loaded once a pass) must find its buffer
            // after the many small layers of the pass came and went.
            let smallest = (0..idle.len())
                .min_by_key(|&i| idle[i].capacity())
                .unwrap_or_default();
            idle.swap_remove(smallest);
        }
    }
}

/// A buffer from a [`BufferPool`], returned to it when the last [`Bytes`] over it drops.
pub(crate) struct PooledBuf {
    buf: Option<AlignedBuf>,
    pool: Weak<BufferPool>,
}

impl PooledBuf {
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        self.buf
            .as_mut()
            .map(AlignedBuf::as_mut_slice)
            .unwrap_or_default()
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self.buf
            .as_ref()
            .map(AlignedBuf::as_ref)
            .unwrap_or_default()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let (Some(buf), Some(pool)) = (self.buf.take(), self.pool.upgrade()) {
            pool.give_back(buf);
        }
    }
}

/// Copies `data` into a page-aligned [`Bytes`].
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
            assert_eq!(b.as_ptr() as usize % BUF_ALIGN, 0);
        }
    }

    #[test]
    fn pool_reuses_returned_buffers_within_its_limit() {
        const MIB: usize = 1 << 20;
        let pool = BufferPool::new(4 * MIB);
        let first = pool.take(3 * MIB / 2).into_bytes();
        let ptr = first.as_ptr();
        drop(first);
        let mut again = pool.take(5 * MIB / 4);
        assert_eq!(
            again.as_mut_slice().as_ptr(),
            ptr,
            "a close size reuses the idle buffer"
        );
        assert_eq!(again.as_mut_slice().len(), 5 * MIB / 4);
        drop(again);
        let big = pool.take(5 * MIB).into_bytes();
        drop(big); // above the idle limit: freed, not kept
        let tiny = pool.take(4096).into_bytes();
        drop(tiny); // a few rows: freed, not kept
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        // Returning buffers beyond the limit drops the smallest idle ones.
        let (a, b) = (pool.take(3 * MIB), pool.take(2 * MIB));
        drop(a.into_bytes());
        drop(b.into_bytes());
        let idle = pool.idle.lock().unwrap();
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].capacity(), 3 * MIB);
    }
}
