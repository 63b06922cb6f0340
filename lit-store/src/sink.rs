//! Where a [`crate::StoreWriter`] puts objects, and how a finished store becomes visible.
//!
//! A sink must make a store visible atomically: until [`StoreSink::commit`] returns, nothing at the
//! destination opens as a valid store, whatever happens to the process.

use lit_core::manifest::MANIFEST_KEY;
use lit_core::{Error, Result};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Destination of a store being written.
pub trait StoreSink: Send {
    /// Where the store will appear, for messages.
    fn location(&self) -> String;
    /// Starts a new object at `key`; written data becomes part of the store only on commit.
    fn create_object(&mut self, key: &str) -> Result<Box<dyn ObjectWriter + '_>>;
    /// Whether object `key` was already written (by an earlier, interrupted run) with exactly
    /// `byte_len` bytes hashing to `checksum`, so a resumed copy can skip it. Default: never.
    fn existing_object(&mut self, key: &str, byte_len: u64, checksum: u64) -> Result<bool> {
        let _ = (key, byte_len, checksum);
        Ok(false)
    }
    /// Keeps what was written if the store is never committed (a copy that fails can then be
    /// resumed); by default an uncommitted store is removed where the sink can.
    fn keep_on_failure(&mut self) {}
    /// Bytes that can still be written at the destination; `None` when unknown or meaningless
    /// (object stores), in which case writes are not checked against it.
    fn free_space(&self) -> Option<u64> {
        None
    }
    /// Where objects wait until commit, if that is a place of its own (a local staging
    /// directory), for messages about what a failed write left behind.
    fn staging(&self) -> Option<String> {
        None
    }
    /// Publishes the store: writes `manifest` last and makes everything visible.
    fn commit(self: Box<Self>, manifest: &[u8]) -> Result<()>;
}

/// An object being written.
pub trait ObjectWriter: std::io::Write {
    /// Flushes and makes the object durable.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Writes a store into a new local directory.
///
/// Objects go to a hidden sibling directory `.NAME.lit-partial-PID-NANOS`; commit writes the
/// manifest there, syncs everything and renames the directory into place. A process killed at
/// any point leaves at most that hidden directory. A later write to the same destination takes
/// it over (when its writer process is gone), so `lit cp` can resume by skipping the objects
/// already there ([`StoreSink::existing_object`]); export rewrites them. The destination must
/// not exist.
#[derive(Debug)]
pub struct LocalDirSink {
    dst: PathBuf,
    tmp: PathBuf,
    /// Files written, synced together at commit so writeback overlaps the rest of the export.
    written: Vec<PathBuf>,
    committed: bool,
    /// Leave the staging directory behind when not committed (for resuming a copy).
    keep: bool,
}

impl LocalDirSink {
    /// Prepares to write a store at `dst`, which must not exist.
    pub fn create(dst: impl AsRef<Path>) -> Result<Self> {
        let dst = dst.as_ref().to_path_buf();
        if dst.exists() {
            return Err(Error::AlreadyExists {
                path: dst.display().to_string(),
            });
        }
        let name = dst
            .file_name()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{}: not a valid destination directory",
                    dst.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let parent = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(parent.display(), e))?;
        let stale = take_stale_partials(&parent, &name);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = parent.join(format!(
            ".{name}.lit-partial-{}-{nanos}",
            std::process::id()
        ));
        // Resume from the newest partial directory a dead writer left, if any.
        let adopted = stale.and_then(|old| fs::rename(&old, &tmp).ok());
        if adopted.is_none() {
            fs::create_dir(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
        }
        live_staging().insert(tmp.clone());
        Ok(LocalDirSink {
            dst,
            tmp,
            written: Vec::new(),
            committed: false,
            keep: false,
        })
    }

    /// The hidden directory objects are written to before commit.
    pub fn staging_dir(&self) -> &Path {
        &self.tmp
    }
}

/// Staging directories this process is writing now.
fn live_staging() -> std::sync::MutexGuard<'static, std::collections::HashSet<PathBuf>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Finds `.NAME.lit-partial-PID-*` directories left by writer processes that no longer run:
/// returns the newest and removes the others.
fn take_stale_partials(parent: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!(".{name}.lit-partial-");
    let entries = fs::read_dir(parent).ok()?;
    let mut stale: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let dead = if pid == std::process::id() {
            // Ours: stale unless a sink of this process is still writing it.
            !live_staging().contains(&entry.path())
        } else {
            !Path::new(&format!("/proc/{pid}")).exists()
        };
        if dead {
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            stale.push((modified, entry.path()));
        }
    }
    stale.sort();
    let newest = stale.pop().map(|(_, path)| path);
    for (_, path) in stale {
        let _ = fs::remove_dir_all(path);
    }
    newest
}

/// Whether a staging directory holds any object file.
fn holds_objects(tmp: &Path) -> bool {
    ["layers", "aux"]
        .iter()
        .any(|dir| fs::read_dir(tmp.join(dir)).is_ok_and(|mut entries| entries.next().is_some()))
}

/// Removes the staging directories (`.NAME.lit-partial-*`, beside `dst`) that interrupted or
/// failed writes of a store at `dst` left, whose writer processes are gone. Returns the one a
/// resumed copy would have taken over (the newest; older ones are removed too), or nothing when
/// there was none. Ones a running process is still writing are left alone.
pub fn remove_stale_staging(dst: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dst = dst.as_ref();
    let Some(name) = dst.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(Error::InvalidArgument(format!(
            "{}: not a valid destination directory",
            dst.display()
        )));
    };
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut removed = Vec::new();
    if let Some(newest) = take_stale_partials(&parent, &name) {
        // The others were removed already; this one too now.
        fs::remove_dir_all(&newest).map_err(|e| Error::io(newest.display(), e))?;
        removed.push(newest);
    }
    Ok(removed)
}

/// Removes files an adopted partial directory holds that this store does not list.
fn remove_unlisted(tmp: &Path, written: &[PathBuf]) {
    for dir in ["layers", "aux"] {
        let Ok(entries) = fs::read_dir(tmp.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            if !written.contains(&entry.path()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

struct LocalObject {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Write for LocalObject {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl ObjectWriter for LocalObject {
    fn finish(self: Box<Self>) -> Result<()> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(path.display(), e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path.display(), e))
    }
}

impl StoreSink for LocalDirSink {
    fn location(&self) -> String {
        self.dst.display().to_string()
    }

    fn create_object(&mut self, key: &str) -> Result<Box<dyn ObjectWriter + '_>> {
        let path = self.tmp.join(key);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        }
        let file = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        self.written.push(path.clone());
        Ok(Box::new(LocalObject {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
        }))
    }

    fn free_space(&self) -> Option<u64> {
        crate::space::available_bytes(&self.tmp)
    }

    fn staging(&self) -> Option<String> {
        Some(self.tmp.display().to_string())
    }

    fn keep_on_failure(&mut self) {
        self.keep = true;
    }

    fn existing_object(&mut self, key: &str, byte_len: u64, expected: u64) -> Result<bool> {
        let path = self.tmp.join(key);
        match fs::metadata(&path) {
            Ok(meta) if meta.len() == byte_len => {}
            _ => return Ok(false),
        }
        let mut hasher = lit_core::checksum::StreamingChecksum::new();
        let mut file = File::open(&path).map_err(|e| Error::io(path.display(), e))?;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut file, &mut chunk)
                .map_err(|e| Error::io(path.display(), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
        }
        if hasher.digest() != expected {
            return Ok(false);
        }
        self.written.push(path);
        Ok(true)
    }

    fn commit(mut self: Box<Self>, manifest: &[u8]) -> Result<()> {
        remove_unlisted(&self.tmp, &self.written);
        for path in &self.written {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(path.display(), e))?;
        }
        let path = self.tmp.join(MANIFEST_KEY);
        let mut file = File::create(&path).map_err(|e| Error::io(path.display(), e))?;
        file.write_all(manifest)
            .map_err(|e| Error::io(path.display(), e))?;
        file.sync_all().map_err(|e| Error::io(path.display(), e))?;
        for dir in ["layers", "aux", ""] {
            let d = self.tmp.join(dir);
            if d.is_dir() {
                File::open(&d)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io(d.display(), e))?;
            }
        }
        if self.dst.exists() {
            return Err(Error::AlreadyExists {
                path: self.dst.display().to_string(),
            });
        }
        fs::rename(&self.tmp, &self.dst).map_err(|e| Error::io(self.dst.display(), e))?;
        self.committed = true;
        if let Some(parent) = self.dst.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(parent).and_then(|f| f.sync_all());
        }
        Ok(())
    }
}

impl Drop for LocalDirSink {
    fn drop(&mut self) {
        // Kept for resuming only when it holds something.
        if !self.committed && (!self.keep || !holds_objects(&self.tmp)) {
            let _ = fs::remove_dir_all(&self.tmp);
        }
        live_staging().remove(&self.tmp);
    }
}
