//! How much memory this process can still use: the smaller of the machine's `MemAvailable` and
//! what the process's cgroup (v1 or v2) still allows. Linux only; elsewhere `None`.
//!
//! A cgroup limit counts the page cache its processes fill, but the kernel reclaims that cache
//! before it kills anything, so the room left in a cgroup is its limit minus the memory its
//! processes cannot give back (anonymous memory), not minus its whole usage.

use std::fmt;
use std::path::{Path, PathBuf};

/// Memory this process can use now, and where the figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Available {
    /// Bytes available.
    pub bytes: u64,
    /// The cgroup's memory limit, when one applies and is the tighter bound.
    pub cgroup_limit: Option<u64>,
}

impl fmt::Display for Available {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cgroup_limit {
            Some(limit) => write!(
                f,
                "{} MiB available (cgroup limit {} MiB)",
                self.bytes >> 20,
                limit >> 20
            ),
            None => write!(f, "{} MiB available", self.bytes >> 20),
        }
    }
}

/// The memory available to this process now (see the module docs), if it can be read.
pub fn available() -> Option<Available> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| kib_field(&info, "MemAvailable:"));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_room(&c, Path::new("/sys/fs/cgroup")));
    combine(machine, cgroup)
}

/// The tighter of the machine's and the cgroup's figures.
fn combine(machine: Option<u64>, cgroup: Option<(u64, u64)>) -> Option<Available> {
    match (machine, cgroup) {
        (Some(m), Some((room, limit))) if room < m => Some(Available {
            bytes: room,
            cgroup_limit: Some(limit),
        }),
        (Some(m), _) => Some(Available {
            bytes: m,
            cgroup_limit: None,
        }),
        (None, Some((room, limit))) => Some(Available {
            bytes: room,
            cgroup_limit: Some(limit),
        }),
        (None, None) => None,
    }
}

/// `(room left, limit)` of the memory cgroup named in `proc_self_cgroup`, mounted under `root`;
/// `None` when there is no limit.
fn cgroup_room(proc_self_cgroup: &str, root: &Path) -> Option<(u64, u64)> {
    for line in proc_self_cgroup.lines() {
        // `hierarchy-id:controllers:path`; v2 is `0::path`.
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let dir = nearest_limited(&root.join("memory"), rel, "memory.limit_in_bytes");
            if let Some(dir) = dir {
                let limit = read_u64(&dir.join("memory.limit_in_bytes"))?;
                let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
                let anon = stat_field(&stat, "total_rss").or_else(|| stat_field(&stat, "rss"))?;
                return Some((limit.saturating_sub(anon), limit));
            }
        } else if controllers.is_empty() {
            let dir = nearest_limited(root, rel, "memory.max");
            if let Some(dir) = dir {
                let limit = read_u64(&dir.join("memory.max"))?;
                let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
                let anon = stat_field(&stat, "anon")?;
                return Some((limit.saturating_sub(anon), limit));
            }
        }
    }
    None
}

/// The deepest directory from `base/rel` up to `base` whose `file` holds a real limit (a number
/// below 2^60; "max" and v1's huge default mean none).
fn nearest_limited(base: &Path, rel: &str, file: &str) -> Option<PathBuf> {
    let mut dir = base.join(rel);
    loop {
        if read_u64(&dir.join(file)).is_some_and(|l| l < 1 << 60) {
            return Some(dir);
        }
        if dir == base || !dir.pop() || !dir.starts_with(base) {
            return None;
        }
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of a `key 123` line of a cgroup `memory.stat`.
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The value of a `Key:   123 kB` line of `/proc/meminfo`, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn cgroup_v1_limit_minus_anonymous_memory() {
        let root = tempfile::tempdir().unwrap();
        let mem = root.path().join("memory");
        write(&mem.join("memory.limit_in_bytes"), "9223372036854771712\n");
        write(&mem.join("lit/memory.limit_in_bytes"), "1073741824\n");
        write(
            &mem.join("lit/memory.stat"),
            "cache 500000000\nrss 1000\ntotal_cache 600000000\ntotal_rss 73741824\n",
        );
        let cgroup = "12:cpu,cpuacct:/\n5:memory:/lit\n0::/\n";
        assert_eq!(
            cgroup_room(cgroup, root.path()),
            Some((1_000_000_000, 1 << 30))
        );
        // A sub-cgroup without its own limit is bounded by its parent's.
        write(
            &mem.join("lit/job/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        assert_eq!(
            cgroup_room("5:memory:/lit/job\n", root.path()),
            Some((1_000_000_000, 1 << 30))
        );
        assert_eq!(cgroup_room("5:memory:/\n", root.path()), None);
    }

    #[test]
    fn cgroup_v2_limit_minus_anonymous_memory() {
        let root = tempfile::tempdir().unwrap();
        write(&root.path().join("memory.max"), "max\n");
        write(&root.path().join("a/b/memory.max"), "max\n");
        write(&root.path().join("a/memory.max"), "104857600\n");
        write(
            &root.path().join("a/memory.stat"),
            "anon 4857600\nfile 9999\n",
        );
        assert_eq!(
            cgroup_room("0::/a/b\n", root.path()),
            Some((100_000_000, 104_857_600))
        );
        assert_eq!(cgroup_room("0::/\n", root.path()), None);
    }

    #[test]
    fn the_tighter_figure_wins() {
        let machine = Some(8 << 30);
        assert_eq!(
            combine(machine, Some((1 << 30, 2 << 30))),
            Some(Available {
                bytes: 1 << 30,
                cgroup_limit: Some(2 << 30)
            })
        );
        assert_eq!(
            combine(machine, Some((16 << 30, 32 << 30))).unwrap().bytes,
            8 << 30
        );
        assert_eq!(combine(None, None), None);
        assert_eq!(
            kib_field("MemAvailable:   2048 kB\n", "MemAvailable:"),
            Some(2 << 20)
        );
    }

    #[test]
    fn this_machine_reports_memory() {
        if cfg!(target_os = "linux") {
            assert!(available().is_some_and(|a| a.bytes > 0));
        }
    }
}
