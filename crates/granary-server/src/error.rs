//! The one error type of the server and CLI, with messages that say what to do.

/// `Result` with the server's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the server and the CLI can fail at, outside a single HTTP request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting, flag or configuration file cannot work.
    #[error("configuration: {0}")]
    Config(String),

    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What granary was doing, and on which path.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A running granary server refused a CLI request or could not be reached.
    #[error("{0}")]
    Remote(String),

    /// The engine or the store refused or failed.
    #[error(transparent)]
    Engine(#[from] granary_flow::engine::EngineError),

    /// The data directory's store or key could not be opened.
    #[error(transparent)]
    Open(#[from] granary::Error),

    /// The store failed at the server's own records (admin sessions, API keys).
    #[error("the store failed while {doing}: {source}")]
    Store {
        /// What the server was doing.
        doing: String,
        /// The store's error (it says what to check).
        #[source]
        source: granary_store::Error,
    },
}

impl Error {
    /// An [`Error::Store`]: the store failed while `doing` something.
    pub fn store(doing: impl Into<String>, source: granary_store::Error) -> Self {
        Self::Store {
            doing: doing.into(),
            source,
        }
    }

    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
