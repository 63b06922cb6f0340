//! [`ObjectStoreSource`]: a store read from an object store.

use super::fetch::Fetcher;
use super::{ObjectPath, ObjectStore, RemoteOptions, child, object_store_for, runtime};
use async_trait::async_trait;
use bytes::Bytes;
use lit_core::limits::MAX_MANIFEST_BYTES;
use lit_core::manifest::MANIFEST_KEY;
use lit_core::source::check_range;
use lit_core::{Error, Manifest, ObjectId, Result, WeightSource};
use object_store::ObjectStoreExt;
use std::ops::Range;
use std::sync::Arc;

/// A store under a prefix of an object store (`s3://bucket/models/llama.lit`, …).
///
/// Each object is fetched as concurrent ranged GETs into one aligned buffer and, when read
/// whole, checked against the manifest's checksum before it is returned: a corrupt or partial
/// layer never reaches a model.
#[derive(Debug)]
pub struct ObjectStoreSource {
    fetcher: Fetcher,
    prefix: ObjectPath,
    location: String,
    manifest: Manifest,
}

impl ObjectStoreSource {
    /// Opens the store at `location` (`s3://…`, `gs://…`, `az://…`, `http(s)://…`,
    /// `memory://…`), reading and validating its manifest. Blocks the calling thread.
    pub fn open(location: &str, options: &RemoteOptions) -> Result<Self> {
        let (store, prefix, shown) = object_store_for(location, options)?;
        let options = options.clone();
        runtime::block_on(Self::from_store_async(store, prefix, shown, options))?
    }

    /// Opens the store under `prefix` of an object store you configured yourself; `location`
    /// is how messages name it.
    pub async fn from_store_async(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        location: String,
        options: RemoteOptions,
    ) -> Result<Self> {
        let mut fetcher = Fetcher::new(store, &options);
        let manifest = read_manifest(&fetcher, &prefix, &location).await?;
        fetcher.recycle_up_to(manifest.largest_layer_bytes().saturating_mul(2));
        Ok(ObjectStoreSource {
            fetcher,
            prefix,
            location,
            manifest,
        })
    }

    /// The object store client.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.fetcher.store
    }

    /// The store's prefix in the object store.
    pub fn prefix(&self) -> &ObjectPath {
        &self.prefix
    }
}

async fn read_manifest(fetcher: &Fetcher, prefix: &ObjectPath, location: &str) -> Result<Manifest> {
    let path = child(prefix, MANIFEST_KEY);
    let head = {
        let store = fetcher.store.clone();
        let path = path.clone();
        runtime::spawn(async move { store.head(&path).await }).await?
    };
    let absent = || {
        Error::not_found(format!(
            "{location}: no {MANIFEST_KEY} under this prefix (not a lit store, or an export that did not finish)"
        ))
    };
    let meta = head.map_err(|e| match e {
        object_store::Error::NotFound { .. } => absent(),
        e => Error::backend(
            format!("{location}: reading {MANIFEST_KEY}"),
            super::hide(e, &fetcher.hidden),
        ),
    })?;
    if meta.size > MAX_MANIFEST_BYTES {
        return Err(Error::LimitExceeded {
            context: format!("{location}/{MANIFEST_KEY}"),
            what: "manifest size",
            value: meta.size,
            limit: MAX_MANIFEST_BYTES,
        });
    }
    let bytes = fetcher
        .fetch(
            path,
            0..meta.size,
            format!("{location}/{MANIFEST_KEY}"),
            absent(),
        )
        .await?;
    Manifest::decode(&bytes, location)
}

#[async_trait]
impl WeightSource for ObjectStoreSource {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
        check_range(&self.manifest, id, &range)?;
        let info = self.manifest.object(id)?;
        let what = format!("{}/{} (`{}`)", self.location, info.key, info.name);
        let path = child(&self.prefix, info.key);
        let absent = info.missing(&self.location);
        self.fetcher.fetch(path, range, what, absent).await
    }

    async fn read_object(&self, id: ObjectId) -> Result<Bytes> {
        let info = self.manifest.object(id)?;
        let bytes = self.read_range(id, 0..info.byte_len).await?;
        info.verify(&bytes, &self.location)?;
        Ok(bytes)
    }
}
