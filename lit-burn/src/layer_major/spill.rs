//! The spill tier: activations stay in memory up to a byte budget shared by every
//! [`Activations`] of the tier; the rest go to anonymous files on local disk and are read back
//! when their turn comes.
//!
//! Spill files are created with [`tempfile::tempfile_in`]: unlinked from the start (`O_TMPFILE`
//! on Linux), so they never show in the directory and vanish with the process, even a killed one.

use crate::error::{Error, Result};
use burn::tensor::{DType, Device, Tensor, TensorData};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a [`SpillTier`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Tensors written to disk because the memory budget was full.
    pub tensors_spilled: u64,
    /// Bytes written to disk.
    pub bytes_spilled: u64,
    /// Bytes read back from disk.
    pub bytes_read_back: u64,
    /// Most bytes of activations held in memory at once (what the budget bounds).
    pub peak_memory_bytes: u64,
}

/// Where the activations between stages of a [`LayerMajor`](super::LayerMajor) run live: in
/// memory up to `budget` bytes, beyond it in a directory on local disk.
///
/// Cheap to clone (the clones share the budget and the counters).
#[derive(Debug, Clone)]
pub struct SpillTier {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    budget: u64,
    state: Mutex<TierState>,
}

#[derive(Debug, Default)]
struct TierState {
    in_memory: u64,
    stats: SpillStats,
}

impl SpillTier {
    /// A tier holding at most `budget` bytes of activations in memory and spilling the rest to
    /// files in `dir`. Creates (and removes) one spill file now, so an unwritable directory is
    /// an error here rather than in the middle of a run.
    pub fn new(dir: impl Into<PathBuf>, budget: u64) -> Result<Self> {
        let dir = dir.into();
        tempfile::tempfile_in(&dir).map_err(|source| Error::Spill {
            dir: dir.clone(),
            what: "cannot create a spill file".into(),
            source,
        })?;
        Ok(SpillTier {
            shared: Arc::new(Shared {
                dir,
                budget,
                state: Mutex::new(TierState::default()),
            }),
        })
    }

    /// A tier that never spills (no budget; the directory is never used).
    pub fn in_memory() -> Self {
        SpillTier {
            shared: Arc::new(Shared {
                dir: std::env::temp_dir(),
                budget: u64::MAX,
                state: Mutex::new(TierState::default()),
            }),
        }
    }

    /// The memory budget for activations, in bytes.
    pub fn budget(&self) -> u64 {
        self.shared.budget
    }

    /// The directory spill files go to.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Bytes of activations in memory now.
    pub fn memory_bytes(&self) -> u64 {
        self.lock().in_memory
    }

    /// The counters so far.
    pub fn stats(&self) -> SpillStats {
        self.lock().stats
    }

    /// An empty list of activations in this tier.
    pub fn activations<const D: usize>(&self) -> Activations<D> {
        Activations {
            tier: self.clone(),
            slots: VecDeque::new(),
            memory_bytes: 0,
            file: None,
            device: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TierState> {
        // A panic elsewhere cannot leave the counters inconsistent: keep going.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes `bytes` of the memory budget if they fit.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        let mut s = self.lock();
        if s.in_memory.saturating_add(bytes) > self.shared.budget {
            return false;
        }
        s.in_memory += bytes;
        s.stats.peak_memory_bytes = s.stats.peak_memory_bytes.max(s.in_memory);
        true
    }

    /// Counts one tensor of `bytes` written to disk.
    pub(crate) fn count_spilled(&self, bytes: u64) {
        let mut s = self.lock();
        s.stats.tensors_spilled += 1;
        s.stats.bytes_spilled += bytes;
    }

    /// Counts `bytes` read back from disk.
    pub(crate) fn count_read_back(&self, bytes: u64) {
        self.lock().stats.bytes_read_back += bytes;
    }

    pub(crate) fn release(&self, bytes: u64) {
        let mut s = self.lock();
        s.in_memory = s.in_memory.saturating_sub(bytes);
    }

    pub(crate) fn error(&self, what: String, source: std::io::Error) -> Error {
        Error::Spill {
            dir: self.shared.dir.clone(),
            what,
            source,
        }
    }
}

/// One tensor of a list: in memory, or at a place in the list's spill file.
enum Slot<const D: usize> {
    Memory(Box<Tensor<D>>, u64),
    Disk {
        offset: u64,
        len: u64,
        shape: [usize; D],
        dtype: DType,
    },
}

/// An ordered list of tensors (one per micro-batch) in a [`SpillTier`]: pushed at the back,
/// taken from the front by iterating. Tensors that do not fit in the tier's memory budget when
/// pushed go to the list's spill file.
pub struct Activations<const D: usize> {
    tier: SpillTier,
    slots: VecDeque<Slot<D>>,
    /// Bytes of `slots` held in memory (returned to the tier on drop).
    memory_bytes: u64,
    file: Option<(File, u64)>,
    device: Option<Device>,
}

impl<const D: usize> std::fmt::Debug for Activations<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activations")
            .field("len", &self.len())
            .field("spilled", &self.spilled())
            .field("memory_bytes", &self.memory_bytes)
            .finish()
    }
}

impl<const D: usize> Activations<D> {
    /// Tensors left in the list.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no tensor is left.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Tensors left that are on disk.
    pub fn spilled(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Disk { .. }))
            .count()
    }

    /// Appends `tensor`: kept in memory if the tier's budget has room, otherwise written to disk.
    pub fn push(&mut self, tensor: Tensor<D>) -> Result<()> {
        if self.device.is_none() {
            self.device = Some(tensor.device());
        }
        let bytes = (tensor.shape().num_elements() * tensor.dtype().size()) as u64;
        if self.tier.reserve(bytes) {
            self.memory_bytes += bytes;
            self.slots.push_back(Slot::Memory(Box::new(tensor), bytes));
            return Ok(());
        }
        let dtype = tensor.dtype();
        let shape = tensor.dims();
        let data = tensor.into_data();
        let bytes = data.as_bytes();
        let (file, end) = match &mut self.file {
            Some(f) => f,
            None => {
                let file = tempfile::tempfile_in(self.tier.dir())
                    .map_err(|e| self.tier.error("cannot create a spill file".into(), e))?;
                self.file.insert((file, 0))
            }
        };
        let offset = *end;
        file.write_all_at(bytes, offset).map_err(|e| {
            self.tier
                .error(format!("writing {} bytes of activations", bytes.len()), e)
        })?;
        let len = bytes.len() as u64;
        *end += len;
        self.tier.count_spilled(len);
        self.slots.push_back(Slot::Disk {
            offset,
            len,
            shape,
            dtype,
        });
        Ok(())
    }

    /// Takes the front tensor (read back from disk if it was spilled).
    pub fn pop_front(&mut self) -> Option<Result<Tensor<D>>> {
        let slot = self.slots.pop_front()?;
        Some(match slot {
            Slot::Memory(tensor, bytes) => {
                self.memory_bytes -= bytes;
                self.tier.release(bytes);
                Ok(*tensor)
            }
            Slot::Disk {
                offset,
                len,
                shape,
                dtype,
            } => self.read_back(offset, len, shape, dtype),
        })
    }

    fn read_back(
        &mut self,
        offset: u64,
        len: u64,
        shape: [usize; D],
        dtype: DType,
    ) -> Result<Tensor<D>> {
        let (Some((file, _)), Some(device)) = (&self.file, &self.device) else {
            return Err(Error::InvalidArgument(
                "a spilled tensor without its spill file".into(),
            ));
        };
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| self.tier.error(format!("reading back {len} bytes"), e))?;
        self.tier.count_read_back(len);
        let data = TensorData::from_bytes_vec(buf, shape, dtype);
        Ok(Tensor::from_data(data, (device, dtype)))
    }
}

impl<const D: usize> Iterator for Activations<D> {
    type Item = Result<Tensor<D>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pop_front()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<const D: usize> Drop for Activations<D> {
    fn drop(&mut self) {
        self.tier.release(self.memory_bytes);
    }
}
