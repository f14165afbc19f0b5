//! The one error type of the engine, with messages that say what to do.

use std::sync::Arc;
use std::time::Duration;

use granary_openapi::UnknownScope;

use super::seal::SealError;

/// `Result` with the engine's [`EngineError`].
pub type EngineResult<T, E = EngineError> = Result<T, E>;

/// Everything the engine can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The integration, instance or record does not exist.
    #[error("{what} does not exist: check the name, or create it first")]
    NotFound {
        /// What was looked for, e.g. "instance `github`".
        what: String,
    },

    /// Something the caller passed cannot work.
    #[error("{0}")]
    Invalid(String),

    /// Scopes the integration's flow does not declare.
    #[error(
        "the scopes {} are not declared by the flow of `{integration}`: fix them, or force them \
         if the provider accepts scopes its document does not list",
        describe_unknown(unknown)
    )]
    UnknownScopes {
        /// The integration.
        integration: String,
        /// Each unknown scope with the nearest declared one.
        unknown: Vec<UnknownScope>,
    },

    /// The document could not be imported.
    #[error("the document could not be imported: {0}")]
    Import(#[from] granary_openapi::Error),

    /// The instance has never been authorized.
    #[error(
        "instance `{instance}` is not authorized yet: start the authorization (\"Get access \
         token\") and approve it at the provider"
    )]
    NotAuthorized {
        /// The instance.
        instance: String,
    },

    /// The provider refused the refresh token, or there is none: authorize again.
    #[error(
        "instance `{instance}` needs a new authorization: {}; authorize again (\"Get access \
         token\")",
        without_fix(reason)
    )]
    NeedsAuthorization {
        /// The instance.
        instance: String,
        /// Why (never a secret).
        reason: String,
    },

    /// The instance was switched off.
    #[error("instance `{instance}` is disabled: enable it to hand out tokens again")]
    Disabled {
        /// The instance.
        instance: String,
    },

    /// The callback's state is unknown, used already, or expired.
    #[error(
        "this authorization is unknown, was used already, or expired (after 10 minutes): start \
         the authorization again"
    )]
    UnknownAuthorization,

    /// A refresh failed and the current token is no longer valid.
    #[error("refreshing the token of instance `{instance}` failed: {source}")]
    Refresh {
        /// The instance.
        instance: String,
        /// The protocol error (shared by every caller that waited for the same refresh).
        #[source]
        source: Arc<crate::Error>,
    },

    /// A refresh failed a moment ago (in this process or another) and the provider is not
    /// asked again before the backoff ends; the current token has expired.
    #[error(
        "the token of instance `{instance}` expired and cannot be refreshed before {}s have \
         passed: the last refresh failed ({reason}); try again then",
        retry_after.as_secs().max(1)
    )]
    BackingOff {
        /// The instance.
        instance: String,
        /// How the last refresh failed.
        reason: String,
        /// How long until the next attempt may be made.
        retry_after: Duration,
    },

    /// The token endpoint refused the refresh with an answer that is no OAuth error (an
    /// empty or HTML 4xx): the instance is "refresh failing" until a refresh works, and
    /// needs authorization after repeated refusals.
    #[error("refreshing the token of instance `{instance}` failed: {reason}")]
    RefreshFailing {
        /// The instance.
        instance: String,
        /// The provider's answer and what happens next.
        reason: String,
    },

    /// The engine is shutting down and the refresh was cut short at the end of the grace
    /// period.
    #[error(
        "the refresh of instance `{instance}` was cut short because granary is shutting down: \
         try again once it runs"
    )]
    ShuttingDown {
        /// The instance.
        instance: String,
    },

    /// Other writers kept changing a record while this change was tried: nothing of this
    /// change was written.
    #[error("{what}: nothing was changed; try again")]
    Contention {
        /// What kept changing, e.g. "instance `x` kept changing while it was updated".
        what: String,
    },

    /// Another process holds the refresh lease and produced no new token in time.
    #[error(
        "another process is refreshing the token of instance `{instance}` and wrote no new \
         token within {}s: try again; if this repeats, check the other processes' logs",
        waited.as_secs()
    )]
    RefreshTimedOut {
        /// The instance.
        instance: String,
        /// How long this caller waited.
        waited: Duration,
    },

    /// The authorization, code exchange or revocation failed at the provider.
    #[error(transparent)]
    Protocol(#[from] crate::Error),

    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] granary_store::Error),

    /// A stored secret does not open, or a secret could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),

    /// The authorized client's request failed before any answer.
    #[error("the request to {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
}

impl EngineError {
    /// Whether the user must go through the authorization again.
    pub fn needs_reauthorization(&self) -> bool {
        match self {
            Self::NeedsAuthorization { .. }
            | Self::NotAuthorized { .. }
            | Self::UnknownAuthorization => true,
            Self::Protocol(error) => error.needs_reauthorization(),
            Self::Refresh { source, .. } => source.needs_reauthorization(),
            _ => false,
        }
    }

    /// Whether trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RefreshTimedOut { .. }
            | Self::BackingOff { .. }
            | Self::ShuttingDown { .. }
            | Self::Contention { .. } => true,
            Self::Protocol(error) => error.is_transient(),
            Self::Refresh { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }
}

fn describe_unknown(unknown: &[UnknownScope]) -> String {
    unknown
        .iter()
        .map(|scope| match &scope.suggestion {
            Some(near) => format!("`{}` (did you mean `{near}`?)", scope.name),
            None => format!("`{}`", scope.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reason without the "authorize again" its source may end with (the message of
/// [`EngineError::NeedsAuthorization`] says it once).
fn without_fix(reason: &str) -> &str {
    let reason = reason.trim_end_matches(['.', ' ']);
    ["; authorize again", ", authorize again"]
        .iter()
        .find_map(|fix| reason.strip_suffix(fix))
        .unwrap_or(reason)
}
