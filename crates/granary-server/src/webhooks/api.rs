//! The REST API of webhooks (role `admin`, problem+json errors): `GET/POST
//! /api/v1/webhooks`, `PATCH/DELETE /api/v1/webhooks/{id}`, `GET
//! /api/v1/webhooks/{id}/deliveries`; and the JSON forms of endpoints and deliveries, which
//! the CLI prints too.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use granary_store::{DeliveryAttempt, WebhookDelivery, WebhookEndpoint};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::{self, WebhookError};
use crate::app::AppState;
use crate::problem::Problem;
use crate::views::format_rfc3339;

type ApiResult = Result<Response, Problem>;

fn problem(error: WebhookError) -> Problem {
    error.problem()
}

/// An endpoint as JSON (never its secret), with the state of its newest delivery.
pub fn endpoint_json(endpoint: &WebhookEndpoint, last: Option<&WebhookDelivery>) -> Value {
    json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "created": format_rfc3339(endpoint.created),
        "last_delivery": last.map(|d| json!({
            "id": d.id,
            "event": d.event_type,
            "created": format_rfc3339(d.created),
            "state": d.state.as_str(),
        })),
    })
}

/// An attempt as JSON.
fn attempt_json(attempt: &DeliveryAttempt) -> Value {
    json!({
        "at": format_rfc3339(attempt.at),
        "status": attempt.status,
        "answer": attempt.answer,
    })
}

/// A delivery as JSON (its payload as the JSON it is).
pub fn delivery_json(delivery: &WebhookDelivery) -> Value {
    json!({
        "id": delivery.id,
        "endpoint": delivery.endpoint,
        "event": delivery.event_type,
        "created": format_rfc3339(delivery.created),
        "state": delivery.state.as_str(),
        "next_attempt": format_rfc3339(delivery.next_attempt),
        "attempts": delivery.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
        "payload": serde_json::from_str::<Value>(&delivery.payload).unwrap_or(Value::Null),
    })
}

/// Every endpoint as JSON, each with its newest delivery.
///
/// # Errors
/// A store failure.
pub async fn endpoints_json(state: &AppState) -> Result<Vec<Value>, WebhookError> {
    let mut out = Vec::new();
    for endpoint in endpoints::list(&state.engine).await? {
        let last = state
            .engine
            .store()
            .list_deliveries(&endpoint.id, 1)
            .await?;
        out.push(endpoint_json(&endpoint, last.first()));
    }
    Ok(out)
}

/// `GET /api/v1/webhooks`.
pub async fn list(State(state): State<AppState>) -> ApiResult {
    let endpoints = endpoints_json(&state).await.map_err(problem)?;
    Ok(Json(json!({ "webhooks": endpoints })).into_response())
}

/// The body of `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Where deliveries go.
    pub url: String,
    /// The event types.
    pub events: Vec<String>,
}

/// `POST /api/v1/webhooks`: 201 with the endpoint and its `secret`, shown this once.
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| {
        Problem::bad_request(format!(
            "the body must be {{\"url\": \"https://...\", \"events\": [\"refreshed\", ...]}}: {e}"
        ))
    })?;
    let created = endpoints::create(
        &state.engine,
        state.settings.allow_insecure_http,
        &body.url,
        &body.events,
    )
    .await
    .map_err(problem)?;
    let mut json = endpoint_json(&created.endpoint, None);
    if let Some(object) = json.as_object_mut() {
        object.insert("secret".into(), json!(created.secret.expose_secret()));
    }
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// The body of `PATCH /api/v1/webhooks/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// Whether new events are delivered.
    pub enabled: Option<bool>,
    /// The event types.
    pub events: Option<Vec<String>>,
}

/// `PATCH /api/v1/webhooks/{id}`: `enabled` and/or `events`.
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<PatchBody>, JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| {
        Problem::bad_request(format!(
            "the body must be {{\"enabled\": true|false}} and/or {{\"events\": [...]}}: {e}"
        ))
    })?;
    let endpoint = endpoints::update(&state.engine, &id, body.enabled, body.events.as_deref())
        .await
        .map_err(problem)?;
    let last = state
        .engine
        .store()
        .list_deliveries(&id, 1)
        .await
        .map_err(|e| problem(e.into()))?;
    Ok(Json(endpoint_json(&endpoint, last.first())).into_response())
}

/// `DELETE /api/v1/webhooks/{id}`: 204.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    endpoints::delete(&state.engine, &id)
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/webhooks/{id}/deliveries`: the newest 20, newest first.
pub async fn deliveries(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let deliveries = endpoints::deliveries(&state.engine, &id)
        .await
        .map_err(problem)?;
    Ok(Json(json!({
        "deliveries": deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
    }))
    .into_response())
}
