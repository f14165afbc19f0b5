//! The Webhooks admin page: the endpoints (URL, events, enabled, last delivery), a form to
//! add one (its secret shown once after creation), enable/disable/delete, and per endpoint
//! its delivery log (the newest 20 deliveries with their attempts).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use granary_store::WebhookDelivery;
use secrecy::ExposeSecret as _;

use super::form::AdminForm;
use super::pages::Layout;
use super::{flash_to, layout, render};
use crate::app::AppState;
use crate::sessions::{Banner, Session};
use crate::views::format_time;
use crate::webhooks::endpoints::{self, WebhookError};
use crate::webhooks::{EVENT_TYPES, worker::ANSWER_EXCERPT};

/// An endpoint in the list.
pub struct EndpointRow {
    /// Its id.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// Its event types, comma-separated.
    pub events: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its newest delivery's state and time, or empty.
    pub last: String,
}

/// The Webhooks page.
#[derive(Template)]
#[template(path = "webhooks.html")]
pub struct WebhooksPage {
    /// The layout.
    pub layout: Layout,
    /// The endpoints.
    pub endpoints: Vec<EndpointRow>,
    /// The event types (the form's checkboxes).
    pub event_types: &'static [&'static str],
    /// An endpoint just created: its id and secret, shown once.
    pub created: Option<(String, String)>,
}

/// One attempt in the log.
pub struct AttemptRow {
    /// When.
    pub at: String,
    /// The receiver's status, or `-` when none came.
    pub status: String,
    /// The answer's excerpt or the error.
    pub answer: String,
}

/// One delivery in the log.
pub struct DeliveryRow {
    /// Its id (the `Granary-Delivery` header).
    pub id: String,
    /// Its event type.
    pub event: String,
    /// When the event happened.
    pub created: String,
    /// `pending`, `delivered` or `failed`.
    pub state: &'static str,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptRow>,
}

/// One endpoint's page: its settings and delivery log.
#[derive(Template)]
#[template(path = "webhook.html")]
pub struct WebhookPage {
    /// The layout.
    pub layout: Layout,
    /// The endpoint.
    pub endpoint: EndpointRow,
    /// Its newest deliveries, newest first.
    pub deliveries: Vec<DeliveryRow>,
}

fn row(endpoint: &granary_store::WebhookEndpoint, last: Option<&WebhookDelivery>) -> EndpointRow {
    EndpointRow {
        id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        events: endpoint.events.join(", "),
        enabled: endpoint.enabled,
        last: last.map_or_else(String::new, |d| {
            format!(
                "{} ({}, {})",
                d.state.as_str(),
                d.event_type,
                format_time(d.created)
            )
        }),
    }
}

fn store_banner(title: &str, error: &WebhookError) -> Banner {
    match error {
        WebhookError::Invalid(_) | WebhookError::NotFound(_) => Banner::error(
            title,
            error.to_string(),
            "Correct the form and send it again.",
        ),
        _ => Banner::error(
            title,
            error.to_string(),
            "Check that the store is reachable, then try again.",
        ),
    }
}

async fn list_page(
    state: &AppState,
    mut layout: Layout,
    created: Option<(String, String)>,
) -> Response {
    let mut rows = Vec::new();
    match endpoints::list(&state.engine).await {
        Ok(list) => {
            for endpoint in &list {
                let last = state
                    .engine
                    .store()
                    .list_deliveries(&endpoint.id, 1)
                    .await
                    .unwrap_or_default();
                rows.push(row(endpoint, last.first()));
            }
        }
        Err(error) => layout.banner = Some(store_banner("The webhooks cannot be read", &error)),
    }
    render(
        StatusCode::OK,
        &WebhooksPage {
            layout,
            endpoints: rows,
            event_types: &EVENT_TYPES,
            created,
        },
    )
}

/// `GET /admin/webhooks`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    list_page(&state, layout, None).await
}

/// `POST /admin/webhooks`: registers an endpoint and shows its secret once.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    AdminForm(form): AdminForm,
) -> Response {
    let mut layout = layout(&state, &headers, &session);
    let created = endpoints::create(
        &state.engine,
        state.settings.allow_insecure_http,
        &form.get("url"),
        &form.all("event"),
    )
    .await;
    match created {
        Ok(created) => {
            let shown = (
                created.endpoint.id.clone(),
                created.secret.expose_secret().to_string(),
            );
            list_page(&state, layout, Some(shown)).await
        }
        Err(error) => {
            layout.banner = Some(store_banner("No webhook was added", &error));
            list_page(&state, layout, None).await
        }
    }
}

/// `GET /admin/webhooks/{id}`: the endpoint and its delivery log.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let endpoint = match endpoints::get(&state.engine, &id).await {
        Ok(endpoint) => endpoint,
        Err(error) => {
            let status = if matches!(error, WebhookError::NotFound(_)) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let mut layout = layout;
            layout.banner = Some(store_banner("No such webhook", &error));
            return render(
                status,
                &super::MessagePage {
                    layout,
                    heading: "Webhook".to_string(),
                },
            );
        }
    };
    let (deliveries, layout) = match endpoints::deliveries(&state.engine, &id).await {
        Ok(deliveries) => (deliveries, layout),
        Err(error) => {
            let mut layout = layout;
            layout.banner = Some(store_banner("The delivery log cannot be read", &error));
            (Vec::new(), layout)
        }
    };
    let rows = deliveries
        .iter()
        .map(|d| DeliveryRow {
            id: d.id.clone(),
            event: d.event_type.clone(),
            created: format_time(d.created),
            state: d.state.as_str(),
            attempts: d
                .attempts
                .iter()
                .map(|a| AttemptRow {
                    at: format_time(a.at),
                    status: a.status.map_or_else(|| "-".to_string(), |s| s.to_string()),
                    answer: a.answer.chars().take(ANSWER_EXCERPT).collect(),
                })
                .collect(),
        })
        .collect();
    render(
        StatusCode::OK,
        &WebhookPage {
            endpoint: row(&endpoint, deliveries.first()),
            layout,
            deliveries: rows,
        },
    )
}

async fn set_enabled(state: &AppState, headers: &HeaderMap, id: &str, enabled: bool) -> Response {
    let banner = match endpoints::update(&state.engine, id, Some(enabled), None).await {
        Ok(_) if enabled => Banner::success(format!("Webhook {id} enabled.")),
        Ok(_) => Banner::success(format!(
            "Webhook {id} disabled: new events are not delivered to it."
        )),
        Err(error) => store_banner("The webhook was not changed", &error),
    };
    flash_to(state, headers, banner, &format!("/admin/webhooks/{id}"))
}

/// `POST /admin/webhooks/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    set_enabled(&state, &headers, &id, true).await
}

/// `POST /admin/webhooks/{id}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    set_enabled(&state, &headers, &id, false).await
}

/// `POST /admin/webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    let banner = match endpoints::delete(&state.engine, &id).await {
        Ok(()) => Banner::success(format!("Webhook {id} and its delivery log removed.")),
        Err(error) => store_banner("The webhook was not removed", &error),
    };
    flash_to(&state, &headers, banner, "/admin/webhooks")
}
