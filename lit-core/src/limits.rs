//! Named limits of the store format.
//!
//! Every decoder checks these *before* allocating, with checked arithmetic, so a hostile or
//! damaged manifest cannot make lit allocate absurd amounts of memory or overflow.

/// Largest manifest accepted, in bytes (header included).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Most layers in one store.
pub const MAX_LAYERS: u64 = 1 << 16;
/// Most tensors in one layer.
pub const MAX_TENSORS_PER_LAYER: u64 = 1 << 16;
/// Most tensors in one store.
pub const MAX_TENSORS: u64 = 1 << 20;
/// Longest tensor, layer, model or auxiliary file name, in bytes.
pub const MAX_NAME_LEN: u64 = 1024;
/// Highest tensor rank.
pub const MAX_RANK: u64 = 8;
/// Largest single dimension.
pub const MAX_DIM: u64 = 1 << 40;
/// Largest layer object, in bytes (1 TiB).
pub const MAX_LAYER_BYTES: u64 = 1 << 40;
/// Most auxiliary files (config, tokenizer, …) in one store.
pub const MAX_AUX_FILES: u64 = 256;
/// Largest auxiliary file, in bytes.
pub const MAX_AUX_BYTES: u64 = 1 << 30;
/// Most free-form metadata entries in a manifest.
pub const MAX_METADATA_ENTRIES: u64 = 1024;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_LEN: u64 = 1 << 16;
