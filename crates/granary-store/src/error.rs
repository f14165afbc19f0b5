//! The one error type of every store, with variants a caller can act on.

use std::error::Error as StdError;

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a store operation failed.
///
/// Every backend maps its own faults onto these variants so that the engine can act on them
/// without knowing which backend it talks to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The record the operation needs does not exist.
    #[error("{what} does not exist: create it first, or check the id")]
    NotFound {
        /// The record, e.g. "instance `github-prod`".
        what: String,
    },
    /// A record with this key exists already.
    #[error("{what} already exists: choose another id, or update the existing record")]
    AlreadyExists {
        /// The record, e.g. "instance `github-prod`".
        what: String,
    },
    /// A compare-and-swap lost: the record changed since the caller read it, or a record
    /// that must stay untouched while others refer to it is still referred to.
    #[error("{what} changed under you ({detail}): read it again and retry")]
    Conflict {
        /// The record, e.g. "token of instance `github-prod`".
        what: String,
        /// What the caller expected and what the store holds.
        detail: String,
    },
    /// The stored data cannot be read: not a granary store, damaged, or written by a newer
    /// granary.
    #[error("{message}")]
    Corrupt {
        /// What is wrong and what to do about it.
        message: String,
    },
    /// The backend cannot do what was asked (e.g. sharing a store between processes).
    #[error("{message}")]
    Unsupported {
        /// What is not supported and what to use instead.
        message: String,
    },
    /// The backend itself failed (I/O error, full disk, lock timeout, ...).
    #[error("{message}: {source}")]
    Backend {
        /// What the store was doing and what to check.
        message: String,
        /// The backend's own error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl Error {
    /// A [`Error::NotFound`] for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// A [`Error::AlreadyExists`] for `what`.
    pub fn already_exists(what: impl Into<String>) -> Self {
        Self::AlreadyExists { what: what.into() }
    }

    /// A [`Error::Conflict`] on a version compare-and-swap: `expected` is what the caller
    /// passed, `found` what the store holds (`None`: no record).
    pub fn version_conflict(
        what: impl Into<String>,
        expected: Option<u64>,
        found: Option<u64>,
    ) -> Self {
        let show = |v: Option<u64>| match v {
            Some(v) => format!("version {v}"),
            None => "no record".to_string(),
        };
        Self::Conflict {
            what: what.into(),
            detail: format!(
                "expected {}, the store holds {}",
                show(expected),
                show(found)
            ),
        }
    }

    /// A [`Error::Conflict`] with a free-form detail.
    pub fn conflict(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Conflict {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// A [`Error::Corrupt`] with a message that says what to do.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt {
            message: message.into(),
        }
    }

    /// A [`Error::Unsupported`] with a message that says what to use instead.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::Unsupported {
            message: message.into(),
        }
    }

    /// A [`Error::Backend`] wrapping the backend's own error.
    pub fn backend(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            message: message.into(),
            source: source.into(),
        }
    }

    /// A stored record that does not decode: [`Error::Corrupt`] naming the record.
    pub fn undecodable(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Self {
        Self::corrupt(format!(
            "{what} cannot be decoded ({why}): the store is damaged or was written by a newer \
             granary; restore it from a backup or upgrade granary"
        ))
    }
}
