//! The library's error type.
//!
//! Every variant that a user can cause (a bad path, a layer out of range, a
//! shape mismatch) names the offending value and what was expected, so the
//! CLI can print it as a single line and exit with code 2.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = GeomError> = std::result::Result<T, E>;

/// Errors raised by geom's library code.
#[derive(Debug, thiserror::Error)]
pub enum GeomError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but is not a geom store (or has an unsupported schema).
    #[error("{path}: not a geom store ({reason})")]
    NotAStore { path: PathBuf, reason: String },
    /// An HDF5 operation failed.
    #[error("{path}: HDF5 error: {message}")]
    Hdf5 { path: PathBuf, message: String },
    /// A `.npy` file could not be read or has the wrong shape.
    #[error("{path}: {message}")]
    Npy { path: PathBuf, message: String },
    /// A modality that the store does not hold.
    #[error("unknown modality '{name}' (this store has: {available})")]
    UnknownModality { name: String, available: String },
    /// A layer index outside `[-L, L)`.
    #[error("layer {layer} is out of range: this store has {n_layers} layers (valid: 0..{n_layers}, or -{n_layers}..-1 from the end)")]
    LayerOutOfRange { layer: i64, n_layers: usize },
    /// A `--layers` specification that does not parse.
    #[error("invalid layer selection '{spec}': {reason} (expected 'all', a list '0,5,10', a range '0..12', or negative indices '-1')")]
    InvalidLayerSpec { spec: String, reason: String },
    /// k must satisfy 1 <= k < N.
    #[error("k = {k} is out of range for N = {n} rows (expected 1 <= k <= {max})", max = n.saturating_sub(1))]
    KOutOfRange { k: usize, n: usize },
    /// The two sides of a comparison do not have the same number of rows.
    #[error("row count mismatch: '{a}' has {na} rows but '{b}' has {nb}; kernel alignment needs the same N paired rows on both sides")]
    RowMismatch {
        a: String,
        na: usize,
        b: String,
        nb: usize,
    },
    /// A row with zero L2 norm where cosines are needed.
    #[error("row {row} of {what} has zero norm, so its cosine is undefined (drop or fix the row, or pass --zero-norm skip)")]
    ZeroNormRow { what: String, row: usize },
    /// An invalid argument value.
    #[error("{0}")]
    InvalidArgument(String),
}

impl GeomError {
    /// Shorthand for [`GeomError::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        GeomError::InvalidArgument(msg.into())
    }

    /// Fails with [`GeomError::RowMismatch`] unless the two sides have the same
    /// number of rows (`a`, `b` name the sides in the message).
    pub fn check_rows(a: &str, na: usize, b: &str, nb: usize) -> Result<()> {
        if na == nb {
            return Ok(());
        }
        Err(GeomError::RowMismatch {
            a: a.to_string(),
            na,
            b: b.to_string(),
            nb,
        })
    }

    /// Wrap an HDF5 error with the file it happened on.
    pub fn hdf5(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        GeomError::Hdf5 {
            path: path.into(),
            message: err.to_string(),
        }
    }

    /// A TOML parse error on one line: `{file}: line L: {message}`.
    pub fn toml(file: &str, text: &str, err: &toml::de::Error) -> Self {
        let line = err
            .span()
            .map(|s| {
                format!(
                    "line {}: ",
                    text[..s.start.min(text.len())].matches('\n').count() + 1
                )
            })
            .unwrap_or_default();
        GeomError::InvalidArgument(format!("{file}: {line}{}", err.message().trim()))
    }
}
