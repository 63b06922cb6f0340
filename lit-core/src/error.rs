//! The one error type shared by every lit crate below the CLI.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed error from a backend (an object store client, a checkpoint reader, …).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while reading, writing or checking a store.
///
/// Variants name the file, layer or tensor involved so a user can act on the message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named file or object.
    #[error("{path}: {source}")]
    Io {
        /// The file or object the operation was on.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A layer, tensor, auxiliary file or store that does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for, e.g. "layer 12" or "tensor `lm_head.weight`".
        what: String,
    },
    /// The destination of a write already exists.
    #[error("{path}: already exists (remove it or choose another destination)")]
    AlreadyExists {
        /// The destination.
        path: String,
    },
    /// The manifest does not start with lit's magic bytes: not a lit store.
    #[error("{location}: not a lit store (manifest has no LITSTORE magic)")]
    BadMagic {
        /// Where the manifest was read from.
        location: String,
    },
    /// The manifest was written by a newer (or unknown) version of the format.
    #[error(
        "{location}: store format version {found} is not supported (this build reads versions 1 to {supported})"
    )]
    UnsupportedVersion {
        /// Where the manifest was read from.
        location: String,
        /// Version found in the manifest.
        found: u32,
        /// Newest version this build reads (it reads every version from 1 up to this one).
        supported: u32,
    },
    /// The manifest is damaged or internally inconsistent.
    #[error("{location}: corrupt manifest: {reason}")]
    CorruptManifest {
        /// Where the manifest was read from.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A named limit of the format was exceeded (checked before allocating).
    #[error("{context}: {what} is {value}, above the limit of {limit}")]
    LimitExceeded {
        /// File, layer or tensor the value belongs to.
        context: String,
        /// Which quantity, e.g. "tensor rank".
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit (see [`crate::limits`]).
        limit: u64,
    },
    /// The destination of a write has less free space than the write needs (checked before
    /// writing starts, when the size is known).
    #[error(
        "{path}: not enough free space: {needed} bytes needed ({}), {available} bytes available ({})",
        crate::error::human(*needed), crate::error::human(*available)
    )]
    InsufficientSpace {
        /// The destination (directory or file being written).
        path: String,
        /// Bytes the write needs.
        needed: u64,
        /// Bytes free at the destination (for an unprivileged user).
        available: u64,
    },
    /// A layer's bytes do not hash to the checksum in the manifest.
    #[error(
        "layer `{layer}` ({key}): checksum mismatch: manifest says {expected:016x}, data hashes to {actual:016x}"
    )]
    ChecksumMismatch {
        /// Layer (or auxiliary file) name.
        layer: String,
        /// Object key.
        key: String,
        /// Checksum recorded in the manifest.
        expected: u64,
        /// Checksum of the bytes read.
        actual: u64,
    },
    /// An object is shorter or longer than the manifest says (e.g. truncated on disk).
    #[error("layer `{layer}` ({key}): expected {expected} bytes, found {actual}")]
    LengthMismatch {
        /// Layer (or auxiliary file) name.
        layer: String,
        /// Object key.
        key: String,
        /// Length recorded in the manifest.
        expected: u64,
        /// Length found.
        actual: u64,
    },
    /// A store file changed (truncated, replaced or rewritten) while lit was using bytes read
    /// from it, so those bytes cannot be trusted: lit reads mapped layers in place, and a
    /// mapped page that vanished reads as zeros rather than crashing the process.
    #[error("layer `{layer}` ({key}): the file changed while it was in use: {what}")]
    Changed {
        /// Layer (or auxiliary file) name.
        layer: String,
        /// Object key.
        key: String,
        /// What was seen, e.g. "a page vanished while it was read (truncated?)".
        what: String,
    },
    /// A tensor in an input checkpoint is malformed (bad offsets, shape × dtype ≠ bytes, …).
    #[error("{file}: tensor `{tensor}`: {reason}")]
    InvalidTensor {
        /// The checkpoint file.
        file: String,
        /// The tensor's full name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// An input checkpoint is malformed as a whole (bad header, empty, unknown format, …).
    #[error("{file}: {reason}")]
    InvalidCheckpoint {
        /// The checkpoint file or directory.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A caller asked for something that cannot be (a range past the end, a bad option, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// An error from a storage backend, with context.
    #[error("{context}: {source}")]
    Backend {
        /// What lit was doing, naming the object.
        context: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// An [`Error::Io`] on `path`.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// An [`Error::NotFound`] describing `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// An [`Error::Backend`] with `context`.
    pub fn backend(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether the error is a [`Error::NotFound`] (or an I/O not-found).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// `1.5 GiB`, `12.0 MiB`, `512 B`: a byte count for messages.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
