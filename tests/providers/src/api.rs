//! The API endpoint: does the provider's API take this access token, sent the provider's way?

use axum::http::{StatusCode, header};
use serde_json::{Map, Value, json};

use crate::behaviour::{ApiAuth, CallbackValue};
use crate::emulator::{Ctx, Reply};

/// 200 for a valid token sent the way the API takes it, with the right callback values in the
/// path; 401 or 404 saying why otherwise.
pub(crate) fn api(ctx: &Ctx<'_>) -> Reply {
    let b = ctx.behaviour();
    for (name, value) in &ctx.fields {
        let expected = b.callback_values.iter().find_map(|(n, v)| match v {
            CallbackValue::Text(text) if n == name => Some(*text),
            _ => None,
        });
        if let Some(expected) = expected.filter(|e| e != value) {
            return ctx.refuse(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such {name} {value:?}: use the {name} the callback gave ({expected})"),
            );
        }
    }
    let authorization = ctx
        .req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match b.api_auth {
        ApiAuth::Bearer => ctx.req.bearer(),
        ApiAuth::Scheme(scheme) => authorization.and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case(scheme))
                .map(|(_, t)| t.trim().to_owned())
        }),
        ApiAuth::Header(name) => ctx
            .req
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned()),
    };
    let Some(token) = token else {
        let how = match b.api_auth {
            ApiAuth::Bearer => "Authorization: Bearer TOKEN".to_owned(),
            ApiAuth::Scheme(scheme) => format!("Authorization: {scheme} TOKEN"),
            ApiAuth::Header(name) => format!("{name}: TOKEN"),
        };
        return ctx.refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("no access token: this API takes it as {how}"),
        );
    };
    if !ctx.shared.lock().access_valid(&token) {
        return ctx.refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is unknown, revoked or expired",
        );
    }
    let fields: Map<String, Value> = ctx
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut body = json!({"authorized": true, "fields": fields});
    if b.errors_in_200 {
        body["ok"] = json!(true);
    }
    Reply::Json(StatusCode::OK, body)
}
