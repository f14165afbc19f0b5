//! Token requests: the code exchange (never retried), the refresh (retried on transient faults), and token responses as real providers send them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};

use super::authorize::{AuthorizationCode, PendingAuthorization};
use super::http::{RawResponse, send};
use super::quirks::{at_path, check_token_settings, kept_fields};
use super::redact::redact_json;
use super::request::{Credentials, TokenCall, build};
use super::response::{RequestContext, classify};
use super::{ClientConfig, ExchangeMethod, REDACTED, RefreshStrategy, RetryPolicy};
use crate::error::{Endpoint, Error, Operation, Result};

/// Fields of a token response that have their own place in [`TokenResponse`].
const KNOWN_FIELDS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "scope",
    "id_token",
];

/// A successful token response (RFC 6749 5.1), read leniently.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: SecretString,
    /// The token type as sent (`Bearer`, `bearer`, ...); see [`TokenResponse::is_bearer`].
    pub token_type: Option<String>,
    /// The lifetime of the access token; `None` when the provider did not say (expiry unknown).
    pub expires_in: Option<Duration>,
    /// The refresh token, when the provider sent one.
    pub refresh_token: Option<SecretString>,
    /// The granted scopes, when the provider said (a space-separated string, a string joined
    /// with the configured separator, or a JSON array).
    pub scope: Option<Vec<String>>,
    /// The OpenID Connect ID token, when sent.
    pub id_token: Option<SecretString>,
    /// Every other field, as sent (Salesforce's `instance_url`, Slack's `authed_user`, ...).
    pub raw: Map<String, Value>,
    /// The configured kept fields ([`ClientConfig::kept_token_fields`]) by dotted path: a
    /// string as is, a number or boolean as its JSON text; an absent one is left out.
    pub kept: BTreeMap<String, String>,
}

impl TokenResponse {
    /// Whether the token type is `Bearer` in any case (or was not sent, which most
    /// providers that omit it mean).
    pub fn is_bearer(&self) -> bool {
        self.token_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("bearer"))
    }

    /// Reads the fields of a successful response; `Err` says what is missing.
    pub(crate) fn from_fields(
        mut fields: Map<String, Value>,
        separator: &str,
    ) -> Result<Self, String> {
        let access_token = match fields.get("access_token") {
            Some(Value::String(token)) if !token.is_empty() => SecretString::from(token.clone()),
            Some(_) => return Err("an `access_token` that is not a non-empty string".to_string()),
            None => return Err("JSON that is not a token response (no `access_token`)".to_string()),
        };
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
        let token_type = text(fields.get("token_type"));
        let expires_in = fields.get("expires_in").and_then(parse_expires_in);
        if fields.get("expires_in").is_some_and(|v| !v.is_null()) && expires_in.is_none() {
            tracing::warn!(
                "the token response has an expires_in that is not a number of seconds; expiry unknown"
            );
        }
        let refresh_token = text(fields.get("refresh_token"))
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        let scope = fields.get("scope").and_then(|v| parse_scope(v, separator));
        let id_token = text(fields.get("id_token")).map(SecretString::from);
        for key in KNOWN_FIELDS {
            fields.remove(*key);
        }
        Ok(Self {
            access_token,
            token_type,
            expires_in,
            refresh_token,
            scope,
            id_token,
            raw: fields,
            kept: BTreeMap::new(),
        })
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Value::Object(self.raw.clone());
        redact_json(&mut raw);
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| REDACTED),
            )
            .field("scope", &self.scope)
            .field("id_token", &self.id_token.as_ref().map(|_| REDACTED))
            .field("raw", &raw)
            .field("kept", &self.kept)
            .finish()
    }
}

/// `expires_in` as a number (integer or not) or a numeric string; anything else is unknown.
fn parse_expires_in(value: &Value) -> Option<Duration> {
    let seconds = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    ((0.0..1e12).contains(&seconds)).then(|| Duration::from_secs_f64(seconds))
}

/// `scope` as a string split on whitespace and the configured separator, or a JSON array.
fn parse_scope(value: &Value, separator: &str) -> Option<Vec<String>> {
    match value {
        Value::String(s) => {
            let separator = separator.trim();
            Some(
                s.split(|c: char| {
                    c.is_whitespace() || (!separator.is_empty() && separator.contains(c))
                })
                .filter(|part| !part.is_empty())
                .map(str::to_string)
                .collect(),
            )
        }
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

/// The result of a refresh: the response, and the refresh token to keep from now on.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The response as sent.
    pub tokens: TokenResponse,
    /// The refresh token to store: the new one when the provider rotated it, else the old one.
    pub refresh_token: SecretString,
    /// Whether the provider sent a different refresh token (store it before anything else:
    /// the old one may be dead already).
    pub rotated: bool,
}

/// Exchanges an authorization code for tokens (RFC 6749 4.1.3, with the PKCE verifier of
/// RFC 7636 4.5). Never retried: a code is single use, and a provider may revoke what it
/// issued when a code is replayed. Sends the extra token parameters and the exchange-only
/// parameters ([`ClientConfig::exchange_params`]), in the configured body format; reads the
/// answer with the configured token location, kept fields and error flag.
pub async fn exchange_code(
    client: &reqwest::Client,
    config: &ClientConfig,
    code: &AuthorizationCode,
    pending: &PendingAuthorization,
) -> Result<TokenResponse> {
    check_token_settings(config)?;
    let mut params = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code.code.expose_secret().to_string()),
        ("redirect_uri", pending.redirect_uri.to_string()),
    ];
    if let Some(verifier) = &pending.code_verifier {
        params.push(("code_verifier", verifier.expose_secret().to_string()));
    }
    let mut secrets = vec![code.code.expose_secret()];
    if let Some(verifier) = &pending.code_verifier {
        secrets.push(verifier.expose_secret());
    }
    let ctx = RequestContext {
        operation: Operation::CodeExchange,
        endpoint: Endpoint::Token,
        url: &config.token_url,
        auth_method: config.auth_method,
        scopes: pending.scopes.clone(),
        secrets,
        error_flag: config.error_flag.as_deref(),
    };
    let request = build(
        client,
        config,
        TokenCall {
            url: &config.token_url,
            method: ExchangeMethod::Post,
            params,
            call_params: &config.exchange_params,
            extra_params: true,
            credentials: Credentials::Configured,
        },
    )?;
    tracing::debug!(url = %config.token_url, "exchanging an authorization code");
    let raw = send(client, request, Endpoint::Token, &config.token_url).await?;
    token_response(&raw, &ctx, config)
}

/// Refreshes tokens with a refresh token (RFC 6749 6), optionally asking for a narrower
/// scope. Retried by `retry` on transient faults (connect errors, timeouts, 5xx, 429 with
/// `Retry-After`). A response without a refresh token keeps the old one. Goes to the refresh
/// URL when one is set ([`ClientConfig::refresh_url`]), with the extra token parameters and
/// the refresh-only parameters ([`ClientConfig::refresh_params`]).
///
/// # Errors
/// [`Error::Config`] when the refresh strategy is not [`RefreshStrategy::RefreshToken`]
/// (tokens that are not refreshed, or refreshed by [`super::exchange_access_token`]).
pub async fn refresh<S: AsRef<str>>(
    client: &reqwest::Client,
    config: &ClientConfig,
    refresh_token: &SecretString,
    narrower_scope: Option<&[S]>,
    retry: &RetryPolicy,
) -> Result<Refreshed> {
    match &config.refresh_strategy {
        RefreshStrategy::RefreshToken => {}
        RefreshStrategy::None => {
            return Err(Error::Config(
                "this provider's tokens are not refreshed (refresh strategy `none`): authorize \
                 the instance again when its token stops working"
                    .to_string(),
            ));
        }
        RefreshStrategy::AccessTokenExchange(_) => {
            return Err(Error::Config(
                "this provider renews tokens by exchanging the access token (refresh strategy \
                 `access token exchange`), not with a refresh token: use exchange_access_token"
                    .to_string(),
            ));
        }
    }
    check_token_settings(config)?;
    let url = config.refresh_endpoint();
    let scopes: Vec<String> = narrower_scope
        .map(|s| s.iter().map(|s| s.as_ref().to_string()).collect())
        .unwrap_or_default();
    let mut params = vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", refresh_token.expose_secret().to_string()),
    ];
    if narrower_scope.is_some() {
        params.push(("scope", scopes.join(&config.scope_separator)));
    }
    let ctx = RequestContext {
        operation: Operation::Refresh,
        endpoint: Endpoint::Token,
        url,
        auth_method: config.auth_method,
        scopes,
        secrets: vec![refresh_token.expose_secret()],
        error_flag: config.error_flag.as_deref(),
    };
    let request = build(
        client,
        config,
        TokenCall {
            url,
            method: ExchangeMethod::Post,
            params,
            call_params: &config.refresh_params,
            extra_params: true,
            credentials: Credentials::Configured,
        },
    )?;
    let tokens = send_retried(client, &request, &ctx, config, retry, "refreshing tokens").await?;
    let rotated = tokens
        .refresh_token
        .as_ref()
        .is_some_and(|new| new.expose_secret() != refresh_token.expose_secret());
    let kept = tokens
        .refresh_token
        .clone()
        .unwrap_or_else(|| refresh_token.clone());
    Ok(Refreshed {
        tokens,
        refresh_token: kept,
        rotated,
    })
}

/// Sends a renewal request until it succeeds, fails for good, or `retry` gives up on
/// transient faults; logs name `ctx.url` only (never a query that holds secrets).
pub(crate) async fn send_retried(
    client: &reqwest::Client,
    request: &reqwest::Request,
    ctx: &RequestContext<'_>,
    config: &ClientConfig,
    retry: &RetryPolicy,
    what: &'static str,
) -> Result<TokenResponse> {
    let mut attempt = 1;
    loop {
        let this_try = request
            .try_clone()
            .ok_or_else(|| Error::Config("the refresh request cannot be repeated".to_string()))?;
        tracing::debug!(url = %ctx.url, attempt, "{what}");
        let result = match send(client, this_try, ctx.endpoint, ctx.url).await {
            Ok(raw) => token_response(&raw, ctx, config),
            Err(error) => Err(error),
        };
        match result {
            Ok(tokens) => return Ok(tokens),
            Err(error) if error.is_transient() && attempt < retry.max_attempts.max(1) => {
                let Some(wait) = retry.delay(attempt, error.retry_after()) else {
                    return Err(error);
                };
                tracing::warn!(url = %ctx.url, attempt, wait_ms = wait.as_millis() as u64, %error, "{what} failed, retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

impl TokenResponse {
    /// Reads an answer of the token endpoint at `config.token_url` the way [`exchange_code`]
    /// (`refresh: false`) or [`refresh`] reads it: status, content type and body in, the
    /// tokens or the error out; `sent` is what the request sent, which must never show in an
    /// error. For the fuzz target `fuzz/fuzz_targets/token_response.rs`; not part of the API.
    #[doc(hidden)]
    pub fn read_answer(
        config: &ClientConfig,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
        refresh: bool,
        sent: &[&str],
    ) -> Result<TokenResponse> {
        let raw = RawResponse {
            status,
            content_type: content_type.map(str::to_string),
            location: None,
            retry_after: None,
            body: body.get(..super::http::MAX_BODY).unwrap_or(body).to_vec(),
            too_large: body.len() > super::http::MAX_BODY,
        };
        let ctx = RequestContext {
            operation: if refresh {
                Operation::Refresh
            } else {
                Operation::CodeExchange
            },
            endpoint: Endpoint::Token,
            url: &config.token_url,
            auth_method: config.auth_method,
            scopes: Vec::new(),
            secrets: sent.to_vec(),
            error_flag: config.error_flag.as_deref(),
        };
        token_response(&raw, &ctx, config)
    }
}

/// Reads a token answer: the error it means, or the token fields at the configured location
/// and the kept fields of the whole response.
pub(crate) fn token_response(
    raw: &RawResponse,
    ctx: &RequestContext<'_>,
    config: &ClientConfig,
) -> Result<TokenResponse> {
    let fields = classify(raw, ctx)?;
    let kept = kept_fields(&fields, &config.kept_token_fields);
    let invalid = |problem: String| Error::InvalidResponse {
        endpoint: ctx.endpoint,
        url: ctx.url.to_string(),
        status: raw.status,
        content_type: raw.content_type_text(),
        problem,
        excerpt: super::redact::excerpt(&raw.body, &ctx.secrets),
    };
    // A refresh answer whose configured location holds no token but whose top level does
    // is read at the top level: Slack puts a user token under `authed_user` in the code
    // exchange answer and at the top level when it is refreshed. (A code exchange answer
    // without the nested token stays an error: the token it has is another one.)
    let location = config.token_location.as_deref().filter(|path| {
        let nested = matches!(at_path(&fields, path), Some(Value::Object(inner)) if inner.contains_key("access_token"));
        nested
            || ctx.operation != Operation::Refresh
            || !fields.contains_key("access_token")
    });
    let mut tokens = match location {
        None => TokenResponse::from_fields(fields, &config.scope_separator).map_err(invalid)?,
        Some(path) => {
            let Some(Value::Object(inner)) = at_path(&fields, path) else {
                return Err(invalid(format!(
                    "no object at `{path}`, where the token is configured to be"
                )));
            };
            let mut tokens = TokenResponse::from_fields(inner.clone(), &config.scope_separator)
                .map_err(|problem| invalid(format!("at `{path}`: {problem}")))?;
            let mut whole = fields;
            replace_at_path(
                &mut whole,
                path,
                Value::Object(std::mem::take(&mut tokens.raw)),
            );
            tokens.raw = whole;
            tokens
        }
    };
    tokens.kept = kept;
    Ok(tokens)
}

/// Puts `value` at an existing dotted path.
fn replace_at_path(fields: &mut Map<String, Value>, path: &str, value: Value) {
    let mut segments: Vec<&str> = path.split('.').collect();
    let Some(last) = segments.pop() else {
        return;
    };
    let mut map = fields;
    for segment in segments {
        match map.get_mut(segment) {
            Some(Value::Object(inner)) => map = inner,
            _ => return,
        }
    }
    map.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    #[test]
    fn an_access_token_must_be_a_non_empty_string() {
        let fields = |value: Value| {
            let mut map = Map::new();
            map.insert("access_token".into(), value);
            map
        };
        assert!(TokenResponse::from_fields(fields(Value::from("a")), " ").is_ok());
        for refused in [Value::from(""), Value::from(7), Value::Null] {
            let error = TokenResponse::from_fields(fields(refused.clone()), " ").unwrap_err();
            assert!(error.contains("non-empty string"), "{refused}: {error}");
        }
        let error = TokenResponse::from_fields(Map::new(), " ").unwrap_err();
        assert!(error.contains("no `access_token`"), "{error}");
    }

    #[test]
    fn an_answer_over_the_body_limit_is_refused_and_one_at_it_is_read() {
        let config = ClientConfig::new(
            "client",
            Url::parse("https://as.example/authorize").unwrap(),
            Url::parse("https://as.example/token").unwrap(),
        );
        let padded = |len: usize| {
            let mut body = br#"{"access_token":"a"}"#.to_vec();
            body.resize(len, b' ');
            body
        };
        let limit = crate::protocol::http::MAX_BODY;
        let read = |len: usize| {
            TokenResponse::read_answer(
                &config,
                200,
                Some("application/json"),
                &padded(len),
                true,
                &[],
            )
        };
        assert!(read(limit).is_ok(), "an answer of exactly the limit");
        assert!(read(limit + 1).is_err(), "an answer over the limit");
    }
}
