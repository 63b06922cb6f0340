//! Free space at a local destination, checked before a write of known size starts, so that a
//! write that cannot fit (`lit synth --params 1T`) is refused up front instead of filling the
//! disk and failing half-way (other programs on the machine failing meanwhile).
//!
//! Only local paths are checked; object stores have no notion of free space.

use lit_core::{Error, Result};
use std::path::Path;

/// Bytes an unprivileged user can still write on the filesystem holding `path` (or, when
/// `path` does not exist yet, its nearest existing ancestor). `None` when it cannot be told
/// (no such ancestor, an unsupported platform).
pub fn available_bytes(path: &Path) -> Option<u64> {
    let mut probe = Some(path);
    while let Some(p) = probe {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        if p.exists() {
            return statvfs_available(p);
        }
        probe = p.parent();
    }
    None
}

#[cfg(unix)]
fn statvfs_available(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(not(unix))]
fn statvfs_available(_: &Path) -> Option<u64> {
    None
}

/// Refuses a write of `needed` bytes to `dest` when the filesystem has less than that free
/// (an [`Error::InsufficientSpace`] naming `dest`, the bytes needed and those available). Passes
/// when the free space cannot be told.
pub fn ensure_space(dest: &Path, needed: u64) -> Result<()> {
    check(dest.display(), needed, available_bytes(dest))
}

/// The arithmetic of [`ensure_space`], given the bytes `available` (`None`: unknown).
pub fn check(dest: impl std::fmt::Display, needed: u64, available: Option<u64>) -> Result<()> {
    match available {
        Some(available) if available < needed => Err(Error::InsufficientSpace {
            path: dest.to_string(),
            needed,
            available,
        }),
        _ => Ok(()),
    }
}

/// Whether `len` more bytes fit on a filesystem with `available` bytes free while keeping
/// `reserve` bytes free (the disk tier's rule: a cache never takes the last of a disk).
pub fn fits_keeping(len: u64, available: Option<u64>, reserve: u64) -> bool {
    available.is_none_or(|a| a.checked_sub(reserve).is_some_and(|room| room >= len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_what_does_not_fit() {
        let dest = "/data/model.lit";
        assert!(check(dest, 10, Some(10)).is_ok());
        assert!(check(dest, 0, Some(0)).is_ok());
        assert!(check(dest, u64::MAX, None).is_ok());
        let err = check(dest, 4_000_000_000_000, Some(50 << 30)).unwrap_err();
        match &err {
            Error::InsufficientSpace {
                path,
                needed,
                available,
            } => {
                assert_eq!(path, "/data/model.lit");
                assert_eq!(*needed, 4_000_000_000_000);
                assert_eq!(*available, 50 << 30);
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with("/data/model.lit: not enough free space"),
            "{msg}"
        );
        assert!(
            msg.contains("4000000000000 bytes needed (3.6 TiB)"),
            "{msg}"
        );
        assert!(
            msg.contains("53687091200 bytes available (50.0 GiB)"),
            "{msg}"
        );
        assert!(check(dest, 11, Some(10)).is_err());
    }

    #[test]
    fn reserve_is_kept() {
        assert!(fits_keeping(10, Some(30), 20));
        assert!(!fits_keeping(11, Some(30), 20));
        assert!(!fits_keeping(0, Some(10), 20));
        assert!(fits_keeping(u64::MAX, None, 20));
    }

    #[test]
    fn probes_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c/model.lit");
        let here = available_bytes(dir.path()).expect("statvfs of a temporary directory");
        let there = available_bytes(&deep).expect("an existing ancestor");
        // The same filesystem; other processes may write in between, so not exactly equal.
        assert!(here.abs_diff(there) < 1 << 30, "{here} vs {there}");
        assert!(available_bytes(Path::new("relative/not/there")).is_some());
    }
}
