//! [`MemorySource`]: a store held entirely in RAM.

use async_trait::async_trait;
use bytes::Bytes;
use lit_core::manifest::MANIFEST_KEY;
use lit_core::source::check_range;
use lit_core::{Error, Manifest, ObjectId, Result, WeightSource};
use std::collections::HashMap;
use std::ops::Range;

/// A store whose objects are all in memory, keyed like files in a store directory.
#[derive(Debug, Clone)]
pub struct MemorySource {
    manifest: Manifest,
    objects: HashMap<String, Bytes>,
    location: String,
}

impl MemorySource {
    /// A store from its objects (`manifest.lit`, `layers/…`, `aux/…`) by key.
    pub fn from_objects<K: Into<String>, B: Into<Bytes>>(
        objects: impl IntoIterator<Item = (K, B)>,
    ) -> Result<Self> {
        let objects: HashMap<String, Bytes> = objects
            .into_iter()
            .map(|(k, b)| (k.into(), b.into()))
            .collect();
        let location = "memory://".to_string();
        let bytes = objects
            .get(MANIFEST_KEY)
            .ok_or_else(|| Error::not_found(format!("{location}: no {MANIFEST_KEY}")))?;
        let manifest = Manifest::decode(bytes, &location)?;
        Ok(MemorySource {
            manifest,
            objects,
            location,
        })
    }

    /// Copies every object of `source` into memory, checking each checksum.
    pub async fn load(source: &dyn WeightSource) -> Result<Self> {
        let manifest = source.manifest().clone();
        let mut objects = HashMap::new();
        let ids = (0..manifest.layers.len())
            .map(ObjectId::Layer)
            .chain((0..manifest.aux_files.len()).map(ObjectId::Aux));
        for id in ids {
            let key = manifest.object(id)?.key.to_string();
            let read = source.read_object(id).await?;
            let copy = crate::aligned::aligned_copy(&read);
            // A mapped object truncated while it was copied read zeros.
            crate::mmap::check_mapped(&read)?;
            objects.insert(key, copy);
        }
        objects.insert(MANIFEST_KEY.to_string(), Bytes::from(manifest.encode()?));
        Ok(MemorySource {
            manifest,
            objects,
            location: format!("memory://{}", source.location()),
        })
    }

    /// Total bytes held.
    pub fn size(&self) -> u64 {
        self.objects.values().map(|b| b.len() as u64).sum()
    }
}

#[async_trait]
impl WeightSource for MemorySource {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
        check_range(&self.manifest, id, &range)?;
        let info = self.manifest.object(id)?;
        let bytes = self
            .objects
            .get(info.key)
            .ok_or_else(|| info.missing(&self.location))?;
        if bytes.len() as u64 != info.byte_len {
            return Err(info.length_mismatch(&self.location, bytes.len() as u64));
        }
        Ok(bytes.slice(range.start as usize..range.end as usize))
    }
}
