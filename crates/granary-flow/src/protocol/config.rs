//! What the protocol client needs to know about a provider and a client: URLs, credentials, quirks, timeouts, retries.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::REDACTED;

/// How the client authenticates at the token and revocation endpoints (RFC 6749 2.3.1):
/// the store's type, so that an instance's setting is the protocol's without a mapping.
pub use granary_store::ClientAuth;

/// One client at one provider: what every request of the grant needs.
///
/// Build it with [`ClientConfig::new`] and the `with_*` methods, or from discovered
/// metadata with [`super::ProviderMetadata::client_config`].
#[derive(Clone)]
pub struct ClientConfig {
    /// The client identifier issued by the provider.
    pub client_id: String,
    /// The client secret; `None` for a public client.
    pub client_secret: Option<SecretString>,
    /// How the client authenticates at the token and revocation endpoints.
    pub auth_method: ClientAuth,
    /// The provider's authorization endpoint.
    pub authorization_url: Url,
    /// The provider's token endpoint.
    pub token_url: Url,
    /// The provider's revocation endpoint (RFC 7009), if it has one.
    pub revocation_url: Option<Url>,
    /// The provider's token introspection endpoint (RFC 7662), if it has one: the engine
    /// asks it when a token's expiry was not stated.
    pub introspection_url: Option<Url>,
    /// What joins scopes in the `scope` parameter: a space by default; some providers want `,`.
    pub scope_separator: String,
    /// Whether to send a PKCE S256 challenge (on by default; switch off only for a provider
    /// that rejects it).
    pub pkce: bool,
    /// Extra parameters of the authorization request, such as `access_type=offline` or
    /// `prompt=consent`. They end up in a URL: never put a secret here.
    pub extra_authorization_params: Vec<(String, String)>,
    /// Extra form parameters of every token request (code exchange and refresh), such as
    /// `resource` or `audience`.
    pub extra_token_params: Vec<(String, String)>,
    /// Extra headers of every token request.
    pub extra_token_headers: Vec<(String, String)>,
}

impl ClientConfig {
    /// A public client (authentication `none`) with PKCE and the default scope separator.
    pub fn new(client_id: impl Into<String>, authorization_url: Url, token_url: Url) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            auth_method: ClientAuth::None,
            authorization_url,
            token_url,
            revocation_url: None,
            introspection_url: None,
            scope_separator: " ".to_string(),
            pkce: true,
            extra_authorization_params: Vec::new(),
            extra_token_params: Vec::new(),
            extra_token_headers: Vec::new(),
        }
    }

    /// Sets the client secret and how it is sent.
    pub fn with_secret(mut self, secret: SecretString, auth_method: ClientAuth) -> Self {
        self.client_secret = Some(secret);
        self.auth_method = auth_method;
        self
    }

    /// Sets the client authentication method.
    pub fn with_auth_method(mut self, auth_method: ClientAuth) -> Self {
        self.auth_method = auth_method;
        self
    }

    /// Sets the revocation endpoint.
    pub fn with_revocation_url(mut self, url: Url) -> Self {
        self.revocation_url = Some(url);
        self
    }

    /// Sets what joins scopes in the `scope` parameter.
    pub fn with_scope_separator(mut self, separator: impl Into<String>) -> Self {
        self.scope_separator = separator.into();
        self
    }

    /// Switches PKCE on or off.
    pub fn with_pkce(mut self, pkce: bool) -> Self {
        self.pkce = pkce;
        self
    }

    /// Adds a parameter to the authorization request.
    pub fn with_authorization_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.extra_authorization_params
            .push((name.into(), value.into()));
        self
    }

    /// Adds a form parameter to every token request.
    pub fn with_token_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_token_params.push((name.into(), value.into()));
        self
    }

    /// Adds a header to every token request.
    pub fn with_token_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_token_headers.push((name.into(), value.into()));
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values of token parameters and headers may be keys of their own: names only.
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs
                .iter()
                .map(|(name, _)| format!("{name}={REDACTED}"))
                .collect()
        };
        f.debug_struct("ClientConfig")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| REDACTED),
            )
            .field("auth_method", &self.auth_method)
            .field("authorization_url", &self.authorization_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field(
                "revocation_url",
                &self.revocation_url.as_ref().map(Url::as_str),
            )
            .field("scope_separator", &self.scope_separator)
            .field("pkce", &self.pkce)
            .field(
                "extra_authorization_params",
                &self.extra_authorization_params,
            )
            .field("extra_token_params", &names(&self.extra_token_params))
            .field("extra_token_headers", &names(&self.extra_token_headers))
            .finish()
    }
}

/// Time limits of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Limit for opening the connection (TCP and TLS).
    pub connect: Duration,
    /// Limit for the whole request, answer body included.
    pub total: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 30 s in total.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// How a refresh is retried on transient faults (connect errors, timeouts, 5xx, 429).
///
/// The wait before attempt `n + 1` is `base_backoff * 2^(n-1)`, capped at `max_backoff`,
/// shortened by up to half at random when `jitter` is on, and never shorter than the
/// provider's `Retry-After`. A `Retry-After` longer than `max_backoff` ends the retries: the
/// error carries it so that the caller can schedule the next try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub base_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Whether to randomize waits so that many clients do not retry in step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 3 attempts, 500 ms then 1 s, at most 10 s, with jitter.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt `attempt` (1-based), or `None` when the provider's
    /// `Retry-After` is longer than this policy is willing to wait.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let exponent = attempt.saturating_sub(1).min(30);
        let mut delay = self
            .base_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        if self.jitter {
            let keep = 0.5 + rand::random::<f64>() / 2.0;
            delay = delay.mul_f64(keep);
        }
        match retry_after {
            Some(wait) if wait > self.max_backoff => None,
            Some(wait) => Some(delay.max(wait)),
            None => Some(delay),
        }
    }
}
