//! # lit-store
//!
//! Sources and writers for lit's layer-wise weight stores:
//!
//! - [`LocalSource`]: a store in a local directory, read with `pread` (default) or `mmap`;
//! - [`MemorySource`]: a store held in RAM;
//! - [`CachedSource`]: a RAM tier over any source, within a byte budget (fixed resident set);
//! - [`StoreWriter`] and [`export()`]: turning safetensors, Hugging Face directories, PyTorch and
//!   burnpack checkpoints into stores, atomically.
//!
//! Every source implements [`lit_core::WeightSource`] and passes lit-core's conformance suite.

mod aligned;
pub mod cache;
mod convert;
pub mod export;
pub mod import;
pub mod layer_file;
pub mod local;
pub mod memory;
mod mmap;
pub mod sink;
pub mod writer;

pub use cache::{CacheStats, CachedSource};
pub use convert::convert_floats;
pub use export::{ExportOptions, ExportReport, export};
pub use local::{LocalSource, ReadMode};
pub use memory::MemorySource;
pub use writer::StoreWriter;
