//! What the `lit` process can learn about, or do to, the machine it runs on (Linux `/proc`): its
//! own peak memory, the memory available, and dropping the page cache for cold measurements.
//! Elsewhere each of these answers "unknown" (`None`) or "could not" (`false`).

/// Peak resident set size of this process so far (`VmHWM` in `/proc/self/status`: anonymous and
/// file-backed pages, so mapped store files count), in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmHWM:")
}

/// Bytes of memory available now (`MemAvailable` in `/proc/meminfo`).
pub(crate) fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemAvailable:")
}

/// Writes dirty pages out and drops the kernel's page cache (needs root); whether it could.
pub(crate) fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// The value of a `Key:   123 kB` line, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_in_bytes() {
        let status = "Name:\tlit\nVmPeak:\t  2048 kB\nVmHWM:\t    1536 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(kib_field(status, "VmHWM:"), Some(1536 * 1024));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        assert_eq!(kib_field("VmHWM: lots kB", "VmHWM:"), None);
    }

    #[test]
    fn this_process_has_a_peak_rss_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = peak_rss().expect("VmHWM on Linux");
            // This test binary alone maps more than a megabyte.
            assert!(rss > 1 << 20, "{rss}");
            assert!(mem_available().is_some_and(|m| m > 0));
        }
    }
}
