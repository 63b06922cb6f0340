//! Direct reads (`O_DIRECT`): layer bytes go from the disk into lit's own buffer without passing
//! through the page cache.
//!
//! A streamed layer is read once per pass and dropped; through `pread` it also lands in the page
//! cache (a second copy the kernel must later reclaim, evicting whatever else was cached), and
//! through a mapping it is the page cache. Direct reads skip both: one copy, made by the disk's DMA,
//! and nothing left behind. The price is the kernel's read-ahead, so [`read`] keeps several large
//! requests in flight itself.
//!
//! Direct I/O needs the file offset, the length and the memory address aligned to the device's
//! logical block; [`read`] reads the page-aligned superset of the range asked for into a
//! page-aligned buffer and hands out exactly the range, as a zero-copy slice.

use crate::aligned::{BUF_ALIGN, BufferPool};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Offsets, lengths and buffer addresses of direct reads are multiples of this: a page, which
/// covers the 512- and 4096-byte logical blocks of common devices.
const ALIGN: u64 = BUF_ALIGN as u64;

/// Size of each direct read.
pub(crate) const CHUNK: usize = 4 << 20;

/// Direct reads of one layer in flight at once. Without the kernel's read-ahead, nothing else
/// keeps the device's queue full.
pub(crate) const THREADS: usize = 4;

/// Opens `path` for direct reads; `None` where the filesystem refuses `O_DIRECT` (`EINVAL`:
/// ramfs, some FUSE and network filesystems, tmpfs before Linux 6.6) or the platform has no such
/// flag (non-Linux).
pub(crate) fn open(path: &Path) -> io::Result<Option<File>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(file) => Ok(Some(file)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Whether `e` is a filesystem refusing direct I/O (which some report only at the first read).
pub(crate) fn refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// Reads bytes `range` of `direct` (a file from [`open`]) into a buffer from `pool`, handing the
/// bytes of `range` to `on_bytes` in file order while later reads are still in flight (to hash
/// them without a second pass). `buffered` is the same file opened normally: a read cut short by a
/// file shrinking under it finishes there, so a truncated file gives `UnexpectedEof`, as `pread`
/// does.
pub(crate) fn read(
    direct: &File,
    buffered: &File,
    range: Range<u64>,
    pool: &Arc<BufferPool>,
    on_bytes: &mut dyn FnMut(&[u8]),
) -> io::Result<Bytes> {
    if range.is_empty() {
        return Ok(Bytes::new());
    }
    let start = range.start - range.start % ALIGN;
    let end = range.end.next_multiple_of(ALIGN);
    let skip = (range.start - start) as usize;
    // The file may end inside the last block: only the bytes up to `range.end` must arrive.
    let needed = (range.end - start) as usize;
    let mut buf = pool.take((end - start) as usize);
    let mut first = true;
    let mut in_range = |piece: &[u8]| {
        // Only the first piece starts before `range`.
        let from = if std::mem::take(&mut first) { skip } else { 0 };
        on_bytes(&piece[from..]);
    };
    fill(
        direct,
        buffered,
        buf.as_mut_slice(),
        start,
        needed,
        &mut in_range,
    )?;
    Ok(buf.into_bytes().slice(skip..needed))
}

/// One [`CHUNK`] of a read: its index, file offset, buffer and the bytes of it that must arrive.
type Piece<'a> = (usize, u64, &'a mut [u8], usize);

/// Fills at least `needed` bytes of `buf` (page-aligned, a whole number of pages) from `offset`
/// (page-aligned), in [`CHUNK`] reads, [`THREADS`] at a time for large reads, handing each
/// piece's needed bytes to `on_piece` in file order on the calling thread.
fn fill(
    direct: &File,
    buffered: &File,
    buf: &mut [u8],
    offset: u64,
    needed: usize,
    on_piece: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let pieces: VecDeque<Piece<'_>> = buf
        .chunks_mut(CHUNK)
        .enumerate()
        .map(|(i, piece)| {
            let need = needed.saturating_sub(i * CHUNK).min(piece.len());
            (i, offset + (i * CHUNK) as u64, piece, need)
        })
        .filter(|(_, _, _, need)| *need > 0)
        .collect();
    let threads = pieces.len().min(THREADS);
    if threads <= 1 {
        for (_, at, piece, need) in pieces {
            read_piece(direct, buffered, piece, at, need)?;
            on_piece(&piece[..need]);
        }
        return Ok(());
    }
    // Readers take the next piece in file order, so together they sweep the file front to back,
    // and send each piece back when it is read; this thread hands them on in order.
    let queue = &Mutex::new(pieces);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, &[u8])>();
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..threads)
            .map(|_| {
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    loop {
                        // A `let` drops the lock at its end (a `while let` would hold it).
                        let Some((i, at, piece, need)) = locked(queue).pop_front() else {
                            break;
                        };
                        if let Err(e) = read_piece(direct, buffered, piece, at, need) {
                            locked(queue).clear(); // the others stop after their current piece
                            return Err(e);
                        }
                        let piece: &[u8] = piece;
                        // The receiver lives until every reader has returned.
                        let _ = done_tx.send((i, &piece[..need]));
                    }
                    Ok(())
                })
            })
            .collect();
        drop(done_tx);
        let mut waiting = std::collections::BTreeMap::new();
        let mut next_index = 0;
        for (i, bytes) in done_rx {
            waiting.insert(i, bytes);
            while let Some(bytes) = waiting.remove(&next_index) {
                on_piece(bytes);
                next_index += 1;
            }
        }
        readers.into_iter().try_for_each(|r| {
            r.join()
                .unwrap_or_else(|_| Err(io::Error::other("a read thread panicked")))
        })
    })
}

/// The queue of pieces, locked (its updates are single steps, so a panicked holder left it
/// consistent).
fn locked<'q, 'a>(
    queue: &'q Mutex<VecDeque<Piece<'a>>>,
) -> std::sync::MutexGuard<'q, VecDeque<Piece<'a>>> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads at least `need` bytes of `piece` from `at`. Direct reads end short only at the end of
/// the file; if that leaves the position unaligned before `need` (the file shrank), the rest is
/// read through `buffered`, which reports the missing bytes as `UnexpectedEof`.
fn read_piece(
    direct: &File,
    buffered: &File,
    piece: &mut [u8],
    at: u64,
    need: usize,
) -> io::Result<()> {
    let mut done = 0;
    while done < need {
        if !(done as u64).is_multiple_of(ALIGN) {
            return buffered.read_exact_at(&mut piece[done..need], at + done as u64);
        }
        match direct.read_at(&mut piece[done..], at + done as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before the bytes asked for",
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct reads of every awkward range equal the file's bytes (where the filesystem under
    /// the temporary directory takes `O_DIRECT`; elsewhere there is nothing to test here).
    #[test]
    fn ranges_equal_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = 3 * CHUNK + 5000;
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2])
            .collect();
        std::fs::write(&path, &data).unwrap();
        let Some(direct) = open(&path).unwrap() else {
            eprintln!("the temporary directory's filesystem refuses O_DIRECT: skipped");
            return;
        };
        let buffered = File::open(&path).unwrap();
        let pool = BufferPool::new(len.next_multiple_of(BUF_ALIGN));
        let len = len as u64;
        let c = CHUNK as u64;
        for range in [
            0..0,
            0..1,
            1..2,
            4095..4097,
            4096..8192,
            7..len,
            0..len,
            c - 3..c + 3,
            len - 1..len,
            len - 4999..len,
            100..2 * c + 4097,
        ] {
            let mut handed = Vec::new();
            let got = read(&direct, &buffered, range.clone(), &pool, &mut |b| {
                handed.extend_from_slice(b)
            })
            .unwrap();
            let want = &data[range.start as usize..range.end as usize];
            assert!(got.as_ref() == want, "{range:?}");
            assert!(handed == want, "{range:?}: bytes handed on in order");
        }
        // Past the end: the bytes are not there.
        let err = read(&direct, &buffered, len - 10..len + 10, &pool, &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let err = read(
            &direct,
            &buffered,
            len + 4096..len + 8192,
            &pool,
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
