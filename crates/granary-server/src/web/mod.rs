//! The admin web page: server-rendered, usable without JavaScript, every route but the
//! sign-in form behind a session, every form behind the session's CSRF token.

mod assets;
mod diagnose;
mod form;
mod instances;
mod pages;
mod profile;
pub mod reconnect;
pub mod webhooks;

use askama::Template;
use axum::Extension;
use axum::extract::{Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use granary_flow::engine::{DEFAULT_PAGE_SIZE, IdKind, IntegrationFlows, validate_id};
use secrecy::ExposeSecret as _;

pub use assets::{SCRIPT_PATH, script, script_url};
pub use diagnose::{explain, failure_banner};
pub use form::{AdminForm, FormData, csrf_refused};
pub use instances::{
    callback, callback_slash, instance_authorize, instance_connect, instance_create,
    instance_delete, instance_disable, instance_disconnect, instance_edit, instance_enable,
    instance_new, instance_refresh, instance_show, instance_update,
};
pub use pages::*;

use crate::app::AppState;
use crate::secrets::{constant_time_eq, random_token};
use crate::sessions::{
    Banner, LOGIN_CSRF_COOKIE, NewBanner, SESSION_COOKIE, SESSION_TTL, Session, clear_cookie,
    cookie, set_cookie,
};
use crate::views::{format_time, format_unix_seconds, state_name, state_text, status_name};
use granary_store::{InstanceFilter, InstanceStatus};

/// The pages' Content-Security-Policy, with the origins besides granary's own that its forms
/// may lead to (`form-action`).
///
/// No inline script (the one script is a file served by granary); inline styles only.
/// Every form posts to granary itself; "Get access token" posts to granary, which answers
/// with a redirect to the provider's authorization endpoint, and browsers check a form's
/// redirects against `form-action` too (Chromium does), so the pages with that form add the
/// authorization URL's origin.
pub fn content_security_policy(form_targets: &[String]) -> String {
    let mut form_action = "'self'".to_string();
    for origin in form_targets {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The origin of `url` as a CSP source (`https://host:port`), when it is an http(s) URL whose
/// host fits the CSP grammar (a name or IPv4 address; an IPv6 literal does not).
pub(crate) fn csp_origin(url: &url::Url) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    origin
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '/'))
        .then_some(origin)
}

/// Renders a template as an HTML response with `status`.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    render_with_form_targets(status, template, &[])
}

/// Renders a page whose forms may also lead to `form_targets` (origins, see
/// [`content_security_policy`]).
pub(crate) fn render_with_form_targets(
    status: StatusCode,
    template: &impl Template,
    form_targets: &[String],
) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
            let policy = HeaderValue::from_str(&content_security_policy(form_targets))
                .unwrap_or_else(|_| {
                    HeaderValue::from_static(
                        "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
                    )
                });
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            response
        }
        Err(error) => {
            tracing::error!(%error, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log",
            )
                .into_response()
        }
    }
}

/// A 303 redirect.
pub(crate) fn see_other(location: &str) -> Response {
    // A control character (from a decoded path parameter) is no header value: encode it, so
    // that a redirect is never a 500 and never splits a header.
    if location.bytes().any(|b| b.is_ascii_control()) {
        let mut safe = String::with_capacity(location.len() + 8);
        for c in location.chars() {
            if c.is_ascii_control() {
                safe.push_str(&format!("%{:02X}", u32::from(c)));
            } else {
                safe.push(c);
            }
        }
        return Redirect::to(&safe).into_response();
    }
    Redirect::to(location).into_response()
}

/// The layout of a signed-in page, with the session's pending banner (taken from the store
/// by [`require_admin`] before the handler ran).
pub(crate) fn layout(_state: &AppState, _headers: &HeaderMap, session: &Session) -> Layout {
    Layout {
        signed_in: true,
        csrf: session.csrf.clone(),
        banner: session.take_banner(),
    }
}

/// The layout of a signed-in page that shows `banner` (a form sent back with its error).
pub(crate) fn layout_with(session: &Session, banner: Banner) -> Layout {
    Layout {
        signed_in: true,
        csrf: session.csrf.clone(),
        banner: Some(banner),
    }
}

/// The 404 page of a lookup by id or name that failed, headed `heading`.
pub(crate) fn not_found(
    layout: Layout,
    heading: &str,
    error: &granary_flow::engine::EngineError,
) -> Response {
    message(StatusCode::NOT_FOUND, layout, heading, error)
}

/// Keeps a banner for the next page and redirects there: the banner rides on the response
/// until [`require_admin`] stores it, before the redirect leaves, so that whichever node
/// renders the next page shows it.
pub(crate) fn flash_to(
    _state: &AppState,
    _headers: &HeaderMap,
    banner: Banner,
    location: &str,
) -> Response {
    let mut response = see_other(location);
    response.extensions_mut().insert(NewBanner(banner));
    response
}

/// The guard of every admin route: a live session (read from the store), or 401 with the
/// sign-in form. For a page (GET), the session's banner is taken from the store first; after
/// the handler, the banner its response carries is stored, or the one no page showed given
/// back.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = match state.sessions.from_headers(request.headers()).await {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(%error, "cannot read the admin session");
            return store_unavailable(&state, &error);
        }
    };
    if let Some(session) = session {
        if request.method() == Method::GET {
            if let Err(error) = state.sessions.load_banner(&session).await {
                tracing::warn!(%error, "cannot take the banner of the admin session");
            }
        }
        request.extensions_mut().insert(session.clone());
        let mut response = next.run(request).await;
        let new = response
            .extensions_mut()
            .remove::<NewBanner>()
            .map(|NewBanner(banner)| banner);
        if let Err(error) = state.sessions.settle(&session, new).await {
            tracing::warn!(%error, "cannot keep the banner of the admin session");
        }
        return response;
    }
    let next_path = if request.method() == Method::GET {
        request
            .uri()
            .path_and_query()
            .map_or_else(|| "/admin/".to_string(), |p| p.as_str().to_string())
    } else {
        "/admin/".to_string()
    };
    login_page(&state, StatusCode::UNAUTHORIZED, &next_path, None)
}

/// 503 with the sign-in form and what failed: the store holding the sessions cannot be
/// reached.
fn store_unavailable(state: &AppState, error: &crate::Error) -> Response {
    login_page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "/admin/",
        Some(Banner::error(
            "The store cannot be reached",
            error.to_string(),
            "Check that the store (its database server, or its file) is reachable, then reload.",
        )),
    )
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    banner: Option<Banner>,
) -> Response {
    let csrf = random_token(24);
    let page = LoginPage {
        layout: Layout {
            signed_in: false,
            csrf: csrf.clone(),
            banner,
        },
        next: safe_next(next).to_string(),
    };
    let mut response = render(status, &page);
    if let Ok(value) = HeaderValue::from_str(&set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        "/admin/login",
        std::time::Duration::from_secs(3600),
        state.settings.secure_cookies(),
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Only local admin paths are followed after signing in (no open redirect).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/admin") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/admin/"
    }
}

/// `GET /`: to the admin page.
pub async fn root() -> Response {
    see_other("/admin/")
}

/// `GET /admin`: to `/admin/`.
pub async fn admin_slash() -> Response {
    see_other("/admin/")
}

/// `GET /admin/login`.
pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = state.sessions.from_headers(&headers).await {
        return see_other("/admin/");
    }
    login_page(&state, StatusCode::OK, "/admin/", None)
}

/// `POST /admin/login`: checks the login CSRF cookie and the admin token, starts a session.
pub async fn login(
    State(state): State<AppState>,
    crate::throttle::ClientAddress(address): crate::throttle::ClientAddress,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = FormData::parse(&body);
    let presented_csrf = form.get("csrf");
    let cookie_csrf = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if cookie_csrf.is_empty() || !constant_time_eq(&cookie_csrf, &presented_csrf) {
        return csrf_refused();
    }
    let next = form.get("next");
    if let Err(wait) = state.sign_in.check(address) {
        // Not even compared: an address that sent too many wrong tokens waits, whatever it
        // sends now.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(Banner::error(
                "Too many sign-ins refused",
                format!(
                    "This address sent {} or more wrong admin tokens.",
                    crate::throttle::FREE_FAILURES
                ),
                format!(
                    "Wait {seconds} s and try again, with the token from <data dir>/admin-token (or GRANARY_ADMIN_TOKEN)."
                ),
            )),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return response;
    }
    let token = form.raw("token").unwrap_or_default().trim().to_string();
    if !constant_time_eq(&token, state.admin_token.expose_secret()) {
        // Counted, and logged as one line a minute (SignInThrottle::log_due).
        state.sign_in.failed(address);
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some(Banner::error(
                "Sign-in refused",
                "The admin token is not the one of this server.",
                "Copy it from <data dir>/admin-token (or GRANARY_ADMIN_TOKEN) and try again.",
            )),
        );
    }
    state.sign_in.succeeded(address);
    let id = match state.sessions.create().await {
        Ok((id, _)) => id,
        Err(error) => {
            tracing::error!(%error, "cannot start an admin session");
            return store_unavailable(&state, &error);
        }
    };
    let secure = state.settings.secure_cookies();
    let mut response = see_other(safe_next(&next));
    for value in [
        set_cookie(SESSION_COOKIE, &id, "/", SESSION_TTL, secure),
        clear_cookie(LOGIN_CSRF_COOKIE, "/admin/login", secure),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    tracing::info!("an admin signed in");
    response
}

/// `POST /admin/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminForm(_): AdminForm,
) -> Response {
    if let Err(error) = state.sessions.remove(&headers).await {
        tracing::error!(%error, "cannot end the admin session");
        return store_unavailable(&state, &error);
    }
    let mut response = see_other("/admin/login");
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(
        SESSION_COOKIE,
        "/",
        state.settings.secure_cookies(),
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The query of `GET /admin/`: a page of instances and its filter (see
/// [`crate::api::page_request`]).
#[derive(Debug, Default, serde::Deserialize)]
pub struct HomeQuery {
    after: Option<String>,
    limit: Option<String>,
    status: Option<String>,
    integration: Option<String>,
}

/// `GET /admin/?after=ID&limit=N&status=S&integration=I`: the counts per status (one
/// aggregate query), a page of instances (one query; "next" links to the following page),
/// filtered by status and integration, and the integrations.
pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    query: Result<axum::extract::Query<HomeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let engine = &state.engine;
    let mut layout = layout(&state, &headers, &session);
    // A query that cannot be read shows the first page.
    let query = query.map(|q| q.0).unwrap_or_default();
    let mut instances = Vec::new();
    let mut next_link = None;
    let statuses = [
        InstanceStatus::New,
        InstanceStatus::Authorized,
        InstanceStatus::NeedsAuthorization,
        InstanceStatus::Disabled,
    ];
    let counts = match engine.count_instances_by_status().await {
        Ok(counts) => statuses
            .iter()
            .map(|s| StatusCount {
                status: status_name(*s).to_string(),
                text: state_text(*s, false).to_string(),
                count: counts.get(*s),
            })
            .collect(),
        Err(error) => {
            layout.banner = Some(failure_banner("The instances cannot be counted", &error));
            Vec::new()
        }
    };
    let total = counts.iter().map(|c: &StatusCount| c.count).sum();
    let request = crate::api::page_request(
        query.after.as_deref(),
        query.limit.as_deref(),
        query.status.as_deref(),
        query.integration.as_deref(),
    );
    let filter_status = query.status.clone().unwrap_or_default();
    let filter_integration = query.integration.clone().unwrap_or_default();
    match request {
        Err(message) => {
            layout.banner = Some(Banner::error(
                "This page of instances cannot be shown",
                message,
                "Follow the links of the page, or open /admin/ for the first page.",
            ));
        }
        Ok((after, limit, filter)) => {
            match engine
                .list_instances_page(after.as_deref(), limit, &filter)
                .await
            {
                Ok(page) => {
                    for report in page.instances {
                        let token = report.token;
                        let instance = report.instance;
                        let expires = token
                            .as_ref()
                            .and_then(|t| t.expires_at)
                            .map_or_else(|| "-".to_string(), format_time);
                        let failing = token
                            .as_ref()
                            .and_then(granary_flow::engine::TokenSummary::refresh_failure)
                            .is_some();
                        instances.push(InstanceRow {
                            status: state_name(instance.status, failing),
                            status_text: state_text(instance.status, failing),
                            id: instance.id,
                            integration: instance.integration,
                            expires,
                        });
                    }
                    next_link = page.next.map(|next| {
                        home_link(
                            Some(&next),
                            query.limit.as_deref(),
                            &filter_status,
                            &filter_integration,
                        )
                    });
                }
                Err(error) => {
                    layout.banner = Some(failure_banner("The instances cannot be listed", &error))
                }
            }
        }
    }
    let first_link = query.after.as_deref().filter(|a| !a.is_empty()).map(|_| {
        home_link(
            None,
            query.limit.as_deref(),
            &filter_status,
            &filter_integration,
        )
    });
    let integrations = match engine.list_integrations().await {
        Ok(list) => list
            .into_iter()
            .map(|integration| IntegrationRow {
                title: IntegrationFlows::of(&integration)
                    .ok()
                    .and_then(|f| f.title)
                    .unwrap_or_default(),
                created: format_time(integration.created),
                name: integration.name,
            })
            .collect(),
        Err(error) => {
            layout.banner = Some(failure_banner("The integrations cannot be listed", &error));
            Vec::new()
        }
    };
    render(
        StatusCode::OK,
        &HomePage {
            layout,
            instances,
            integrations,
            counts,
            total,
            filtered: !filter_status.is_empty() || !filter_integration.is_empty(),
            filter_status,
            filter_integration,
            next_link,
            first_link,
        },
    )
}

/// The link of a page of the home page, with the filter kept.
fn home_link(after: Option<&str>, limit: Option<&str>, status: &str, integration: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(after) = after {
        query.append_pair("after", after);
    }
    if let Some(limit) = limit.filter(|l| !l.is_empty()) {
        query.append_pair("limit", limit);
    }
    if !status.is_empty() {
        query.append_pair("status", status);
    }
    if !integration.is_empty() {
        query.append_pair("integration", integration);
    }
    let query = query.finish();
    if query.is_empty() {
        "/admin/".to_string()
    } else {
        format!("/admin/?{query}")
    }
}

/// `GET /admin/integrations/new`.
pub async fn integration_new(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
) -> Response {
    let page = IntegrationNewPage {
        layout: layout(&state, &headers, &session),
        name: String::new(),
        document: String::new(),
    };
    render(StatusCode::OK, &page)
}

/// The import form again, with a banner that names the import limit (HTTP 413). The upload
/// was not read to its end, so its CSRF token is unchecked: nothing was changed.
fn import_too_large(state: &AppState, session: &Session) -> Response {
    let page = IntegrationNewPage {
        layout: layout_with(
            session,
            Banner::error(
                "Not imported",
                crate::limits::import_too_large(state.settings.import_limit),
                "Import a smaller document, or raise import_limit.",
            ),
        ),
        name: String::new(),
        document: String::new(),
    };
    render(StatusCode::PAYLOAD_TOO_LARGE, &page)
}

/// The answer to an import whose body is no readable multipart upload (HTTP 400): not a
/// CSRF failure, since the token inside could not even be read.
fn upload_unreadable(reason: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!(
            "400 Bad Request: the upload could not be read: {reason}; submit the import form \
             of /admin/integrations/new again (multipart/form-data)\n"
        ),
    )
        .into_response()
}

/// `POST /admin/integrations` (multipart: csrf, name, file and/or document).
pub async fn integration_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    // Not a multipart body (another content type, no boundary): nothing can be read, so
    // nothing changes; the CSRF token inside it is checked once the upload was read.
    let mut multipart = match multipart {
        Ok(multipart) => multipart,
        Err(rejection) => return upload_unreadable(rejection.body_text()),
    };
    let mut csrf = String::new();
    let mut name = String::new();
    let mut file = Vec::new();
    let mut pasted = String::new();
    let mut token_lifetime = String::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return import_too_large(&state, &session);
            }
            Err(error) => return upload_unreadable(error.body_text()),
        };
        let field_name = field.name().unwrap_or_default().to_string();
        let bytes = match field.bytes().await {
            Ok(bytes) => bytes,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return import_too_large(&state, &session);
            }
            Err(error) => return upload_unreadable(error.body_text()),
        };
        match field_name.as_str() {
            "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "name" => name = String::from_utf8_lossy(&bytes).trim().to_string(),
            "file" => file = bytes.to_vec(),
            "document" => pasted = String::from_utf8_lossy(&bytes).into_owned(),
            "token_lifetime" => {
                token_lifetime = String::from_utf8_lossy(&bytes).trim().to_string();
            }
            _ => {}
        }
    }
    if !session.csrf_ok(&csrf) {
        return csrf_refused();
    }
    let document = if file.iter().any(|b| !b.is_ascii_whitespace()) {
        file
    } else {
        pasted.clone().into_bytes()
    };
    let failure = |banner: Banner, state: &AppState| {
        let page = IntegrationNewPage {
            layout: layout_with(&session, banner),
            name: name.clone(),
            document: pasted.clone(),
        };
        let _ = state;
        render(StatusCode::BAD_REQUEST, &page)
    };
    if let Err(error) = validate_id(IdKind::Integration, &name) {
        return failure(
            Banner::error("Not imported", error.to_string(), "Choose another name."),
            &state,
        );
    }
    if document.iter().all(u8::is_ascii_whitespace) {
        return failure(
            Banner::error(
                "Not imported",
                "No document was given.",
                "Choose a file, or paste the document.",
            ),
            &state,
        );
    }
    // Empty: kept (none at a first import); 0: none.
    let token_lifetime = if token_lifetime.is_empty() {
        None
    } else if let Ok(secs) = token_lifetime.parse::<u64>() {
        Some(std::time::Duration::from_secs(secs))
    } else {
        return failure(
            Banner::error(
                "Not imported",
                format!("The token lifetime `{token_lifetime}` is not a whole number of seconds."),
                "Give it in seconds, or leave it empty.",
            ),
            &state,
        );
    };
    let imported = match state.engine.import_integration(&name, &document).await {
        Ok(integration) => match token_lifetime {
            Some(lifetime) => {
                state
                    .engine
                    .set_integration_token_lifetime(&name, Some(lifetime))
                    .await
            }
            None => Ok(integration),
        },
        Err(error) => Err(error),
    };
    match imported {
        Ok(_) => {
            tracing::info!(integration = %name, "integration imported");
            flash_to(
                &state,
                &headers,
                Banner::success(format!("Imported integration {name}.")),
                &format!("/admin/integrations/{name}"),
            )
        }
        Err(error) => {
            let (cause, fix) = explain(&error);
            let fix = if fix.starts_with("See the cause") {
                "Fix the document (or import another one) and try again.".to_string()
            } else {
                fix
            };
            failure(Banner::error("Not imported", cause, fix), &state)
        }
    }
}

/// `GET /admin/integrations/{name}`.
pub async fn integration_show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let integration = match state.engine.integration(&name).await {
        Ok(integration) => integration,
        Err(error) => return not_found(layout, "Integration not found", &error),
    };
    let flows = match IntegrationFlows::of(&integration) {
        Ok(flows) => flows,
        Err(error) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                layout,
                "Integration unreadable",
                &error,
            );
        }
    };
    let mut schemes = flows
        .schemes
        .iter()
        .map(|scheme| SchemeView {
            name: scheme.name.clone(),
            description: scheme.description.clone().unwrap_or_default(),
            flows: scheme
                .flows
                .iter()
                .map(|flow| FlowView {
                    kind: flow.kind.to_string(),
                    authorization_url: flow
                        .authorization_url
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    token_url: flow
                        .token_url
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    refresh_url: flow
                        .refresh_url
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    scopes: flow
                        .scopes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
                .collect(),
            profile: None,
        })
        .collect::<Vec<_>>();
    for (view, scheme) in schemes.iter_mut().zip(&flows.schemes) {
        if scheme
            .flow(granary_openapi::FlowKind::AuthorizationCode)
            .is_some()
        {
            view.profile = Some(profile::scheme_profile(&state, &name, &scheme.name).await);
        }
    }
    // Its first page of instances, in one query; the home page filtered by this
    // integration pages through the rest.
    let (instances, more_instances) = match state
        .engine
        .list_instances_page(
            None,
            DEFAULT_PAGE_SIZE,
            &InstanceFilter::all().with_integration(name.as_str()),
        )
        .await
    {
        Ok(page) => (
            page.instances
                .into_iter()
                .map(|report| report.instance.id)
                .collect(),
            page.next.is_some(),
        ),
        Err(_) => (Vec::new(), false),
    };
    let page = IntegrationPage {
        issuer: flows.issuer.clone().unwrap_or_else(|| "-".to_string()),
        revocation_url: flows
            .revocation_url
            .as_ref()
            .map_or_else(|| "-".to_string(), ToString::to_string),
        layout,
        title: flows.title.clone().unwrap_or_default(),
        created: format_time(integration.created),
        digest: integration.source_digest.clone(),
        name,
        schemes,
        instances,
        more_instances,
    };
    render(StatusCode::OK, &page)
}

/// `POST /admin/integrations/{name}/delete`.
pub async fn integration_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    match state.engine.remove_integration(&name).await {
        Ok(true) => flash_to(
            &state,
            &headers,
            Banner::success(format!("Removed integration {name}.")),
            "/admin/",
        ),
        Ok(false) => flash_to(
            &state,
            &headers,
            Banner::info(format!("Integration {name} did not exist.")),
            "/admin/",
        ),
        Err(error) => {
            let banner = Banner::error(
                format!("Integration {name} was not removed"),
                error.to_string(),
                "Delete its instances first, then remove it.",
            );
            flash_to(
                &state,
                &headers,
                banner,
                &format!("/admin/integrations/{name}"),
            )
        }
    }
}

/// `POST /admin/integrations/{name}/discover`: reads the issuer's metadata and keeps its
/// issuer and revocation endpoint.
pub async fn integration_discover(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    AdminForm(form): AdminForm,
) -> Response {
    let issuer = form.get("issuer");
    let banner = match state
        .engine
        .discover_integration_endpoints(&name, &issuer)
        .await
    {
        Ok(integration) => {
            let flows = IntegrationFlows::of(&integration).ok();
            let revocation = flows
                .and_then(|f| f.revocation_url)
                .map_or_else(|| "none advertised".to_string(), |u| u.to_string());
            Banner::success(format!(
                "Provider metadata read: issuer {issuer}, revocation endpoint {revocation}."
            ))
        }
        Err(error) => failure_banner("The provider's metadata could not be read", &error),
    };
    flash_to(
        &state,
        &headers,
        banner,
        &format!("/admin/integrations/{name}"),
    )
}

/// A page with a heading and an error banner.
pub(crate) fn message(
    status: StatusCode,
    mut layout: Layout,
    heading: &str,
    error: &granary_flow::engine::EngineError,
) -> Response {
    layout.banner = Some(failure_banner(heading, error));
    render(
        status,
        &MessagePage {
            layout,
            heading: heading.to_string(),
        },
    )
}

/// `GET /admin/api-keys`.
pub async fn api_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
) -> Response {
    let layout = layout(&state, &headers, &session);
    api_keys_page(&state, layout, None).await
}

async fn api_keys_page(state: &AppState, mut layout: Layout, new_key: Option<String>) -> Response {
    let keys = match state.api_keys.list().await {
        Ok(keys) => keys,
        Err(error) => {
            layout.banner = Some(Banner::error(
                "The API keys cannot be read",
                error.to_string(),
                "Check that the store is reachable, then reload.",
            ));
            Vec::new()
        }
    };
    let keys = keys
        .into_iter()
        .map(|k| ApiKeyRow {
            id: k.id,
            name: k.name,
            role: k.role.as_str(),
            created: format_unix_seconds(k.created),
        })
        .collect();
    render(
        StatusCode::OK,
        &ApiKeysPage {
            layout,
            keys,
            new_key,
        },
    )
}

/// `POST /admin/api-keys`: creates a key and shows it once.
pub async fn api_key_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    AdminForm(form): AdminForm,
) -> Response {
    let layout = layout(&state, &headers, &session);
    let role = match form.get("role").as_str() {
        "" => Ok(crate::api_keys::Role::default()),
        text => text.parse(),
    };
    let created = match role {
        Ok(role) => state.api_keys.create(&form.get("name"), role).await,
        Err(error) => Err(error),
    };
    match created {
        Ok((record, key)) => {
            tracing::info!(key = %record.id, name = %record.name, role = %record.role, "API key created");
            api_keys_page(&state, layout, Some(key.expose_secret().to_string())).await
        }
        Err(error) => {
            let mut layout = layout;
            layout.banner = Some(Banner::error(
                "No key was created",
                error.to_string(),
                "Give the key a name, and the role tokens or admin.",
            ));
            api_keys_page(&state, layout, None).await
        }
    }
}

/// `POST /admin/api-keys/{id}/delete`.
pub async fn api_key_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AdminForm(_): AdminForm,
) -> Response {
    let banner = match state.api_keys.revoke(&id).await {
        Ok(true) => Banner::success(format!("API key {id} revoked.")),
        Ok(false) => Banner::info(format!("API key {id} did not exist.")),
        Err(error) => Banner::error(
            "The key was not revoked",
            error.to_string(),
            "Check that the store is reachable, then try again.",
        ),
    };
    flash_to(&state, &headers, banner, "/admin/api-keys")
}
