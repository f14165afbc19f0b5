//! The client side of the OAuth 2.0 authorization code grant: values in, values out, no storage.
//!
//! The steps, in order:
//! 1. [`authorization_request`] builds the provider's authorization URL and a
//!    [`PendingAuthorization`] (state, PKCE verifier, redirect URI, expected issuer) that the
//!    caller keeps until the callback.
//! 2. [`parse_callback`] checks the callback query against it (state in constant time, `iss`
//!    per RFC 9207, `error` fields) and returns the [`AuthorizationCode`].
//! 3. [`exchange_code`] trades the code for a [`TokenResponse`] (never retried: a code is
//!    single use); [`refresh`] renews tokens (retried on transient faults by a
//!    [`RetryPolicy`]) and keeps the old refresh token when none is returned;
//!    [`exchange_access_token`] renews tokens of providers that exchange the access token
//!    itself instead ([`RefreshStrategy::AccessTokenExchange`]).
//! 4. [`revoke`] revokes a token (RFC 7009); [`discover`] reads the endpoints from the
//!    provider's metadata (RFC 8414, then OpenID Connect Discovery).
//!
//! A provider's departures from the standard are settings of [`ClientConfig`], standard by
//! default: authorization parameters renamed or dropped and scopes sent unencoded
//! ([`authorization_request`]); the code under another name and callback values kept
//! ([`parse_callback_with`]); a JSON token body ([`TokenBody`]), exchange-only and
//! refresh-only parameters, a separate refresh URL; the token nested in the answer, answer
//! fields kept, errors flagged inside a 200 ([`TokenResponse::kept`]); how tokens are
//! renewed ([`RefreshStrategy`]).
//!
//! Every request goes through a client made by [`http_client`]: timeouts on connect and in
//! total, no redirects followed, rustls. Every secret is a [`SecretString`] whose `Debug`
//! prints `[redacted]`; no secret is put in an error, a log line or a URL.
//!
//! ```no_run
//! use granary_flow::protocol::{self, ClientAuth, RetryPolicy, SecretString, Timeouts};
//!
//! # async fn example(callback_query: &str) -> granary_flow::Result<()> {
//! let http = protocol::http_client(&Timeouts::default())?;
//! let metadata = protocol::discover(&http, "https://login.example.com").await?;
//! let config = metadata
//!     .client_config("my-client-id")
//!     .with_secret(SecretString::from("my-client-secret"), ClientAuth::ClientSecretBasic)
//!     .with_authorization_param("prompt", "consent");
//! let redirect_uri = url::Url::parse("https://granary.example.com/admin/oauth/").unwrap();
//! let (url, pending) = protocol::authorization_request(
//!     &config,
//!     &redirect_uri,
//!     &["openid", "offline_access"],
//!     Some(&metadata.issuer),
//! )?;
//! // Send the user to `url`; keep `pending` until the provider redirects back.
//! let code = protocol::parse_callback(callback_query, &pending, metadata.issuer_parameter())?;
//! let tokens = protocol::exchange_code(&http, &config, &code, &pending).await?;
//! if let Some(refresh_token) = &tokens.refresh_token {
//!     let refreshed =
//!         protocol::refresh(&http, &config, refresh_token, None::<&[&str]>, &RetryPolicy::default())
//!             .await?;
//!     // Store `refreshed.refresh_token`: the new one if rotated, else the old one.
//!     let _ = refreshed.rotated;
//! }
//! # Ok(())
//! # }
//! ```

mod authorize;
mod config;
mod discovery;
mod exchange;
mod http;
mod introspect;
mod quirks;
mod redact;
mod request;
mod response;
mod revoke;
mod token;
mod url_rule;

pub use authorize::{
    AuthorizationCode, IssuerParameter, PendingAuthorization, authorization_request,
    callback_state, parse_callback, parse_callback_with,
};
pub use config::{
    AccessTokenExchange, ClientAuth, ClientConfig, ExchangeMethod, RefreshStrategy, RetryPolicy,
    ScopeEncoding, Timeouts, TokenBody,
};
pub use discovery::{ProviderMetadata, discover};
pub use exchange::exchange_access_token;
pub use http::http_client;
pub use introspect::{Introspection, introspect};
pub use revoke::{TokenTypeHint, revoke};
pub use secrecy::{ExposeSecret, SecretString};
pub use token::{Refreshed, TokenResponse, exchange_code, refresh};
pub use url_rule::{ALLOW_INSECURE_HTTP, check_provider_url, is_loopback};

/// What `Debug` prints in place of a secret.
pub(crate) const REDACTED: &str = "[redacted]";
