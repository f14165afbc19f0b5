//! Reading what a token or revocation endpoint answered: JSON or form bodies, OAuth errors (also inside a 200), and endpoint mix-ups.

use serde_json::{Map, Value};
use url::Url;

use super::ClientAuth;
use super::http::RawResponse;
use super::quirks::flagged_as_error;
use super::redact::{excerpt, looks_like_form};
use crate::error::{Endpoint, EndpointProblem, Error, OAuthError, Operation};

/// The longest `error_description` kept, in characters.
const DESCRIPTION_CHARS: usize = 300;

/// What the classification needs to know about the request.
pub(crate) struct RequestContext<'a> {
    pub operation: Operation,
    pub endpoint: Endpoint,
    pub url: &'a Url,
    pub auth_method: ClientAuth,
    /// The scopes the request asked for, for `invalid_scope`.
    pub scopes: Vec<String>,
    /// What the request sent that must never show in an excerpt.
    pub secrets: Vec<&'a str>,
    /// The dotted path of a boolean that, `false` in a 2xx answer, makes it an error
    /// ([`super::ClientConfig::error_flag`]).
    pub error_flag: Option<&'a str>,
}

impl RequestContext<'_> {
    pub(crate) fn invalid(&self, raw: &RawResponse, problem: impl Into<String>) -> Error {
        Error::InvalidResponse {
            endpoint: self.endpoint,
            url: self.url.to_string(),
            status: raw.status,
            content_type: raw.content_type_text(),
            problem: problem.into(),
            excerpt: excerpt(&raw.body, &self.secrets),
        }
    }

    fn not_an_endpoint(&self, problem: EndpointProblem) -> Error {
        Error::NotAnEndpoint {
            endpoint: self.endpoint,
            url: self.url.to_string(),
            problem,
        }
    }
}

/// The fields of a JSON object or form-urlencoded body, or `None` when it is neither.
pub(crate) fn parse_fields(raw: &RawResponse) -> Option<Map<String, Value>> {
    let text = std::str::from_utf8(&raw.body).ok()?.trim();
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
        return Some(map);
    }
    let is_form_type = raw.content_type.as_deref().is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("x-www-form-urlencoded") || ct.contains("text/plain")
    });
    if (is_form_type || raw.content_type.is_none()) && looks_like_form(text) {
        let map = url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Some(map);
    }
    None
}

/// The error a body states, in any common shape, with every literal occurrence of `sent`
/// (what the request sent: a provider may echo the refresh token or the code in its
/// description) removed before the description is shortened:
/// - RFC 6749: `error` (a string) with `error_description` and `error_uri` (or `message`);
/// - `error` as an object: `{"error": {"message": ..., "type": ..., "code": ...}}`
///   (Facebook, Google APIs);
/// - for an answer that is no success (`answered_ok` false) and holds no token: `code` and
///   `message` (Notion), `message` alone, or an `errors` list of strings or objects.
fn oauth_error(
    fields: &Map<String, Value>,
    sent: &[&str],
    answered_ok: bool,
) -> Option<OAuthError> {
    let clean = |s: &str| {
        let s = without_sent(s.trim(), sent);
        match s.char_indices().nth(DESCRIPTION_CHARS) {
            Some((end, _)) => format!("{}…", &s[..end]),
            None => s,
        }
    };
    let text_of = |map: &Map<String, Value>, keys: &[&str]| {
        keys.iter().find_map(|key| match map.get(*key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(clean(s)),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let uri = text_of(fields, &["error_uri"]);
    match fields.get("error") {
        Some(Value::String(error)) if !error.trim().is_empty() => {
            return Some(OAuthError {
                error: without_sent(error.trim(), sent),
                description: text_of(fields, &["error_description", "message"]),
                uri,
            });
        }
        Some(Value::Object(inner)) => return error_object(inner, &text_of, uri),
        _ => {}
    }
    if answered_ok || fields.contains_key("access_token") {
        return None;
    }
    if let Some(Value::Array(errors)) = fields.get("errors") {
        let mut codes = Vec::new();
        let mut messages = Vec::new();
        for item in errors.iter().take(5) {
            match item {
                Value::String(s) if !s.trim().is_empty() => messages.push(clean(s)),
                Value::Object(inner) => {
                    if let Some(found) = error_object(inner, &text_of, None) {
                        codes.push(found.error);
                        messages.extend(found.description);
                    }
                }
                _ => {}
            }
        }
        if !codes.is_empty() || !messages.is_empty() {
            let error = codes.into_iter().find(|c| c != "error");
            return Some(OAuthError {
                error: error.unwrap_or_else(|| "error".to_string()),
                description: (!messages.is_empty()).then(|| clean(&messages.join("; "))),
                uri,
            });
        }
    }
    error_object(fields, &text_of, uri)
}

/// The error an object states: its code (`code`, `type`, `error`, `error_code`, `status`
/// as text) and message (`message`, `error_description`, `description`, `error_message`,
/// `detail`); `None` when it has neither.
fn error_object(
    map: &Map<String, Value>,
    text_of: &impl Fn(&Map<String, Value>, &[&str]) -> Option<String>,
    uri: Option<String>,
) -> Option<OAuthError> {
    let kind = text_of(map, &["type", "error", "error_code"]);
    let code = text_of(map, &["code"]);
    let message = text_of(
        map,
        &[
            "message",
            "error_description",
            "description",
            "error_message",
            "detail",
        ],
    );
    let (error, description) = match (kind, code) {
        (Some(kind), Some(code)) => (
            kind,
            Some(match message {
                Some(message) => format!("{message} (code {code})"),
                None => format!("code {code}"),
            }),
        ),
        (Some(error), None) | (None, Some(error)) => (error, message),
        (None, None) => (
            text_of(map, &["status"]).unwrap_or_else(|| "error".to_string()),
            Some(message?),
        ),
    };
    Some(OAuthError {
        error,
        description,
        uri,
    })
}

/// `text` with every occurrence of a sent value (4 characters or more, as in excerpts)
/// replaced by `[redacted]`.
fn without_sent(text: &str, sent: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in sent.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, super::REDACTED);
    }
    text
}

/// Turns an answer into the fields of a successful response, or the error it means.
pub(crate) fn classify(
    raw: &RawResponse,
    ctx: &RequestContext<'_>,
) -> Result<Map<String, Value>, Error> {
    let status = raw.status;
    if (300..400).contains(&status) {
        return Err(ctx.not_an_endpoint(EndpointProblem::Redirect {
            status,
            location: raw.location.clone(),
        }));
    }
    if matches!(status, 404 | 405 | 410) {
        return Err(ctx.not_an_endpoint(EndpointProblem::Status(status)));
    }
    if raw.too_large {
        return Err(ctx.invalid(raw, format!("a body over {} bytes", super::http::MAX_BODY)));
    }
    let fields = parse_fields(raw);
    let flagged = fields
        .as_ref()
        .is_some_and(|f| flagged_as_error(f, ctx.error_flag));
    let answered_ok = (200..300).contains(&status) && !flagged;
    let mut details = fields
        .as_ref()
        .and_then(|f| oauth_error(f, &ctx.secrets, answered_ok));
    if flagged && details.is_none() {
        details = Some(OAuthError {
            error: "unknown_error".to_string(),
            description: Some(format!(
                "the answer's `{}` is false, without an `error` field",
                ctx.error_flag.unwrap_or_default()
            )),
            uri: None,
        });
    }
    let transient_code = details
        .as_ref()
        .is_some_and(|d| matches!(d.error.as_str(), "temporarily_unavailable" | "server_error"));
    if status == 429 || status >= 500 || transient_code {
        let reason = match (&details, status) {
            (Some(d), _) => format!("HTTP {status}, {d}"),
            (None, 429) => "HTTP 429, too many requests".to_string(),
            (None, _) => format!("HTTP {status}"),
        };
        return Err(Error::Transient {
            endpoint: ctx.endpoint,
            url: ctx.url.to_string(),
            reason,
            status: Some(status),
            retry_after: raw.retry_after,
            details: details.map(Box::new),
        });
    }
    if let Some(details) = details {
        return Err(oauth_failure(details, status, ctx));
    }
    if raw.is_html() {
        return Err(ctx.not_an_endpoint(EndpointProblem::Html {
            status,
            content_type: raw.content_type_text(),
            excerpt: excerpt(&raw.body, &ctx.secrets),
        }));
    }
    if status == 401 {
        return Err(Error::InvalidClient {
            url: ctx.url.to_string(),
            status,
            auth_method: ctx.auth_method,
            details: None,
        });
    }
    match fields {
        Some(fields) if (200..300).contains(&status) => Ok(fields),
        Some(_) => Err(ctx.invalid(raw, "an error without an `error` field")),
        None if (200..300).contains(&status) && ctx.endpoint == Endpoint::Revocation => {
            Ok(Map::new())
        }
        None => Err(ctx.invalid(
            raw,
            "a body that is neither a JSON object nor form-urlencoded",
        )),
    }
}

/// Error codes that mean what `invalid_client` means, as providers spell them (Slack).
const CLIENT_ERRORS: &[&str] = &["invalid_client", "invalid_client_id", "bad_client_secret"];

/// Error codes of a refresh that mean what `invalid_grant` means there: the refresh token is
/// dead, as providers spell it (Slack: `invalid_refresh_token`, `token_revoked`). Only at
/// refresh: at a code exchange such codes say other things (Zoho answers `invalid_code` from
/// the wrong data centre).
const REFRESH_TOKEN_ERRORS: &[&str] = &["invalid_grant", "invalid_refresh_token", "token_revoked"];

fn oauth_failure(details: OAuthError, status: u16, ctx: &RequestContext<'_>) -> Error {
    let error = match details.error.as_str() {
        error if CLIENT_ERRORS.contains(&error) => "invalid_client",
        error if ctx.operation == Operation::Refresh && REFRESH_TOKEN_ERRORS.contains(&error) => {
            "invalid_grant"
        }
        error => error,
    };
    match (error, ctx.operation) {
        ("invalid_client", _) => Error::InvalidClient {
            url: ctx.url.to_string(),
            status,
            auth_method: ctx.auth_method,
            details: Some(details),
        },
        ("invalid_scope", _) => Error::InvalidScope {
            scopes: ctx.scopes.clone(),
            details,
        },
        ("invalid_grant", Operation::CodeExchange) => Error::CodeRejected { details },
        ("invalid_grant", Operation::Refresh) => Error::AuthorizationGone { details },
        _ => Error::Provider {
            operation: ctx.operation,
            url: ctx.url.to_string(),
            status,
            details,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            content_type: Some("application/json".to_string()),
            location: None,
            retry_after: None,
            body: body.as_bytes().to_vec(),
            too_large: false,
        }
    }

    fn token_context(url: &Url) -> RequestContext<'_> {
        RequestContext {
            operation: Operation::Refresh,
            endpoint: Endpoint::Token,
            url,
            auth_method: ClientAuth::ClientSecretBasic,
            scopes: Vec::new(),
            secrets: Vec::new(),
            error_flag: None,
        }
    }

    #[test]
    fn fields_are_an_answer_only_from_a_2xx() {
        let url = Url::parse("https://as.example/token").unwrap();
        let ctx = token_context(&url);
        let fields = classify(&answer(200, r#"{"access_token":"a"}"#), &ctx).unwrap();
        assert_eq!(fields["access_token"], "a");
        for status in [400, 403, 429, 500] {
            let refused = classify(&answer(status, r#"{"access_token":"a"}"#), &ctx);
            assert!(refused.is_err(), "HTTP {status} taken as an answer");
        }
    }

    #[test]
    fn an_empty_or_unreadable_2xx_is_an_answer_only_from_the_revocation_endpoint() {
        let url = Url::parse("https://as.example/revoke").unwrap();
        let token = token_context(&url);
        let revocation = RequestContext {
            endpoint: Endpoint::Revocation,
            ..token_context(&url)
        };
        let empty = RawResponse {
            content_type: None,
            ..answer(200, "")
        };
        assert_eq!(classify(&empty, &revocation).unwrap(), Map::new());
        assert!(
            classify(&empty, &token).is_err(),
            "a token endpoint's empty 200"
        );
        let failed = RawResponse {
            content_type: None,
            ..answer(503, "")
        };
        assert!(
            classify(&failed, &revocation).is_err(),
            "a revocation's 503"
        );
    }

    #[test]
    fn a_form_body_is_read_only_when_it_says_so_or_says_nothing() {
        let form = |content_type: Option<&str>| RawResponse {
            content_type: content_type.map(str::to_string),
            ..answer(200, "access_token=a&token_type=bearer")
        };
        for content_type in [
            Some("application/x-www-form-urlencoded"),
            Some("text/plain; charset=utf-8"),
            None,
        ] {
            let fields = parse_fields(&form(content_type)).expect("a form body");
            assert_eq!(fields["access_token"], "a", "{content_type:?}");
        }
        assert!(
            parse_fields(&form(Some("application/octet-stream"))).is_none(),
            "a body of another declared type is not read as a form"
        );
    }

    /// Found by the `token_response` fuzz target: a provider that echoed the refresh token
    /// in `error_description` had it shown in the error (logs, the admin page, the stored
    /// refresh outcome).
    #[test]
    fn error_fields_never_show_what_the_request_sent() {
        let url = Url::parse("https://as.example/token").unwrap();
        let refresh_token = "rt-Fuzz-Secret-9f3a";
        let ctx = RequestContext {
            operation: Operation::Refresh,
            endpoint: Endpoint::Token,
            url: &url,
            auth_method: ClientAuth::ClientSecretBasic,
            scopes: Vec::new(),
            secrets: vec![refresh_token],
            error_flag: None,
        };
        let long = "x".repeat(DESCRIPTION_CHARS - 5);
        for (status, body) in [
            (
                400,
                format!(
                    r#"{{"error":"invalid_grant","error_description":"unknown token {refresh_token}"}}"#
                ),
            ),
            (
                400,
                format!(
                    r#"{{"error":"invalid_request","error_uri":"https://as.example/e?t={refresh_token}"}}"#
                ),
            ),
            (400, format!(r#"{{"error":"{refresh_token}"}}"#)),
            (
                503,
                format!(r#"{{"error":"server_error","error_description":"{refresh_token}"}}"#),
            ),
            // Cut at the description's length, a secret would leave its first characters.
            (
                400,
                format!(
                    r#"{{"error":"invalid_grant","error_description":"{long}{refresh_token}"}}"#
                ),
            ),
        ] {
            let error = classify(&answer(status, &body), &ctx).unwrap_err();
            let shown = format!("{error} / {error:?}");
            assert!(!shown.contains("rt-F"), "{shown}");
            assert!(shown.contains("[reda"), "{shown}");
        }
    }
}
