//! The one place lit maps files into memory, and what makes reading a mapping safe.
//!
//! A mapped page whose file another process truncated raises SIGBUS when touched, which no Rust
//! code can catch. Every store mapping is therefore registered with [`guard`], whose SIGBUS
//! handler turns a fault inside it into zero pages and a mark; [`check_mapped`] turns that mark,
//! or a file that changed since it was mapped, into an error naming the layer. The reader checks
//! after hashing a layer (which touches every page), and the executor before and after each use.
//! So a store truncated or replaced under a mapping gives an error, never a crash, and never a
//! silently zeroed layer that passed its checksum.
//!
//! Only Linux has the handler; elsewhere nothing is mapped and reads fall back to `pread`.

#[cfg(target_os = "linux")]
mod guard;

use bytes::Bytes;
use lit_core::{Error, Result};
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where a mapping's bytes came from, for [`check_mapped`]'s errors and identity check.
#[derive(Debug)]
pub(crate) struct Origin {
    /// The file as it was opened.
    path: PathBuf,
    /// Layer (or auxiliary file) name.
    layer: String,
    /// `location/key`, as errors name objects.
    key: String,
    /// The file's length in the manifest.
    expected_len: u64,
    /// The file when it was mapped.
    identity: Identity,
    /// Set when the mapping is dropped after faults, so a [`MappedWatch`] that outlives the
    /// mapping still sees them.
    faulted: AtomicBool,
}

impl Origin {
    /// The origin of a mapping of `path` (layer `layer`, `key` as errors name it, `expected_len`
    /// bytes in the manifest) as `meta` describes the file.
    pub(crate) fn new(
        path: PathBuf,
        layer: String,
        key: String,
        expected_len: u64,
        meta: &Metadata,
    ) -> Self {
        Origin {
            path,
            layer,
            key,
            expected_len,
            identity: Identity::of(meta),
            faulted: AtomicBool::new(false),
        }
    }
}

/// What tells one version of a file from another: a file replaced (renamed over) has another
/// inode, one truncated or rewritten in place another length or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Origins of the live mappings, by guard slot (never touched by the signal handler).
static ORIGINS: Mutex<Option<HashMap<usize, Arc<Origin>>>> = Mutex::new(None);

fn origins() -> std::sync::MutexGuard<'static, Option<HashMap<usize, Arc<Origin>>>> {
    ORIGINS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A read-only mapping whose pages are unmapped (and leave RSS) when the last [`Bytes`]
/// referring to it is dropped.
#[cfg(target_os = "linux")]
struct Mapping {
    map: memmap2::Mmap,
    slot: usize,
    origin: Arc<Origin>,
}

#[cfg(target_os = "linux")]
impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        if guard::faults(self.slot) > 0 {
            // Before the slot changes hands: a watch that sees it change then sees this.
            self.origin.faulted.store(true, Ordering::Release);
        }
        origins().get_or_insert_default().remove(&self.slot);
        // Before `map` unmaps: a freed slot is never zero-filled.
        guard::unregister(self.slot);
    }
}

/// Maps `len` bytes of `file` from `offset` as zero-copy [`Bytes`] guarded against truncation,
/// or `None` where no guarded mapping can be made (not Linux, handler refused, table full): the
/// caller reads with `pread` instead.
///
/// The caller must have checked that `offset + len` does not exceed the file's length.
#[cfg(target_os = "linux")]
pub(crate) fn map_range(
    file: &File,
    offset: u64,
    len: usize,
    origin: Origin,
) -> io::Result<Option<Bytes>> {
    if len == 0 {
        return Ok(Some(Bytes::new()));
    }
    if !guard::install() {
        return Ok(None);
    }
    // SAFETY: the mapping is read-only and private to this process, and its memory stays valid
    // for the mapping's lifetime. A file truncated under it makes touching a vanished page fault:
    // the guard registered below turns that into zero pages and a mark that `check_mapped`
    // reports, so it can neither crash the process nor go unnoticed. Nothing touches the mapping
    // before it is registered.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)?
    };
    let page = guard::page_size();
    let at = map.as_ptr() as usize;
    let start = at - at % page;
    let end = (at + len).next_multiple_of(page);
    let Some(slot) = guard::register(start, end) else {
        return Ok(None);
    };
    let origin = Arc::new(origin);
    origins()
        .get_or_insert_default()
        .insert(slot, Arc::clone(&origin));
    // Sequential access: let the kernel read ahead aggressively.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(Bytes::from_owner(Mapping { map, slot, origin })))
}

/// No guarded mapping outside Linux: the caller reads with `pread`.
#[cfg(not(target_os = "linux"))]
pub(crate) fn map_range(
    _file: &File,
    _offset: u64,
    _len: usize,
    _origin: Origin,
) -> io::Result<Option<Bytes>> {
    Ok(None)
}

/// Checks that `bytes`, if they lie in a mapped store file, can still be trusted: no page of
/// the mapping vanished while it was read (truncation) and the file is the one that was mapped
/// (not replaced, truncated or rewritten since). Bytes that are not mapped (read with `pread`,
/// direct I/O, from memory or an object store) always pass: they are lit's own copy.
///
/// A vanished page reads as zeros rather than crashing the process, so whoever computes on
/// mapped bytes should check them after use too ([`watch_mapped`] does so without keeping them
/// mapped): an error then means results computed from them are not to be trusted. Costs a table
/// lookup and a `stat` of the file.
pub fn check_mapped(bytes: &[u8]) -> Result<()> {
    watch_mapped(bytes).map_or(Ok(()), |watch| watch.check())
}

/// A watch on the mapping under some bytes ([`watch_mapped`]) that does not keep them mapped:
/// [`MappedWatch::check`] after the bytes were used (and perhaps dropped) reports what
/// [`check_mapped`] would have, including faults taken before the mapping was dropped.
#[derive(Debug, Clone)]
pub struct MappedWatch {
    slot: usize,
    seq: usize,
    origin: Arc<Origin>,
}

/// A watch on the mapped store file under `bytes`, or `None` if they are not mapped.
pub fn watch_mapped(bytes: &[u8]) -> Option<MappedWatch> {
    #[cfg(target_os = "linux")]
    {
        // The caller holds `bytes`, so their mapping and its slot stay live during this call.
        let (slot, _, _) = guard::find(bytes.as_ptr() as usize)?;
        let origin = origins()
            .get_or_insert_default()
            .get(&slot)
            .map(Arc::clone)?;
        Some(MappedWatch {
            slot,
            seq: guard::seq(slot),
            origin,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        None
    }
}

impl MappedWatch {
    /// [`check_mapped`] for the watched bytes, whether or not they are still mapped.
    pub fn check(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        let live_faults = {
            // Counted on the slot while the mapping lives; once it changed hands, the mapping's
            // drop has copied them to the origin (read below, after the change was seen).
            let faults = guard::faults(self.slot);
            if guard::seq(self.slot) == self.seq {
                faults
            } else {
                0
            }
        };
        #[cfg(not(target_os = "linux"))]
        let live_faults = 0;
        let faulted = live_faults > 0 || self.origin.faulted.load(Ordering::Acquire);
        check_origin(&self.origin, faulted)
    }
}

/// [`check_mapped`]'s verdict for a mapping of `origin` that took faults or not.
fn check_origin(origin: &Origin, faulted: bool) -> Result<()> {
    let changed = |what: String| Error::Changed {
        layer: origin.layer.clone(),
        key: origin.key.clone(),
        what,
    };
    let now = match std::fs::metadata(&origin.path) {
        Ok(meta) => meta,
        Err(e) => return Err(changed(format!("it can no longer be read ({e})"))),
    };
    if now.len() != origin.expected_len {
        return Err(Error::LengthMismatch {
            layer: origin.layer.clone(),
            key: origin.key.clone(),
            expected: origin.expected_len,
            actual: now.len(),
        });
    }
    if faulted {
        return Err(changed(
            "pages of its mapping vanished while they were read (truncated, then rewritten?)"
                .into(),
        ));
    }
    if Identity::of(&now) != origin.identity {
        return Err(changed(
            "it was replaced or rewritten after it was mapped".into(),
        ));
    }
    Ok(())
}
