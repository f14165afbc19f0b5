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

    /// Something the caller passed cannot work: a user mistake (an unusable id, a missing
    /// field, a URL that is no URL, a configuration that cannot authenticate).
    #[error("{0}")]
    Invalid(String),

    /// An invariant of the engine does not hold (a bug, or a record written by something
    /// else): nothing the caller can fix by changing the request.
    #[error("{0}")]
    Internal(String),

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

    /// A refresh was asked for, but the grant holds no refresh token: nothing was sent and
    /// nothing changed; the current token stays valid until it expires.
    #[error(
        "instance `{instance}` holds no refresh token, so there is nothing to refresh: its \
         access token stays as it is and a new authorization will be needed {}; {cause}",
        super::grant::after_expiry(*expires_at)
    )]
    NothingToRefresh {
        /// The instance.
        instance: String,
        /// When the current token expires, if known.
        expires_at: Option<granary_store::Timestamp>,
        /// The usual cause for this provider and the setting that asks for a refresh token.
        cause: String,
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

    /// A reconnect link that is unknown, used already or expired: one error for the three,
    /// so that it tells nothing about which.
    #[error("this link was used or has expired: ask your admin for a new one")]
    LinkGone,

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

    /// The code exchange failed, and the callback named a host or region (a provider with
    /// data centres, such as Zoho's `accounts-server` or `location`): the token URL of that
    /// data centre is the likely fix.
    #[error(
        "{source}; the callback named {}: a provider with data centres takes the code only at \
         the token endpoint of the data centre the account belongs to: set the token URL \
         override to the token endpoint at that host or region, then authorize again",
        describe_pairs(callback)
    )]
    Exchange {
        /// The protocol error of the exchange.
        #[source]
        source: Box<crate::Error>,
        /// The callback's parameters that name a host or region (never a secret).
        callback: Vec<(String, String)>,
    },

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

/// What kind of failure an [`EngineError`] is: what the caller can do about it. A server
/// maps kinds to its statuses; the engine decides the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller asked for something that cannot work: fix the request.
    Invalid,
    /// A document over the import limit.
    TooLarge,
    /// The integration, instance or record does not exist.
    NotFound,
    /// The instance has to be authorized (again) first.
    NeedsAuthorization,
    /// A callback whose authorization is unknown, used already or expired.
    UnknownAuthorization,
    /// The instance is disabled.
    Disabled,
    /// A reconnect link that is unknown, used already or expired.
    LinkGone,
    /// Someone else changed or created the record meanwhile (a lost compare-and-swap, an
    /// existing key, contention that gave up).
    Conflict,
    /// The provider (or the engine, shutting down or backing off) cannot answer now; trying
    /// again later can work.
    Unavailable,
    /// The provider refused, or answered something unusable.
    ProviderRefused,
    /// A fault inside granary (store, sealing, a broken invariant).
    Internal,
}

impl EngineError {
    /// The short machine name of the failure, for metrics and API problem types: the
    /// protocol's cause when a provider is involved (`invalid_client`, `invalid_grant`,
    /// `wrong_endpoint`, `transient`, ...), else the engine's (`not_found`, `disabled`,
    /// `contention`, `invalid`, `internal`, ...).
    pub fn code(&self) -> &'static str {
        use crate::Error as P;
        if let Some(error) = self.protocol_error() {
            return match error {
                P::InvalidClient { .. } => "invalid_client",
                P::InvalidScope { .. } => "invalid_scope",
                P::AccessDenied { .. } => "access_denied",
                P::CodeRejected { .. } | P::AuthorizationGone { .. } => "invalid_grant",
                P::NotAnEndpoint { .. } => "wrong_endpoint",
                P::InvalidResponse { .. } => "unreadable_answer",
                P::StateMismatch => "state_mismatch",
                P::IssuerMismatch { .. } | P::IssuerMissing { .. } => "issuer_mismatch",
                error if error.is_transient() => "transient",
                _ => "provider_error",
            };
        }
        match self {
            Self::UnknownAuthorization => "unknown_state",
            Self::LinkGone => "link_gone",
            Self::NeedsAuthorization { .. } => "needs_authorization",
            Self::NotAuthorized { .. } => "not_authorized",
            Self::NothingToRefresh { .. } => "no_refresh_token",
            Self::Disabled { .. } => "disabled",
            Self::NotFound { .. } => "not_found",
            Self::RefreshTimedOut { .. } => "transient",
            Self::BackingOff { .. } => "backing_off",
            Self::Contention { .. } => "contention",
            Self::RefreshFailing { .. } => "refresh_failing",
            Self::ShuttingDown { .. } => "shutting_down",
            Self::Invalid(_) => "invalid",
            Self::UnknownScopes { .. } => "unknown_scopes",
            Self::Import(granary_openapi::Error::TooLarge { .. }) => "too_large",
            Self::Import(_) => "import",
            Self::Store(granary_store::Error::Conflict { .. }) => "conflict",
            Self::Store(granary_store::Error::AlreadyExists { .. }) => "already_exists",
            Self::Store(_) => "store",
            Self::Seal(_) => "seal",
            Self::Request { .. } => "request",
            Self::Internal(_)
            | Self::Protocol(_)
            | Self::Refresh { .. }
            | Self::Exchange { .. } => "internal",
        }
    }

    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) | Self::UnknownScopes { .. } => ErrorKind::Invalid,
            Self::Import(granary_openapi::Error::TooLarge { .. }) => ErrorKind::TooLarge,
            Self::Import(_) => ErrorKind::Invalid,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::NotAuthorized { .. } | Self::NeedsAuthorization { .. } => {
                ErrorKind::NeedsAuthorization
            }
            Self::UnknownAuthorization => ErrorKind::UnknownAuthorization,
            Self::LinkGone => ErrorKind::LinkGone,
            Self::Disabled { .. } => ErrorKind::Disabled,
            Self::Contention { .. }
            | Self::NothingToRefresh { .. }
            | Self::Store(
                granary_store::Error::Conflict { .. } | granary_store::Error::AlreadyExists { .. },
            ) => ErrorKind::Conflict,
            Self::BackingOff { .. } | Self::RefreshTimedOut { .. } | Self::ShuttingDown { .. } => {
                ErrorKind::Unavailable
            }
            Self::RefreshFailing { .. } | Self::Request { .. } => ErrorKind::ProviderRefused,
            Self::Protocol(_) | Self::Refresh { .. } | Self::Exchange { .. } => {
                if self.is_transient() {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::ProviderRefused
                }
            }
            Self::Internal(_) | Self::Store(_) | Self::Seal(_) => ErrorKind::Internal,
        }
    }

    /// How long to wait before asking again, when the engine knows it (a refresh in
    /// backoff).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::BackingOff { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The protocol error behind this one, if a provider was involved.
    pub fn protocol_error(&self) -> Option<&crate::Error> {
        match self {
            Self::Protocol(error) => Some(error),
            Self::Exchange { source, .. } => Some(source),
            Self::Refresh { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }

    /// Whether the user must go through the authorization again.
    pub fn needs_reauthorization(&self) -> bool {
        match self {
            Self::NeedsAuthorization { .. }
            | Self::NotAuthorized { .. }
            | Self::UnknownAuthorization => true,
            Self::Protocol(error) => error.needs_reauthorization(),
            Self::Exchange { source, .. } => source.needs_reauthorization(),
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
            Self::Exchange { source, .. } => source.is_transient(),
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

/// `a=b, c=d` for messages.
fn describe_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("`{name}={value}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::protocol::ClientAuth;
    use crate::{Endpoint, EndpointProblem, Error as P, OAuthError, Operation};

    use super::*;

    fn details(code: &str) -> OAuthError {
        OAuthError {
            error: code.to_string(),
            description: None,
            uri: None,
        }
    }

    fn transient() -> P {
        P::Transient {
            endpoint: Endpoint::Token,
            url: "https://p.example/token".into(),
            reason: "timeout".into(),
            status: None,
            retry_after: None,
            details: None,
        }
    }

    fn refresh(source: P) -> EngineError {
        EngineError::Refresh {
            instance: "i".into(),
            source: Arc::new(source),
        }
    }

    /// Every variant (and the protocol causes) with the code and kind it must have.
    fn table() -> Vec<(EngineError, &'static str, ErrorKind)> {
        use ErrorKind as K;
        let i = || "i".to_string();
        vec![
            (
                EngineError::not_found("instance `i`"),
                "not_found",
                K::NotFound,
            ),
            (EngineError::Invalid("x".into()), "invalid", K::Invalid),
            (EngineError::Internal("x".into()), "internal", K::Internal),
            (
                EngineError::UnknownScopes {
                    integration: i(),
                    unknown: vec![],
                },
                "unknown_scopes",
                K::Invalid,
            ),
            (
                EngineError::Import(granary_openapi::Error::TooLarge { size: 2, limit: 1 }),
                "too_large",
                K::TooLarge,
            ),
            (
                EngineError::NotAuthorized { instance: i() },
                "not_authorized",
                K::NeedsAuthorization,
            ),
            (
                EngineError::NeedsAuthorization {
                    instance: i(),
                    reason: "r".into(),
                },
                "needs_authorization",
                K::NeedsAuthorization,
            ),
            (
                EngineError::Disabled { instance: i() },
                "disabled",
                K::Disabled,
            ),
            (
                EngineError::UnknownAuthorization,
                "unknown_state",
                K::UnknownAuthorization,
            ),
            (
                EngineError::BackingOff {
                    instance: i(),
                    reason: "r".into(),
                    retry_after: Duration::from_secs(3),
                },
                "backing_off",
                K::Unavailable,
            ),
            (
                EngineError::RefreshFailing {
                    instance: i(),
                    reason: "r".into(),
                },
                "refresh_failing",
                K::ProviderRefused,
            ),
            (
                EngineError::ShuttingDown { instance: i() },
                "shutting_down",
                K::Unavailable,
            ),
            (
                EngineError::Contention { what: "w".into() },
                "contention",
                K::Conflict,
            ),
            (
                EngineError::RefreshTimedOut {
                    instance: i(),
                    waited: Duration::from_secs(1),
                },
                "transient",
                K::Unavailable,
            ),
            (
                EngineError::Store(granary_store::Error::Conflict {
                    what: "w".into(),
                    detail: "d".into(),
                }),
                "conflict",
                K::Conflict,
            ),
            (
                EngineError::Store(granary_store::Error::AlreadyExists { what: "w".into() }),
                "already_exists",
                K::Conflict,
            ),
            (
                EngineError::Store(granary_store::Error::Corrupt {
                    message: "m".into(),
                }),
                "store",
                K::Internal,
            ),
            (
                EngineError::Request {
                    url: "u".into(),
                    reason: "r".into(),
                },
                "request",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::InvalidClient {
                    url: "u".into(),
                    status: 401,
                    auth_method: ClientAuth::ClientSecretBasic,
                    details: None,
                }),
                "invalid_client",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::InvalidScope {
                    scopes: vec![],
                    details: details("invalid_scope"),
                }),
                "invalid_scope",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::AccessDenied {
                    details: details("access_denied"),
                }),
                "access_denied",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::CodeRejected {
                    details: details("invalid_grant"),
                }),
                "invalid_grant",
                K::ProviderRefused,
            ),
            (
                refresh(P::AuthorizationGone {
                    details: details("invalid_grant"),
                }),
                "invalid_grant",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::NotAnEndpoint {
                    endpoint: Endpoint::Token,
                    url: "u".into(),
                    problem: EndpointProblem::Status(404),
                }),
                "wrong_endpoint",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::NotAnEndpoint {
                    endpoint: Endpoint::Token,
                    url: "u".into(),
                    problem: EndpointProblem::Unreachable("refused".into()),
                }),
                "wrong_endpoint",
                K::Unavailable,
            ),
            (
                EngineError::Protocol(P::StateMismatch),
                "state_mismatch",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(P::IssuerMissing {
                    expected: "e".into(),
                }),
                "issuer_mismatch",
                K::ProviderRefused,
            ),
            (
                EngineError::Protocol(transient()),
                "transient",
                K::Unavailable,
            ),
            (refresh(transient()), "transient", K::Unavailable),
            (
                refresh(P::Provider {
                    operation: Operation::Refresh,
                    url: "u".into(),
                    status: 400,
                    details: details("invalid_request"),
                }),
                "provider_error",
                K::ProviderRefused,
            ),
        ]
    }

    #[test]
    fn each_error_has_its_code_and_kind() {
        for (error, code, kind) in table() {
            assert_eq!((error.code(), error.kind()), (code, kind), "{error:?}");
        }
    }

    #[test]
    fn only_a_backoff_says_when_to_try_again() {
        for (error, code, _) in table() {
            let expected = (code == "backing_off").then(|| Duration::from_secs(3));
            assert_eq!(error.retry_after(), expected, "{error:?}");
        }
    }
}
