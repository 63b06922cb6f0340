//! # lit-store
//!
//! Sources and writers for lit's layer-wise weight stores:
//!
//! - [`LocalSource`]: a store in a local directory, read with `pread` (default), `mmap`
//!   (guarded: a truncated file is an error, never a crash) or direct I/O (`O_DIRECT`);
//! - [`MemorySource`]: a store held in RAM;
//! - [`CachedSource`]: a RAM tier over any source, within a byte budget (fixed resident set);
//! - [`remote::ObjectStoreSource`] / [`remote::ObjectStoreSink`] (feature `remote`, with `s3`,
//!   `gcs`, `azure`, `http`): stores in object stores, read as concurrent ranged GETs;
//! - [`DiskCachedSource`]: a local disk tier under a remote store;
//! - [`open`] / [`create_writer`]: any store by location (path, `file://`, `s3://`, `gs://`,
//!   `az://`, `http(s)://`, `memory://`);
//! - [`StoreWriter`] and [`export()`]: turning safetensors, Hugging Face directories, PyTorch and
//!   burnpack checkpoints into stores, atomically.
//!
//! Every source implements [`lit_core::WeightSource`] and passes lit-core's conformance suite.

mod aligned;
pub mod cache;
mod convert;
pub mod copy;
mod direct;
pub mod disk_cache;
pub mod export;
pub mod import;
pub mod layer_file;
pub mod local;
pub mod location;
pub mod memory;
mod mmap;
pub mod redact;
#[cfg(feature = "remote")]
pub mod remote;
pub mod sink;
pub mod space;
#[cfg(feature = "s3-test-server")]
pub mod testing;
pub mod writer;

pub use cache::{CacheStats, CachedSource};
pub use convert::convert_floats;
pub use copy::{CopyReport, copy_store};
pub use disk_cache::{DiskCacheStats, DiskCachedSource};
pub use export::{ExportOptions, ExportReport, export, quantizable};
pub use local::{LocalSource, ReadMode};
pub use location::{DiskCacheOptions, OpenOptions, create_writer, open};
pub use memory::MemorySource;
pub use mmap::{MappedWatch, check_mapped, watch_mapped};
pub use writer::StoreWriter;
