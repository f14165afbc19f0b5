//! The proxy: `ANY /api/v1/instances/{id}/proxy/{*path}` (API key, role `tokens`) sends the
//! request on to the API of the instance's integration with the instance's access token,
//! and its answer back; `granary call` does the same from the CLI ([`forward`]).
//!
//! - **Where.** The instance's API base URL, as [`Engine::api_target`] resolves it: the
//!   provider profile's `api.base_url` template (filled with the connection's fields and the
//!   values kept from the token answer, such as Salesforce's `instance_url`; an instance may
//!   set its own in its profile layer), else the integration's document's server (OpenAPI
//!   3.x: the first server, variables at their defaults; Swagger 2.0:
//!   `scheme://host/basePath`). The caller's path is appended to the base path and its query
//!   kept. The base URL follows the provider URL rule (https, or http to loopback unless
//!   `allow_insecure_http`).
//! - **Only there.** The engine's one path rule ([`granary_flow::engine::api_path`]): a
//!   path that could leave the base (scheme, host, port and base path) is refused with a 400
//!   problem naming the rule, before anything is sent: `.` and `..` segments (also `%2e`),
//!   an encoded `/` or `\` (`%2f`, `%5c`), a backslash, an `@` (also `%40`), an absolute URL
//!   (`scheme://`, `http:`), a leading `/` (`//host`); the URL built is then checked once
//!   more to be under the base.
//! - **What.** The method, the query, the headers minus hop-by-hop ones (`Connection` and
//!   those it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`), `Host`, `Expect`, and the caller's own `Authorization`, `Cookie` and header
//!   of the token's name; the access token goes in the header the target names
//!   ([`granary_flow::engine::ApiTarget::token_header_for`]): `Authorization: <token type>
//!   <token>` (`Bearer` unless the provider gave another type) by default, the profile's
//!   header with its prefix otherwise (Shopify's `X-Shopify-Access-Token: <token>`). The
//!   answer's status and headers come back minus hop-by-hop ones.
//! - **Streams.** A request body with a known length of at most [`REPLAY_LIMIT`] (64 KiB),
//!   or none, is read whole and can be sent twice; any other body is streamed to the API as
//!   it arrives, and the answer's body is streamed back: neither is held whole.
//! - **A refused token.** On a 401 from the API the token is reported as rejected (a refresh
//!   only if it is still the current token, in the engine's single flight, so any number of
//!   proxied 401s of one token cause one refresh) and a replayable request is sent once more
//!   with the new token; a streamed one is not (its 401 is returned; the next call has the
//!   new token).
//! - **Limits.** A body over `proxy_body_limit` is 413 (at once when its `Content-Length`
//!   says so, else when the stream passes it); an API that has not begun to answer within
//!   `proxy_timeout` (both tries and a refresh included) is 504. Once the answer has begun
//!   its body streams as long as it flows.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use granary_flow::engine::api_path::{self, PathRefused};
use granary_flow::engine::{AccessToken, ApiTarget, Engine, EngineError};
use http_body_util::{BodyExt as _, LengthLimitError};
use url::Url;

use crate::app::AppState;
use crate::limits::size_text;
use crate::problem::Problem;

/// A request body of a known length up to this size (64 KiB) is read whole, so that it can
/// be sent again after a refresh; a larger one, or one of unknown length, is streamed.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// The path prefix of the proxy routes, before the instance id.
const PREFIX: &str = "/api/v1/instances/";

/// The instance id and the API path (raw, as sent: still percent-encoded) of a request
/// path `/api/v1/instances/{id}/proxy/{path}`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (id, rest) = rest.split_once('/')?;
    let api_path = rest.strip_prefix("proxy/")?;
    Some((id, api_path))
}

/// Whether a request path goes through the proxy (its body limit is `proxy_body_limit`).
pub fn is_proxy(path: &str) -> bool {
    split_path(path).is_some()
}

/// What bounds the proxy (from the settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub body: usize,
    /// How long the API may take to begin its answer (both tries and a refresh included).
    pub timeout: Duration,
    /// Whether the base URL may be plain http to a host other than loopback.
    pub allow_insecure_http: bool,
}

impl Limits {
    /// The limits of the settings in force.
    pub fn of(settings: &crate::settings::Settings) -> Self {
        Self {
            body: settings.proxy_body_limit,
            timeout: settings.proxy_timeout,
            allow_insecure_http: settings.allow_insecure_http,
        }
    }
}

/// A request body on its way to the API.
pub enum Outgoing {
    /// Held whole (none, or at most [`REPLAY_LIMIT`]): sent again after a refresh.
    Whole(Bytes),
    /// Streamed as it arrives: sent once.
    Stream {
        /// The body.
        body: reqwest::Body,
        /// Set when the caller's body passed the limit.
        over_limit: Arc<AtomicBool>,
    },
}

/// A request to send on: the instance, and what goes to its API.
pub struct ProxyRequest {
    /// The instance whose token is sent.
    pub instance: String,
    /// The method.
    pub method: Method,
    /// The API path, raw (percent-encoded as sent), relative to the base URL.
    pub path: String,
    /// The query, raw.
    pub query: Option<String>,
    /// The headers to send (see [`outgoing_headers`]).
    pub headers: HeaderMap,
    /// The body.
    pub body: Outgoing,
}

/// Why a request was not sent on, or got no answer.
#[derive(Debug)]
pub enum ProxyError {
    /// The path breaks a rule (400).
    Refused {
        /// The rule's name.
        rule: &'static str,
        /// What it says.
        detail: String,
    },
    /// The engine refused (no such instance, needs authorization, ...).
    Engine(EngineError),
    /// The integration has no API base URL (409).
    NoBaseUrl(String),
    /// The base URL is plain http to another host (409).
    Insecure(String),
    /// The body is over the limit (413).
    TooLarge(usize),
    /// The API did not begin to answer in time (504).
    Timeout(Duration),
    /// The API could not be reached or broke off (502).
    Unreachable(String),
    /// The caller's body could not be read (400).
    BadBody(String),
}

impl From<PathRefused> for ProxyError {
    fn from(refused: PathRefused) -> Self {
        Self::Refused {
            rule: refused.rule,
            detail: refused.detail,
        }
    }
}

impl From<EngineError> for ProxyError {
    fn from(error: EngineError) -> Self {
        Self::Engine(error)
    }
}

impl ProxyError {
    /// The problem answered for it.
    pub fn problem(&self) -> Problem {
        match self {
            Self::Refused { rule, detail } => Problem::new(
                StatusCode::BAD_REQUEST,
                "proxy-path-refused",
                "The path would leave the API's base URL",
                format!("refused by the rule `{rule}`: {detail}"),
            ),
            Self::Engine(error) => crate::api::engine_problem(error),
            Self::NoBaseUrl(detail) => Problem::new(
                StatusCode::CONFLICT,
                "no-api-base-url",
                "The integration has no API base URL",
                detail.clone(),
            ),
            Self::Insecure(detail) => Problem::new(
                StatusCode::CONFLICT,
                "insecure-api-base-url",
                "The API base URL is not https",
                detail.clone(),
            ),
            Self::TooLarge(limit) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "proxy-body-too-large",
                "The body is over the proxy's limit",
                format!(
                    "the request body is larger than the proxy's limit of {}: send less, or \
                     raise the limit (proxy_body_limit in the configuration file, \
                     GRANARY_PROXY_BODY_LIMIT, --proxy-body-limit)",
                    size_text(*limit)
                ),
            ),
            Self::Timeout(limit) => Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "proxy-timeout",
                "The API did not answer in time",
                format!(
                    "the API did not begin to answer within the proxy's limit of {} s (proxy_timeout \
                     in the configuration file, GRANARY_PROXY_TIMEOUT, --proxy-timeout)",
                    limit.as_secs_f64()
                ),
            ),
            Self::Unreachable(detail) => Problem::new(
                StatusCode::BAD_GATEWAY,
                "proxy-unreachable",
                "The API could not be reached",
                detail.clone(),
            ),
            Self::BadBody(detail) => Problem::bad_request(detail.clone()),
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Engine(error) => write!(f, "{error}"),
            other => f.write_str(&other.problem().detail),
        }
    }
}

/// Whether a header never goes through the proxy in either direction: hop-by-hop headers
/// (RFC 9110 7.6.1) and those the `Connection` header names.
fn is_hop_by_hop(name: &HeaderName, connection: &[String]) -> bool {
    let name = name.as_str();
    matches!(
        name,
        "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    ) || name.starts_with("proxy-")
        || connection.iter().any(|listed| listed == name)
}

/// The header names a `Connection` header lists, in lowercase.
fn connection_names(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The caller's headers that go on to the API: all but hop-by-hop ones, `Host`, `Expect`,
/// `Content-Length` (set for the body sent) and the caller's `Authorization` and `Cookie`.
pub fn outgoing_headers(headers: &HeaderMap) -> HeaderMap {
    let connection = connection_names(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let dropped = is_hop_by_hop(name, &connection)
            || [
                header::AUTHORIZATION,
                header::COOKIE,
                header::HOST,
                header::EXPECT,
                header::CONTENT_LENGTH,
            ]
            .contains(name);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The API's headers that come back: all but hop-by-hop ones.
fn incoming_headers(headers: &HeaderMap) -> HeaderMap {
    let connection = connection_names(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_hop_by_hop(name, &connection) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The one HTTP client of the proxy: no redirects followed (a redirect goes back to the
/// caller), no cookie store.
fn client() -> Result<&'static reqwest::Client, ProxyError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .use_rustls_tls()
        .build()
        .map_err(|e| ProxyError::Unreachable(format!("cannot build the HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// Whether `error` or one of its sources is a body over its length limit.
fn is_length_limit(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// Streams `body` to the API as it arrives (through a channel: reqwest's body must be
/// `Sync`, the server's is not), noting in `over_limit` when it passes its limit.
fn stream(body: Body, over_limit: Arc<AtomicBool>) -> reqwest::Body {
    type BoxError = Box<dyn StdError + Send + Sync>;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                if is_length_limit(&error) {
                    over_limit.store(true, Ordering::SeqCst);
                }
                BoxError::from(error)
            });
            let failed = frame.is_err();
            if sender.send(frame).await.is_err() || failed {
                return;
            }
        }
    });
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::poll_fn(
        move |cx| receiver.poll_recv(cx),
    )))
}

/// Sends one try.
async fn send(
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    target: &ApiTarget,
    token: &AccessToken,
    body: reqwest::Body,
) -> Result<reqwest::Response, ProxyError> {
    let mut headers = headers.clone();
    let (name, value) = target.token_header_for(token)?;
    // `insert` replaces whatever the caller sent under that name: the caller's own header
    // of the token's name never goes on.
    headers.insert(name, value);
    client()?
        .request(method.clone(), url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|error| {
            let mut shown = url.clone();
            shown.set_query(None);
            ProxyError::Unreachable(format!(
                "the request to {shown} failed: {}",
                error.without_url()
            ))
        })
}

/// Sends `request` on to the API of its instance's integration; see the module
/// documentation. The answer's body is not read.
///
/// # Errors
/// See [`ProxyError`]; nothing is sent anywhere when the path is refused, the instance or
/// its token is not there, or the base URL is missing or not allowed.
pub async fn forward(
    engine: &Engine,
    limits: &Limits,
    request: ProxyRequest,
) -> Result<reqwest::Response, ProxyError> {
    let ProxyRequest {
        instance,
        method,
        path,
        query,
        headers,
        body,
    } = request;
    if let Some(refused) = api_path::refused(&path) {
        return Err(refused.into());
    }
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let tries = async {
        let token = match engine.access_token(&instance).await {
            Ok(token) => token,
            Err(error) => return Err(configuration_problem(engine, limits, &instance, error).await),
        };
        let (target, url) =
            resolve(engine, limits, &instance, &token, &path, query.as_deref()).await?;
        match body {
            Outgoing::Whole(bytes) => {
                let first = send(
                    &method,
                    &url,
                    &headers,
                    &target,
                    &token,
                    bytes.clone().into(),
                )
                .await?;
                if first.status() != StatusCode::UNAUTHORIZED {
                    return Ok(first);
                }
                drop(first);
                tracing::info!(%instance, "the API refused the access token (401): refreshing once and sending again");
                let fresh = engine.force_refresh(&instance, &token).await?;
                // The new token's kept values may move the base URL (Salesforce's instance_url).
                let (target, url) =
                    resolve(engine, limits, &instance, &fresh, &path, query.as_deref()).await?;
                send(&method, &url, &headers, &target, &fresh, bytes.into()).await
            }
            Outgoing::Stream { body, over_limit } => {
                let answer = send(&method, &url, &headers, &target, &token, body)
                    .await
                    .map_err(|error| {
                        if over_limit.load(Ordering::SeqCst) {
                            ProxyError::TooLarge(limits.body)
                        } else {
                            error
                        }
                    })?;
                if answer.status() == StatusCode::UNAUTHORIZED {
                    // Not sent again (the body is gone); the next call has the new token.
                    tracing::info!(%instance, "the API refused the access token (401) of a streamed request: refreshing, not sending again");
                    if let Err(error) = engine.force_refresh(&instance, &token).await {
                        tracing::warn!(%instance, %error, "the refresh after a 401 failed");
                    }
                }
                Ok(answer)
            }
        }
    };
    tokio::time::timeout_at(deadline, tries)
        .await
        .unwrap_or(Err(ProxyError::Timeout(limits.timeout)))
}

/// Why a call of `instance` cannot be made when no token came (`error`): a base URL that is
/// missing or not allowed comes first (authorizing would not help), else `error`.
async fn configuration_problem(
    engine: &Engine,
    limits: &Limits,
    instance: &str,
    error: EngineError,
) -> ProxyError {
    if let Ok(target) = engine.api_target(instance).await {
        match &target.base_url {
            None => {
                return ProxyError::NoBaseUrl(format!(
                    "instance `{instance}`: {}",
                    granary_flow::engine::ApiUrlError::NoBaseUrl
                ));
            }
            Some(base) => {
                if let Err(detail) = granary_flow::protocol::check_provider_url(
                    "the API base URL",
                    base,
                    limits.allow_insecure_http,
                ) {
                    return ProxyError::Insecure(detail);
                }
            }
        }
    }
    ProxyError::Engine(error)
}

/// Where a call of `instance` with `token` goes: its API target
/// ([`Engine::api_target_for`]: no store read while the same token is used, for a second)
/// and the URL of `path` and `query` under its base URL, by the engine's path rule.
async fn resolve(
    engine: &Engine,
    limits: &Limits,
    instance: &str,
    token: &AccessToken,
    path: &str,
    query: Option<&str>,
) -> Result<(ApiTarget, Url), ProxyError> {
    let target = engine.api_target_for(instance, token).await?;
    let base = target.base_url.as_ref().ok_or_else(|| {
        ProxyError::NoBaseUrl(format!(
            "instance `{instance}`: {}",
            granary_flow::engine::ApiUrlError::NoBaseUrl
        ))
    })?;
    granary_flow::protocol::check_provider_url(
        "the API base URL",
        base,
        limits.allow_insecure_http,
    )
    .map_err(ProxyError::Insecure)?;
    let url = api_path::url_under(base, path, query)?;
    Ok((target, url))
}

/// The caller's answer from the API's.
fn answer(response: reqwest::Response) -> Response {
    let status = response.status();
    let headers = incoming_headers(response.headers());
    let mut out = Response::new(Body::new(reqwest::Body::from(response)));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// `ANY /api/v1/instances/{id}/proxy/{*path}`; see the module documentation.
pub async fn proxy(State(state): State<AppState>, request: Request) -> Response {
    let limits = Limits::of(&state.settings);
    let (parts, body) = request.into_parts();
    let Some((id, path)) = split_path(parts.uri.path()) else {
        return Problem::not_found(format!("no route {}", parts.uri.path())).into_response();
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.body as u64) {
        return ProxyError::TooLarge(limits.body).problem().into_response();
    }
    let mut headers = outgoing_headers(&parts.headers);
    let body = match body.size_hint().exact() {
        Some(length) if length <= REPLAY_LIMIT as u64 => match body.collect().await {
            Ok(collected) => Outgoing::Whole(collected.to_bytes()),
            Err(error) if is_length_limit(&error) => {
                return ProxyError::TooLarge(limits.body).problem().into_response();
            }
            Err(error) => {
                return ProxyError::BadBody(format!("the request body cannot be read: {error}"))
                    .problem()
                    .into_response();
            }
        },
        _ => {
            if let Some(length) = declared {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            let over_limit = Arc::new(AtomicBool::new(false));
            Outgoing::Stream {
                body: stream(body, Arc::clone(&over_limit)),
                over_limit,
            }
        }
    };
    let request = ProxyRequest {
        instance: id.to_string(),
        method: parts.method.clone(),
        path: path.to_string(),
        query: parts.uri.query().map(str::to_string),
        headers,
        body,
    };
    match forward(&state.engine, &limits, request).await {
        Ok(response) => answer(response),
        Err(error) => {
            if let ProxyError::Engine(error) = &error {
                state.metrics.failed(error.code());
            }
            error.problem().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_the_callers_credentials_stay_behind() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("authorization", "Bearer granary-key"),
            ("cookie", "session=1"),
            ("host", "granary.example"),
            ("accept", "application/json"),
            ("x-custom", "kept"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let out = outgoing_headers(&headers);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["accept", "x-custom"]);
    }
}
