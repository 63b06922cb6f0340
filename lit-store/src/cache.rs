//! [`CachedSource`]: an in-RAM tier over any source, within a byte budget.
//!
//! # Policy: a fixed resident set, not LRU
//!
//! Inference reads every layer once per pass, in the same order, pass after pass. When the model
//! is larger than the cache, LRU evicts each layer just before it is needed again and gets no hits
//! at all. Instead, a layer is admitted the first time it is read *if it still fits in the budget*,
//! and is never evicted. The first layers up to the budget stay resident; the rest are read from
//! the inner source every pass, so bytes read per pass = model − resident, the least possible.
//! Only whole-layer reads are admitted; range reads are served from a resident layer when there is
//! one and passed through otherwise.

use async_trait::async_trait;
use bytes::Bytes;
use lit_core::{Manifest, ObjectId, Result, WeightSource};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A RAM cache over `S` holding at most `budget` bytes of layers (see the module docs).
#[derive(Debug)]
pub struct CachedSource<S> {
    inner: S,
    budget: u64,
    resident: Mutex<Resident>,
    hits: AtomicU64,
    misses: AtomicU64,
    bytes_from_inner: AtomicU64,
}

#[derive(Debug, Default)]
struct Resident {
    layers: HashMap<ObjectId, Bytes>,
    bytes: u64,
}

/// Counters of a [`CachedSource`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Whole-object reads served from RAM.
    pub hits: u64,
    /// Whole-object reads that went to the inner source.
    pub misses: u64,
    /// Bytes read from the inner source (ranges included).
    pub bytes_from_inner: u64,
    /// Bytes currently resident.
    pub resident_bytes: u64,
    /// Objects currently resident.
    pub resident_objects: usize,
}

impl<S: WeightSource> CachedSource<S> {
    /// Caches `inner` within `budget` bytes.
    pub fn new(inner: S, budget: u64) -> Self {
        CachedSource {
            inner,
            budget,
            resident: Mutex::new(Resident::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bytes_from_inner: AtomicU64::new(0),
        }
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let resident = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_from_inner: self.bytes_from_inner.load(Ordering::Relaxed),
            resident_bytes: resident.bytes,
            resident_objects: resident.layers.len(),
        }
    }

    /// Whether object `id` is resident.
    pub fn is_resident(&self, id: ObjectId) -> bool {
        self.lock().layers.contains_key(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Resident> {
        self.resident.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl<S: WeightSource> WeightSource for CachedSource<S> {
    fn manifest(&self) -> &Manifest {
        self.inner.manifest()
    }

    fn location(&self) -> &str {
        self.inner.location()
    }

    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> Result<Bytes> {
        lit_core::source::check_range(self.manifest(), id, &range)?;
        if let Some(bytes) = self.lock().layers.get(&id) {
            return Ok(bytes.slice(range.start as usize..range.end as usize));
        }
        let bytes = self.inner.read_range(id, range).await?;
        self.bytes_from_inner
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// A cached layer was verified whole when it was cached: its slice is not hashed again.
    async fn read_tensors(&self, index: usize, range: Range<u64>) -> Result<Bytes> {
        let id = ObjectId::Layer(index);
        lit_core::source::check_range(self.manifest(), id, &range)?;
        if let Some(bytes) = self.lock().layers.get(&id) {
            return Ok(bytes.slice(range.start as usize..range.end as usize));
        }
        let bytes = self.inner.read_tensors(index, range).await?;
        self.bytes_from_inner
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    async fn read_object(&self, id: ObjectId) -> Result<Bytes> {
        if let Some(bytes) = self.lock().layers.get(&id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let bytes = self.inner.read_object(id).await?;
        let len = bytes.len() as u64;
        self.bytes_from_inner.fetch_add(len, Ordering::Relaxed);
        let mut resident = self.lock();
        if !resident.layers.contains_key(&id) && resident.bytes + len <= self.budget {
            resident.bytes += len;
            resident.layers.insert(id, bytes.clone());
        }
        Ok(bytes)
    }
}
