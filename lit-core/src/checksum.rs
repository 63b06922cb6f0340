//! Layer checksums: XXH3-64, chosen because it hashes at memory speed (~10+ GB/s on one core),
//! so verifying every layer on arrival costs little next to reading it.

pub use xxhash_rust::xxh3::Xxh3 as StreamingChecksum;

use crate::error::{Error, Result};
use crate::manifest::{LayerEntry, TensorEntry};
use std::ops::Range;

/// The checksum of `bytes`: XXH3-64 with seed 0.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Checks the tensors of a byte range of a layer against their own checksums
/// ([`TensorEntry::checksum`], format version 3) while the range's bytes arrive in order, so a
/// tensor read without the rest of its layer is verified as a whole layer is. Tensors without a
/// checksum (older stores), and tensors only partly inside the range, are not checked.
pub struct TensorChecks<'a> {
    layer: &'a LayerEntry,
    location: &'a str,
    /// Tensors to check, in offset order, and the one being hashed.
    pending: Vec<&'a TensorEntry>,
    next: usize,
    /// Offset in the layer of the next byte to arrive.
    at: u64,
    hasher: StreamingChecksum,
    failed: Option<Error>,
}

impl std::fmt::Debug for TensorChecks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorChecks")
            .field("layer", &self.layer.name)
            .field("checked", &self.next)
            .field("of", &self.pending.len())
            .field("at", &self.at)
            .finish()
    }
}

impl<'a> TensorChecks<'a> {
    /// Checks for `range` of `layer` (read from the store at `location`).
    pub fn new(layer: &'a LayerEntry, location: &'a str, range: Range<u64>) -> Self {
        let mut pending: Vec<&TensorEntry> = layer
            .tensors
            .iter()
            .filter(|t| {
                t.checksum.is_some() && t.offset >= range.start && t.offset + t.len <= range.end
            })
            .collect();
        pending.sort_by_key(|t| t.offset);
        TensorChecks {
            layer,
            location,
            pending,
            next: 0,
            at: range.start,
            hasher: StreamingChecksum::new(),
            failed: None,
        }
    }

    /// Whether every tensor overlapping `range` of `layer` has a checksum (a range of a store
    /// written before format version 3 cannot be verified).
    pub fn verifiable(layer: &LayerEntry, range: Range<u64>) -> bool {
        layer
            .tensors
            .iter()
            .filter(|t| t.offset < range.end && t.offset + t.len > range.start)
            .all(|t| t.checksum.is_some())
    }

    /// Hashes the next `bytes` of the range.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(t) = self.pending.get(self.next) else {
                self.at += bytes.len() as u64;
                return;
            };
            if self.at < t.offset {
                let skip = ((t.offset - self.at) as usize).min(bytes.len());
                self.at += skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let take = ((t.offset + t.len - self.at) as usize).min(bytes.len());
            self.hasher.update(&bytes[..take]);
            self.at += take as u64;
            bytes = &bytes[take..];
            if self.at == t.offset + t.len {
                self.finish_tensor();
            }
        }
    }

    fn finish_tensor(&mut self) {
        let t = self.pending[self.next];
        let actual = self.hasher.digest();
        self.hasher.reset();
        self.next += 1;
        if Some(actual) != t.checksum && self.failed.is_none() {
            self.failed = Some(Error::ChecksumMismatch {
                layer: format!("{} (tensor `{}`)", self.layer.name, t.name),
                key: format!("{}/{}", self.location, self.layer.key),
                expected: t.checksum.unwrap_or(0),
                actual,
            });
        }
    }

    /// The first mismatch, or a length error if the range's bytes stopped before a tensor ended.
    pub fn finish(mut self) -> Result<()> {
        // Zero-length tensors at the very end have nothing left to arrive.
        while let Some(t) = self.pending.get(self.next) {
            if t.len != 0 || self.at < t.offset {
                break;
            }
            self.finish_tensor();
        }
        if let Some(e) = self.failed {
            return Err(e);
        }
        if let Some(t) = self.pending.get(self.next) {
            return Err(Error::LengthMismatch {
                layer: format!("{} (tensor `{}`)", self.layer.name, t.name),
                key: format!("{}/{}", self.location, self.layer.key),
                expected: t.offset + t.len,
                actual: self.at,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, LayerEntry, TensorEntry};

    /// A layer of three tensors at 10..14, 14..20 (no checksum) and 24..30, over `bytes`.
    fn layer(bytes: &[u8]) -> LayerEntry {
        let t = |name: &str, offset: u64, len: u64, sum: bool| TensorEntry {
            name: name.into(),
            dtype: DType::U8,
            shape: vec![len],
            offset,
            len,
            quant: None,
            checksum: sum.then(|| checksum(&bytes[offset as usize..(offset + len) as usize])),
        };
        LayerEntry {
            name: "block.0".into(),
            key: "layers/00000".into(),
            byte_len: bytes.len() as u64,
            checksum: checksum(bytes),
            tensors: vec![
                t("a", 10, 4, true),
                t("b", 14, 6, false),
                t("c", 24, 6, true),
            ],
        }
    }

    fn check(entry: &LayerEntry, bytes: &[u8], range: Range<u64>, chunk: usize) -> Result<()> {
        let mut checks = TensorChecks::new(entry, "store", range.clone());
        for piece in bytes[range.start as usize..range.end as usize].chunks(chunk) {
            checks.update(piece);
        }
        checks.finish()
    }

    #[test]
    fn tensors_are_checked_in_any_chunking() {
        let bytes: Vec<u8> = (0..40).collect();
        let entry = layer(&bytes);
        for chunk in [1, 3, 7, 40] {
            check(&entry, &bytes, 10..30, chunk).unwrap();
            check(&entry, &bytes, 24..30, chunk).unwrap();
        }
        assert!(TensorChecks::verifiable(&entry, 24..30));
        assert!(
            !TensorChecks::verifiable(&entry, 10..30),
            "`b` has no checksum"
        );
    }

    #[test]
    fn a_changed_byte_names_its_tensor_and_an_unchecked_one_passes() {
        let bytes: Vec<u8> = (0..40).collect();
        let entry = layer(&bytes);
        let mut bad = bytes.clone();
        bad[26] ^= 1;
        let err = check(&entry, &bad, 10..30, 5).unwrap_err().to_string();
        assert!(err.contains("block.0 (tensor `c`)"), "{err}");
        assert!(err.contains("store/layers/00000"), "{err}");
        let mut unchecked = bytes.clone();
        unchecked[15] ^= 1;
        check(&entry, &unchecked, 10..30, 5).unwrap();
    }

    #[test]
    fn bytes_that_stop_early_are_a_length_error() {
        let bytes: Vec<u8> = (0..40).collect();
        let entry = layer(&bytes);
        let mut checks = TensorChecks::new(&entry, "store", 10..30);
        checks.update(&bytes[10..26]);
        let err = checks.finish().unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
        assert!(err.to_string().contains("tensor `c`"), "{err}");
    }
}
