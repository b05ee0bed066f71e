//! Error type shared by the library and the command line.

use std::path::PathBuf;

/// Every failure gradfit reports: each names where it happened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid JSON (line and column from the parser).
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file.
        path: String,
        /// Parser message with line and column.
        message: String,
    },
    /// A workspace violates the schema or is inconsistent; `location` is a JSON pointer.
    #[error("{source_name}: workspace error at {location}: {message}")]
    Workspace {
        /// File name (or "<workspace>" for in-memory input).
        source_name: String,
        /// JSON pointer of the offending value, e.g. `/channels/2/samples/0/data`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A JSON Patch or patchset could not be applied.
    #[error("{source_name}: patch error: {message}")]
    Patch {
        /// Patch file name.
        source_name: String,
        /// What failed (operation index and path included).
        message: String,
    },
    /// Invalid user input that is not a file (command line values, parameter vectors).
    #[error("{0}")]
    Input(String),
    /// A numerical failure (non-finite likelihood, singular Hessian...).
    #[error("numerical error: {0}")]
    Numerical(String),
    /// A result holds values that are not numbers (NaN or infinite); the
    /// results were still printed and written, with `null` in their place.
    #[error("{0}")]
    NotFinite(String),
    /// Standard output was closed by its reader (e.g. `| head`): not a failure.
    #[error("standard output was closed")]
    ClosedOutput,
    /// An error raised by candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Shorthand for a workspace error at a JSON pointer.
    pub fn workspace(
        source_name: &str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Workspace {
            source_name: source_name.to_string(),
            location: location.into(),
            message: message.into(),
        }
    }

    /// Shorthand for an input error.
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }
}

/// Result alias used throughout gradfit.
pub type Result<T> = std::result::Result<T, Error>;
