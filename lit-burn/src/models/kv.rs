//! The [`KvCache`]: keys and values of every layer for the positions a sequence has processed.
//!
//! A cache made with [`KvCache::in_tier`] shares a [`SpillTier`]'s memory budget with the caches
//! of every other sequence of the tier. When its layer runs, a layer's keys and values are taken
//! out (read back from disk if they were there), the new positions appended, and put back: in
//! memory if the budget has room, otherwise on the sequence's spill file. First come, first
//! served, as [`lit_store::CachedSource`] keeps weights: a pass visits the layers in the same
//! order every step, where evicting the least recently used would read everything back. Only
//! new positions are written to disk: a layer on disk is a list of segments that grows as the
//! sequence does, so a step writes its new keys and values and reads back the rest.

use crate::error::{Error, Result};
use crate::layer_major::SpillTier;
use burn::tensor::{DType, Device, Tensor, TensorData};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Keys and values of every layer for the positions processed so far. It lives outside the
/// model, so it stays while the weights stream through.
pub struct KvCache {
    layers: Vec<Option<Entry>>,
    len: usize,
    spill: Option<Spill>,
}

/// One layer's keys and values.
enum Entry {
    Memory {
        /// Keys and values (boxed: a tensor is large beside a list of segments).
        kv: Box<(Tensor<4>, Tensor<4>)>,
        /// Bytes reserved in the tier (0 without one).
        reserved: u64,
    },
    /// Segments of the spill file, in position order.
    Disk(Vec<Segment>),
}

/// Keys then values of `positions` positions (`[b, heads, positions, head_dim]` each) at
/// `offset` of the spill file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: u64,
    dims: [usize; 4],
    dtype: DType,
}

impl Segment {
    fn half_bytes(&self) -> u64 {
        (self.dims.iter().product::<usize>() * self.dtype.size()) as u64
    }
}

/// A cache's place in a tier: its spill file (created on the first spill) and where it ends.
struct Spill {
    tier: SpillTier,
    file: Option<File>,
    end: u64,
    device: Option<Device>,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on_disk = self
            .layers
            .iter()
            .filter(|e| matches!(e, Some(Entry::Disk(_))))
            .count();
        f.debug_struct("KvCache")
            .field("layers", &self.layers.len())
            .field("len", &self.len)
            .field("layers_on_disk", &on_disk)
            .finish()
    }
}

fn bytes_of(t: &Tensor<4>) -> u64 {
    (t.shape().num_elements() * t.dtype().size()) as u64
}

impl KvCache {
    /// An empty cache for `n_layers` layers, in memory without a limit.
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: (0..n_layers).map(|_| None).collect(),
            len: 0,
            spill: None,
        }
    }

    /// An empty cache for `n_layers` layers whose keys and values share `tier`'s memory budget
    /// and spill to its directory beyond it.
    pub fn in_tier(n_layers: usize, tier: &SpillTier) -> Self {
        let mut cache = Self::new(n_layers);
        cache.spill = Some(Spill {
            tier: tier.clone(),
            file: None,
            end: 0,
            device: None,
        });
        cache
    }

    /// `self` moved into `tier` (it must be empty: nothing is moved).
    pub fn with_tier(self, tier: Option<&SpillTier>) -> Self {
        match tier {
            Some(tier) if self.is_empty() => Self::in_tier(self.layers.len(), tier),
            _ => self,
        }
    }

    /// Positions cached (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        for entry in std::mem::take(&mut self.layers) {
            self.release(entry);
            self.layers.push(None);
        }
        if let Some(spill) = &mut self.spill {
            if let Some(file) = &spill.file {
                // Space only: a failure leaves a longer anonymous file, freed on drop.
                let _ = file.set_len(0);
            }
            spill.end = 0;
        }
        self.len = 0;
    }

    /// Bytes the cached keys and values take, in memory and on disk.
    pub fn bytes(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(|e| match e {
                Entry::Memory { kv, .. } => bytes_of(&kv.0) + bytes_of(&kv.1),
                Entry::Disk(segments) => segments.iter().map(|s| 2 * s.half_bytes()).sum(),
            })
            .sum()
    }

    /// Layers whose keys and values are on disk now.
    pub fn layers_on_disk(&self) -> usize {
        self.layers
            .iter()
            .filter(|e| matches!(e, Some(Entry::Disk(_))))
            .count()
    }

    /// Appends `k`, `v` (`[batch, kv_heads, new, head_dim]`) to layer `layer`; returns the whole
    /// keys and values of that layer. In a tier, the layer is read back from disk if it was
    /// there, and put back in memory or on disk.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>)> {
        let old = self.layers[layer].take();
        let new_k = k.clone();
        let new_v = v.clone();
        let (k, v, segments) = match old {
            None => (k, v, Vec::new()),
            Some(Entry::Memory { kv, reserved }) => {
                self.release_bytes(reserved);
                let (ck, cv) = *kv;
                (
                    Tensor::cat(vec![ck, k], 2),
                    Tensor::cat(vec![cv, v], 2),
                    Vec::new(),
                )
            }
            Some(Entry::Disk(segments)) => {
                let (ck, cv) = self.read_back(&segments)?;
                (
                    Tensor::cat(vec![ck, k], 2),
                    Tensor::cat(vec![cv, v], 2),
                    segments,
                )
            }
        };
        let entry = self.put(k.clone(), v.clone(), segments, new_k, new_v)?;
        self.layers[layer] = Some(entry);
        Ok((k, v))
    }

    /// Records that a pass over `n` new positions finished.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// The entry for keys/values `k`, `v`: in memory if there is no tier or its budget has room;
    /// else on disk, writing only `new_k`/`new_v` when `segments` hold the rest already.
    fn put(
        &mut self,
        k: Tensor<4>,
        v: Tensor<4>,
        mut segments: Vec<Segment>,
        new_k: Tensor<4>,
        new_v: Tensor<4>,
    ) -> Result<Entry> {
        let Some(spill) = &mut self.spill else {
            return Ok(Entry::Memory {
                kv: Box::new((k, v)),
                reserved: 0,
            });
        };
        let bytes = bytes_of(&k) + bytes_of(&v);
        if spill.tier.reserve(bytes) {
            return Ok(Entry::Memory {
                kv: Box::new((k, v)),
                reserved: bytes,
            });
        }
        let (k, v) = if segments.is_empty() {
            (k, v)
        } else {
            (new_k, new_v)
        };
        segments.push(spill.write(k, v)?);
        Ok(Entry::Disk(segments))
    }

    fn read_back(&self, segments: &[Segment]) -> Result<(Tensor<4>, Tensor<4>)> {
        let spill = self
            .spill
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("spilled keys without a spill tier".into()))?;
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        for s in segments {
            let (k, v) = spill.read(s)?;
            ks.push(k);
            vs.push(v);
        }
        Ok((Tensor::cat(ks, 2), Tensor::cat(vs, 2)))
    }

    fn release(&self, entry: Option<Entry>) {
        if let Some(Entry::Memory { reserved, .. }) = entry {
            self.release_bytes(reserved);
        }
    }

    fn release_bytes(&self, bytes: u64) {
        if let Some(spill) = &self.spill {
            spill.tier.release(bytes);
        }
    }
}

impl Spill {
    /// Appends `k` then `v` to the spill file.
    fn write(&mut self, k: Tensor<4>, v: Tensor<4>) -> Result<Segment> {
        if self.device.is_none() {
            self.device = Some(k.device());
        }
        let segment = Segment {
            offset: self.end,
            dims: k.dims(),
            dtype: k.dtype(),
        };
        let file = match &self.file {
            Some(file) => file,
            None => {
                let file = tempfile::tempfile_in(self.tier.dir()).map_err(|e| {
                    self.tier
                        .error("cannot create a spill file for keys and values".into(), e)
                })?;
                self.file.insert(file)
            }
        };
        let mut at = self.end;
        for t in [k, v] {
            let data = t.into_data();
            let bytes = data.as_bytes();
            file.write_all_at(bytes, at).map_err(|e| {
                self.tier.error(
                    format!("writing {} bytes of keys and values", bytes.len()),
                    e,
                )
            })?;
            at += bytes.len() as u64;
            self.tier.count_spilled(bytes.len() as u64);
        }
        self.end = at;
        Ok(segment)
    }

    fn read(&self, s: &Segment) -> Result<(Tensor<4>, Tensor<4>)> {
        let (Some(file), Some(device)) = (&self.file, &self.device) else {
            return Err(Error::InvalidArgument(
                "spilled keys without their spill file".into(),
            ));
        };
        let half = s.half_bytes();
        let mut buf = vec![0u8; 2 * half as usize];
        file.read_exact_at(&mut buf, s.offset).map_err(|e| {
            self.tier.error(
                format!("reading back {} bytes of keys and values", buf.len()),
                e,
            )
        })?;
        self.tier.count_read_back(2 * half);
        let v = buf.split_off(half as usize);
        let tensor = |b: Vec<u8>| {
            Tensor::from_data(
                TensorData::from_bytes_vec(b, s.dims, s.dtype),
                (device, s.dtype),
            )
        };
        Ok((tensor(buf), tensor(v)))
    }
}

impl Drop for KvCache {
    fn drop(&mut self) {
        for entry in std::mem::take(&mut self.layers) {
            self.release(entry);
        }
    }
}
