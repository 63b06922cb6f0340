//! [`LocalSource`]: a store in a directory on a local disk.

use crate::aligned::AlignedBuf;
use async_trait::async_trait;
use bytes::Bytes;
use lit_core::limits::MAX_MANIFEST_BYTES;
use lit_core::manifest::MANIFEST_KEY;
use lit_core::source::check_range;
use lit_core::{Error, Manifest, ObjectId, Result, WeightSource};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How [`LocalSource`] reads layer files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Positioned reads (`pread`) into a 64-byte aligned buffer: one copy out of the page cache.
    /// A file truncated or replaced while it is read yields an error. The default.
    #[default]
    Pread,
    /// Memory-map the layer: no copy, pages unmapped when the buffer is dropped.
    ///
    /// If another process truncates a mapped file, touching a missing page kills the process
    /// with SIGBUS. Use only for stores nobody rewrites while they are read.
    Mmap,
}

/// Reads below this size are one `pread`; larger ones are split across threads so several
/// requests are in flight (virtual disks and NVMe deliver more bandwidth at queue depth > 1).
const PARALLEL_READ_MIN: usize = 32 << 20;
/// Size of each parallel read.
const READ_CHUNK: usize = 8 << 20;
/// Threads used for one parallel read.
const READ_THREADS: usize = 4;

/// A store in a local directory (`manifest.lit`, `layers/`, `aux/`).
#[derive(Debug)]
pub struct LocalSource {
    root: PathBuf,
    location: String,
    manifest: Manifest,
    mode: ReadMode,
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
        Ok(LocalSource {
            root,
            location,
            manifest,
            mode,
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

    fn read_blocking(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
        check_range(&self.manifest, id, &range)?;
        let info = self.manifest.object(id)?;
        let path = self.root.join(info.key);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!(
                    "{}: object {} of `{}` is missing",
                    self.location, info.key, info.name
                ))
            } else {
                Error::io(path.display(), e)
            }
        })?;
        let actual = file
            .metadata()
            .map_err(|e| Error::io(path.display(), e))?
            .len();
        if actual != info.byte_len {
            return Err(Error::LengthMismatch {
                layer: info.name.to_string(),
                key: format!("{}/{}", self.location, info.key),
                expected: info.byte_len,
                actual,
            });
        }
        let len = (range.end - range.start) as usize;
        let io_err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::LengthMismatch {
                    layer: info.name.to_string(),
                    key: format!("{}/{}", self.location, info.key),
                    expected: info.byte_len,
                    actual: file.metadata().map(|m| m.len()).unwrap_or(0),
                }
            } else {
                Error::io(path.display(), e)
            }
        };
        match self.mode {
            ReadMode::Mmap => crate::mmap::map_range(&file, range.start, len).map_err(io_err),
            ReadMode::Pread => {
                let mut buf = AlignedBuf::zeroed(len);
                pread_exact(&file, buf.as_mut_slice(), range.start).map_err(io_err)?;
                Ok(buf.into_bytes())
            }
        }
    }
}

/// Fills `buf` from `file` at `offset`, with several reads in flight for large buffers.
fn pread_exact(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    if buf.len() < PARALLEL_READ_MIN {
        return file.read_exact_at(buf, offset);
    }
    let chunks: Vec<(usize, &mut [u8])> = buf
        .chunks_mut(READ_CHUNK)
        .enumerate()
        .map(|(i, c)| (i * READ_CHUNK, c))
        .collect();
    let queue = std::sync::Mutex::new(chunks.into_iter());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..READ_THREADS)
            .map(|_| {
                s.spawn(|| -> std::io::Result<()> {
                    loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                        let Some((at, chunk)) = next else {
                            return Ok(());
                        };
                        file.read_exact_at(chunk, offset + at as u64)?;
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("read thread panicked")))
        })
    })
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
        self.read_blocking(id, range)
    }
}
