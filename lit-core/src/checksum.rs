//! Layer checksums: XXH3-64, chosen because it hashes at memory speed (~10+ GB/s on one core),
//! so verifying every layer on arrival costs little next to reading it.

pub use xxhash_rust::xxh3::Xxh3 as StreamingChecksum;

/// The checksum of `bytes`: XXH3-64 with seed 0.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}
