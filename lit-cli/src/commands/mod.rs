//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod cp;
pub(crate) mod demo;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod run;
pub(crate) mod synth;
pub(crate) mod verify;

use anyhow::Context;
use lit_core::WeightSource;
use lit_store::remote::RemoteOptions;
use lit_store::{DiskCacheOptions, OpenOptions, StoreWriter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to reach stores: object-store settings and the local disk tier. Credentials, region and
/// endpoint come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `GOOGLE_*`, `AZURE_*`) or `--store-option`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// Size of each ranged GET / upload part for object stores.
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = nonzero_size)]
    part_size: bytesize::ByteSize,
    /// Most requests in flight to an object store.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = at_least_one)]
    concurrency: usize,
    /// Retries of a failed request (with exponential backoff).
    #[arg(long, value_name = "N", default_value_t = 10)]
    retries: usize,
    /// Timeout of one request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = positive_seconds)]
    request_timeout: f64,
    /// Give up on reading one object after this many seconds, retries included.
    #[arg(long, value_name = "SECS", default_value_t = 600.0, value_parser = positive_seconds)]
    deadline: f64,
    /// An object_store setting KEY=VALUE (e.g. aws_region=eu-west-1); repeatable. Values are
    /// never printed.
    #[arg(long = "store-option", value_name = "KEY=VALUE", value_parser = KeyValue)]
    store_options: Vec<(String, String)>,
    /// Local disk tier for remote stores [default: $LIT_CACHE_DIR or ~/.cache/lit/objects].
    #[arg(long, value_name = "DIR")]
    disk_cache: Option<PathBuf>,
    /// Most bytes the disk tier keeps.
    #[arg(long, value_name = "SIZE", default_value = "20GiB")]
    disk_cache_size: bytesize::ByteSize,
    /// Read remote stores from the network every time.
    #[arg(long, conflicts_with = "disk_cache")]
    pub(crate) no_disk_cache: bool,
    /// How local stores are read: mmap (the page cache mapped, no copy; a file truncated or
    /// replaced while mapped is an error, not a crash), pread (copied out of the page cache into
    /// lit's own buffer), direct (O_DIRECT: the disk fills lit's buffer, nothing is cached or
    /// copied twice, every read goes to the disk; pread where the filesystem refuses it) or
    /// auto: direct when the store is larger than 80% of the memory available (cgroup limits
    /// included), so the page cache could not keep it between passes anyway, else mmap.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["auto", "pread", "mmap", "direct"])]
    pub(crate) read_mode: String,
}

/// Parses `--store-option KEY=VALUE`. A malformed one is refused without echoing it (clap's
/// own messages quote the value, which may be a secret).
#[derive(Debug, Clone, Copy)]
struct KeyValue;

impl clap::builder::TypedValueParser for KeyValue {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let flag = arg.map_or("--store-option".to_string(), |a| a.to_string());
        let refuse = |why: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value for '{flag}': {why} (the value is not shown)\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse("not UTF-8"))?;
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_string(), value.to_string()))
            }
            _ => Err(refuse("expected KEY=VALUE")),
        }
    }
}

/// A count that must be at least 1 (`--max-tokens`, `--concurrency`, `--batch-size`, …).
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number of at least 1, not `{s}`")),
    }
}

/// A size that must not be zero (`--part-size`, `--max-layer-size`).
pub(crate) fn nonzero_size(s: &str) -> Result<bytesize::ByteSize, String> {
    match s.trim().parse::<bytesize::ByteSize>() {
        Ok(b) if b.as_u64() == 0 => Err("must be more than 0 bytes".into()),
        Ok(b) => Ok(b),
        Err(_) => Err(format!("expected a size (8MiB, 256MB), not `{s}`")),
    }
}

/// A duration in seconds that must be positive and finite (`--request-timeout`, `--deadline`).
pub(crate) fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("expected a positive number of seconds, not `{s}`")),
    }
}

/// A sampling temperature: finite and not negative (0 is greedy).
pub(crate) fn temperature(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!(
            "expected a temperature of 0 (greedy) or more, not `{s}`"
        )),
    }
}

/// Adds to a refused write (not enough free space) how to try anyway.
pub(crate) fn hint_force(e: lit_core::Error) -> anyhow::Error {
    match e {
        e @ lit_core::Error::InsufficientSpace { .. } => {
            anyhow::anyhow!("{e} (pass --force to try anyway)")
        }
        e => e.into(),
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.001)).unwrap_or(Duration::MAX)
}

impl StoreArgs {
    /// The library options these flags mean.
    pub(crate) fn options(&self) -> OpenOptions {
        let defaults = RemoteOptions::default();
        let remote = RemoteOptions {
            part_size: self.part_size.as_u64().max(1),
            concurrency: self.concurrency.max(1),
            retry: lit_store::remote::RetryConfig {
                max_retries: self.retries,
                ..defaults.retry.clone()
            },
            request_timeout: seconds(self.request_timeout),
            deadline: seconds(self.deadline),
            config: self.store_options.clone(),
            ..defaults
        };
        let disk_cache = (!self.no_disk_cache).then(|| DiskCacheOptions {
            dir: self
                .disk_cache
                .clone()
                .unwrap_or_else(lit_store::disk_cache::default_cache_dir),
            max_bytes: self.disk_cache_size.as_u64(),
        });
        // `auto` is resolved per local store by `open` (only local stores have a read mode).
        let read_mode = match self.read_mode.as_str() {
            "pread" => lit_store::ReadMode::Pread,
            "direct" => lit_store::ReadMode::Direct,
            _ => lit_store::ReadMode::Mmap,
        };
        OpenOptions {
            read_mode,
            remote,
            disk_cache,
        }
    }

    /// The same flags as arguments, for a child `lit` process.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--part-size={}", self.part_size.as_u64()),
            format!("--concurrency={}", self.concurrency),
            format!("--retries={}", self.retries),
            format!("--request-timeout={}", self.request_timeout),
            format!("--deadline={}", self.deadline),
            format!("--disk-cache-size={}", self.disk_cache_size.as_u64()),
            format!("--read-mode={}", self.read_mode),
        ];
        for (k, v) in &self.store_options {
            args.push(format!("--store-option={k}={v}"));
        }
        if let Some(dir) = &self.disk_cache {
            args.push(format!("--disk-cache={}", dir.display()));
        }
        if self.no_disk_cache {
            args.push("--no-disk-cache".into());
        }
        args
    }

    /// Opens the store at `location` (a directory, `file://`, `s3://`, `gs://`, `az://`,
    /// `http(s)://`, `memory://`).
    pub(crate) fn open(&self, location: &str) -> anyhow::Result<Arc<dyn WeightSource>> {
        let mut options = self.options();
        if self.read_mode == "auto"
            && let Some(path) = local_path(location)
        {
            options.read_mode = auto_read_mode(&path);
        }
        lit_store::open(location, &options)
            .with_context(|| format!("cannot open store {}", shown(location)))
    }

    /// A writer for a new store at `location`.
    pub(crate) fn create(&self, location: &str) -> anyhow::Result<StoreWriter> {
        lit_store::create_writer(location, &self.options())
            .with_context(|| format!("cannot create store {}", shown(location)))
    }
}

/// `--read-mode auto` for the local store at `path`: direct reads when the store is larger than
/// 80% of the memory available to this process (cgroup limits included; the rest goes to the
/// process itself and the layers in flight). Then the page cache cannot keep the streamed layers
/// from one pass to the next (it would need model − budget bytes beside the budget), so reading
/// through it would only evict other data; direct reads are faster there (docs/benchmarks.md,
/// "Read modes") and hold no second copy. Otherwise mmap: after the first pass the streamed
/// layers are mapped straight out of the page cache, with no copy (pread copies every byte
/// again each pass), and a store file changed under a mapping is an error, as with pread.
fn auto_read_mode(path: &std::path::Path) -> lit_store::ReadMode {
    // An unreadable store is reported by the open that follows.
    let Ok(store) = lit_store::LocalSource::open(path) else {
        return lit_store::ReadMode::Mmap;
    };
    let available = lit_burn::memory::available();
    let mode = read_mode_for(store.manifest().total_bytes, available.map(|a| a.bytes));
    if let (lit_store::ReadMode::Direct, Some(available)) = (mode, available) {
        eprintln!(
            "read mode: direct (the store's {} is more than 80% of {available})",
            crate::progress::human_bytes(store.manifest().total_bytes)
        );
    }
    mode
}

/// [`auto_read_mode`]'s rule for a store of `store_bytes` with `available` bytes of memory
/// (unknown: mmap, which is right wherever the page cache helps and merely slower elsewhere).
fn read_mode_for(store_bytes: u64, available: Option<u64>) -> lit_store::ReadMode {
    match available {
        Some(free) if store_bytes > free / 10 * 8 => lit_store::ReadMode::Direct,
        _ => lit_store::ReadMode::Mmap,
    }
}

/// The local directory `location` names, if it is one.
pub(crate) fn local_path(location: &str) -> Option<PathBuf> {
    lit_store::location::local_path(location).ok().flatten()
}

/// A location as it may be printed (no user info, query or fragment): lit-store's one rule.
pub(crate) fn shown(location: &str) -> String {
    lit_store::redact::redacted(location)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lit_store::ReadMode;

    #[test]
    fn auto_reads_directly_only_what_the_page_cache_cannot_keep() {
        const GIB: u64 = 1 << 30;
        // The 2 GB Llama of docs/benchmarks.md: a 1 GiB or 2 GiB cgroup, then a 24 GiB machine.
        assert_eq!(read_mode_for(2_080_000_000, Some(GIB)), ReadMode::Direct);
        assert_eq!(
            read_mode_for(2_080_000_000, Some(2 * GIB)),
            ReadMode::Direct
        );
        assert_eq!(read_mode_for(2_080_000_000, Some(24 * GIB)), ReadMode::Mmap);
        assert_eq!(read_mode_for(8 * GIB, Some(10 * GIB)), ReadMode::Mmap);
        assert_eq!(read_mode_for(8 * GIB + 1, Some(10 * GIB)), ReadMode::Direct);
        assert_eq!(read_mode_for(u64::MAX, None), ReadMode::Mmap);
    }
}
