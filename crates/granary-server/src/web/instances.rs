//! Instance pages: the form, the status page, its buttons, and the OAuth callback.

use axum::Extension;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use granary_flow::engine::{
    IdKind, InstanceReport, InstanceUpdate, IntegrationFlows, NewInstance, validate_id,
};
use granary_openapi::FlowKind;
use granary_store::{ClientAuth, InstanceStatus};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use url::Url;

use super::{
    AdminForm, FormData, InstanceFormPage, InstanceFormValues, InstancePage, Layout, ScopeChoice,
    failure_banner, flash_to, layout, layout_with, message, not_found, render, see_other,
};
use crate::app::AppState;
use crate::profiles::{parse_profile_text, profile_text};
use crate::secrets::{constant_time_eq, sha256_hex};
use crate::sessions::{Banner, STATE_COOKIE, STATE_TTL, Session, clear_cookie, cookie, set_cookie};
use crate::views::{
    client_auth_name, format_pairs, format_time, parse_client_auth, parse_pairs,
    refresh_outcome_text, state_name, state_text, status_text,
};

/// The query of `GET /admin/instances/new`.
#[derive(Debug, Deserialize)]
pub struct NewQuery {
    integration: Option<String>,
}

/// `GET /admin/instances/new?integration=NAME`.
pub async fn instance_new(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Query(query): Query<NewQuery>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let Some(integration) = query.integration else {
        return see_other("/admin/");
    };
    let values = InstanceFormValues {
        integration,
        client_auth: "client_secret_basic".to_string(),
        ..InstanceFormValues::default()
    };
    let form = InstanceForm {
        mode: FormMode::Create,
        values,
        chosen_scopes: &[],
    };
    form_page(&state, layout, StatusCode::OK, form).await
}

/// Renders the instance form for `values`, with the scope checkboxes of its scheme.
async fn form_page(
    state: &AppState,
    mut layout: Layout,
    status: StatusCode,
    form: InstanceForm<'_>,
) -> Response {
    let InstanceForm {
        mode,
        mut values,
        chosen_scopes,
    } = form;
    let editing = matches!(mode, FormMode::Edit(_));
    let stored = match mode {
        FormMode::Edit(stored) => stored,
        FormMode::Create => Stored::default(),
    };
    let flows = match state.engine.integration(&values.integration).await {
        Ok(integration) => match IntegrationFlows::of(&integration) {
            Ok(flows) => flows,
            Err(error) => {
                return message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    layout,
                    "Integration unreadable",
                    &error,
                );
            }
        },
        Err(error) => return not_found(layout, "Integration not found", &error),
    };
    let schemes: Vec<String> = flows
        .schemes
        .iter()
        .filter(|s| s.flow(FlowKind::AuthorizationCode).is_some())
        .map(|s| s.name.clone())
        .collect();
    if values.scheme.is_empty() {
        values.scheme = schemes.first().cloned().unwrap_or_default();
    }
    let flow = flows
        .authorization_code_flow(Some(&values.scheme))
        .or_else(|| flows.authorization_code_flow(None));
    let mut scopes = Vec::new();
    let mut default_authorization_url = String::new();
    let mut default_token_url = String::new();
    if let Some((_, flow)) = flow {
        scopes = flow
            .scopes
            .iter()
            .map(|(name, description)| ScopeChoice {
                checked: chosen_scopes.contains(name),
                name: name.clone(),
                description: description.clone(),
            })
            .collect();
        default_authorization_url = flow
            .authorization_url
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        default_token_url = flow
            .token_url
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        if values.extra_scopes.is_empty() {
            values.extra_scopes = chosen_scopes
                .iter()
                .filter(|s| !flow.scopes.contains_key(s.as_str()))
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            // Scopes the document does not declare were forced when they were saved.
            values.force_scopes |= !values.extra_scopes.is_empty();
        }
    }
    if schemes.is_empty() {
        layout.banner.get_or_insert_with(|| {
            Banner::error(
                "This integration has no authorization-code flow",
                "granary needs an OAuth2 scheme with an authorizationCode flow.",
                "Import a document that has one.",
            )
        });
    }
    let provider = super::profile::form_profile(
        state,
        &values.id,
        &values.integration,
        &values.scheme,
        &values.connection,
        &values.profile,
    )
    .await;
    let action = if editing {
        format!("/admin/instances/{}", values.id)
    } else {
        "/admin/instances".to_string()
    };
    let page = InstanceFormPage {
        layout,
        editing,
        action,
        form: values,
        schemes,
        scopes,
        secret_set: stored.secret_set,
        token_param_names: stored.param_names.join(", "),
        token_header_names: stored.header_names.join(", "),
        redirect_uri: state.engine.redirect_uri().to_string(),
        default_authorization_url,
        default_token_url,
        provider,
    };
    render(status, &page)
}

/// The instance form to show: which form, what it says, and the scopes ticked.
struct InstanceForm<'a> {
    mode: FormMode,
    values: InstanceFormValues,
    chosen_scopes: &'a [String],
}

/// A form for a new instance, or the edit form of a stored one (which says which of its
/// write-only values are set).
enum FormMode {
    Create,
    Edit(Stored),
}

/// What an instance holds of its write-only values: whether a client secret is set, and the
/// names (never the values) of its extra token parameters and headers.
#[derive(Default)]
struct Stored {
    secret_set: bool,
    param_names: Vec<String>,
    header_names: Vec<String>,
}

impl Stored {
    fn of(instance: &granary_store::Instance) -> Self {
        let names = |pairs: &[(String, granary_store::ExtraValue)]| {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        Self {
            secret_set: instance.client_secret.is_some(),
            param_names: names(&instance.extra_token_params),
            header_names: names(&instance.extra_token_headers),
        }
    }
}

/// What the form says, checked.
struct Parsed {
    values: InstanceFormValues,
    scopes: Vec<String>,
    client_auth: ClientAuth,
    authorization_url: Option<Url>,
    token_url: Option<Url>,
    extra_authorization_params: Vec<(String, String)>,
    extra_token_params: Vec<(String, String)>,
    extra_token_headers: Vec<(String, String)>,
    token_lifetime: Option<std::time::Duration>,
    connection: std::collections::BTreeMap<String, String>,
    profile: Option<serde_json::Value>,
}

fn parse_form(form: &FormData) -> (InstanceFormValues, Vec<String>, Result<Parsed, String>) {
    let values = InstanceFormValues {
        id: form.get("id"),
        integration: form.get("integration"),
        scheme: form.get("scheme"),
        client_id: form.get("client_id"),
        client_auth: form.get("client_auth"),
        extra_scopes: form.get("extra_scopes"),
        force_scopes: form.checked("force_scopes"),
        authorization_url: form.get("authorization_url"),
        token_url: form.get("token_url"),
        extra_authorization_params: form.get("extra_authorization_params"),
        extra_token_params: SecretString::from(form.get("extra_token_params")),
        extra_token_headers: SecretString::from(form.get("extra_token_headers")),
        token_lifetime: form.get("token_lifetime"),
        connection: super::profile::posted_connection(form),
        profile: form.get("profile"),
    };
    let mut scopes: Vec<String> = form.all("scope");
    for scope in values.extra_scopes.split_whitespace() {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    let parsed = (|| {
        let client_auth = parse_client_auth(&values.client_auth).ok_or_else(|| {
            format!(
                "unknown client authentication method `{}`",
                values.client_auth
            )
        })?;
        let url = |text: &str, what: &str| -> Result<Option<Url>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            Url::parse(text)
                .map(Some)
                .map_err(|e| format!("the {what} `{text}` is not an absolute URL ({e})"))
        };
        let lifetime = values.token_lifetime.trim();
        let token_lifetime = if lifetime.is_empty() {
            None
        } else {
            let secs: u64 = lifetime.parse().map_err(|_| {
                format!("the token lifetime `{lifetime}` is not a whole number of seconds")
            })?;
            Some(std::time::Duration::from_secs(secs)).filter(|l| !l.is_zero())
        };
        Ok(Parsed {
            connection: values.connection.clone(),
            profile: parse_profile_text(&values.profile)?,
            token_lifetime,
            authorization_url: url(&values.authorization_url, "authorization URL")?,
            token_url: url(&values.token_url, "token URL")?,
            extra_authorization_params: parse_pairs(&values.extra_authorization_params, '=')
                .map_err(|e| format!("extra authorization parameters: {e}"))?,
            extra_token_params: parse_pairs(values.extra_token_params.expose_secret(), '=')
                .map_err(|e| format!("extra token parameters: {e}"))?,
            extra_token_headers: parse_pairs(values.extra_token_headers.expose_secret(), ':')
                .map_err(|e| format!("extra token headers: {e}"))?,
            client_auth,
            scopes: scopes.clone(),
            values: values.clone(),
        })
    })();
    // Write-only: a form shown again (after a refusal) does not echo these values.
    let mut values = values;
    values.extra_token_params = SecretString::default();
    values.extra_token_headers = SecretString::default();
    (values, scopes, parsed)
}

/// The new extra token parameters or headers of an edit: `None` (keep the stored ones) for
/// an empty field, `Some(empty)` when "remove" is ticked.
fn write_only_pairs(pairs: Vec<(String, String)>, clear: bool) -> Option<Vec<(String, String)>> {
    if pairs.is_empty() && !clear {
        None
    } else {
        Some(pairs)
    }
}

fn secret_of(form: &FormData) -> Option<SecretString> {
    form.raw("client_secret")
        .filter(|s| !s.trim().is_empty())
        .map(|s| SecretString::from(s.to_string()))
}

/// `POST /admin/instances`.
pub async fn instance_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    AdminForm(form): AdminForm,
) -> Response {
    let (values, scopes, parsed) = parse_form(&form);
    let secret = secret_of(&form);
    let invalid_id = validate_id(IdKind::Instance, &values.id)
        .err()
        .map(|error| error.to_string());
    // The form again, with what was sent and why it was not created.
    let rejected = async |cause: String, fix: &str| {
        let layout = layout_with(
            &session,
            Banner::error("The instance was not created", cause, fix.to_string()),
        );
        let form = InstanceForm {
            mode: FormMode::Create,
            values,
            chosen_scopes: &scopes,
        };
        form_page(&state, layout, StatusCode::BAD_REQUEST, form).await
    };
    if let Some(cause) = invalid_id {
        return rejected(cause, "Choose another id.").await;
    }
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(cause) => return rejected(cause, "Correct the field and save again.").await,
    };
    let new = NewInstance {
        id: parsed.values.id.clone(),
        integration: parsed.values.integration.clone(),
        scheme: Some(parsed.values.scheme.clone()).filter(|s| !s.is_empty()),
        client_id: parsed.values.client_id.clone(),
        client_secret: secret,
        client_auth: Some(parsed.client_auth),
        scopes: parsed.scopes,
        force_scopes: parsed.values.force_scopes,
        authorization_url: parsed.authorization_url,
        token_url: parsed.token_url,
        extra_authorization_params: parsed.extra_authorization_params,
        extra_token_params: parsed.extra_token_params,
        extra_token_headers: parsed.extra_token_headers,
        token_lifetime: parsed.token_lifetime,
        connection: parsed.connection,
        profile: parsed.profile,
    };
    match state.engine.create_instance(new).await {
        Ok(instance) => {
            tracing::info!(instance = %instance.id, "instance created");
            flash_to(
                &state,
                &headers,
                Banner::success(format!(
                    "Created instance {}. Register the redirect URI at the provider, then click \"Get access token\".",
                    instance.id
                )),
                &format!("/admin/instances/{}", instance.id),
            )
        }
        Err(error) => {
            let (cause, _) = super::explain(&error);
            rejected(cause, "Correct the form and save again.").await
        }
    }
}

/// `GET /admin/instances/{id}`.
pub async fn instance_show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let report = match state.engine.status(&id).await {
        Ok(report) => report,
        Err(error) => return not_found(layout, "Instance not found", &error),
    };
    let (authorization_url, token_url) = effective_urls(&state, &report).await;
    let instance = &report.instance;
    let profile = super::profile::instance_profile(&state, instance).await;
    let token = report.token.as_ref();
    let failing = token.and_then(|t| t.refresh_failure()).is_some();
    let page = InstancePage {
        layout,
        disabled: instance.status == InstanceStatus::Disabled,
        id: instance.id.clone(),
        integration: instance.integration.clone(),
        scheme: instance.scheme.clone(),
        status: state_name(instance.status, failing),
        status_text: state_text(instance.status, failing),
        client_id: instance.client_id.clone(),
        secret_set: instance.client_secret.is_some(),
        client_auth: client_auth_name(instance.client_auth),
        scopes: instance.scopes.join(" "),
        granted: token
            .map(|t| {
                t.scope
                    .clone()
                    .unwrap_or_else(|| "(the provider did not say: as requested)".to_string())
            })
            .unwrap_or_else(|| "-".to_string()),
        expires: token.map_or_else(
            || "no token".to_string(),
            |t| {
                t.expires_at.map_or_else(
                    || {
                        format!(
                            "unknown (the provider did not say): used until an API refuses it; \
                             callers report that with POST /api/v1/instances/{}/token/rejected \
                             and the token's SHA-256",
                            instance.id
                        )
                    },
                    format_time,
                )
            },
        ),
        expires_ms: token
            .and_then(|t| t.expires_at)
            .map(granary_store::Timestamp::as_unix_millis),
        obtained: token.map_or_else(|| "-".to_string(), |t| format_time(t.obtained_at)),
        refresh_token: match token {
            Some(t) if t.has_refresh_token => "held".to_string(),
            Some(t) => format!(
                "none: a new authorization will be needed when the token expires ({})",
                t.no_refresh_token
                    .as_deref()
                    .unwrap_or("the provider issued none")
            ),
            None => "-".to_string(),
        },
        last_refresh: refresh_outcome_text(token.and_then(|t| t.last_refresh.as_ref())),
        authorization_url,
        token_url,
        redirect_uri: state.engine.redirect_uri().to_string(),
        connection: super::profile::connection_rows(&profile, &instance.connection),
        kept: super::profile::kept_rows(token.map(|t| &t.kept)),
        own_profile: profile_text(instance.profile.as_ref()),
        profile,
    };
    let targets: Vec<String> = authorization_origin(&state, instance)
        .await
        .into_iter()
        .collect();
    super::render_with_form_targets(StatusCode::OK, &page, &targets)
}

/// The origin of the authorization URL in force (as the engine builds it: the override,
/// the profile's template with the connection, or the flow's), as a CSP source: "Get
/// access token" posts to granary, which redirects there.
pub(super) async fn authorization_origin(
    state: &AppState,
    instance: &granary_store::Instance,
) -> Option<String> {
    let endpoints = state.engine.instance_endpoints(instance).await.ok()?;
    super::csp_origin(&endpoints.authorization_url)
}

/// The authorization and token URLs in force, as the engine builds them, each marked when
/// the instance overrides it; the engine's words when they cannot be built.
async fn effective_urls(state: &AppState, report: &InstanceReport) -> (String, String) {
    let instance = &report.instance;
    let endpoints = match state.engine.instance_endpoints(instance).await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            let why = format!("cannot be built: {error}");
            return (why.clone(), why);
        }
    };
    let mark = |url: &Url, own: &Option<String>| match own {
        Some(_) => format!("{url} (override)"),
        None => url.to_string(),
    };
    (
        mark(&endpoints.authorization_url, &instance.authorization_url),
        mark(&endpoints.token_url, &instance.token_url),
    )
}

/// `GET /admin/instances/{id}/edit`.
pub async fn instance_edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let instance = match state.engine.instance(&id).await {
        Ok(instance) => instance,
        Err(error) => return not_found(layout, "Instance not found", &error),
    };
    let values = InstanceFormValues {
        id: instance.id.clone(),
        integration: instance.integration.clone(),
        scheme: instance.scheme.clone(),
        client_id: instance.client_id.clone(),
        client_auth: client_auth_name(instance.client_auth).to_string(),
        extra_scopes: String::new(),
        force_scopes: false,
        authorization_url: instance.authorization_url.clone().unwrap_or_default(),
        token_url: instance.token_url.clone().unwrap_or_default(),
        extra_authorization_params: format_pairs(&instance.extra_authorization_params, "="),
        // Write-only: the form says which are set, never their values.
        extra_token_params: SecretString::default(),
        extra_token_headers: SecretString::default(),
        token_lifetime: instance
            .token_lifetime
            .map(|secs| secs.to_string())
            .unwrap_or_default(),
        connection: instance.connection.clone(),
        profile: profile_text(instance.profile.as_ref()),
    };
    let form = InstanceForm {
        mode: FormMode::Edit(Stored::of(&instance)),
        values,
        chosen_scopes: &instance.scopes,
    };
    form_page(&state, layout, StatusCode::OK, form).await
}

/// `POST /admin/instances/{id}`: saves the edit form.
pub async fn instance_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    AdminForm(form): AdminForm,
) -> Response {
    let (mut values, scopes, parsed) = parse_form(&form);
    values.id.clone_from(&id);
    let before = state.engine.status(&id).await.ok();
    let stored = before
        .as_ref()
        .map(|r| Stored::of(&r.instance))
        .unwrap_or_default();
    // The form again, with what was sent and why it was not saved.
    let rejected = async |cause: String| {
        let layout = layout_with(
            &session,
            Banner::error(
                "The changes were not saved",
                cause,
                "Correct the form and save again.",
            ),
        );
        let form = InstanceForm {
            mode: FormMode::Edit(stored),
            values,
            chosen_scopes: &scopes,
        };
        form_page(&state, layout, StatusCode::BAD_REQUEST, form).await
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(cause) => return rejected(cause).await,
    };
    let client_secret = match secret_of(&form) {
        Some(secret) => Some(Some(secret)),
        None if form.checked("clear_secret") => Some(None),
        None => None,
    };
    let update = InstanceUpdate {
        scheme: Some(parsed.values.scheme.clone()).filter(|s| !s.is_empty()),
        client_id: Some(parsed.values.client_id.clone()),
        client_secret,
        client_auth: Some(parsed.client_auth),
        scopes: Some(parsed.scopes),
        force_scopes: parsed.values.force_scopes,
        authorization_url: Some(parsed.authorization_url),
        token_url: Some(parsed.token_url),
        extra_authorization_params: Some(parsed.extra_authorization_params),
        // Write-only values: an empty field keeps them, unless "remove" is ticked.
        extra_token_params: write_only_pairs(
            parsed.extra_token_params,
            form.checked("clear_extra_token_params"),
        ),
        extra_token_headers: write_only_pairs(
            parsed.extra_token_headers,
            form.checked("clear_extra_token_headers"),
        ),
        token_lifetime: Some(parsed.token_lifetime),
        enabled: None,
        connection: Some(parsed.connection),
        profile: Some(parsed.profile),
    };
    let had_token = before.as_ref().is_some_and(|r| r.token.is_some());
    match state.engine.update_instance(&id, update).await {
        Ok(instance) => {
            tracing::info!(instance = %id, "instance updated");
            let forgot = had_token
                && instance.status != InstanceStatus::Disabled
                && state
                    .engine
                    .status(&id)
                    .await
                    .is_ok_and(|r| r.token.is_none());
            let banner = if forgot {
                Banner::warning(
                    "Saved; this instance's tokens were forgotten",
                    "The token or authorization URL now points at another origin, which must not receive the tokens of the old one.",
                    "Click \"Get access token\" to authorize at the new origin.",
                )
            } else {
                Banner::success("Saved.")
            };
            flash_to(&state, &headers, banner, &format!("/admin/instances/{id}"))
        }
        Err(error) => {
            let (cause, _) = super::explain(&error);
            rejected(cause).await
        }
    }
}

/// `GET /admin/instances/{id}/authorize`: the page a CLI or API authorization link opens.
pub async fn instance_connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let instance = match state.engine.instance(&id).await {
        Ok(instance) => instance,
        Err(error) => return not_found(layout, "Instance not found", &error),
    };
    let targets: Vec<String> = authorization_origin(&state, &instance)
        .await
        .into_iter()
        .collect();
    super::render_with_form_targets(StatusCode::OK, &super::ConnectPage { layout, id }, &targets)
}

/// Appended to the state cookie's value once its authorization response was used.
const USED_SUFFIX: &str = ".used";

/// The value of the state cookie: the instance (base64url) and the state's digest.
fn state_cookie_value(instance: &str, state: &str) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(instance), sha256_hex(state))
}

/// `POST /admin/instances/{id}/authorize` ("Get access token"): starts the authorization,
/// binds its state to this browser, and sends the browser to the provider.
pub async fn instance_authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    let start = match state.engine.begin_authorization(&id).await {
        Ok(start) => start,
        Err(error) => {
            state.metrics.failed(error.code());
            let banner = failure_banner("The authorization could not start", &error);
            return flash_to(&state, &headers, banner, &format!("/admin/instances/{id}"));
        }
    };
    tracing::info!(instance = %id, "authorization started");
    let mut response = Redirect::to(start.url.as_str()).into_response();
    let cookie = set_cookie(
        STATE_COOKIE,
        &state_cookie_value(&id, &start.state),
        "/admin/oauth",
        STATE_TTL,
        state.settings.secure_cookies(),
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /admin/oauth`: to `/admin/oauth/` with the same query.
pub async fn callback_slash(RawQuery(query): RawQuery) -> Response {
    let location = match query {
        Some(query) => format!("/admin/oauth/?{query}"),
        None => "/admin/oauth/".to_string(),
    };
    Redirect::permanent(&location).into_response()
}

/// `GET /admin/oauth/`: the redirect URI. Checks that this browser started the authorization
/// (the state cookie), completes it, and shows the outcome on the instance page.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let secure = state.settings.secure_cookies();
    let Some(oauth_state) = granary_flow::protocol::callback_state(&query) else {
        let banner = Banner::error(
            "This is not an authorization response",
            "The address has no state parameter.",
            "Start from an instance's \"Get access token\" button.",
        );
        return flash_to(&state, &headers, banner, "/admin/");
    };
    let bound = cookie(&headers, STATE_COOKIE).and_then(|value| {
        let (instance, digest) = value.split_once('.')?;
        let instance = String::from_utf8(URL_SAFE_NO_PAD.decode(instance).ok()?).ok()?;
        Some((instance, digest.to_string()))
    });
    let with_cleared_cookie = |mut response: Response| {
        if let Ok(value) =
            HeaderValue::from_str(&clear_cookie(STATE_COOKIE, "/admin/oauth", secure))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    };
    // After the engine took the state (single use), the cookie marks it used, so that the
    // same response arriving again is told apart from one this browser never started.
    let with_used_cookie = |mut response: Response, instance: &str| {
        let value = format!(
            "{}{USED_SUFFIX}",
            state_cookie_value(instance, &oauth_state)
        );
        let cookie = set_cookie(STATE_COOKIE, &value, "/admin/oauth", STATE_TTL, secure);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    };
    let digest = sha256_hex(&oauth_state);
    // A response that arrives again (reload, back button) after it was used: the cookie
    // remembers its digest as used.
    if let Some((instance, _)) = bound.as_ref().filter(|(_, d)| {
        d.strip_suffix(USED_SUFFIX)
            .is_some_and(|d| constant_time_eq(d, &digest))
    }) {
        let banner = Banner::info_with(
            "This authorization response was already used",
            "It was completed when it first arrived (reloading the page or going back sends it again); the outcome was shown then and is on the instance's page.",
        );
        return flash_to(
            &state,
            &headers,
            banner,
            &format!("/admin/instances/{instance}"),
        );
    }
    let Some((instance, _)) = bound.filter(|(_, d)| constant_time_eq(d, &digest)) else {
        state.metrics.failed("state_not_bound");
        let banner = Banner::error(
            "The authorization was refused",
            "It was not started in this browser, or it was replaced by a newer one (the state does not match this browser's cookie).",
            "Click \"Get access token\" again and finish the authorization in the same browser, in one tab.",
        );
        return with_cleared_cookie(flash_to(&state, &headers, banner, "/admin/"));
    };
    let page = format!("/admin/instances/{instance}");
    match state.engine.complete_authorization(&query).await {
        Ok(id) => {
            tracing::info!(instance = %id, "authorization completed");
            let mut banner =
                Banner::success(format!("Connected: instance {id} holds an access token."));
            if let Ok(report) = state.engine.status(&id).await {
                let expiry = report.token.as_ref().and_then(|t| t.expires_at).map(|at| {
                    format!(
                        "The access token expires at {}; granary refreshes it before then.",
                        format_time(at)
                    )
                });
                let no_refresh = report.token.as_ref().and_then(|t| {
                    let cause = t.no_refresh_token.as_deref()?;
                    let after = t.expires_at.map_or_else(
                        || {
                            "when the provider refuses the token (it did not say when it expires)"
                                .to_string()
                        },
                        |at| format!("after {}", format_time(at)),
                    );
                    Some((
                        format!("No refresh token: a new authorization will be needed {after}."),
                        format!("Usual cause: {cause}."),
                    ))
                });
                let granted = report.token.as_ref().and_then(|t| t.scope.as_deref());
                if let Some(differs) =
                    granted.and_then(|g| super::diagnose::scopes_differ(&report.instance.scopes, g))
                {
                    banner = Banner::warning(
                        format!(
                            "Connected, with other scopes than requested: instance {id} holds an access token."
                        ),
                        differs,
                        "If a call needs a scope that was not granted, check what the client may \
                         request at the provider (or edit the scopes), then click \"Get access token\" again.",
                    );
                } else if let Some((cause, fix)) = no_refresh {
                    banner = Banner::warning(
                        format!(
                            "Connected without a refresh token: instance {id} holds an access token."
                        ),
                        cause,
                        fix,
                    );
                } else if let Some(expiry) = expiry {
                    banner.cause = expiry;
                }
            }
            with_used_cookie(
                flash_to(&state, &headers, banner, &format!("/admin/instances/{id}")),
                &id,
            )
        }
        Err(error) => {
            let cause = error.code();
            tracing::warn!(instance = %instance, cause, error = %error, "authorization failed");
            state.metrics.failed(cause);
            let banner = failure_banner("The authorization failed", &error);
            with_used_cookie(flash_to(&state, &headers, banner, &page), &instance)
        }
    }
}

/// `POST /admin/instances/{id}/refresh` ("Refresh now").
pub async fn instance_refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    let page = format!("/admin/instances/{id}");
    let result = state.engine.refresh_now(&id).await;
    let banner = match result {
        Ok(token) => Banner::success(match token.expires_at() {
            Some(at) => format!(
                "Refreshed: the new access token expires at {}.",
                format_time(at)
            ),
            None => "Refreshed: the provider did not say when the new token expires.".to_string(),
        }),
        Err(error) => {
            state.metrics.failed(error.code());
            failure_banner("The refresh failed", &error)
        }
    };
    flash_to(&state, &headers, banner, &page)
}

/// `POST /admin/instances/{id}/disconnect`: forgets the tokens; the instance stays.
pub async fn instance_disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    let page = format!("/admin/instances/{id}");
    let banner = match state.engine.disconnect(&id).await {
        Ok(report) => {
            tracing::info!(instance = %id, revoked = report.revoked, "instance disconnected");
            super::diagnose::disconnect_banner(&id, &report)
        }
        Err(error) => failure_banner("Disconnect failed", &error),
    };
    flash_to(&state, &headers, banner, &page)
}

/// `POST /admin/instances/{id}/enable`: hands out and refreshes tokens again.
pub async fn instance_enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    set_enabled(&state, &headers, &id, true).await
}

/// `POST /admin/instances/{id}/disable`: no token is handed out or refreshed until enabled.
pub async fn instance_disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    set_enabled(&state, &headers, &id, false).await
}

async fn set_enabled(state: &AppState, headers: &HeaderMap, id: &str, enabled: bool) -> Response {
    let update = InstanceUpdate {
        enabled: Some(enabled),
        ..InstanceUpdate::default()
    };
    let banner = match state.engine.update_instance(id, update).await {
        Ok(instance) => {
            tracing::info!(instance = %id, enabled, "instance switched");
            Banner::success(if enabled {
                format!(
                    "Enabled: instance {id} is {} now.",
                    status_text(instance.status)
                )
            } else {
                format!("Disabled: instance {id} hands out no token until it is enabled.")
            })
        }
        Err(error) if enabled => failure_banner("The instance was not enabled", &error),
        Err(error) => failure_banner("The instance was not disabled", &error),
    };
    flash_to(state, headers, banner, &format!("/admin/instances/{id}"))
}

/// `POST /admin/instances/{id}/delete`.
pub async fn instance_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    match state.engine.delete_instance(&id).await {
        Ok(report) if report.deleted => {
            let mut banner = Banner::success(format!("Deleted instance {id}."));
            if let Some(note) = report.revocation_note {
                banner.cause = format!("Tokens not revoked at the provider: {note}");
            }
            flash_to(&state, &headers, banner, "/admin/")
        }
        Ok(_) => flash_to(
            &state,
            &headers,
            Banner::info(format!("Instance {id} did not exist.")),
            "/admin/",
        ),
        Err(error) => flash_to(
            &state,
            &headers,
            failure_banner("The instance was not deleted", &error),
            &format!("/admin/instances/{id}"),
        ),
    }
}
