//! Token revocation (RFC 7009).

use secrecy::{ExposeSecret as _, SecretString};

use super::ClientConfig;
use super::http::send;
use super::request::form_request;
use super::response::{RequestContext, classify};
use crate::error::{Endpoint, Error, Operation, Result};

/// Which kind of token is revoked (`token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// An access token.
    AccessToken,
    /// A refresh token (revoking it usually ends the whole authorization).
    RefreshToken,
}

impl TokenTypeHint {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// Revokes a token at the configured revocation endpoint (RFC 7009 2.1), authenticating
/// like the token requests. A 200 answer is success, whatever the body (the RFC's server
/// answers 200 for tokens it does not know, too). Not retried.
pub async fn revoke(
    client: &reqwest::Client,
    config: &ClientConfig,
    token: &SecretString,
    hint: Option<TokenTypeHint>,
) -> Result<()> {
    let url = config.revocation_url.as_ref().ok_or_else(|| {
        Error::Config(
            "no revocation URL is configured: set revocation_url (discovery finds it as revocation_endpoint)"
                .to_string(),
        )
    })?;
    let mut params = vec![("token", token.expose_secret().to_string())];
    if let Some(hint) = hint {
        params.push(("token_type_hint", hint.as_str().to_string()));
    }
    for (name, value) in &config.revocation_params {
        if !params.iter().any(|(own, _)| own == name) {
            params.push((name.as_str(), value.clone()));
        }
    }
    // Token request parameters are not sent here, so they cannot clash with these.
    let mut config = config.clone();
    config.extra_token_params.clear();
    config.exchange_params.clear();
    config.refresh_params.clear();
    let request = form_request(client, &config, url, params, false)?;
    let ctx = RequestContext {
        operation: Operation::Revocation,
        endpoint: Endpoint::Revocation,
        url,
        auth_method: config.auth_method,
        scopes: Vec::new(),
        secrets: vec![token.expose_secret()],
        error_flag: None,
    };
    tracing::debug!(url = %url, "revoking a token");
    let raw = send(client, request, Endpoint::Revocation, url).await?;
    classify(&raw, &ctx).map(|_| ())
}
