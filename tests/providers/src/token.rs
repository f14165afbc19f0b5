//! The token, refresh and revocation endpoints: client authentication, body format, codes, rotation.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::behaviour::{
    BodyFormat, ClientAuth, ExpiringValue, Expiry, FieldValue, Refresh, Revocation, Separator,
};
use crate::emulator::{CLIENT_ID, CLIENT_SECRET, Ctx, Reply};
use crate::request::Format;
use crate::state::CODE_LIFETIME;
use crate::template;

/// The lifetime of a long-lived token from an access-token exchange or refresh (60 days,
/// Facebook and Instagram).
pub const LONG_LIVED: u64 = 60 * 24 * 3600;

type Step<T> = Result<T, Reply>;

/// The token URL: code exchange, refresh (unless the provider refreshes elsewhere), and an
/// access-token exchange where the provider has one.
pub(crate) fn token(ctx: &Ctx<'_>) -> Reply {
    match token_steps(ctx) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn token_steps(ctx: &Ctx<'_>) -> Step<Reply> {
    let b = ctx.behaviour();
    check_method(ctx, b.token_get)?;
    check_format(ctx)?;
    let grant_type = ctx.req.param("grant_type");
    match (grant_type, b.refresh) {
        (Some("authorization_code"), _) => exchange(ctx),
        // Facebook's code exchange (a GET) carries no grant_type.
        (None, _) if b.token_get && ctx.req.param("code").is_some() => exchange(ctx),
        (Some("refresh_token"), _) if !b.refresh_urls.is_empty() => Err(ctx.bad_request(
            "unsupported_grant_type",
            format!(
                "refresh is not served at the token URL: this provider refreshes at {}",
                b.refresh_url()
            ),
        )),
        (Some("refresh_token"), _) => refresh_with_token(ctx),
        (Some(g), Refresh::ExchangeAccessToken { grant_type, param }) if g == grant_type => {
            exchange_access_token(ctx, param)
        }
        (Some(other), _) => Err(ctx.bad_request(
            "unsupported_grant_type",
            format!("grant_type {other:?} is not supported here"),
        )),
        (None, _) => Err(ctx.bad_request("invalid_request", "grant_type is missing")),
    }
}

/// The provider's own refresh URL.
pub(crate) fn refresh_endpoint(ctx: &Ctx<'_>) -> Reply {
    let steps = || -> Step<Reply> {
        let b = ctx.behaviour();
        if let Refresh::AccessTokenRefresh { grant_type, param } = b.refresh {
            check_method(ctx, true)?;
            if ctx.req.param("grant_type") != Some(grant_type) {
                return Err(ctx.bad_request(
                    "invalid_request",
                    format!("grant_type must be {grant_type}"),
                ));
            }
            return renew_access_token(ctx, param);
        }
        check_method(ctx, false)?;
        check_format(ctx)?;
        match ctx.req.param("grant_type") {
            None | Some("refresh_token") => refresh_with_token(ctx),
            Some(other) => Err(ctx.bad_request(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported at the refresh URL"),
            )),
        }
    };
    match steps() {
        Ok(reply) | Err(reply) => reply,
    }
}

fn check_method(ctx: &Ctx<'_>, get_allowed: bool) -> Step<()> {
    let m = &ctx.req.method;
    if *m == Method::POST || (get_allowed && *m == Method::GET) {
        return Ok(());
    }
    Err(ctx.refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        format!(
            "{m} is not accepted at the {} endpoint (use POST)",
            ctx.endpoint.name()
        ),
    ))
}

/// The body format the provider takes.
fn check_format(ctx: &Ctx<'_>) -> Step<()> {
    if ctx.req.method == Method::GET {
        return Ok(());
    }
    let format = ctx.req.format;
    let refuse = |reason: &str| Err(ctx.bad_request("invalid_request", reason));
    match (ctx.behaviour().body_format, format) {
        (_, Format::Other) => refuse(
            "the request body is neither a form (application/x-www-form-urlencoded) nor JSON",
        ),
        (BodyFormat::Form, Format::Json) => {
            refuse("this provider takes a form body (application/x-www-form-urlencoded), not JSON")
        }
        (BodyFormat::Json, Format::Form | Format::None) => {
            refuse("this provider takes a JSON body (application/json), not a form")
        }
        _ => Ok(()),
    }
}

/// Client authentication as the provider takes it.
fn check_client(ctx: &Ctx<'_>) -> Step<()> {
    let b = ctx.behaviour();
    let id_param = b.token_client_id_param;
    let invalid =
        |reason: String| Err(ctx.refuse(StatusCode::UNAUTHORIZED, "invalid_client", reason));
    let basic = match ctx.req.basic() {
        None => None,
        Some(Ok(pair)) => Some(pair),
        Some(Err(why)) => return invalid(why),
    };
    let body_id = ctx.req.param(id_param);
    let body_secret = ctx.req.param("client_secret");
    if id_param != "client_id" && body_id.is_none() && ctx.req.param("client_id").is_some() {
        return invalid(format!(
            "{id_param} is missing: this provider names the client id {id_param} (client_id is not read)"
        ));
    }
    let (id, secret) = match (b.client_auth, basic, body_secret) {
        (ClientAuth::Basic, _, Some(_)) => {
            return invalid(
                "client_secret in the body is refused: this provider takes the client \
                 credentials in HTTP Basic only"
                    .into(),
            );
        }
        (ClientAuth::Basic, None, None) => {
            return invalid("HTTP Basic client authentication is required".into());
        }
        (ClientAuth::Post, Some(_), _) => {
            return invalid(format!(
                "an Authorization: Basic header is refused: this provider takes {id_param} \
                 and client_secret in the body"
            ));
        }
        (ClientAuth::Either, Some(_), Some(_)) => {
            return invalid(
                "the client authenticated twice (HTTP Basic and client_secret in the body); \
                 use one method (RFC 6749 2.3)"
                    .into(),
            );
        }
        (_, Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return invalid(format!(
                    "{id_param} in the body differs from the Basic user"
                ));
            }
            (id, secret)
        }
        (_, None, Some(secret)) => match body_id {
            Some(id) => (id.to_owned(), secret.to_owned()),
            None => return invalid(format!("{id_param} is missing")),
        },
        (_, None, None) => {
            return invalid(format!(
                "no client authentication: send {id_param} and client_secret{}",
                if b.client_auth == ClientAuth::Post {
                    " in the body"
                } else {
                    ""
                }
            ));
        }
    };
    if id != CLIENT_ID || secret != CLIENT_SECRET {
        return invalid(format!("unknown client {id:?} or wrong secret"));
    }
    Ok(())
}

fn require_params(ctx: &Ctx<'_>, params: &[(&str, &str)], what: &str) -> Step<()> {
    for (name, value) in params {
        if ctx.req.param(name) != Some(*value) {
            return Err(ctx.bad_request(
                "invalid_request",
                format!("{name}={value} is required on the {what}"),
            ));
        }
    }
    Ok(())
}

/// The lifetime asked through the provider's expiring parameter: `Ok(None)` when the
/// provider has none; `Ok(Some(None))` when it was not sent (a non-expiring token).
fn expiring(ctx: &Ctx<'_>, on_refresh: bool) -> Step<Option<Option<u64>>> {
    let b = ctx.behaviour();
    let Some(p) = b.expiring_param else {
        return Ok(None);
    };
    if on_refresh && !p.on_refresh {
        return Ok(None);
    }
    let Some(value) = ctx.req.param(p.name) else {
        return Ok(Some(None));
    };
    match p.value {
        ExpiringValue::Exactly(v) if value == v => Ok(Some(Some(b.lifetime))),
        ExpiringValue::Exactly(v) => Err(ctx.bad_request(
            "invalid_request",
            format!("{}={value} is not accepted: use {}={v}", p.name, p.name),
        )),
        ExpiringValue::Seconds { min, max } => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(Some(n))),
            _ => Err(ctx.bad_request(
                "invalid_request",
                format!(
                    "{}={value} must be a number of seconds from {min} to {max}",
                    p.name
                ),
            )),
        },
    }
}

fn exchange(ctx: &Ctx<'_>) -> Step<Reply> {
    let b = ctx.behaviour();
    check_client(ctx)?;
    require_params(ctx, b.exchange_params, "code exchange")?;
    let Some(code) = ctx.req.param("code") else {
        return Err(ctx.bad_request("invalid_request", "code is missing"));
    };
    let asked = expiring(ctx, false)?;
    let redirect_uri = ctx.req.param("redirect_uri");
    let verifier = ctx.req.param("code_verifier");

    let mut inner = ctx.shared.lock();
    let now = inner.now();
    let Some(entry) = inner.codes.get_mut(code) else {
        drop(inner);
        return Err(ctx.bad_request("invalid_grant", "unknown code"));
    };
    if entry.used {
        let grant = entry.grant;
        inner.revoke_grant(grant);
        drop(inner);
        return Err(ctx.bad_request(
            "invalid_grant",
            "the code was already used (codes are single use; the tokens issued for it are now revoked)",
        ));
    }
    let problem = if now.duration_since(entry.issued) > CODE_LIFETIME {
        Some("the code expired (codes live 10 minutes)".to_owned())
    } else if let Some(host) = b.code_host.filter(|h| *h != ctx.host) {
        Some(format!(
            "this code must be redeemed at {host} (the accounts server the callback named), not at {}",
            ctx.host
        ))
    } else if let Some((name, value)) = entry
        .fields
        .iter()
        .find(|(n, v)| b.code_host.is_none() && ctx.fields.iter().any(|(m, w)| m == n && w != v))
    {
        Some(format!(
            "the code was issued for {name}={value}, not for this host"
        ))
    } else if redirect_uri != Some(entry.redirect_uri.as_str()) {
        Some("redirect_uri must be sent and equal the authorization request's".to_owned())
    } else {
        match (&entry.challenge, verifier) {
            (Some(_), None) => {
                Some("code_verifier is missing (the authorization used PKCE)".into())
            }
            (Some((method, challenge)), Some(v)) if !pkce_ok(method, challenge, v) => {
                Some("code_verifier does not match the code_challenge".into())
            }
            _ => None,
        }
    };
    if let Some(reason) = problem {
        drop(inner);
        return Err(ctx.bad_request("invalid_grant", reason));
    }
    entry.used = true;
    let grant = entry.grant;
    let offline = entry.offline;
    let scopes = entry.scopes.clone();
    let nested_scopes = entry.nested_scopes.clone();

    let (lifetime, refresh_allowed) = match (b.refresh, asked) {
        (Refresh::NonExpiring, _) => (None, false),
        (_, Some(None)) => (None, false),
        (Refresh::RefreshToken { .. }, Some(Some(n))) => (Some(n), offline),
        (Refresh::RefreshToken { .. }, None) => (Some(b.lifetime), offline),
        (_, Some(Some(n))) => (Some(n), false),
        (_, None) => (Some(b.lifetime), false),
    };
    let mut issue = |scopes: &[String]| {
        let access = inner.issue_access(grant, lifetime);
        let refresh = refresh_allowed.then(|| inner.issue_refresh(grant, scopes.to_vec()));
        token_fields(ctx, access, lifetime, refresh, scopes)
    };
    let mut body = Map::new();
    let nested = b.nested_token.filter(|_| !nested_scopes.is_empty());
    if nested.is_none() || !scopes.is_empty() {
        body = issue(&scopes);
    }
    if let Some((_, key)) = nested {
        let mut user = issue(&nested_scopes);
        user.insert("id".into(), json!("U0EMULATOR"));
        user.insert("token_type".into(), json!("user"));
        body.insert(key.into(), Value::Object(user));
    }
    drop(inner);
    Ok(answer(ctx, body))
}

fn pkce_ok(method: &str, challenge: &str, verifier: &str) -> bool {
    let valid_chars = verifier
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c));
    if !(43..=128).contains(&verifier.len()) || !valid_chars {
        return false;
    }
    match method {
        "S256" => {
            let digest = Sha256::digest(verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
        }
        _ => verifier == challenge,
    }
}

fn refresh_with_token(ctx: &Ctx<'_>) -> Step<Reply> {
    let b = ctx.behaviour();
    check_client(ctx)?;
    require_params(ctx, b.refresh_params, "refresh")?;
    let Some(token) = ctx.req.param("refresh_token") else {
        return Err(ctx.bad_request("invalid_request", "refresh_token is missing"));
    };
    let asked = expiring(ctx, true)?;
    let Refresh::RefreshToken { rotating, repeated } = b.refresh else {
        return Err(ctx.bad_request("invalid_grant", "this provider issues no refresh tokens"));
    };
    let mut inner = ctx.shared.lock();
    let found = inner
        .refresh
        .get(token)
        .map(|r| (r.grant, r.used, r.revoked, r.scopes.clone()));
    let lapsed = b.refresh_token_lapse.is_some_and(|secs| {
        inner.refresh.get(token).is_some_and(|r| {
            inner.now().duration_since(r.last_used) > std::time::Duration::from_secs(secs)
        })
    });
    let problem = match found {
        None => Some("unknown refresh token"),
        Some(_) if lapsed => Some(
            "the refresh token lapsed: it was not used for longer than this provider keeps unused \
             refresh tokens; authorize again (refresh periodically to keep it alive)",
        ),
        Some((grant, _, revoked, _)) if revoked || !inner.grant_live(grant) => {
            Some("the refresh token was revoked")
        }
        Some((_, true, _, _)) => Some(
            "the refresh token was already used: this provider rotates refresh tokens (single use); \
             use the one returned by the last refresh",
        ),
        Some(_) => None,
    };
    let (Some((grant, _, _, scopes)), None) = (found, problem) else {
        drop(inner);
        return Err(ctx.bad_request("invalid_grant", problem.unwrap_or("unknown refresh token")));
    };
    let (lifetime, keep_refreshing) = match asked {
        Some(None) => (None, false),
        Some(Some(n)) => (Some(n), true),
        None => (Some(b.lifetime), true),
    };
    let access = inner.issue_access(grant, lifetime);
    let now = inner.now();
    if let Some(r) = inner.refresh.get_mut(token) {
        r.last_used = now;
    }
    let refresh = if rotating && keep_refreshing {
        if let Some(r) = inner.refresh.get_mut(token) {
            r.used = true;
        }
        Some(inner.issue_refresh(grant, scopes.clone()))
    } else if repeated && keep_refreshing {
        Some(token.to_owned())
    } else {
        None
    };
    drop(inner);
    Ok(answer(
        ctx,
        token_fields(ctx, access, lifetime, refresh, &scopes),
    ))
}

/// Facebook: a still-valid access token exchanged for a long-lived one at the token URL.
fn exchange_access_token(ctx: &Ctx<'_>, param: &str) -> Step<Reply> {
    check_client(ctx)?;
    renew_access_token(ctx, param)
}

/// A new long-lived token for a still-valid access token (Facebook, Instagram).
fn renew_access_token(ctx: &Ctx<'_>, param: &str) -> Step<Reply> {
    let Some(token) = ctx.req.param(param) else {
        return Err(ctx.bad_request("invalid_request", format!("{param} is missing")));
    };
    let mut inner = ctx.shared.lock();
    if !inner.access_valid(token) {
        drop(inner);
        return Err(ctx.bad_request(
            "invalid_grant",
            "the access token to exchange is unknown, revoked or expired: authorize again",
        ));
    }
    let grant = inner.access.get(token).map(|a| a.grant).unwrap_or_default();
    let access = inner.issue_access(grant, Some(LONG_LIVED));
    drop(inner);
    let mut body = Map::new();
    body.insert("access_token".into(), json!(access));
    body.insert("token_type".into(), json!("bearer"));
    body.insert("expires_in".into(), json!(LONG_LIVED));
    Ok(Reply::Json(StatusCode::OK, Value::Object(body)))
}

/// The fields of one token: `access_token`, `token_type`, expiry, `refresh_token`, `scope`.
fn token_fields(
    ctx: &Ctx<'_>,
    access: String,
    lifetime: Option<u64>,
    refresh: Option<String>,
    scopes: &[String],
) -> Map<String, Value> {
    let b = ctx.behaviour();
    let mut m = Map::new();
    m.insert("access_token".into(), json!(access));
    m.insert("token_type".into(), json!(b.token_type));
    if let Some(secs) = lifetime {
        match b.expiry {
            Expiry::ExpiresIn => {
                m.insert("expires_in".into(), json!(secs));
            }
            Expiry::ExpiresAt => {
                m.insert("expires_at".into(), json!(rfc3339_in(secs)));
            }
            Expiry::NotSent => {}
        }
    }
    if let Some(r) = refresh {
        m.insert("refresh_token".into(), json!(r));
    }
    if !scopes.is_empty() {
        let sep = if b.scope_separator == Separator::Comma {
            ","
        } else {
            " "
        };
        m.insert("scope".into(), json!(scopes.join(sep)));
    }
    m
}

/// The whole answer: the token fields, the provider's extra fields, `ok: true` where errors
/// come inside a 200, form-encoded where the provider answers so.
fn answer(ctx: &Ctx<'_>, mut body: Map<String, Value>) -> Reply {
    let b = ctx.behaviour();
    for (path, value) in b.extra_fields {
        let value = match value {
            FieldValue::Text(t) => json!(t),
            FieldValue::Url(u) => json!(ctx.shared.rewrite(&template::fill(u, &ctx.fields))),
            FieldValue::NowMillis => json!(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default()
                    .to_string()
            ),
        };
        insert_path(&mut body, path, value);
    }
    if b.errors_in_200 {
        body.insert("ok".into(), json!(true));
    }
    if b.form_response_unless_json_accepted && !ctx.req.accepts_json() {
        let text = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(body.iter().map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            }))
            .finish();
        return Reply::Form(StatusCode::OK, text);
    }
    Reply::Json(StatusCode::OK, Value::Object(body))
}

fn insert_path(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert_path(child, rest, value);
            }
        }
    }
}

/// Now plus `secs`, as RFC 3339 UTC (`2026-12-01T22:00:00Z`).
fn rfc3339_in(secs: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        + secs;
    let (days, rem) = (t / 86_400, t % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The revocation endpoint: the token is accepted once; its whole grant is revoked.
pub(crate) fn revoke(ctx: &Ctx<'_>) -> Reply {
    let steps = || -> Step<Reply> {
        let b = ctx.behaviour();
        check_method(ctx, true)?;
        let token = match b.revocation {
            Revocation::None => {
                return Err(ctx.refuse(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "this provider has no revocation endpoint",
                ));
            }
            Revocation::Bearer => ctx.req.bearer(),
            Revocation::Token { authenticated } => {
                if authenticated {
                    check_client(ctx)?;
                }
                ctx.req.param("token").map(str::to_owned)
            }
        };
        let Some(token) = token else {
            return Err(ctx.bad_request("invalid_request", "the token to revoke is missing"));
        };
        let mut inner = ctx.shared.lock();
        let grant = inner
            .access
            .get(&token)
            .map(|a| a.grant)
            .or_else(|| inner.refresh.get(&token).map(|r| r.grant))
            .filter(|g| inner.grant_live(*g));
        let Some(grant) = grant else {
            drop(inner);
            return Err(ctx.bad_request("invalid_token", "the token is unknown or already revoked"));
        };
        inner.revoke_grant(grant);
        inner.revoked.push(token);
        drop(inner);
        Ok(if b.errors_in_200 {
            Reply::Json(StatusCode::OK, json!({"ok": true, "revoked": true}))
        } else {
            Reply::Json(StatusCode::OK, json!({}))
        })
    };
    match steps() {
        Ok(reply) | Err(reply) => reply,
    }
}
