//! The REST API under `/api/v1` (JSON, bearer API keys, RFC 9457 problems), `/healthz`,
//! `/metrics`, and server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use granary_flow::engine::{
    AccessToken, DEFAULT_PAGE_SIZE, DisconnectReport, EngineError, ErrorKind, Event, IdKind,
    InstanceReport, InstanceUpdate, IntegrationFlows, MAX_PAGE_SIZE, NewInstance, TokenSummary,
    check_page, validate_id,
};
use granary_store::{Instance, InstanceFilter, InstanceStatus, Integration, Timestamp};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use url::Url;

use crate::api_keys::{ApiKey, Role};
use crate::app::AppState;
use crate::problem::Problem;
use crate::profiles::{ProfileLookup, instance_json_with_profile, integration_json_with_profiles};
use crate::routes::Roles;
use crate::views::{client_auth_name, parse_client_auth, state_name, status_name};

/// The guard of every API route: `Authorization: Bearer <API key>` of a known key whose
/// role permits the route (its role in the route table; a route not found there needs
/// `admin`). The key's record goes into the request's extensions.
pub async fn require_api_key(
    State((state, roles)): State<(AppState, Arc<Roles>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => Problem::unauthorized(
            "send an API key as `Authorization: Bearer <key>`; create one on the admin page (API keys)",
        )
        .into_response(),
        Some(key) => match state.api_keys.verify(key).await {
            Some(record) => {
                let needed = needed_role(&roles, &request);
                if !record.role.permits(needed) {
                    return Problem::forbidden(format!(
                        "this API key has the role `{}`; {} {} needs a key with the role `{needed}`: create one on the admin page (API keys) or with `granary api-key create NAME --role {needed}`",
                        record.role,
                        request.method(),
                        request.uri().path(),
                    ))
                    .into_response();
                }
                request.extensions_mut().insert(record);
                next.run(request).await
            }
            None => Problem::unauthorized("this API key is unknown or was revoked: create a new one on the admin page")
                .into_response(),
        },
    }
}

/// The role the matched route needs (HEAD as GET; unknown: `admin`).
fn needed_role(roles: &Roles, request: &Request) -> Role {
    let Some(path) = request.extensions().get::<MatchedPath>() else {
        return Role::Admin;
    };
    let method = if request.method() == Method::HEAD {
        Method::GET
    } else {
        request.method().clone()
    };
    roles
        .iter()
        .find(|((m, p), _)| *m == method && *p == path.as_str())
        .map_or(Role::Admin, |(_, role)| *role)
}

/// The problem for an engine error: the engine decides what kind of failure it is
/// ([`EngineError::kind`]) and names it ([`EngineError::code`]); this only translates kinds
/// to HTTP statuses and codes to problem types and titles.
pub fn engine_problem(error: &EngineError) -> Problem {
    let code = error.code();
    let detail = error.to_string();
    let (status, kind, title) = match error.kind() {
        ErrorKind::Invalid => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "The request cannot work",
        ),
        ErrorKind::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The document is over the import limit",
        ),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
        ErrorKind::NeedsAuthorization => (
            StatusCode::CONFLICT,
            "needs-authorization",
            "The instance needs authorization",
        ),
        ErrorKind::Disabled => (StatusCode::CONFLICT, "disabled", "The instance is disabled"),
        ErrorKind::UnknownAuthorization => (
            StatusCode::BAD_REQUEST,
            "unknown-state",
            "Unknown authorization",
        ),
        ErrorKind::LinkGone => (
            StatusCode::GONE,
            "link-gone",
            "The link was used or has expired",
        ),
        ErrorKind::Conflict => match code {
            "already_exists" => (StatusCode::CONFLICT, "already-exists", "Already exists"),
            "no_refresh_token" => (
                StatusCode::CONFLICT,
                "no-refresh-token",
                "Nothing to refresh: the grant holds no refresh token",
            ),
            "contention" => (
                StatusCode::CONFLICT,
                code,
                "Changed by someone else meanwhile",
            ),
            _ => (StatusCode::CONFLICT, "conflict", "Conflict"),
        },
        ErrorKind::Unavailable if error.retry_after().is_some() => (
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            "The provider is not asked again yet",
        ),
        ErrorKind::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "provider-unavailable",
            "The provider is unavailable",
        ),
        ErrorKind::ProviderRefused if code == "refresh_failing" => (
            StatusCode::BAD_GATEWAY,
            code,
            "The provider refuses the refresh",
        ),
        ErrorKind::ProviderRefused => (StatusCode::BAD_GATEWAY, code, "The provider refused"),
        _ => {
            tracing::error!(error = %error, "API request failed");
            return Problem::internal(detail);
        }
    };
    let problem = Problem::new(status, kind, title, detail);
    match error.retry_after() {
        Some(wait) => problem.with_retry_after(wait),
        None => problem,
    }
}

type ApiResult<T = Response> = Result<T, Problem>;

fn engine<T>(result: Result<T, EngineError>) -> ApiResult<T> {
    result.map_err(|error| engine_problem(&error))
}

/// The authorized instances whose refreshes keep failing: the authorized instances read a
/// page of [`MAX_PAGE_SIZE`] (with their tokens) per query.
async fn refresh_failing(state: &AppState) -> u64 {
    let authorized = InstanceFilter::all().with_status(InstanceStatus::Authorized);
    let mut failing = 0u64;
    let mut after: Option<String> = None;
    loop {
        let page = match state
            .engine
            .list_instances_page(after.as_deref(), MAX_PAGE_SIZE, &authorized)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "metrics: the instances cannot be listed");
                return failing;
            }
        };
        failing += page
            .instances
            .iter()
            .filter(|r| {
                r.token
                    .as_ref()
                    .and_then(TokenSummary::refresh_failure)
                    .is_some()
            })
            .count() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => return failing,
        }
    }
}

/// `GET /healthz`.
pub async fn healthz() -> Response {
    let mut response = (StatusCode::OK, "ok\n").into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /metrics`: OpenMetrics text ([`crate::metrics::CONTENT_TYPE`]).
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The counts per status: one aggregate query.
    let mut counts = [
        ("new", 0u64),
        ("authorized", 0),
        ("needs_authorization", 0),
        ("disabled", 0),
    ];
    match state.engine.count_instances_by_status().await {
        Ok(counted) => {
            for (name, count) in &mut counts {
                *count = [
                    InstanceStatus::New,
                    InstanceStatus::Authorized,
                    InstanceStatus::NeedsAuthorization,
                    InstanceStatus::Disabled,
                ]
                .into_iter()
                .find(|s| status_name(*s) == *name)
                .map_or(0, |s| counted.get(s));
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: the instances cannot be counted"),
    }
    let refresh_failing = refresh_failing(&state).await;
    let body = state.metrics.render(&counts, refresh_failing);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

fn time(time: Option<Timestamp>) -> Value {
    time.map_or(Value::Null, |t| json!(t.as_unix_millis().div_euclid(1000)))
}

/// An integration as JSON.
pub fn integration_json(integration: &Integration) -> Value {
    let flows = IntegrationFlows::of(integration).ok();
    json!({
        "name": integration.name,
        "title": flows.as_ref().and_then(|f| f.title.clone()),
        "source_digest": integration.source_digest,
        "created": time(Some(integration.created)),
        "issuer": flows.as_ref().and_then(|f| f.issuer.clone()),
        "revocation_url": flows.as_ref().and_then(|f| f.revocation_url.as_ref().map(ToString::to_string)),
        "token_lifetime": flows.as_ref().and_then(|f| f.token_lifetime),
        "schemes": flows.as_ref().map(|f| serde_json::to_value(&f.schemes).unwrap_or(Value::Null)),
    })
}

/// An instance (and its token summary) as JSON: never a secret, header values left out.
pub fn instance_json(instance: &Instance, report: Option<&InstanceReport>) -> Value {
    let token = report.and_then(|r| r.token.as_ref()).map(|t| {
        json!({
            "expires_at": time(t.expires_at),
            "obtained_at": time(Some(t.obtained_at)),
            "has_refresh_token": t.has_refresh_token,
            "no_refresh_token": t.no_refresh_token,
            "scope": t.scope,
            "kept": t.kept,
            "last_refresh": t.last_refresh.as_ref().map(|o| json!({
                "at": time(Some(o.at)),
                "result": serde_json::to_value(&o.result).unwrap_or(Value::Null),
            })),
        })
    });
    let failure = report
        .filter(|r| r.instance.status == InstanceStatus::Authorized)
        .and_then(|r| r.token.as_ref())
        .and_then(TokenSummary::refresh_failure);
    let refresh_failing = failure.as_ref().map(|f| {
        json!({
            "message": f.message,
            "failures": f.failures,
            "retry_at": time(f.retry_at),
            "transient": f.transient,
        })
    });
    json!({
        "id": instance.id,
        "integration": instance.integration,
        "scheme": instance.scheme,
        "client_id": instance.client_id,
        "client_secret_set": instance.client_secret.is_some(),
        "client_auth": client_auth_name(instance.client_auth),
        "scopes": instance.scopes,
        "redirect_uri": instance.redirect_uri,
        "authorization_url": instance.authorization_url,
        "token_url": instance.token_url,
        "token_lifetime": instance.token_lifetime,
        "connection": instance.connection,
        "profile": instance.profile,
        "extra_authorization_params": instance.extra_authorization_params,
        // Write-only (sealed in the store, often API keys): the names, never the values.
        "extra_token_param_names": instance.extra_token_params.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "extra_token_header_names": instance.extra_token_headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "status": status_name(instance.status),
        "state": state_name(instance.status, failure.is_some()),
        "refresh_failing": refresh_failing,
        "created": time(Some(instance.created)),
        "updated": time(Some(instance.updated)),
        "version": instance.version,
        "token": token,
    })
}

/// The body of `POST /api/v1/integrations` and `PUT /api/v1/integrations/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationBody {
    /// The name (POST only; PUT takes it from the path).
    #[serde(default)]
    pub name: Option<String>,
    /// The OpenAPI document, JSON or YAML, as a string.
    pub document: String,
    /// The lifetime, in seconds, of a token of unknown expiry of its instances that have
    /// none of their own; absent: kept (none at a first import); 0: none.
    #[serde(default)]
    pub token_lifetime: Option<u64>,
}

/// `GET /api/v1/integrations`.
pub async fn integrations_list(State(state): State<AppState>) -> ApiResult {
    let list = engine(state.engine.list_integrations().await)?;
    let mut out = Vec::with_capacity(list.len());
    for integration in &list {
        out.push(integration_json_with_profiles(&state.engine, integration).await);
    }
    Ok(Json(json!({ "integrations": out })).into_response())
}

/// `POST /api/v1/integrations`: `{name, document}`.
pub async fn integration_create(
    State(state): State<AppState>,
    body: Result<Json<IntegrationBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| {
        import_rejection(&state, &e).unwrap_or_else(|| {
            Problem::bad_request(format!(
                "the body is not {{\"name\", \"document\"}} JSON: {e}"
            ))
        })
    })?;
    let name = body.name.unwrap_or_default();
    import(
        &state,
        &name,
        &body.document,
        body.token_lifetime,
        StatusCode::CREATED,
    )
    .await
}

/// `PUT /api/v1/integrations/{name}`: `{document}` (a re-import).
pub async fn integration_put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<IntegrationBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| {
        import_rejection(&state, &e).unwrap_or_else(|| {
            Problem::bad_request(format!("the body is not {{\"document\"}} JSON: {e}"))
        })
    })?;
    import(
        &state,
        &name,
        &body.document,
        body.token_lifetime,
        StatusCode::OK,
    )
    .await
}

/// The 413 problem of an import body over the limit (`None` for any other rejection).
fn import_rejection(
    state: &AppState,
    rejection: &axum::extract::rejection::JsonRejection,
) -> Option<Problem> {
    (rejection.status() == StatusCode::PAYLOAD_TOO_LARGE).then(|| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The document is over the import limit",
            crate::limits::import_too_large(state.settings.import_limit),
        )
    })
}

async fn import(
    state: &AppState,
    name: &str,
    document: &str,
    token_lifetime: Option<u64>,
    status: StatusCode,
) -> ApiResult {
    if let Err(error) = validate_id(IdKind::Integration, name) {
        return Err(Problem::bad_request(error.to_string()));
    }
    let integration = engine(
        state
            .engine
            .import_integration(name, document.as_bytes())
            .await,
    )?;
    let integration = match token_lifetime {
        Some(secs) => engine(
            state
                .engine
                .set_integration_token_lifetime(name, lifetime(Some(secs)))
                .await,
        )?,
        None => integration,
    };
    Ok((
        status,
        Json(integration_json_with_profiles(&state.engine, &integration).await),
    )
        .into_response())
}

/// `GET /api/v1/integrations/{name}`.
pub async fn integration_get(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let integration = engine(state.engine.integration(&name).await)?;
    Ok(Json(integration_json_with_profiles(&state.engine, &integration).await).into_response())
}

/// The body of `POST /api/v1/integrations/{name}/discover`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverBody {
    /// The provider's issuer URL.
    pub issuer: String,
}

/// `POST /api/v1/integrations/{name}/discover`: reads the issuer's metadata and keeps its
/// issuer (checked against every callback's `iss`) and revocation endpoint.
pub async fn integration_discover(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<DiscoverBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) = body
        .map_err(|e| Problem::bad_request(format!("the body is not {{\"issuer\"}} JSON: {e}")))?;
    let integration = engine(
        state
            .engine
            .discover_integration_endpoints(&name, &body.issuer)
            .await,
    )?;
    Ok(Json(integration_json_with_profiles(&state.engine, &integration).await).into_response())
}

/// `DELETE /api/v1/integrations/{name}`.
pub async fn integration_delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    match engine(state.engine.remove_integration(&name).await)? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(Problem::not_found(format!(
            "integration `{name}` does not exist"
        ))),
    }
}

/// The body of `POST /api/v1/instances` and `PATCH /api/v1/instances/{id}`: every field is
/// optional in a PATCH; `null` clears an override or the secret.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceBody {
    id: Option<String>,
    integration: Option<String>,
    scheme: Option<String>,
    client_id: Option<String>,
    #[serde(default, deserialize_with = "some")]
    client_secret: Option<Option<SecretString>>,
    client_auth: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    force_scopes: bool,
    #[serde(default, deserialize_with = "some")]
    authorization_url: Option<Option<Url>>,
    #[serde(default, deserialize_with = "some")]
    token_url: Option<Option<Url>>,
    extra_authorization_params: Option<Vec<(String, String)>>,
    extra_token_params: Option<Vec<(String, SecretString)>>,
    extra_token_headers: Option<Vec<(String, SecretString)>>,
    /// Seconds; `null` (or 0) in a PATCH: the integration's, else the server's default.
    #[serde(default, deserialize_with = "some")]
    token_lifetime: Option<Option<u64>>,
    /// Connection fields by name (all of them in a PATCH: a name left out is cleared).
    connection: Option<std::collections::BTreeMap<String, String>>,
    /// The instance's own provider-profile layer: an object, or a catalogue id as a
    /// string; `null` in a PATCH: none of its own.
    #[serde(default, deserialize_with = "some")]
    profile: Option<Option<Value>>,
    enabled: Option<bool>,
}

/// An instance's own profile layer of a body: an object or a catalogue id; anything else
/// is a 400 that says what to send (the engine checks the layer's members).
fn own_profile(value: Option<Value>) -> ApiResult<Option<Value>> {
    match value {
        None => Ok(None),
        Some(value @ (Value::Object(_) | Value::String(_))) => Ok(Some(value)),
        Some(other) => Err(Problem::bad_request(format!(
            "`profile` is {other}: send an object in the provider profile format (see \
             docs/guides/providers.md), a catalogue id such as \"shopify\", \
             {{\"use\": \"none\"}}, or null in a PATCH to remove the instance's own settings"
        ))),
    }
}

/// A lifetime in seconds of the API, for the engine (0 is none).
fn lifetime(secs: Option<u64>) -> Option<Duration> {
    secs.filter(|s| *s > 0).map(Duration::from_secs)
}

/// The values of extra token parameters or headers, for the engine (which seals them).
fn exposed(pairs: Option<&[(String, SecretString)]>) -> Option<Vec<(String, String)>> {
    pairs.map(|pairs| {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), value.expose_secret().to_string()))
            .collect()
    })
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn some<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn client_auth(text: Option<&str>) -> ApiResult<Option<granary_store::ClientAuth>> {
    match text {
        None => Ok(None),
        Some(text) => parse_client_auth(text).map(Some).ok_or_else(|| {
            Problem::bad_request(format!(
                "client_auth `{text}` is unknown: use client_secret_basic, client_secret_post or none"
            ))
        }),
    }
}

/// The query of `GET /api/v1/instances`: every value as text, read by [`page_request`].
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<String>,
    status: Option<String>,
    integration: Option<String>,
}

/// A page request read from a query: the cursor, the page size (default
/// [`DEFAULT_PAGE_SIZE`]) and the filter; the message of a wrong value names the fix.
pub fn page_request(
    after: Option<&str>,
    limit: Option<&str>,
    status: Option<&str>,
    integration: Option<&str>,
) -> Result<(Option<String>, usize, InstanceFilter), String> {
    let after = after.map(str::trim).filter(|a| !a.is_empty());
    let limit = match limit.map(str::trim).filter(|l| !l.is_empty()) {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => text.parse::<usize>().map_err(|_| {
            format!(
                "limit `{text}` is not a number: ask for 1 to {MAX_PAGE_SIZE} instances a page \
                 (default {DEFAULT_PAGE_SIZE})"
            )
        })?,
    };
    check_page(after, limit).map_err(|error| error.to_string())?;
    let mut filter = InstanceFilter::all();
    if let Some(text) = status.map(str::trim).filter(|s| !s.is_empty()) {
        let status = [
            InstanceStatus::New,
            InstanceStatus::Authorized,
            InstanceStatus::NeedsAuthorization,
            InstanceStatus::Disabled,
        ]
        .into_iter()
        .find(|s| status_name(*s) == text)
        .ok_or_else(|| {
            format!(
                "status `{text}` is unknown: use new, authorized, needs_authorization or disabled"
            )
        })?;
        filter = filter.with_status(status);
    }
    if let Some(integration) = integration.map(str::trim).filter(|i| !i.is_empty()) {
        filter = filter.with_integration(integration);
    }
    Ok((after.map(str::to_string), limit, filter))
}

/// `GET /api/v1/instances?after=ID&limit=N&status=S&integration=I`: one page of instances
/// by id (default 100, at most 1,000) and `next`, the `after` of the following page (`null`
/// on the last page).
pub async fn instances_list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) =
        query.map_err(|e| Problem::bad_request(format!("the query cannot be read: {e}")))?;
    let (after, limit, filter) = page_request(
        query.after.as_deref(),
        query.limit.as_deref(),
        query.status.as_deref(),
        query.integration.as_deref(),
    )
    .map_err(Problem::bad_request)?;
    let page = engine(
        state
            .engine
            .list_instances_page(after.as_deref(), limit, &filter)
            .await,
    )?;
    let mut profiles = ProfileLookup::new(&state.engine);
    let mut out: Vec<Value> = Vec::with_capacity(page.instances.len());
    for report in &page.instances {
        out.push(profiles.instance_json(&report.instance, Some(report)).await);
    }
    Ok(Json(json!({ "instances": out, "next": page.next })).into_response())
}

/// `POST /api/v1/instances`.
pub async fn instance_create(
    State(state): State<AppState>,
    body: Result<Json<InstanceBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) =
        body.map_err(|e| Problem::bad_request(format!("the body is not an instance: {e}")))?;
    let id = body.id.clone().unwrap_or_default();
    if let Err(error) = validate_id(IdKind::Instance, &id) {
        return Err(Problem::bad_request(error.to_string()));
    }
    let new = NewInstance {
        id,
        integration: body
            .integration
            .clone()
            .ok_or_else(|| Problem::bad_request("`integration` is required"))?,
        scheme: body.scheme.clone(),
        client_id: body
            .client_id
            .clone()
            .ok_or_else(|| Problem::bad_request("`client_id` is required"))?,
        client_secret: body.client_secret.clone().flatten(),
        client_auth: client_auth(body.client_auth.as_deref())?,
        scopes: body.scopes.clone().unwrap_or_default(),
        force_scopes: body.force_scopes,
        authorization_url: body.authorization_url.clone().flatten(),
        token_url: body.token_url.clone().flatten(),
        extra_authorization_params: body.extra_authorization_params.clone().unwrap_or_default(),
        extra_token_params: exposed(body.extra_token_params.as_deref()).unwrap_or_default(),
        extra_token_headers: exposed(body.extra_token_headers.as_deref()).unwrap_or_default(),
        token_lifetime: lifetime(body.token_lifetime.flatten()),
        connection: body.connection.clone().unwrap_or_default(),
        profile: own_profile(body.profile.clone().flatten())?,
    };
    let instance = engine(state.engine.create_instance(new).await)?;
    let report = state.engine.status(&instance.id).await.ok();
    Ok((
        StatusCode::CREATED,
        Json(instance_json_with_profile(&state.engine, &instance, report.as_ref()).await),
    )
        .into_response())
}

/// `GET /api/v1/instances/{id}`.
pub async fn instance_get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let report = engine(state.engine.status(&id).await)?;
    Ok(
        Json(instance_json_with_profile(&state.engine, &report.instance, Some(&report)).await)
            .into_response(),
    )
}

/// `PATCH /api/v1/instances/{id}`.
pub async fn instance_patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<InstanceBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) =
        body.map_err(|e| Problem::bad_request(format!("the body is not an instance change: {e}")))?;
    if body.id.as_deref().is_some_and(|given| given != id) || body.integration.is_some() {
        return Err(Problem::bad_request(
            "the id and the integration of an instance cannot change: create another instance",
        ));
    }
    let update = InstanceUpdate {
        scheme: body.scheme,
        client_id: body.client_id,
        client_secret: body.client_secret,
        client_auth: client_auth(body.client_auth.as_deref())?,
        scopes: body.scopes,
        force_scopes: body.force_scopes,
        authorization_url: body.authorization_url,
        token_url: body.token_url,
        extra_authorization_params: body.extra_authorization_params,
        extra_token_params: exposed(body.extra_token_params.as_deref()),
        extra_token_headers: exposed(body.extra_token_headers.as_deref()),
        token_lifetime: body.token_lifetime.map(lifetime),
        enabled: body.enabled,
        connection: body.connection,
        profile: body.profile.map(own_profile).transpose()?,
    };
    engine(state.engine.update_instance(&id, update).await)?;
    let report = engine(state.engine.status(&id).await)?;
    Ok(
        Json(instance_json_with_profile(&state.engine, &report.instance, Some(&report)).await)
            .into_response(),
    )
}

/// `DELETE /api/v1/instances/{id}`: revokes where possible, then deletes.
pub async fn instance_delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let report = engine(state.engine.delete_instance(&id).await)?;
    if !report.deleted {
        return Err(Problem::not_found(format!(
            "instance `{id}` does not exist"
        )));
    }
    Ok(Json(json!({ "deleted": true, "revoked": report.revoked, "revocation_note": report.revocation_note })).into_response())
}

/// `POST /api/v1/instances/{id}/authorize`: the link an admin opens to connect the instance.
///
/// The provider's URL itself is not handed out: its state is bound to the browser that
/// starts it (RFC 9700), so the authorization starts on the admin page that the link opens.
pub async fn instance_authorize(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let link = engine(state.engine.authorization_link(&id).await)?;
    let instance = engine(state.engine.instance(&id).await)?;
    Ok(Json(json!({
        "authorization_url": link.as_str(),
        "redirect_uri": instance.redirect_uri,
        "note": "open this URL in a browser signed in to granary's admin page and press \"Get access token\"; the state of the authorization is bound to that browser",
    }))
    .into_response())
}

fn token_json(token: &AccessToken) -> Value {
    json!({
        "access_token": token.secret(),
        "token_type": token.token_type(),
        "expires_at": time(token.expires_at()),
        // Values the provider gave with the grant that callers need (Salesforce's
        // instance_url, QuickBooks' realmId); not secrets.
        "kept": token.kept(),
    })
}

fn token_response(token: &AccessToken) -> Response {
    let mut response = Json(token_json(token)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /api/v1/instances/{id}/token`: a valid access token, refreshed when needed.
pub async fn instance_token(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    match state.engine.access_token(&id).await {
        Ok(token) => Ok(token_response(&token)),
        Err(error) => {
            state.metrics.failed(error.code());
            Err(engine_problem(&error))
        }
    }
}

/// `POST /api/v1/instances/{id}/refresh`: refreshes now and returns the new token; calls at
/// the same time share one refresh.
pub async fn instance_refresh(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    match state.engine.refresh_now(&id).await {
        Ok(token) => Ok(token_response(&token)),
        Err(error) => {
            state.metrics.failed(error.code());
            Err(engine_problem(&error))
        }
    }
}

/// The body of `POST /api/v1/instances/{id}/token/rejected`.
#[derive(serde::Deserialize)]
pub struct RejectedBody {
    /// The SHA-256 digest of the refused access token, in hex (never the token itself).
    sha256: String,
}

/// `POST /api/v1/instances/{id}/token/rejected` with `{"sha256": "<hex>"}`: an API refused
/// that token. granary refreshes only if it is still the current token (callers reporting
/// the same token share one refresh) and answers the token to use from now on.
pub async fn instance_token_rejected(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RejectedBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(body) = body.map_err(|e| {
        Problem::bad_request(format!(
            "the body must be {{\"sha256\": \"<hex SHA-256 of the refused access token>\"}}: {e}"
        ))
    })?;
    match state.engine.token_rejected(&id, &body.sha256).await {
        Ok(token) => Ok(token_response(&token)),
        Err(error) => {
            state.metrics.failed(error.code());
            Err(engine_problem(&error))
        }
    }
}

/// An engine event as JSON (no secret is in any event).
pub fn event_json(event: &Event) -> (&'static str, Value) {
    match event {
        Event::Authorized { instance } => ("authorized", json!({ "instance": instance })),
        Event::Refreshed {
            instance,
            expires_at,
            rotated,
        } => (
            "refreshed",
            json!({ "instance": instance, "expires_at": time(*expires_at), "rotated": rotated }),
        ),
        Event::RefreshFailed {
            instance,
            message,
            transient,
        } => (
            "refresh_failed",
            json!({ "instance": instance, "message": message, "transient": transient }),
        ),
        Event::NeedsAuthorization {
            instance,
            reason,
            reconnect,
        } => {
            let mut data = json!({ "instance": instance, "reason": reason });
            if let (Some(link), Some(object)) = (reconnect, data.as_object_mut()) {
                object.insert("reconnect_url".into(), json!(link.url.as_str()));
                object.insert("reconnect_expires_at".into(), time(Some(link.expires)));
            }
            ("needs_authorization", data)
        }
        Event::Disconnected { instance, revoked } => (
            "disconnected",
            json!({ "instance": instance, "revoked": revoked }),
        ),
        other => ("event", json!({ "instance": other.instance() })),
    }
}

/// `GET /api/v1/events`: the engine's events as server-sent events. The stream ends when
/// the server shuts down, and when its key is revoked or no longer has a role that reads
/// events (checked at every change of the key set, which a server sees within a second).
pub async fn events(
    State(state): State<AppState>,
    Extension(key): Extension<ApiKey>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let receiver = state.engine.subscribe();
    let closing = state.closing.subscribe();
    let mut keys = state.api_keys.changes();
    keys.mark_unchanged();
    let stream = futures::stream::unfold(
        (receiver, closing, keys, state, key),
        |(mut receiver, mut closing, mut keys, state, key)| async move {
            if *closing.borrow() {
                return None;
            }
            let sse = tokio::select! {
                changed = keys.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let allowed = state
                        .api_keys
                        .lookup(&key.sha256)
                        .is_some_and(|now| now.role.permits(Role::Tokens));
                    if !allowed {
                        tracing::info!(key = %key.id, "an event stream ended: its API key was revoked");
                        return None;
                    }
                    return Some((Ok(SseEvent::default().comment("keys checked")), (receiver, closing, keys, state, key)));
                }
                received = receiver.recv() => match received {
                    Ok(event) => {
                        let (name, data) = event_json(&event);
                        SseEvent::default().event(name).data(data.to_string())
                    }
                    Err(RecvError::Lagged(missed)) => {
                        SseEvent::default().event("lagged").data(json!({ "missed": missed }).to_string())
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = closing.changed() => return None,
            };
            Some((Ok(sse), (receiver, closing, keys, state, key)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Disconnects `id` ([`granary_flow::engine::Engine::disconnect`]): its tokens are revoked
/// where the provider allows and forgotten; the instance stays, configured, with status
/// "new". Returns a note for the admin.
pub async fn disconnect(state: &AppState, id: &str) -> Result<String, EngineError> {
    let report = state.engine.disconnect(id).await?;
    tracing::info!(instance = %id, revoked = report.revoked, "instance disconnected");
    Ok(disconnect_note(&report))
}

/// What the admin reads about a disconnect's revocation.
fn disconnect_note(report: &DisconnectReport) -> String {
    match (report.revoked, &report.revocation_note) {
        (true, _) => "Its tokens were revoked at the provider.".to_string(),
        (false, Some(note)) => format!("Not revoked at the provider: {note}."),
        (false, None) => "Not revoked at the provider.".to_string(),
    }
}

/// `POST /api/v1/instances/{id}/disconnect`: revokes the tokens where possible and forgets
/// them; the instance stays, with status "new" ("disabled" if it was disabled).
pub async fn instance_disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult {
    let report = engine(state.engine.disconnect(&id).await)?;
    tracing::info!(instance = %id, revoked = report.revoked, "instance disconnected");
    Ok(Json(json!({
        "disconnected": true,
        "status": status_name(report.status),
        "token_deleted": report.token_deleted,
        "revoked": report.revoked,
        "revocation_note": report.revocation_note,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn answer(error: &EngineError) -> (u16, String, Option<Duration>) {
        let problem = engine_problem(error);
        (problem.status, problem.kind, problem.retry_after)
    }

    #[test]
    fn kinds_become_statuses_and_a_broken_invariant_is_no_user_mistake() {
        let cases = [
            (EngineError::Invalid("x".into()), 422, "invalid"),
            (EngineError::Internal("x".into()), 500, "internal"),
            (EngineError::UnknownAuthorization, 400, "unknown-state"),
            (
                EngineError::Contention { what: "w".into() },
                409,
                "contention",
            ),
            (
                EngineError::Store(granary_store::Error::AlreadyExists { what: "w".into() }),
                409,
                "already-exists",
            ),
            (
                EngineError::RefreshFailing {
                    instance: "i".into(),
                    reason: "r".into(),
                },
                502,
                "refresh_failing",
            ),
            (
                EngineError::ShuttingDown {
                    instance: "i".into(),
                },
                503,
                "provider-unavailable",
            ),
        ];
        for (error, status, kind) in cases {
            assert_eq!(
                answer(&error),
                (status, format!("/problems/{kind}"), None),
                "{error:?}"
            );
        }
        let backing_off = EngineError::BackingOff {
            instance: "i".into(),
            reason: "r".into(),
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(
            answer(&backing_off),
            (
                503,
                "/problems/backing_off".to_string(),
                Some(Duration::from_secs(7))
            )
        );
    }
}
