//! Errors of lit-burn: every variant names the tensor, layer or device involved.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while choosing a device, loading or streaming a module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the store failed.
    #[error(transparent)]
    Source(#[from] lit_core::Error),
    /// One or more tensors could not be loaded into a module (all problems are listed).
    #[error("{0}")]
    Load(LoadErrors),
    /// The memory budget cannot hold a layer the model needs.
    #[error(
        "memory budget of {budget} bytes is too small: {what} needs {needed} bytes \
         (raise the budget to at least {needed} bytes)"
    )]
    BudgetTooSmall {
        /// The layer (or set of layers of one `load`) that does not fit.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// The budget.
        budget: u64,
    },
    /// The budget is taken by modules still loaded, so the next one cannot be loaded.
    #[error(
        "cannot load {what} ({needed} bytes): {held} of the {budget}-byte budget are held by \
         loaded modules that are still alive (drop each loaded module before loading the next)"
    )]
    BudgetHeld {
        /// What was to be loaded.
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// Bytes held by live loaded modules and the resident set.
        held: u64,
        /// The budget.
        budget: u64,
    },
    /// A device was asked for that this build or this machine cannot provide.
    #[error("device `{device}` is not available: {reason}")]
    DeviceUnavailable {
        /// The device name as given (`cuda`, `ndarray`, …).
        device: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// The skeleton module cannot be streamed as built (shared parameters, …).
    #[error("{0}")]
    Skeleton(String),
    /// A caller asked for something that cannot be (a bad option, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// The spill tier (activations on local disk) could not be written or read back.
    #[error("spill directory {}: {what}", dir.display())]
    Spill {
        /// The spill directory.
        dir: std::path::PathBuf,
        /// What was being done (`creating a spill file`, `writing 1048576 bytes`, …).
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why one tensor could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The store has no tensor of that name (in the layers given).
    Missing {
        /// Name looked up in the store.
        tensor: String,
        /// The parameter's path in the module.
        path: String,
    },
    /// The stored shape (after the layout transform) differs from the skeleton's.
    ShapeMismatch {
        /// Store name.
        tensor: String,
        /// Module path.
        path: String,
        /// Shape the skeleton declares.
        expected: Vec<usize>,
        /// Shape in the store (after the layout transform).
        found: Vec<usize>,
    },
    /// The stored element type cannot fill this parameter (an int tensor for a float param, …).
    DTypeMismatch {
        /// Store name.
        tensor: String,
        /// Module path.
        path: String,
        /// What the parameter accepts, e.g. "a float type".
        expected: String,
        /// The stored type.
        found: lit_core::DType,
    },
    /// The device cannot hold the tensor's element type (e.g. BF16 on NdArray).
    UnsupportedDType {
        /// Store name.
        tensor: String,
        /// The element type the tensor would have on the device.
        dtype: String,
    },
    /// The layout transform does not apply to this tensor (e.g. a transpose of a 1-D tensor).
    BadLayout {
        /// Store name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The stored bytes could not be decoded (quantized blocks that do not match their scheme).
    Decode {
        /// Store name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// The parameter is not in the path map (the module is not part of the registered skeleton).
    UnknownParam {
        /// The parameter's id.
        id: String,
    },
    /// The parameter appears at several paths of the skeleton (a module cloned into two places).
    AmbiguousParam {
        /// The paths sharing one parameter id.
        paths: Vec<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { tensor, path } => {
                write!(
                    f,
                    "tensor `{tensor}` (for `{path}`) is missing from the store"
                )
            }
            Problem::ShapeMismatch {
                tensor,
                path,
                expected,
                found,
            } => write!(
                f,
                "tensor `{tensor}` (for `{path}`): shape mismatch: the module expects {expected:?}, \
                 the store has {found:?}"
            ),
            Problem::DTypeMismatch {
                tensor,
                path,
                expected,
                found,
            } => write!(
                f,
                "tensor `{tensor}` (for `{path}`): dtype mismatch: the parameter needs {expected}, \
                 the store has {found}"
            ),
            Problem::UnsupportedDType { tensor, dtype } => write!(
                f,
                "tensor `{tensor}`: the device cannot hold {dtype} (convert floats with \
                 `LoadOptions::float_dtype`)"
            ),
            Problem::BadLayout { tensor, reason } | Problem::Decode { tensor, reason } => {
                write!(f, "tensor `{tensor}`: {reason}")
            }
            Problem::UnknownParam { id } => write!(
                f,
                "parameter {id} is not part of the registered skeleton (load submodules of the \
                 module the streamer was built from)"
            ),
            Problem::AmbiguousParam { paths } => write!(
                f,
                "one parameter appears at several paths ({}): build each submodule with its own \
                 `init` instead of cloning it",
                paths.join(", ")
            ),
        }
    }
}

/// All the problems of one load, in module order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors {
    /// Every tensor that failed, with why.
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tensor(s) could not be loaded:", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
