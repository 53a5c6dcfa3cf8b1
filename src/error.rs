//! The crate's error type. Every public API returns [`Result`]; a panic is a bug.
//!
//! Messages name the op and the shapes (or the file, adapter, limit) involved so that a user
//! can act on them without reading the source.

use crate::dtype::DType;
use crate::shape::Shape;

/// Result alias used throughout wgnn.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in wgnn.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two operands whose shapes do not fit together.
    #[error("{op}: shape mismatch between {lhs} and {rhs}{detail}")]
    ShapeMismatch {
        /// The op that rejected the shapes.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Shape,
        /// Shape of the second operand.
        rhs: Shape,
        /// Extra explanation (may be empty), starting with ": ".
        detail: String,
    },
    /// An argument outside what the op accepts (rank, geometry, value range).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The op that rejected the argument.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// Operands live on different devices.
    #[error("{op}: operands are on different devices ({lhs} and {rhs}); move one with to_device()")]
    DeviceMismatch {
        /// The op.
        op: &'static str,
        /// Device of the first operand.
        lhs: String,
        /// Device of the second operand.
        rhs: String,
    },
    /// An operand has the wrong element type.
    #[error("{op}: expected dtype {expected}, got {got}")]
    DTypeMismatch {
        /// The op.
        op: &'static str,
        /// The dtype the op needs.
        expected: DType,
        /// The dtype it was given.
        got: DType,
    },
    /// The op has no kernel for this dtype (on this device).
    #[error("{op}: dtype {dtype} is not supported {why}")]
    UnsupportedDType {
        /// The op.
        op: &'static str,
        /// The dtype asked for.
        dtype: DType,
        /// Why (e.g. "by this op" or "on adapter X: it lacks SHADER_F16").
        why: String,
    },
    /// A buffer would exceed what the adapter can bind in one storage binding.
    #[error(
        "{what}: {bytes} bytes exceed the adapter's limit of {limit} bytes per storage buffer \
         (adapter \"{adapter}\"); use a smaller batch or split the tensor"
    )]
    BufferTooLarge {
        /// What was being allocated.
        what: String,
        /// Requested size in bytes.
        bytes: u64,
        /// The adapter's limit in bytes.
        limit: u64,
        /// Adapter name.
        adapter: String,
    },
    /// Host memory for a tensor could not be had: the size overflows, or the allocator
    /// refused it. Nothing was allocated and nothing aborts.
    #[error("{op}: cannot allocate a {shape} {dtype} tensor in host memory ({bytes} bytes): {why}")]
    HostAllocation {
        /// The op or constructor that asked.
        op: String,
        /// The shape (or element count) asked for.
        shape: String,
        /// Element type.
        dtype: crate::dtype::DType,
        /// Bytes asked for (saturating at `u128::MAX` when even that overflows).
        bytes: u128,
        /// Why: the size overflows, or the allocator's refusal.
        why: String,
    },
    /// No GPU adapter could be found or opened.
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    /// A device string (`--device`, `WGNN_DEVICE`) that does not parse or names a missing adapter.
    #[error("invalid device \"{spec}\": {msg}")]
    DeviceSpec {
        /// The string given.
        spec: String,
        /// What is wrong with it.
        msg: String,
    },
    /// An error reported by wgpu (validation, out of memory, device lost, mapping).
    #[error("GPU error on adapter \"{adapter}\": {msg}")]
    Gpu {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        msg: String,
    },
    /// A data file that is malformed (wrong magic, truncated, inconsistent counts).
    #[error("{path}: {msg}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A checkpoint that does not fit the model or optimizer.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What does not match.
        msg: String,
    },
    /// I/O failure, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] naming `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// An [`Error::Data`] naming `path`.
    pub fn data(path: impl AsRef<std::path::Path>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.as_ref().display().to_string(),
            msg: msg.into(),
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    /// Shorthand for [`Error::ShapeMismatch`] with an explanation.
    pub fn shapes(op: &'static str, lhs: &Shape, rhs: &Shape, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            detail: if detail.is_empty() {
                detail
            } else {
                format!(": {detail}")
            },
        }
    }
}
