//! The one error type of granary-flow: what went wrong, whether a retry can help, and what to fix.

use std::fmt;
use std::time::Duration;

use crate::protocol::ClientAuth;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error fields of RFC 6749 (section 4.1.2.1 at the callback, 5.2 at the token endpoint)
/// as the provider sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The `error` code, such as `invalid_grant`.
    pub error: String,
    /// `error_description`: human-readable text from the provider, shortened.
    pub description: Option<String>,
    /// `error_uri`: a page about the error.
    pub uri: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        if let Some(uri) = &self.uri {
            write!(f, " (see {uri})")?;
        }
        Ok(())
    }
}

/// What the client was doing when a provider answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Exchanging an authorization code for tokens.
    CodeExchange,
    /// Refreshing tokens with a refresh token.
    Refresh,
    /// Revoking a token (RFC 7009).
    Revocation,
    /// Asking about a token (RFC 7662).
    Introspection,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CodeExchange => "code exchange",
            Self::Refresh => "refresh",
            Self::Revocation => "revocation",
            Self::Introspection => "introspection",
        })
    }
}

/// Which endpoint of the provider a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint (code exchange and refresh).
    Token,
    /// The revocation endpoint (RFC 7009).
    Revocation,
    /// A metadata document (RFC 8414 or OpenID Connect Discovery).
    Discovery,
    /// The token introspection endpoint (RFC 7662).
    Introspection,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Token => "token endpoint",
            Self::Revocation => "revocation endpoint",
            Self::Discovery => "metadata document",
            Self::Introspection => "introspection endpoint",
        })
    }
}

/// Why a URL does not look like the endpoint it was configured as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointProblem {
    /// No HTTP answer at all: connection refused, DNS failure, TLS failure.
    Unreachable(String),
    /// An HTTP status that an endpoint of this kind never answers (404, 405, 410).
    Status(u16),
    /// An HTML page, as a login page, a documentation page or an error page would be.
    Html {
        /// The HTTP status of the page.
        status: u16,
        /// Its `Content-Type`, or `no content type`.
        content_type: String,
        /// The start of its text, tags removed, secret-looking values redacted.
        excerpt: String,
    },
    /// A redirect, which an endpoint of this kind never answers; it is not followed.
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The `Location` header, when sent.
        location: Option<String>,
    },
}

impl fmt::Display for EndpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(reason) => write!(
                f,
                "could not connect ({reason}), so the URL is wrong or the provider is down"
            ),
            Self::Status(status) => write!(f, "it answered HTTP {status}"),
            Self::Html {
                status,
                content_type,
                excerpt,
            } => write!(
                f,
                "it answered HTTP {status} ({content_type}) with an HTML page that reads: {excerpt}"
            ),
            Self::Redirect { status, location } => {
                write!(f, "it answered HTTP {status}, a redirect")?;
                if let Some(location) = location {
                    write!(f, " to {location}")?;
                }
                f.write_str(", which is not followed")
            }
        }
    }
}

/// Everything that can go wrong in granary-flow, in words that say what to do.
///
/// Callers classify with [`Error::is_transient`] (retry later, keep what is stored),
/// [`Error::needs_reauthorization`] (the user has to go through the authorization again)
/// and [`Error::is_configuration_problem`] (someone has to fix the client configuration).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration or an argument cannot work.
    #[error("invalid client configuration: {0}")]
    Config(String),

    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),

    /// The callback's `state` is missing or is not the one of the pending authorization.
    #[error(
        "the `state` of the callback does not match the pending authorization: the callback is \
         stale, replayed or forged (or comes from another browser tab); start the authorization again"
    )]
    StateMismatch,

    /// The callback's `iss` names another issuer than expected (RFC 9207).
    #[error(
        "the callback comes from issuer `{received}` but `{expected}` was expected (RFC 9207): \
         the response may come from another authorization server (mix-up attack); start the \
         authorization again, and check the configured issuer if this repeats"
    )]
    IssuerMismatch {
        /// The issuer of the pending authorization.
        expected: String,
        /// The `iss` of the callback.
        received: String,
    },

    /// The callback has no `iss` although the provider says it always sends one (RFC 9207).
    #[error(
        "the callback has no `iss` parameter although the issuer `{expected}` advertises \
         authorization_response_iss_parameter_supported (RFC 9207): the response may not come \
         from that server; start the authorization again"
    )]
    IssuerMissing {
        /// The issuer of the pending authorization.
        expected: String,
    },

    /// The callback is not a well-formed authorization response.
    #[error("the callback is malformed: {0}; start the authorization again")]
    MalformedCallback(String),

    /// The user declined at the provider (`access_denied`).
    #[error(
        "the authorization was declined at the provider ({details}): nothing was connected; \
         start the authorization again and approve it to connect"
    )]
    AccessDenied {
        /// The error fields of the callback.
        details: OAuthError,
    },

    /// The callback carries another error than `access_denied` or `invalid_scope`.
    #[error(
        "the provider refused the authorization request ({details}); fix what it names in the \
         client configuration and start the authorization again"
    )]
    AuthorizationFailed {
        /// The error fields of the callback.
        details: OAuthError,
    },

    /// The callback has neither `code` nor `error`.
    #[error(
        "the callback has no `code` parameter: the provider did not grant an authorization code; \
         start the authorization again"
    )]
    MissingCode,

    /// The provider refused scopes (`invalid_scope`), at the callback or the token endpoint.
    #[error(
        "the provider refused the scopes [{}] ({details}): request only scopes that the provider \
         supports and allows this client{}", scopes.join(" "), separator_note(scopes)
    )]
    InvalidScope {
        /// The scopes that were requested.
        scopes: Vec<String>,
        /// The error fields the provider sent.
        details: OAuthError,
    },

    /// The provider rejected the client credentials (`invalid_client`, or a bare 401).
    #[error(
        "the provider rejected the client credentials at {url} (HTTP {status}{}): check \
         client_id, client_secret and the authentication method (now {auth_method})",
        details.as_ref().map(|d| format!(", {d}")).unwrap_or_default()
    )]
    InvalidClient {
        /// The endpoint URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The client authentication method that was used.
        auth_method: ClientAuth,
        /// The error fields the provider sent, if any.
        details: Option<OAuthError>,
    },

    /// `invalid_grant` at the code exchange: the code cannot be used.
    #[error(
        "the provider rejected the authorization code ({details}): it expired or was already \
         used, or the redirect URI or PKCE verifier does not match; start the authorization again"
    )]
    CodeRejected {
        /// The error fields the provider sent.
        details: OAuthError,
    },

    /// `invalid_grant` at refresh: the authorization is gone (revoked, expired, replaced).
    #[error(
        "the provider rejected the refresh token ({details}): the authorization is gone \
         (revoked, expired or replaced by a newer one); authorize again"
    )]
    AuthorizationGone {
        /// The error fields the provider sent.
        details: OAuthError,
    },

    /// Another OAuth error from the token or revocation endpoint.
    #[error(
        "the {operation} at {url} failed with HTTP {status} ({details}); fix what the provider \
         names in the client configuration"
    )]
    Provider {
        /// What was being done.
        operation: Operation,
        /// The endpoint URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error fields the provider sent.
        details: OAuthError,
    },

    /// The URL does not look like the endpoint it is configured as.
    #[error("{url} does not look like a {endpoint}: {problem}; check the URL")]
    NotAnEndpoint {
        /// Which endpoint the URL was configured as.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// What it answered instead.
        problem: EndpointProblem,
    },

    /// A temporary failure: timeout, 5xx, 429, `temporarily_unavailable`, `server_error`.
    #[error(
        "the {endpoint} {url} is temporarily unavailable: {reason}; nothing was changed, try \
         again later{}", retry_after.map(|d| format!(" (the provider asks to wait {}s)", d.as_secs())).unwrap_or_default()
    )]
    Transient {
        /// Which endpoint.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// The provider's `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// The error fields the provider sent, if any.
        details: Option<Box<OAuthError>>,
    },

    /// An answer that is no valid response: too large, not JSON, JSON without the fields.
    /// The URL answered (no HTML page, 404 or redirect, which are [`Error::NotAnEndpoint`]),
    /// so the message does not blame it.
    #[error(
        "the {endpoint} {url} answered HTTP {status} ({content_type}) with {problem}; the body \
         starts: {excerpt}; {}", unreadable_hint(*status)
    )]
    InvalidResponse {
        /// Which endpoint.
        endpoint: Endpoint,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` header, or `no content type`.
        content_type: String,
        /// What is wrong with the body.
        problem: String,
        /// A short excerpt of the body with every secret-looking value redacted.
        excerpt: String,
    },

    /// The metadata document is not usable.
    #[error("discovery of the issuer `{issuer}` failed: {reason}")]
    Discovery {
        /// The issuer that was asked for.
        issuer: String,
        /// What went wrong.
        reason: String,
    },
}

/// For more than one scope: the separator may be what the provider refused.
fn separator_note(scopes: &[String]) -> String {
    if scopes.len() < 2 {
        return String::new();
    }
    format!(
        "; the {} scopes went in one parameter, separated by spaces as RFC 6749 says, and some \
         providers want another separator (commas: Slack, Zoom, Linear, Figma): if the \
         provider lists every one of these scopes, the separator is the likely cause",
        scopes.len()
    )
}

/// What to check after an answer that could not be read.
fn unreadable_hint(status: u16) -> &'static str {
    if (200..300).contains(&status) {
        "the provider answered without a token where RFC 6749 puts it: check its documentation \
         for how its token response differs"
    } else {
        "the provider refused without saying why in a form granary reads: check what the \
         request sends (client authentication method, extra token parameters and headers) \
         against its documentation"
    }
}

/// Words of a provider's answer that point at the client's authentication (id, secret,
/// method) rather than at the grant or the URL.
const CLIENT_AUTH_WORDS: &[&str] = &[
    "client_secret",
    "client secret",
    "client_id",
    "client id",
    "client authentication",
    "client credentials",
    "invalid client",
    "invalid_client",
    "unauthorized_client",
    "unauthorized client",
    "validating application",
    "application id",
    "app secret",
    "app id",
    "basic auth",
    "authorization header",
];

impl Error {
    /// True when the provider's own words (its error code, description or answer) point at
    /// the client's authentication: a client id, a client secret, the authentication
    /// method. The shape of the answer does not matter, only what it says.
    pub fn points_at_client_authentication(&self) -> bool {
        let text = match self {
            Self::InvalidClient { .. } => return true,
            Self::Provider { details, .. } | Self::AuthorizationFailed { details } => {
                details.to_string()
            }
            Self::InvalidResponse { excerpt, .. } => excerpt.clone(),
            Self::Transient {
                details: Some(details),
                ..
            } => details.to_string(),
            _ => return false,
        }
        .to_ascii_lowercase();
        CLIENT_AUTH_WORDS.iter().any(|word| text.contains(word))
    }

    /// True when trying again later can succeed: a timeout, a connection failure, 5xx, 429,
    /// `temporarily_unavailable` or `server_error`. Nothing stored should be discarded.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient { .. }
                | Self::NotAnEndpoint {
                    problem: EndpointProblem::Unreachable(_),
                    ..
                }
        )
    }

    /// True when the user has to go through the authorization again: the refresh token or
    /// the code was rejected, or the callback cannot be trusted or carries an error.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(
            self,
            Self::AuthorizationGone { .. }
                | Self::CodeRejected { .. }
                | Self::StateMismatch
                | Self::IssuerMismatch { .. }
                | Self::IssuerMissing { .. }
                | Self::MalformedCallback(_)
                | Self::AccessDenied { .. }
                | Self::MissingCode
        )
    }

    /// True when someone has to change the client configuration (credentials, URLs, scopes,
    /// extra parameters) before anything can work.
    pub fn is_configuration_problem(&self) -> bool {
        match self {
            Self::Config(_)
            | Self::InvalidClient { .. }
            | Self::InvalidScope { .. }
            | Self::AuthorizationFailed { .. }
            | Self::Provider { .. }
            | Self::InvalidResponse { .. }
            | Self::Discovery { .. } => true,
            Self::NotAnEndpoint { problem, .. } => {
                !matches!(problem, EndpointProblem::Unreachable(_))
            }
            _ => false,
        }
    }

    /// The RFC 6749 error fields the provider sent, if any.
    pub fn oauth_error(&self) -> Option<&OAuthError> {
        match self {
            Self::AccessDenied { details }
            | Self::AuthorizationFailed { details }
            | Self::InvalidScope { details, .. }
            | Self::CodeRejected { details }
            | Self::AuthorizationGone { details }
            | Self::Provider { details, .. } => Some(details),
            Self::InvalidClient { details, .. } => details.as_ref(),
            Self::Transient { details, .. } => details.as_deref(),
            _ => None,
        }
    }

    /// How long the provider asked to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
