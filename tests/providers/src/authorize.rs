//! The authorization endpoint: validates the request as the provider would, then redirects with a code.

use axum::http::{Method, StatusCode};

use crate::behaviour::{CallbackValue, Pkce, ResponseType, Separator};
use crate::emulator::{CLIENT_ID, Ctx, Reply};
use crate::state::{Code, random_token};

/// Answers an authorization request: 302 to the redirect URI with the code, or 400 naming
/// every problem found.
pub(crate) fn authorize(ctx: &Ctx<'_>) -> Reply {
    let b = ctx.behaviour();
    let req = ctx.req;
    if req.method != Method::GET {
        return ctx.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "the authorization endpoint is opened with GET (a browser navigation)",
        );
    }
    let q = |name: &str| req.query_param(name);
    let mut problems: Vec<String> = Vec::new();

    // The redirect URI first: without a good one there is nowhere to send anything.
    let redirect_uri = match q("redirect_uri") {
        None => return ctx.bad_request("invalid_request", "redirect_uri is missing"),
        Some(uri) => match redirect_ok(uri) {
            Ok(()) => uri.to_owned(),
            Err(why) => return ctx.bad_request("invalid_request", why),
        },
    };

    match q(b.client_id_param) {
        Some(id) if id == CLIENT_ID => {}
        Some(id) => problems.push(format!("unknown client {id:?} in {}", b.client_id_param)),
        None if b.client_id_param != "client_id" && q("client_id").is_some() => {
            problems.push(format!(
                "{} is missing: this provider names the client id {} (client_id is not read)",
                b.client_id_param, b.client_id_param
            ))
        }
        None => problems.push(format!("{} is missing", b.client_id_param)),
    }

    match (b.response_type, q("response_type")) {
        (ResponseType::Required, Some("code")) | (ResponseType::Ignored, _) => {}
        (ResponseType::Required, Some(other)) => problems.push(format!(
            "response_type {other:?} is not supported: use code"
        )),
        (ResponseType::Required, None) => problems.push("response_type is missing".into()),
        (ResponseType::Refused, None) => {}
        (ResponseType::Refused, Some(_)) => problems
            .push("response_type is not accepted by this provider: drop the parameter".into()),
    }

    for (name, value) in b.required_params {
        match q(name) {
            Some(v) if v == *value => {}
            Some(v) => problems.push(format!("{name}={v} is not accepted: it must be {value}")),
            None => problems.push(format!("{name}={value} is required and missing")),
        }
    }
    for (name, values) in b.constrained_params {
        if let Some(v) = q(name) {
            if !values.contains(&v) {
                problems.push(format!(
                    "{name}={v} is not supported (use one of {values:?})"
                ));
            }
        }
    }

    // Scopes: split on the provider's separator; a piece holding the other separator is one
    // unknown scope, as the provider would read it.
    let mut scopes = Vec::new();
    let mut nested_scopes = Vec::new();
    for param in b.scope_params {
        let Some(text) = q(param) else { continue };
        let pieces = split_scopes(text, b.scope_separator);
        for piece in &pieces {
            if piece.contains(' ') || piece.contains(',') {
                problems.push(format!(
                    "unknown scope {piece:?} in {param}: this provider separates scopes with {}",
                    match b.scope_separator {
                        Separator::Comma => "commas",
                        _ => "spaces",
                    }
                ));
            }
        }
        if b.nested_token.is_some_and(|(p, _)| p == *param) {
            nested_scopes.extend(pieces);
        } else {
            scopes.extend(pieces);
        }
    }
    let all_scopes: Vec<&String> = scopes.iter().chain(nested_scopes.iter()).collect();
    for required in b.required_scopes {
        if !all_scopes.iter().any(|s| s.as_str() == *required) {
            problems.push(format!(
                "the scope {required:?} is required in every request by this provider"
            ));
        }
    }

    let challenge = match (b.pkce, q("code_challenge")) {
        (Pkce::Refused, Some(_)) => {
            problems
                .push("code_challenge is not supported by this provider (PKCE must be off)".into());
            None
        }
        (Pkce::Required, None) => {
            problems.push("code_challenge is required (PKCE S256) and missing".into());
            None
        }
        (_, None) => None,
        (pkce, Some(challenge)) => {
            let method = q("code_challenge_method").unwrap_or("plain");
            let method_ok = method == "S256" || (method == "plain" && pkce != Pkce::Required);
            if !method_ok {
                problems.push(format!("code_challenge_method {method:?} is not supported"));
            }
            if !(43..=128).contains(&challenge.len()) {
                problems.push("code_challenge must be 43 to 128 characters".into());
            }
            Some((method.to_owned(), challenge.to_owned()))
        }
    };

    if !problems.is_empty() {
        return ctx.bad_request(
            if problems
                .iter()
                .any(|p| p.contains("unknown scope") || p.contains("the scope"))
            {
                "invalid_scope"
            } else {
                "invalid_request"
            },
            problems.join("; "),
        );
    }

    let offline_by_params = b.offline_params.iter().all(|(n, v)| q(n) == Some(*v));
    let offline_by_scopes = b.offline_scopes.is_empty()
        || all_scopes
            .iter()
            .any(|s| b.offline_scopes.contains(&s.as_str()));
    let code = random_token("code");
    {
        let mut inner = ctx.shared.lock();
        let grant = inner.new_grant();
        let issued = inner.now();
        inner.codes.insert(
            code.clone(),
            Code {
                grant,
                issued,
                used: false,
                redirect_uri: redirect_uri.clone(),
                challenge,
                fields: ctx.fields.clone(),
                scopes,
                nested_scopes,
                offline: offline_by_params && offline_by_scopes,
            },
        );
    }

    let mut callback: Vec<(String, String)> = vec![(b.code_param.to_owned(), code)];
    if let Some(state) = q("state") {
        callback.push(("state".into(), state.to_owned()));
    }
    for (name, value) in b.callback_values {
        let value = match value {
            CallbackValue::Text(text) => (*text).to_owned(),
            CallbackValue::Url(url) => ctx.shared.rewrite(url),
        };
        callback.push(((*name).to_owned(), value));
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(callback)
        .finish();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    Reply::Redirect(format!("{redirect_uri}{sep}{query}"))
}

/// Splits a scope parameter on the provider's separator, dropping empty pieces.
pub(crate) fn split_scopes(text: &str, separator: Separator) -> Vec<String> {
    let pieces: Vec<&str> = match separator {
        Separator::Space => text.split(' ').collect(),
        Separator::Comma => text.split(',').collect(),
        Separator::Any => text.split([' ', ',']).collect(),
    };
    pieces
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// An absolute http(s) URL without a fragment (any host: the client is registered with any).
fn redirect_ok(uri: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("redirect_uri {uri:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("redirect_uri {uri:?} is not http(s)"));
    }
    if parsed.fragment().is_some() {
        return Err(format!("redirect_uri {uri:?} has a fragment"));
    }
    Ok(())
}
