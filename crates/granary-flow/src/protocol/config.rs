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
    /// Extra parameters of revocation requests (TikTok `client_key`).
    pub revocation_params: Vec<(String, String)>,
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
    /// Standard authorization parameters the provider knows by another name, as
    /// `(standard, provider's)` pairs: TikTok's `client_id` -> `client_key`, Printful's
    /// `redirect_uri` -> `redirect_url`.
    pub authorization_param_renames: Vec<(String, String)>,
    /// Standard authorization parameters the provider refuses and that are left out
    /// (Monday: `response_type`). `state` and the PKCE parameters cannot be dropped.
    pub dropped_authorization_params: Vec<String>,
    /// Whether the `scope` value of the authorization URL is percent-encoded.
    pub scope_encoding: ScopeEncoding,
    /// The callback parameter that carries the code: `code` by default (Amazon Selling
    /// Partner: `spapi_oauth_code`).
    pub code_param: String,
    /// Callback parameters whose values later requests need, returned in
    /// [`super::AuthorizationCode::kept`] (QuickBooks `realmId`, Zoho `accounts-server`).
    pub kept_callback_params: Vec<String>,
    /// The format of token request bodies (code exchange, refresh, revocation, introspection).
    pub token_body: TokenBody,
    /// Extra parameters of the code exchange only (Basecamp `type=web_server`).
    pub exchange_params: Vec<(String, String)>,
    /// Extra parameters of the refresh only (Basecamp `type=refresh`).
    pub refresh_params: Vec<(String, String)>,
    /// Where refresh requests go, when not to the token endpoint (Figma, TikTok).
    pub refresh_url: Option<Url>,
    /// The dotted path of the JSON object of a token response that holds `access_token`,
    /// `refresh_token`, `expires_in`, `token_type` and `scope` (Slack user tokens:
    /// `authed_user`); `None` for the top level.
    pub token_location: Option<String>,
    /// Dotted paths of token response fields to keep, read from the whole response
    /// (Salesforce `instance_url`, Slack `team.id`); returned in
    /// [`super::TokenResponse::kept`]. A path may not name a secret.
    pub kept_token_fields: Vec<String>,
    /// The dotted path of a boolean that, when `false` in a 2xx answer, makes the answer an
    /// error read like a 400 (Slack `ok`).
    pub error_flag: Option<String>,
    /// How tokens are renewed.
    pub refresh_strategy: RefreshStrategy,
}

/// How the `scope` value is put in the authorization URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeEncoding {
    /// Percent-encoded like every other parameter (the standard).
    #[default]
    Encoded,
    /// As is: a `+` separator stays a literal `+` (Pennylane). Scope names and the separator
    /// may then not hold `&`, `#`, `%`, whitespace or control characters (a whitespace
    /// separator is sent as `%20`).
    Raw,
}

/// The format of a token request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenBody {
    /// `application/x-www-form-urlencoded` (RFC 6749).
    #[default]
    Form,
    /// `application/json` with the same members as strings (Notion, Clover); client
    /// credentials of `client_secret_basic` stay in the `Authorization` header.
    Json,
}

/// How tokens are renewed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RefreshStrategy {
    /// With the refresh token (RFC 6749 6): [`super::refresh`].
    #[default]
    RefreshToken,
    /// By exchanging the access token itself for a new one (Facebook, Instagram):
    /// [`super::exchange_access_token`].
    AccessTokenExchange(AccessTokenExchange),
    /// Never: the provider's tokens do not expire (GitHub OAuth Apps), or cannot be renewed
    /// without the user.
    None,
}

/// The request that exchanges an access token for a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenExchange {
    /// Where the exchange goes; `None` for the token endpoint.
    pub url: Option<Url>,
    /// GET (parameters in the query) or POST (parameters in the body).
    pub method: ExchangeMethod,
    /// The `grant_type` sent, if any (`fb_exchange_token`, `ig_refresh_token`).
    pub grant_type: Option<String>,
    /// The parameter that carries the access token (`fb_exchange_token`, `access_token`).
    pub token_param: String,
    /// Whether `client_id` and `client_secret` are sent: as parameters with GET, by the
    /// configured client authentication with POST.
    pub send_client_credentials: bool,
}

/// The HTTP method of an access-token exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExchangeMethod {
    #[default]
    /// Parameters in the query string (Facebook, Instagram).
    Get,
    /// Parameters in the body, in the configured [`TokenBody`] format.
    Post,
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
            revocation_params: Vec::new(),
            introspection_url: None,
            scope_separator: " ".to_string(),
            pkce: true,
            extra_authorization_params: Vec::new(),
            extra_token_params: Vec::new(),
            extra_token_headers: Vec::new(),
            authorization_param_renames: Vec::new(),
            dropped_authorization_params: Vec::new(),
            scope_encoding: ScopeEncoding::Encoded,
            code_param: "code".to_string(),
            kept_callback_params: Vec::new(),
            token_body: TokenBody::Form,
            exchange_params: Vec::new(),
            refresh_params: Vec::new(),
            refresh_url: None,
            token_location: None,
            kept_token_fields: Vec::new(),
            error_flag: None,
            refresh_strategy: RefreshStrategy::RefreshToken,
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

    /// Sends the standard authorization parameter `standard` under the name `provider`.
    pub fn with_authorization_param_rename(
        mut self,
        standard: impl Into<String>,
        provider: impl Into<String>,
    ) -> Self {
        self.authorization_param_renames
            .push((standard.into(), provider.into()));
        self
    }

    /// Leaves the standard authorization parameter `name` out.
    pub fn with_dropped_authorization_param(mut self, name: impl Into<String>) -> Self {
        self.dropped_authorization_params.push(name.into());
        self
    }

    /// Sets whether the scope value is percent-encoded.
    pub fn with_scope_encoding(mut self, encoding: ScopeEncoding) -> Self {
        self.scope_encoding = encoding;
        self
    }

    /// Sets the callback parameter that carries the code.
    pub fn with_code_param(mut self, name: impl Into<String>) -> Self {
        self.code_param = name.into();
        self
    }

    /// Keeps the value of a callback parameter.
    pub fn with_kept_callback_param(mut self, name: impl Into<String>) -> Self {
        self.kept_callback_params.push(name.into());
        self
    }

    /// Sets the format of token request bodies.
    pub fn with_token_body(mut self, body: TokenBody) -> Self {
        self.token_body = body;
        self
    }

    /// Adds a parameter to the code exchange only.
    pub fn with_exchange_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.exchange_params.push((name.into(), value.into()));
        self
    }

    /// Adds a parameter to the refresh only.
    pub fn with_refresh_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.refresh_params.push((name.into(), value.into()));
        self
    }

    /// Sends refresh requests to `url` instead of the token endpoint.
    pub fn with_refresh_url(mut self, url: Url) -> Self {
        self.refresh_url = Some(url);
        self
    }

    /// Reads the token fields from the JSON object at a dotted path of the response.
    pub fn with_token_location(mut self, path: impl Into<String>) -> Self {
        self.token_location = Some(path.into());
        self
    }

    /// Keeps the token response field at a dotted path.
    pub fn with_kept_token_field(mut self, path: impl Into<String>) -> Self {
        self.kept_token_fields.push(path.into());
        self
    }

    /// Reads a 2xx answer whose boolean at a dotted path is `false` as an error.
    pub fn with_error_flag(mut self, path: impl Into<String>) -> Self {
        self.error_flag = Some(path.into());
        self
    }

    /// Sets how tokens are renewed.
    pub fn with_refresh_strategy(mut self, strategy: RefreshStrategy) -> Self {
        self.refresh_strategy = strategy;
        self
    }

    /// Where refresh requests go: the refresh URL, else the token endpoint.
    pub fn refresh_endpoint(&self) -> &Url {
        self.refresh_url.as_ref().unwrap_or(&self.token_url)
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
            .field("revocation_params", &self.revocation_params)
            .field("scope_separator", &self.scope_separator)
            .field("pkce", &self.pkce)
            .field(
                "extra_authorization_params",
                &self.extra_authorization_params,
            )
            .field("extra_token_params", &names(&self.extra_token_params))
            .field("extra_token_headers", &names(&self.extra_token_headers))
            .field(
                "authorization_param_renames",
                &self.authorization_param_renames,
            )
            .field(
                "dropped_authorization_params",
                &self.dropped_authorization_params,
            )
            .field("scope_encoding", &self.scope_encoding)
            .field("code_param", &self.code_param)
            .field("kept_callback_params", &self.kept_callback_params)
            .field("token_body", &self.token_body)
            .field("exchange_params", &names(&self.exchange_params))
            .field("refresh_params", &names(&self.refresh_params))
            .field("refresh_url", &self.refresh_url.as_ref().map(Url::as_str))
            .field("token_location", &self.token_location)
            .field("kept_token_fields", &self.kept_token_fields)
            .field("error_flag", &self.error_flag)
            .field("refresh_strategy", &self.refresh_strategy)
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
