//! Opening and creating stores by location: a path, `file://`, `s3://`, `gs://`, `az://`,
//! `http(s)://` or `memory://`.

use crate::local::{LocalSource, ReadMode};
use crate::redact::redacted;
use crate::writer::StoreWriter;
use lit_core::{Error, Result, WeightSource};
use std::path::PathBuf;
use std::sync::Arc;

/// How [`open`] and [`create_writer`] reach a store.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// How local stores are read.
    pub read_mode: ReadMode,
    /// How object stores are reached (part size, concurrency, retries, deadlines, settings).
    #[cfg(feature = "remote")]
    pub remote: crate::remote::RemoteOptions,
    /// A local disk tier for remote stores (`None`: read the network every time).
    pub disk_cache: Option<DiskCacheOptions>,
}

/// Where and how large the disk tier of remote stores is.
#[derive(Debug, Clone)]
pub struct DiskCacheOptions {
    /// The cache directory (shared by stores and processes).
    pub dir: PathBuf,
    /// Most bytes kept there.
    pub max_bytes: u64,
}

impl Default for DiskCacheOptions {
    /// [`crate::disk_cache::default_cache_dir`], 20 GiB.
    fn default() -> Self {
        DiskCacheOptions {
            dir: crate::disk_cache::default_cache_dir(),
            max_bytes: 20 << 30,
        }
    }
}

/// The local directory `location` names, or `None` for an object-store URL.
pub fn local_path(location: &str) -> Result<Option<PathBuf>> {
    match location.split_once("://") {
        None => Ok(Some(PathBuf::from(location))),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") => {
            if rest.starts_with('/') {
                Ok(Some(PathBuf::from(rest)))
            } else {
                Err(Error::InvalidArgument(format!(
                    "store location `{}`: file:// URLs need an absolute path (file:///dir/model.lit)",
                    redacted(location)
                )))
            }
        }
        Some(_) => Ok(None),
    }
}

/// Opens the store at `location` for reading: a local directory (path or `file://`) through
/// [`LocalSource`], an object-store URL through [`crate::remote::ObjectStoreSource`], under a
/// disk tier when `options.disk_cache` is set.
pub fn open(location: &str, options: &OpenOptions) -> Result<Arc<dyn WeightSource>> {
    if let Some(path) = local_path(location)? {
        return Ok(Arc::new(LocalSource::open_with(path, options.read_mode)?));
    }
    open_remote(location, options)
}

#[cfg(feature = "remote")]
fn open_remote(location: &str, options: &OpenOptions) -> Result<Arc<dyn WeightSource>> {
    let source = crate::remote::ObjectStoreSource::open(location, &options.remote)?;
    Ok(match &options.disk_cache {
        Some(cache) => Arc::new(crate::DiskCachedSource::new(
            source,
            &cache.dir,
            cache.max_bytes,
        )?),
        None => Arc::new(source),
    })
}

#[cfg(not(feature = "remote"))]
fn open_remote(location: &str, _: &OpenOptions) -> Result<Arc<dyn WeightSource>> {
    Err(not_built(location))
}

/// A writer for a new store at `location` (which must not hold a store yet).
pub fn create_writer(location: &str, options: &OpenOptions) -> Result<StoreWriter> {
    if let Some(path) = local_path(location)? {
        return StoreWriter::create_local(path);
    }
    create_remote(location, options)
}

#[cfg(feature = "remote")]
fn create_remote(location: &str, options: &OpenOptions) -> Result<StoreWriter> {
    let sink = crate::remote::ObjectStoreSink::create(location, &options.remote)?;
    Ok(StoreWriter::new(Box::new(sink)))
}

#[cfg(not(feature = "remote"))]
fn create_remote(location: &str, _: &OpenOptions) -> Result<StoreWriter> {
    Err(not_built(location))
}

#[cfg(not(feature = "remote"))]
fn not_built(location: &str) -> Error {
    Error::InvalidArgument(format!(
        "store location `{}`: this build has no object-store support (lit-store feature `remote`)",
        redacted(location)
    ))
}

#[cfg(test)]
mod tests {
    use super::local_path;
    use std::path::PathBuf;

    #[test]
    fn paths_and_file_urls_are_local() {
        assert_eq!(
            local_path("a/b.lit").unwrap(),
            Some(PathBuf::from("a/b.lit"))
        );
        assert_eq!(
            local_path("file:///x/y.lit").unwrap(),
            Some(PathBuf::from("/x/y.lit"))
        );
        assert!(local_path("file://relative").is_err());
        assert_eq!(local_path("s3://bucket/m.lit").unwrap(), None);
        assert_eq!(local_path("memory:///m").unwrap(), None);
    }
}
