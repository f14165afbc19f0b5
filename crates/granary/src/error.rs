//! The one error type of the facade.

use std::path::PathBuf;

/// `Result` with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while opening or running a granary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened or failed.
    #[error("the store failed: {0}")]
    Store(#[from] granary_store::Error),

    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] granary_flow::engine::EngineError),

    /// The master key is missing, malformed, or its file cannot be used.
    #[error("{0}")]
    Key(String),

    /// A file could not be read or written.
    #[error("cannot use {path}: {source}; check that the folder exists and is writable")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },

    /// The configuration asks for something this build cannot do.
    #[error("{0}")]
    Config(String),
}
