//! The one place lit maps files into memory.
//!
//! Mapping is opt-in ([`crate::ReadMode::Mmap`]): a mapped file that another process truncates
//! makes the next access to a vanished page raise SIGBUS, which no Rust code can turn into an
//! error. The default read path (`pread` into an aligned buffer) returns an error instead.

use bytes::Bytes;
use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::io;

/// A read-only mapping whose pages are unmapped (and leave RSS) when the last [`Bytes`]
/// referring to it is dropped.
struct Mapping(Mmap);

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Maps `len` bytes of `file` from `offset` and returns them as zero-copy [`Bytes`].
///
/// The caller must have checked that `offset + len` does not exceed the file's length.
pub(crate) fn map_range(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and private to this process. Its memory stays valid for
    // the mapping's lifetime; the only hazard is another process truncating the file, which
    // raises SIGBUS on access (documented on `ReadMode::Mmap`, the reason it is not the default).
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file)? };
    // Sequential access: let the kernel read ahead aggressively.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Bytes::from_owner(Mapping(map)))
}
