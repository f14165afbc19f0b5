//! Reconnect links on the web: the page a link opens (`/reconnect/{secret}`, no admin
//! session, no navigation), its "Get access token" form, the callback of an authorization
//! it started, and the admin's "Create reconnect link" button.
//!
//! The page's form carries a CSRF token that a cookie of the same page holds (double
//! submit, as the sign-in form). Its authorization's state is bound to the browser by a
//! cookie of its own ([`RECONNECT_STATE_COOKIE`]); the callback (`/admin/oauth/`, an admin
//! route) is answered by [`intercept_callback`] only when that cookie matches the
//! response's state, so an admin's authorization still needs its session and its cookie.

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use granary_flow::engine::EngineError;

use super::{Layout, flash_to, render, render_with_form_targets};
use super::{failure_banner, form::FormData, layout};
use crate::app::AppState;
use crate::secrets::{constant_time_eq, random_token, sha256_hex};
use crate::sessions::{Banner, STATE_TTL, Session, clear_cookie, cookie, set_cookie};
use crate::throttle::ClientAddress;
use crate::views::format_time;

/// The cookie that binds a reconnect link's authorization to the browser that started it:
/// the instance (base64url) and the state's digest, sent only to the callback.
pub const RECONNECT_STATE_COOKIE: &str = "granary_reconnect_state";
/// The cookie holding the CSRF token of a reconnect page's form (sent only to
/// `/reconnect/`).
pub const RECONNECT_CSRF_COOKIE: &str = "granary_reconnect_csrf";
/// Where the callback is.
const CALLBACK_PATH: &str = "/admin/oauth/";
/// Appended to the state cookie's value once its authorization response was used.
const USED_SUFFIX: &str = ".used";
/// The one sentence for a link that is unknown, used or expired.
const GONE_HEADING: &str = "This link cannot be used";

/// The page a reconnect link opens.
#[derive(Template)]
#[template(path = "reconnect.html")]
pub struct ReconnectPage {
    /// The layout (no navigation; the CSRF token of the form).
    pub layout: Layout,
    /// The instance.
    pub instance: String,
    /// Its integration.
    pub integration: String,
    /// When the link ends.
    pub expires: String,
    /// The link's secret (the form posts to the link itself).
    pub secret: String,
}

/// A plain page with a heading and a sentence (the outcome, or why nothing happens).
#[derive(Template)]
#[template(path = "reconnect_message.html")]
pub struct ReconnectMessage {
    /// The layout (no navigation).
    pub layout: Layout,
    /// The heading.
    pub heading: String,
    /// The sentence.
    pub text: String,
}

/// The admin's page with a link just created.
#[derive(Template)]
#[template(path = "reconnect_created.html")]
pub struct ReconnectCreated {
    /// The layout.
    pub layout: Layout,
    /// The instance.
    pub id: String,
    /// The link (shown only now).
    pub url: String,
    /// When it ends.
    pub expires: String,
}

fn plain(status: StatusCode, heading: &str, text: &str, banner: Option<Banner>) -> Response {
    render(
        status,
        &ReconnectMessage {
            layout: Layout {
                signed_in: false,
                csrf: String::new(),
                banner,
            },
            heading: heading.to_string(),
            text: text.to_string(),
        },
    )
}

/// The answer for a link that is unknown, used or expired: 410 and one sentence, whichever
/// of the three it is.
fn gone() -> Response {
    plain(
        StatusCode::GONE,
        GONE_HEADING,
        &EngineError::LinkGone.to_string(),
        None,
    )
}

/// The answer for an engine error other than a gone link.
fn failed(state: &AppState, heading: &str, error: &EngineError) -> Response {
    state.metrics.failed(error.code());
    let status = match error {
        EngineError::Disabled { .. } => StatusCode::CONFLICT,
        error if error.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let text = match error {
        EngineError::Disabled { .. } => {
            "The instance this link is for is switched off: ask your admin.".to_string()
        }
        error => format!("{error}. Try again later, or ask your admin."),
    };
    plain(status, heading, &text, None)
}

/// 429 while `address` opened too many unusable links.
fn throttled(state: &AppState, address: ClientAddress) -> Option<Response> {
    let wait = state.reconnect.check(address.0).err()?;
    let mut response = plain(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many unusable links",
        &format!(
            "This browser's address opened too many links that were used or had expired: try again in {} seconds.",
            wait.as_secs().max(1)
        ),
        None,
    );
    if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /reconnect/{secret}`: what the link is for, and its "Get access token" button.
pub async fn page(
    State(state): State<AppState>,
    address: ClientAddress,
    Path(secret): Path<String>,
) -> Response {
    if let Some(response) = throttled(&state, address) {
        return response;
    }
    let target = match state.engine.reconnect_link(&secret).await {
        Ok(target) => target,
        Err(EngineError::LinkGone) => {
            state.reconnect.failed(address.0);
            return gone();
        }
        Err(error) => return failed(&state, "The link cannot be used now", &error),
    };
    let csrf = random_token(24);
    let targets: Vec<String> = match state.engine.instance(&target.instance).await {
        Ok(instance) => super::instances::authorization_origin(&state, &instance)
            .await
            .into_iter()
            .collect(),
        Err(_) => Vec::new(),
    };
    let page = ReconnectPage {
        layout: Layout {
            signed_in: false,
            csrf: csrf.clone(),
            banner: None,
        },
        instance: target.instance,
        integration: target.integration,
        expires: format_time(target.expires),
        secret,
    };
    let mut response = render_with_form_targets(StatusCode::OK, &page, &targets);
    // The page's URL holds the secret: no other site is told it.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    with_cookie(
        response,
        &set_cookie(
            RECONNECT_CSRF_COOKIE,
            &csrf,
            "/reconnect/",
            std::time::Duration::from_secs(3600),
            state.settings.secure_cookies(),
        ),
    )
}

/// `POST /reconnect/{secret}` ("Get access token"): uses the link (once), binds the
/// authorization's state to this browser, and sends it to the provider.
pub async fn start(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Path(secret): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let presented = FormData::parse(&body).get("csrf");
    let expected = cookie(&headers, RECONNECT_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(&expected, &presented) {
        return super::csrf_refused();
    }
    if let Some(response) = throttled(&state, address) {
        return response;
    }
    // The instance, for the state cookie; then the link is used.
    let started = match state.engine.reconnect_link(&secret).await {
        Ok(target) => state
            .engine
            .begin_reconnect(&secret)
            .await
            .map(|start| (target.instance, start)),
        Err(error) => Err(error),
    };
    let (instance, start) = match started {
        Ok(started) => started,
        Err(EngineError::LinkGone) => {
            state.reconnect.failed(address.0);
            return gone();
        }
        Err(error) => return failed(&state, "The authorization could not start", &error),
    };
    tracing::info!(instance = %instance, "authorization started from a reconnect link");
    let secure = state.settings.secure_cookies();
    let response = Redirect::to(start.url.as_str()).into_response();
    let response = with_cookie(
        response,
        &set_cookie(
            RECONNECT_STATE_COOKIE,
            &state_cookie_value(&instance, &start.state),
            "/admin/oauth",
            STATE_TTL,
            secure,
        ),
    );
    with_cookie(
        response,
        &clear_cookie(RECONNECT_CSRF_COOKIE, "/reconnect/", secure),
    )
}

fn state_cookie_value(instance: &str, state: &str) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(instance), sha256_hex(state))
}

/// Layered over the admin routes, before their guard: a `GET /admin/oauth/` whose state
/// this browser's reconnect cookie holds is completed here, with plain pages and no admin
/// session; any other request goes on to the guard and the admin's callback.
pub async fn intercept_callback(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::GET || request.uri().path() != CALLBACK_PATH {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or_default().to_string();
    let Some(oauth_state) = granary_flow::protocol::callback_state(&query) else {
        return next.run(request).await;
    };
    let Some(bound) = cookie(request.headers(), RECONNECT_STATE_COOKIE) else {
        return next.run(request).await;
    };
    let digest = sha256_hex(&oauth_state);
    let Some((instance, bound_digest)) = bound.split_once('.') else {
        return next.run(request).await;
    };
    let instance = URL_SAFE_NO_PAD
        .decode(instance)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    if bound_digest
        .strip_suffix(USED_SUFFIX)
        .is_some_and(|d| constant_time_eq(d, &digest))
    {
        return plain(
            StatusCode::OK,
            "This authorization response was already used",
            "It was completed when it first arrived (reloading the page or going back sends it again); the outcome was shown then. You can close this page.",
            None,
        );
    }
    if !constant_time_eq(bound_digest, &digest) {
        return next.run(request).await;
    }
    complete(&state, &query, &instance, &oauth_state).await
}

/// Completes the authorization a reconnect link started, in words.
async fn complete(state: &AppState, query: &str, instance: &str, oauth_state: &str) -> Response {
    let secure = state.settings.secure_cookies();
    let used = set_cookie(
        RECONNECT_STATE_COOKIE,
        &format!("{}{USED_SUFFIX}", state_cookie_value(instance, oauth_state)),
        "/admin/oauth",
        STATE_TTL,
        secure,
    );
    let response = match state.engine.complete_authorization(query).await {
        Ok(id) => {
            tracing::info!(instance = %id, "authorization completed from a reconnect link");
            plain(
                StatusCode::OK,
                "Connected: you can close this page",
                &format!("Instance {id} holds an access token now; granary keeps it fresh."),
                None,
            )
        }
        Err(error) => {
            let cause = error.code();
            tracing::warn!(instance = %instance, cause, error = %error, "authorization from a reconnect link failed");
            state.metrics.failed(cause);
            let status = if error.is_transient() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            let mut banner = failure_banner("The authorization failed", &error);
            banner.fix = "Ask your admin for a new link: this one was used.".to_string();
            plain(status, "The authorization failed", "", Some(banner))
        }
    };
    with_cookie(response, &used)
}

/// `POST /admin/instances/{id}/reconnect-link` ("Create reconnect link"): shows the new
/// link once, with its expiry.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    super::AdminForm(_): super::AdminForm,
) -> Response {
    let ttl = state.settings.reconnect_link_ttl;
    match state.engine.create_reconnect_link(&id, ttl).await {
        Ok(created) => {
            tracing::info!(instance = %id, "reconnect link created on the admin page");
            let page = ReconnectCreated {
                layout: layout(&state, &headers, &session),
                id,
                url: created.url.to_string(),
                expires: format_time(created.expires),
            };
            render(StatusCode::OK, &page)
        }
        Err(error) => {
            state.metrics.failed(error.code());
            let banner = failure_banner("The reconnect link was not created", &error);
            flash_to(&state, &headers, banner, &format!("/admin/instances/{id}"))
        }
    }
}
