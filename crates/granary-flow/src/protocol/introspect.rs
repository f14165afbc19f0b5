//! Token introspection (RFC 7662): what the provider says of a token, for tokens whose
//! expiry the token response did not state.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::ClientConfig;
use super::http::send;
use super::request::form_request;
use super::response::{RequestContext, classify};
use crate::error::{Endpoint, Error, Operation, Result};

/// What an introspection endpoint said of an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is active (usable) now.
    pub active: bool,
    /// When it expires, in seconds since the Unix epoch (`exp`), if said.
    pub exp: Option<i64>,
    /// Its scope, if said.
    pub scope: Option<String>,
}

/// Asks the configured introspection endpoint (RFC 7662 2.1) about an access token,
/// authenticating like the token requests. Not retried.
///
/// # Errors
/// [`Error::Config`] without an introspection URL; the errors of a token request when the
/// endpoint refuses; [`Error::InvalidResponse`] when the answer has no boolean `active`.
pub async fn introspect(
    client: &reqwest::Client,
    config: &ClientConfig,
    token: &SecretString,
) -> Result<Introspection> {
    let url = config.introspection_url.as_ref().ok_or_else(|| {
        Error::Config(
            "no introspection URL is configured: set introspection_url (discovery finds it as \
             introspection_endpoint)"
                .to_string(),
        )
    })?;
    let params = vec![
        ("token", token.expose_secret().to_string()),
        ("token_type_hint", "access_token".to_string()),
    ];
    let request = form_request(client, config, url, params, false)?;
    let ctx = RequestContext {
        operation: Operation::Introspection,
        endpoint: Endpoint::Introspection,
        url,
        auth_method: config.auth_method,
        scopes: Vec::new(),
        secrets: vec![token.expose_secret()],
        error_flag: None,
    };
    tracing::debug!(url = %url, "introspecting a token");
    let raw = send(client, request, Endpoint::Introspection, url).await?;
    let fields = classify(&raw, &ctx)?;
    let active = match fields.get("active") {
        Some(Value::Bool(active)) => *active,
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => true,
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => false,
        _ => return Err(ctx.invalid(&raw, "no boolean `active` (RFC 7662 2.2)")),
    };
    let exp = match fields.get("exp") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    };
    let scope = fields
        .get("scope")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Introspection { active, exp, scope })
}
