//! [`DiskCachedSource`]: a local-disk tier under a slower source (an object store).
//!
//! # Policy
//! Like [`crate::CachedSource`], a fixed set rather than LRU: inference sweeps every layer each
//! pass, where LRU gets no hits once the model is larger than the cache. The objects kept are
//! decided from the manifest alone — the auxiliary files, then layers in execution order, while
//! they fit in `max_bytes` — so every process using the same cache agrees without coordinating.
//!
//! # Layout and sharing
//! Objects are files named by content, `{checksum:016x}-{len}`, in one directory that several
//! stores and several processes can share. A file is written under a temporary name and renamed
//! into place, so readers never see a partial one, and every read is checked against the
//! manifest's checksum (a damaged file is deleted and fetched again). To make room, files that
//! belong to *other* stores are evicted, oldest first; the current store's never are. Processes
//! filling the cache at the same moment can overshoot `max_bytes` by the objects they write
//! concurrently.
//!
//! # Free space
//! The tier never takes the last of a disk: an object is written only if the filesystem keeps
//! at least [`DEFAULT_MIN_FREE`] (or [`DiskCachedSource::with_min_free`]) free after it, checked
//! before each write; otherwise the object is served without being cached.

use crate::aligned::{AlignedBuf, BufferPool};
use crate::local::pread_exact;
use async_trait::async_trait;
use bytes::Bytes;
use lit_core::checksum::StreamingChecksum;
use lit_core::source::check_range;
use lit_core::{Error, Manifest, ObjectId, Result, WeightSource};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The default cache directory: `$LIT_CACHE_DIR`, else `$XDG_CACHE_HOME/lit/objects`, else
/// `~/.cache/lit/objects`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LIT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("lit").join("objects")
}

/// Counters of a [`DiskCachedSource`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCacheStats {
    /// Whole-object reads served from disk.
    pub hits: u64,
    /// Whole-object reads that went to the inner source.
    pub misses: u64,
    /// Bytes read from the inner source (ranges included).
    pub bytes_from_inner: u64,
    /// Objects written into the cache.
    pub admitted: u64,
}

/// Free space the disk tier leaves on its filesystem by default: 1 GiB.
pub const DEFAULT_MIN_FREE: u64 = 1 << 30;

/// A disk cache of at most `max_bytes` over source `S` (see the module docs).
#[derive(Debug)]
pub struct DiskCachedSource<S> {
    inner: S,
    dir: PathBuf,
    max_bytes: u64,
    /// Free space always left on the cache's filesystem.
    min_free: u64,
    /// Whether each object (layers, then auxiliary files) belongs to the cached set.
    kept: Vec<bool>,
    /// File names of this store's objects: never evicted on its behalf.
    own: HashSet<String>,
    admit: Mutex<()>,
    /// Read buffers recycled across layers (no page faults in steady state).
    buffers: std::sync::Arc<BufferPool>,
    hits: AtomicU64,
    misses: AtomicU64,
    bytes_from_inner: AtomicU64,
    admitted: AtomicU64,
}

/// Prefix of files being written into the cache.
const TMP_PREFIX: &str = ".tmp-";

fn file_name(checksum: u64, len: u64) -> String {
    format!("{checksum:016x}-{len}")
}

fn is_cache_file(name: &str) -> bool {
    name.split_once('-').is_some_and(|(hash, len)| {
        hash.len() == 16
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && !len.is_empty()
            && len.bytes().all(|b| b.is_ascii_digit())
    })
}

impl<S: WeightSource> DiskCachedSource<S> {
    /// Caches `inner` in directory `dir` (created if missing) within `max_bytes`.
    pub fn new(inner: S, dir: impl AsRef<Path>, max_bytes: u64) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let m = inner.manifest();
        let largest = m.largest_layer_bytes();
        let ids = object_ids(m);
        let mut kept = vec![false; ids.len()];
        let mut own = HashSet::new();
        let mut planned = 0u64;
        // Auxiliary files first (small, needed before the first layer), then layers in order.
        let order = (m.layers.len()..ids.len()).chain(0..m.layers.len());
        for slot in order {
            let info = m.object(ids[slot])?;
            own.insert(file_name(info.checksum, info.byte_len));
            if planned + info.byte_len <= max_bytes {
                planned += info.byte_len;
                kept[slot] = true;
            }
        }
        Ok(DiskCachedSource {
            inner,
            dir,
            max_bytes,
            min_free: DEFAULT_MIN_FREE,
            kept,
            own,
            admit: Mutex::new(()),
            // Two of the largest, as `LocalSource` keeps: with one, returning the largest layer
            // evicted every other idle buffer, and each pass faulted its layers in afresh.
            buffers: BufferPool::new(
                usize::try_from(
                    largest
                        .next_multiple_of(crate::aligned::BUF_ALIGN as u64)
                        .saturating_mul(2),
                )
                .unwrap_or(usize::MAX),
            ),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bytes_from_inner: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
        })
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Leaves at least `bytes` free on the cache's filesystem (default [`DEFAULT_MIN_FREE`]):
    /// objects that would eat into it are served without being cached.
    pub fn with_min_free(mut self, bytes: u64) -> Self {
        self.min_free = bytes;
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters so far.
    pub fn stats(&self) -> DiskCacheStats {
        DiskCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_from_inner: self.bytes_from_inner.load(Ordering::Relaxed),
            admitted: self.admitted.load(Ordering::Relaxed),
        }
    }

    /// Whether object `id` belongs to the set this cache keeps on disk.
    pub fn is_kept(&self, id: ObjectId) -> bool {
        let slot = match id {
            ObjectId::Layer(i) => Some(i),
            ObjectId::Aux(i) => Some(self.inner.manifest().layers.len() + i),
        };
        slot.and_then(|s| self.kept.get(s))
            .copied()
            .unwrap_or(false)
    }

    fn path_of(&self, id: ObjectId) -> Result<PathBuf> {
        let info = self.inner.manifest().object(id)?;
        Ok(self.dir.join(file_name(info.checksum, info.byte_len)))
    }

    /// The object from disk if present and intact; a damaged file is removed.
    fn read_cached(&self, id: ObjectId) -> Option<Bytes> {
        let info = self.inner.manifest().object(id).ok()?;
        let path = self.path_of(id).ok()?;
        let file = File::open(&path).ok()?;
        if file.metadata().ok()?.len() != info.byte_len {
            let _ = fs::remove_file(&path);
            return None;
        }
        let mut buf = self.buffers.take(usize::try_from(info.byte_len).ok()?);
        let mut hasher = StreamingChecksum::new();
        if buf.as_mut_slice().len() >= PARALLEL_READ_MIN {
            // As `LocalSource` reads a large layer: one thread copying out of the page cache
            // made the second run 1.7× slower than a local store (docs/benchmarks.md).
            if pread_parallel(&file, buf.as_mut_slice()).is_err() {
                return None;
            }
            hasher.update(buf.as_mut_slice());
        } else if pread_exact(&file, buf.as_mut_slice(), 0, |chunk| hasher.update(chunk)).is_err() {
            // Small objects: in chunks, each hashed while it is still in cache.
            return None;
        }
        if hasher.digest() != info.checksum {
            let _ = fs::remove_file(&path);
            return None;
        }
        Some(buf.into_bytes())
    }

    /// Writes a verified object into the cache if it fits, evicting other stores' files.
    fn store(&self, id: ObjectId, bytes: &[u8]) -> Result<()> {
        let path = self.path_of(id)?;
        let _one_at_a_time = self.admit.lock().unwrap_or_else(|e| e.into_inner());
        if path.exists() {
            return Ok(());
        }
        if !self.make_room(bytes.len() as u64) {
            return Ok(());
        }
        let available = crate::space::available_bytes(&self.dir);
        if !crate::space::fits_keeping(bytes.len() as u64, available, self.min_free) {
            return Ok(());
        }
        // A uniquely named temporary file (O_EXCL), renamed into place once complete.
        let written = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)
            .and_then(|mut tmp| {
                tmp.write_all(bytes)?;
                tmp.persist(&path).map_err(|e| e.error)?;
                Ok(())
            });
        if let Err(e) = written {
            return Err(Error::io(path.display(), e));
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Evicts other stores' files, oldest first, until `need` more bytes fit in the budget.
    fn make_room(&self, need: u64) -> bool {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return false;
        };
        let mut used = 0u64;
        let mut foreign = Vec::new();
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files a crashed writer left: gone after an hour.
            if name.starts_with(TMP_PREFIX)
                && meta
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600)
                && fs::remove_file(entry.path()).is_ok()
            {
                continue;
            }
            used += meta.len();
            if is_cache_file(&name) && !self.own.contains(&name) {
                let when = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                foreign.push((when, meta.len(), entry.path()));
            }
        }
        foreign.sort();
        let mut foreign = foreign.into_iter();
        while used + need > self.max_bytes {
            let Some((_, len, path)) = foreign.next() else {
                return false;
            };
            if fs::remove_file(path).is_ok() {
                used -= len;
            }
        }
        true
    }
}

/// Objects at least this large are read by [`READ_THREADS`] threads at once.
const PARALLEL_READ_MIN: usize = 32 << 20;
/// Readers of one large object.
const READ_THREADS: usize = 4;
/// Bytes each reader takes in turn, so together they sweep the file front to back.
const READ_CHUNK: usize = 8 << 20;

/// Fills `buf` from the start of `file` with [`READ_THREADS`] threads taking [`READ_CHUNK`]
/// chunks in turn.
fn pread_parallel(file: &File, buf: &mut [u8]) -> std::io::Result<()> {
    let mut lanes: Vec<Vec<(u64, &mut [u8])>> = (0..READ_THREADS).map(|_| Vec::new()).collect();
    for (i, chunk) in buf.chunks_mut(READ_CHUNK).enumerate() {
        lanes[i % READ_THREADS].push(((i * READ_CHUNK) as u64, chunk));
    }
    std::thread::scope(|scope| {
        let readers: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                scope.spawn(move || {
                    lane.into_iter()
                        .try_for_each(|(at, chunk)| file.read_exact_at(chunk, at))
                })
            })
            .collect();
        readers.into_iter().try_for_each(|r| {
            r.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a read thread panicked")))
        })
    })
}

fn object_ids(m: &Manifest) -> Vec<ObjectId> {
    (0..m.layers.len())
        .map(ObjectId::Layer)
        .chain((0..m.aux_files.len()).map(ObjectId::Aux))
        .collect()
}

#[async_trait]
impl<S: WeightSource> WeightSource for DiskCachedSource<S> {
    fn manifest(&self) -> &Manifest {
        self.inner.manifest()
    }

    fn location(&self) -> &str {
        self.inner.location()
    }

    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
        check_range(self.inner.manifest(), id, &range)?;
        if self.is_kept(id) {
            let info = self.inner.manifest().object(id)?;
            if let Ok(file) = File::open(self.path_of(id)?)
                && file.metadata().is_ok_and(|m| m.len() == info.byte_len)
            {
                let mut buf = AlignedBuf::zeroed((range.end - range.start) as usize);
                if file.read_exact_at(buf.as_mut_slice(), range.start).is_ok() {
                    return Ok(buf.into_bytes());
                }
            }
        }
        let bytes = self.inner.read_range(id, range).await?;
        self.bytes_from_inner
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// From the tier when the layer is there (each tensor checked against its own checksum:
    /// the file may have changed since it was verified whole). Otherwise a layer the tier keeps
    /// is fetched whole, verified and kept, and the range copied out of it, so streaming a
    /// layer in pieces fills the tier as streaming it whole does (in the first pass the whole
    /// layer is held for a moment beside the piece).
    async fn read_tensors(&self, index: usize, range: Range<u64>) -> Result<Bytes> {
        let id = ObjectId::Layer(index);
        check_range(self.inner.manifest(), id, &range)?;
        if !self.is_kept(id) {
            let bytes = self.inner.read_tensors(index, range).await?;
            self.bytes_from_inner
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return Ok(bytes);
        }
        let layer = &self.inner.manifest().layers[index];
        if let Ok(file) = File::open(self.path_of(id)?)
            && file.metadata().is_ok_and(|m| m.len() == layer.byte_len)
        {
            let mut buf = self.buffers.take((range.end - range.start) as usize);
            let mut checks =
                lit_core::checksum::TensorChecks::new(layer, self.location(), range.clone());
            if pread_exact(&file, buf.as_mut_slice(), range.start, |c| checks.update(c)).is_ok()
                && checks.finish().is_ok()
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(buf.into_bytes());
            }
        }
        match self.read_object(id).await {
            Ok(whole) => {
                let mut buf = self.buffers.take((range.end - range.start) as usize);
                buf.as_mut_slice()
                    .copy_from_slice(&whole[range.start as usize..range.end as usize]);
                Ok(buf.into_bytes())
            }
            // A layer that cannot be kept whole (damaged elsewhere) may still hold these
            // tensors intact: the inner source checks them one by one.
            Err(_) => {
                let bytes = self.inner.read_tensors(index, range).await?;
                self.bytes_from_inner
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(bytes)
            }
        }
    }

    async fn read_object(&self, id: ObjectId) -> Result<Bytes> {
        if !self.is_kept(id) {
            let bytes = self.inner.read_object(id).await?;
            self.bytes_from_inner
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return Ok(bytes);
        }
        if let Some(bytes) = self.read_cached(id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let bytes = self.inner.read_object(id).await?;
        self.bytes_from_inner
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // A cache that cannot be written (disk full, read-only) only costs speed.
        let _ = self.store(id, &bytes);
        Ok(bytes)
    }
}
