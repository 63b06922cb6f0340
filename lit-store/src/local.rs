//! [`LocalSource`]: a store in a directory on a local disk.

use crate::aligned::BufferPool;
use async_trait::async_trait;
use bytes::Bytes;
use lit_core::checksum::{StreamingChecksum, TensorChecks};
use lit_core::limits::MAX_MANIFEST_BYTES;
use lit_core::manifest::MANIFEST_KEY;
use lit_core::source::check_range;
use lit_core::{Error, Manifest, ObjectId, ObjectInfo, Result, WeightSource};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How [`LocalSource`] reads layer files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Positioned reads (`pread`) into a 64-byte aligned buffer: one copy out of the page cache.
    /// A file truncated or replaced while it is read yields an error. The default: the bytes
    /// handed out are lit's own copy, whatever happens to the file afterwards.
    #[default]
    Pread,
    /// Memory-map the layer: no copy (a warm pass maps the page cache instead of copying it),
    /// pages unmapped when the buffer is dropped. Small unchecked ranges (under 1 MiB, e.g.
    /// embedding rows) are read with `pread`.
    ///
    /// A file truncated under a mapping cannot crash the process: a process-wide SIGBUS handler
    /// turns a fault inside a store mapping into zero pages and marks the mapping, and a layer
    /// whose pages vanished before its checksum was taken, or whose file changed, is an error
    /// ([`lit_core::Error::LengthMismatch`] or [`lit_core::Error::Changed`]). Bytes used
    /// after that can still have read zeros: whoever computes on them calls
    /// [`crate::check_mapped`] afterwards (lit-burn's executor does, before and after each
    /// use). Unrelated SIGBUS signals go to the handler installed before lit's, or kill the
    /// process as usual. Linux only: elsewhere, and when more than 4096 mappings are live,
    /// reads fall back to [`ReadMode::Pread`].
    Mmap,
    /// Direct reads (`O_DIRECT`) into page-aligned buffers, several large requests in flight:
    /// the disk writes straight into lit's buffer and the page cache is neither filled nor
    /// copied from, so streamed layers do not evict other cached data or hold memory twice.
    /// Each read goes to the disk, even for bytes the page cache holds.
    ///
    /// Where the filesystem refuses `O_DIRECT` (tmpfs before Linux 6.6, ramfs, some FUSE and
    /// network filesystems; any non-Linux system) reads fall back to [`ReadMode::Pread`]
    /// ([`LocalSource::direct_refused`] says so). A file truncated while it is read yields an
    /// error, as with `Pread`.
    Direct,
}

/// Size of each `pread`: the kernel's read-ahead keeps a sequential stream of 8 MiB requests
/// busy (measured here: 8 MiB reads ran 1.5× faster than 64 MiB ones and than one read per layer).
const READ_CHUNK: usize = 8 << 20;

/// A store in a local directory (`manifest.lit`, `layers/`, `aux/`).
#[derive(Debug)]
pub struct LocalSource {
    root: PathBuf,
    location: String,
    manifest: Manifest,
    mode: ReadMode,
    buffers: Arc<BufferPool>,
    /// Set when the filesystem refused a direct read: later reads use `pread`.
    direct_refused: AtomicBool,
}

impl LocalSource {
    /// Opens the store in directory `root`, reading and validating its manifest.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(root, ReadMode::default())
    }

    /// Opens the store in `root` with the given read mode.
    pub fn open_with(root: impl AsRef<Path>, mode: ReadMode) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let location = root.display().to_string();
        let path = root.join(MANIFEST_KEY);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                let why = if root.is_dir() {
                    "no manifest.lit in this directory (not a lit store, or an export that did not finish)"
                } else {
                    "no such store directory"
                };
                Error::not_found(format!("{location}: {why}"))
            } else {
                Error::io(path.display(), e)
            }
        })?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path.display(), e))?
            .len();
        if len > MAX_MANIFEST_BYTES {
            return Err(Error::LimitExceeded {
                context: path.display().to_string(),
                what: "manifest size",
                value: len,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io(path.display(), e))?;
        let manifest = Manifest::decode(&bytes, &location)?;
        // Idle buffers up to twice the largest layer: steady-state streaming recycles all its
        // buffers, including a model's largest layer (a tied embedding read once a pass) beside
        // its many smaller ones. With room for one largest buffer only, SmolLM2 streamed in
        // 33 MB grew to 230 MB of RSS: each pass's 30 MB buffer came fresh from a heap the small
        // ones had fragmented (docs/benchmarks.md).
        let largest = manifest
            .largest_layer_bytes()
            .next_multiple_of(crate::aligned::BUF_ALIGN as u64);
        let buffers = BufferPool::new(2 * largest as usize);
        Ok(LocalSource {
            root,
            location,
            manifest,
            mode,
            buffers,
            direct_refused: AtomicBool::new(false),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The read mode.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// Whether [`ReadMode::Direct`] fell back to `pread` because the store's filesystem refused
    /// direct I/O (false until a read found out, and in the other modes).
    pub fn direct_refused(&self) -> bool {
        self.direct_refused.load(Ordering::Relaxed)
    }

    /// Reads `range` of `buffered`'s file directly (its bytes handed to `on_bytes` in order as
    /// they arrive), or `None` where the filesystem refuses direct I/O (remembered: later reads
    /// go straight to `pread`).
    fn try_direct(
        &self,
        path: &Path,
        buffered: &File,
        range: Range<u64>,
        on_bytes: &mut dyn FnMut(&[u8]),
    ) -> std::io::Result<Option<Bytes>> {
        if self.direct_refused() {
            return Ok(None);
        }
        let result = match crate::direct::open(path)? {
            Some(direct) => crate::direct::read(&direct, buffered, range, &self.buffers, on_bytes),
            None => Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        };
        match result {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if crate::direct::refused(&e) => {
                self.direct_refused.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads `range` of object `id`, checked as `check` says (hashed chunk by chunk as it
    /// arrives).
    fn read_blocking(&self, id: ObjectId, range: Range<u64>, check: Check) -> Result<Bytes> {
        check_range(&self.manifest, id, &range)?;
        let info = self.manifest.object(id)?;
        let hashing = || Hashing::new(check, id, info, &self.manifest, &self.location, &range);
        let mut hash = hashing();
        let path = self.root.join(info.key);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                info.missing(&self.location)
            } else {
                Error::io(path.display(), e)
            }
        })?;
        let meta = file.metadata().map_err(|e| Error::io(path.display(), e))?;
        let actual = meta.len();
        if actual != info.byte_len {
            return Err(info.length_mismatch(&self.location, actual));
        }
        let len = (range.end - range.start) as usize;
        let io_err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                info.length_mismatch(
                    &self.location,
                    file.metadata().map(|m| m.len()).unwrap_or(0),
                )
            } else {
                Error::io(path.display(), e)
            }
        };
        if self.mode == ReadMode::Direct {
            // Hashed piece by piece while later pieces are still being read.
            if let Some(bytes) = self
                .try_direct(&path, &file, range.clone(), &mut |b| hash.update(b))
                .map_err(io_err)?
            {
                hash.finish()?;
                return Ok(bytes);
            }
            // Refused: whatever was hashed is discarded with the bytes.
            hash = hashing();
        }
        if self.mode == ReadMode::Mmap && (check != Check::None || len >= MAP_MIN) {
            let origin = crate::mmap::Origin::new(
                path.clone(),
                info.name.to_string(),
                format!("{}/{}", self.location, info.key),
                info.byte_len,
                &meta,
            );
            if let Some(bytes) =
                crate::mmap::map_range(&file, range.start, len, origin).map_err(io_err)?
            {
                // Hashing touches every page: a page that vanished meanwhile read as zeros,
                // which the check reports (by name) before the checksum would.
                hash.update(&bytes);
                if check != Check::None {
                    crate::mmap::check_mapped(&bytes)?;
                }
                hash.finish()?;
                return Ok(bytes);
            }
        }
        // Pread, Direct where the filesystem refused it, Mmap where no mapping could be made.
        let mut buf = self.buffers.take(len);
        if len >= PARALLEL_READ_MIN {
            pread_parallel(&file, buf.as_mut_slice(), range.start).map_err(io_err)?;
            hash.update(buf.as_mut_slice());
        } else {
            pread_exact(&file, buf.as_mut_slice(), range.start, |chunk| {
                hash.update(chunk)
            })
            .map_err(io_err)?;
        }
        hash.finish()?;
        Ok(buf.into_bytes())
    }
}

/// What [`LocalSource::read_blocking`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing (a range: embedding rows).
    None,
    /// The whole object against its checksum.
    Object,
    /// Each tensor inside the range against its own checksum.
    Tensors,
}

/// The hashing a [`Check`] asks for, fed the bytes in order as they arrive.
enum Hashing<'a> {
    None,
    Object(StreamingChecksum, ObjectInfo<'a>, &'a str),
    Tensors(TensorChecks<'a>),
}

impl<'a> Hashing<'a> {
    fn new(
        check: Check,
        id: ObjectId,
        info: ObjectInfo<'a>,
        manifest: &'a Manifest,
        location: &'a str,
        range: &Range<u64>,
    ) -> Self {
        match (check, id) {
            (Check::Object, _) => Hashing::Object(StreamingChecksum::new(), info, location),
            (Check::Tensors, ObjectId::Layer(i)) => Hashing::Tensors(TensorChecks::new(
                &manifest.layers[i],
                location,
                range.clone(),
            )),
            _ => Hashing::None,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hashing::None => {}
            Hashing::Object(hasher, ..) => hasher.update(bytes),
            Hashing::Tensors(checks) => checks.update(bytes),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Hashing::None => Ok(()),
            Hashing::Object(hasher, info, location) => {
                info.check_checksum(location, hasher.digest())
            }
            Hashing::Tensors(checks) => checks.finish(),
        }
    }
}

/// Unchecked ranges (`read_range`: embedding rows, tensors) smaller than this are read with
/// `pread` even in [`ReadMode::Mmap`]: the caller copies them anyway, and a mapping costs two
/// system calls and a fault per page.
const MAP_MIN: usize = 1 << 20;

/// Layers at least this large are read by [`READ_THREADS`] threads at once.
const PARALLEL_READ_MIN: usize = 32 << 20;

/// Readers of one large layer. One 8 MiB `pread` at a time leaves a virtual disk (and the page
/// cache copy) underused; measured here on a 705 MB layer: see docs/benchmarks.md.
const READ_THREADS: usize = 4;

/// Fills `buf` from `file` at `offset` with [`READ_THREADS`] threads taking [`READ_CHUNK`]
/// chunks in turn, so together they still sweep the file front to back (read-ahead keeps up).
fn pread_parallel(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut lanes: Vec<Vec<(u64, &mut [u8])>> = (0..READ_THREADS).map(|_| Vec::new()).collect();
    for (i, chunk) in buf.chunks_mut(READ_CHUNK).enumerate() {
        lanes[i % READ_THREADS].push((offset + (i * READ_CHUNK) as u64, chunk));
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

/// Fills `buf` from `file` at `offset` in [`READ_CHUNK`] reads, handing each chunk to `on_chunk`
/// while it is still in cache (used to checksum while reading).
pub(crate) fn pread_exact(
    file: &File,
    buf: &mut [u8],
    offset: u64,
    mut on_chunk: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut at = offset;
    for chunk in buf.chunks_mut(READ_CHUNK) {
        file.read_exact_at(chunk, at)?;
        on_chunk(chunk);
        at += chunk.len() as u64;
    }
    Ok(())
}

#[async_trait]
impl WeightSource for LocalSource {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn location(&self) -> &str {
        &self.location
    }

    /// Reads synchronously: local reads are short and the executor calls sources from its own
    /// fetch threads.
    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
        self.read_blocking(id, range, Check::None)
    }

    async fn read_object(&self, id: ObjectId) -> Result<Bytes> {
        let len = self.manifest.object(id)?.byte_len;
        self.read_blocking(id, 0..len, Check::Object)
    }

    /// Hashes each tensor while later bytes are still being read.
    async fn read_tensors(&self, index: usize, range: Range<u64>) -> Result<Bytes> {
        self.read_blocking(ObjectId::Layer(index), range, Check::Tensors)
    }
}
