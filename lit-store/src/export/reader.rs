//! Export's tensor reader: a thread that reads (and converts) the next tensor while the writer
//! writes this one, through a few buffers the writer hands back once written.
//!
//! Buffers are reused across tensors and layers, so steady state allocates (and page-faults)
//! nothing, and peak memory stays near [`READ_BUFFERS`] tensors — near one for tensors above
//! [`LARGE_TENSOR`].

use lit_core::Result;
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

/// Tensor buffers in circulation between the reader thread and the writer: one being read, one
/// queued, one being written.
const READ_BUFFERS: usize = 3;

/// Tensors larger than this are read while no other tensor buffer is alive.
const LARGE_TENSOR: u64 = 32 << 20;

/// What a tensor read yields: its index and its bytes (or why they could not be read).
pub(super) type Read = (usize, Result<Recycled>);

/// Reads tensors ahead of the writer through recycled buffers; one for a whole export.
pub(super) struct TensorReader {
    /// Where written buffers come back to.
    home: Sender<Vec<u8>>,
    returned: Receiver<Vec<u8>>,
    /// Buffers in circulation (being read, queued or being written).
    buffers: usize,
}

impl TensorReader {
    pub(super) fn new() -> Self {
        let (home, returned) = channel();
        TensorReader {
            home,
            returned,
            buffers: 0,
        }
    }

    /// Reads tensors `order` on a reader thread — `len(i)` bytes each, `read(i, buf)` filling
    /// the buffer it is given — while `write` takes them, in that order, from the `next` it is
    /// handed (`None` once the reader has stopped). The reader stops after the first failed
    /// read. Returns what `write` returns.
    pub(super) fn run<T>(
        &mut self,
        order: &[usize],
        len: &(dyn Fn(usize) -> u64 + Sync),
        read: &(dyn Fn(usize, Vec<u8>) -> Result<Vec<u8>> + Sync),
        write: impl FnOnce(&mut dyn FnMut() -> Option<Read>) -> T,
    ) -> T {
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Read>(1);
            let this = &mut *self;
            let reader = scope.spawn(move || {
                for &i in order {
                    let Some(buf) = this.buffer_for(len(i)) else {
                        break;
                    };
                    let bytes = read(i, buf).map(|buf| Recycled {
                        buf,
                        home: this.home.clone(),
                    });
                    let failed = bytes.is_err();
                    if tx.send((i, bytes)).is_err() || failed {
                        break;
                    }
                }
            });
            let written = write(&mut || rx.recv().ok());
            drop(rx);
            let _ = reader.join();
            written
        })
    }

    /// A buffer for a tensor of `len` bytes: at most [`READ_BUFFERS`] circulate, and waiting
    /// for one to come back beats faulting in a new one. `None` if none can come back.
    fn buffer_for(&mut self, len: u64) -> Option<Vec<u8>> {
        if len > LARGE_TENSOR {
            // Large tensors pass one at a time through a single buffer, so peak memory stays
            // near the largest tensor (not READ_BUFFERS of them).
            let mut kept: Option<Vec<u8>> = None;
            for _ in 0..self.buffers {
                let Ok(back) = self.returned.recv() else {
                    break;
                };
                if kept.as_ref().is_none_or(|k| back.capacity() > k.capacity()) {
                    kept = Some(back);
                }
            }
            self.buffers = 1;
            return Some(kept.unwrap_or_default());
        }
        match self.returned.try_recv() {
            Ok(buf) => Some(buf),
            Err(_) if self.buffers < READ_BUFFERS => {
                self.buffers += 1;
                Some(Vec::new())
            }
            Err(_) => self.returned.recv().ok(),
        }
    }
}

/// A tensor buffer that returns to the reader when dropped.
pub(super) struct Recycled {
    buf: Vec<u8>,
    home: Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}
