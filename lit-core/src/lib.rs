//! # lit-core
//!
//! The layer-wise store format of lit, the Lite Inference Toolkit for Burn: the [`Manifest`] and
//! its encoding, [`DType`]s, checksums, named [`limits`], layer [`grouping`], the
//! [`WeightSource`] trait every storage backend implements, errors and progress events.
//!
//! This crate has no Burn, no async runtime, no cloud client and no `unsafe`; the
//! format specification lives in `docs/format.md`.
//!
//! With the `conformance` feature, the `conformance` module offers plain async test functions that every
//! [`WeightSource`] should pass.
#![forbid(unsafe_code)]

pub mod checksum;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod dtype;
pub mod error;
pub mod grouping;
pub mod limits;
pub mod manifest;
pub mod progress;
pub mod quant;
pub mod source;

pub use bytes::Bytes;
pub use checksum::checksum;
pub use dtype::DType;
pub use error::{Error, Result};
pub use manifest::{AuxFile, LayerEntry, Manifest, ObjectId, ObjectInfo, TensorEntry};
pub use progress::{Event, NoObserver, Observer};
pub use quant::QuantScheme;
pub use source::{LayerData, VerifyReport, WeightSource, WeightSourceExt};

/// The version string lit writes into manifests.
pub const TOOL_VERSION: &str = concat!("lit ", env!("CARGO_PKG_VERSION"));
