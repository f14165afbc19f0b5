//! `Emulator`: the HTTP server on 127.0.0.1 that serves one behaviour's endpoints under `/{HOST}/{PATH}`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::behaviour::{Behaviour, rewrite};
use crate::request::Incoming;
use crate::state::{Inner, Refusal, RequestRecord};
use crate::{api, authorize, template, token};

/// The client the emulator knows (every behaviour registers the same one).
pub const CLIENT_ID: &str = "granary-test-client";
pub const CLIENT_SECRET: &str = "granary-test-secret";

/// The largest request body read.
const BODY_LIMIT: usize = 1 << 20;

/// A running emulator. Stops when dropped, or by [`Emulator::stop`].
pub struct Emulator {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub behaviour: Behaviour,
    pub origin: String,
    inner: Mutex<Inner>,
}

impl Shared {
    /// The state; a poisoned lock is taken over (a handler never leaves it half-written in a
    /// way that matters to a test emulator).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A provider URL rewritten to this emulator.
    pub fn rewrite(&self, url: &str) -> String {
        rewrite(url, &self.origin)
    }
}

/// The endpoint a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Authorize,
    Token,
    Refresh,
    Revoke,
    Api,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
            Endpoint::Refresh => "refresh",
            Endpoint::Revoke => "revoke",
            Endpoint::Api => "api",
        }
    }
}

/// A request matched to an endpoint.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub req: &'a Incoming,
    pub endpoint: Endpoint,
    /// The request's host (`acme.myshopify.com`).
    pub host: String,
    /// Connection field values matched on the URL.
    pub fields: Vec<(String, String)>,
    /// Query parameters the matched template fixes (`request=token`).
    pub template_query: Vec<(String, String)>,
}

impl Ctx<'_> {
    pub fn behaviour(&self) -> &Behaviour {
        &self.shared.behaviour
    }

    /// Records a refusal and builds its answer: a JSON OAuth error, or `ok: false` inside an
    /// HTTP 200 where the provider does that.
    pub fn refuse(&self, status: StatusCode, error: &str, reason: impl Into<String>) -> Reply {
        let reason = reason.into();
        self.shared.lock().refusals.push(Refusal {
            endpoint: self.endpoint.name(),
            status: status.as_u16(),
            error: error.to_owned(),
            reason: reason.clone(),
        });
        if self.behaviour().errors_in_200 && self.endpoint != Endpoint::Authorize {
            return Reply::Json(
                StatusCode::OK,
                json!({"ok": false, "error": error, "error_description": reason}),
            );
        }
        Reply::Json(status, json!({"error": error, "error_description": reason}))
    }

    pub fn bad_request(&self, error: &str, reason: impl Into<String>) -> Reply {
        self.refuse(StatusCode::BAD_REQUEST, error, reason)
    }
}

/// An answer.
pub(crate) enum Reply {
    Json(StatusCode, Value),
    /// `application/x-www-form-urlencoded` (GitHub without `Accept: application/json`).
    Form(StatusCode, String),
    Redirect(String),
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, value) => (status, axum::Json(value)).into_response(),
            Reply::Form(status, text) => (
                status,
                [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
                text,
            )
                .into_response(),
            Reply::Redirect(location) => match HeaderValue::from_str(&location) {
                Ok(value) => {
                    let mut response = StatusCode::FOUND.into_response();
                    response.headers_mut().insert(header::LOCATION, value);
                    response
                }
                Err(_) => (
                    StatusCode::BAD_REQUEST,
                    "redirect URI is not a valid header",
                )
                    .into_response(),
            },
        }
    }
}

impl Emulator {
    /// Starts an emulator behaving like `behaviour` on 127.0.0.1 (a free port).
    pub async fn start(behaviour: Behaviour) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            behaviour,
            origin,
            inner: Mutex::new(Inner::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Emulator {
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    pub fn behaviour(&self) -> &Behaviour {
        &self.shared.behaviour
    }

    /// `https://HOST/PATH` -> `{origin}/HOST/PATH`.
    pub fn rewrite(&self, url: &str) -> String {
        self.shared.rewrite(url)
    }

    /// A URL template of the behaviour, filled with its example connection and rewritten.
    pub fn example_url(&self, template: &str) -> String {
        self.rewrite(&self.shared.behaviour.example_url(template))
    }

    pub fn client_id(&self) -> &'static str {
        CLIENT_ID
    }

    pub fn client_secret(&self) -> &'static str {
        CLIENT_SECRET
    }

    /// Every request seen, in order.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Every refused request, in order, with its reason.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.shared.lock().refusals.clone()
    }

    /// Tokens revoked at the revocation endpoint, in order.
    pub fn revoked(&self) -> Vec<String> {
        self.shared.lock().revoked.clone()
    }

    /// Whether the API would take this access token: issued, not revoked, not expired.
    pub fn is_valid_access_token(&self, token: &str) -> bool {
        self.shared.lock().access_valid(token)
    }

    /// Lets this much time pass for the emulator's clock (codes and tokens expire) without waiting.
    pub fn advance(&self, by: Duration) {
        self.shared.lock().skew += by;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        }
    };
    let read = Incoming::read(
        parts.method.clone(),
        parts.uri.path(),
        parts.uri.query(),
        parts.headers.clone(),
        &bytes,
    );
    let req = match read {
        Ok(req) => req,
        Err(reason) => {
            let mut inner = shared.lock();
            inner.log.push(RequestRecord {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts
                    .uri
                    .query()
                    .map(crate::request::form_pairs)
                    .unwrap_or_default(),
                headers: parts
                    .headers
                    .keys()
                    .map(|k| k.as_str().to_owned())
                    .collect(),
                body: Vec::new(),
            });
            inner.refusals.push(Refusal {
                endpoint: "unknown",
                status: 400,
                error: "invalid_request".into(),
                reason: reason.clone(),
            });
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_request", "error_description": reason})),
            )
                .into_response();
        }
    };
    shared.lock().log.push(RequestRecord {
        method: req.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: req.query.clone(),
        headers: req.header_names(),
        body: req.body.clone(),
    });
    route(&shared, &req).into_response()
}

/// Finds the endpoint whose template matches the request's `HOST/PATH` and runs it.
fn route(shared: &Shared, req: &Incoming) -> Response {
    let b = &shared.behaviour;
    let candidates: [(Endpoint, &[&str]); 5] = [
        (Endpoint::Authorize, b.authorization_urls),
        (Endpoint::Token, b.token_urls),
        (Endpoint::Refresh, b.refresh_urls),
        (Endpoint::Revoke, b.revocation_urls),
        (Endpoint::Api, b.api_urls),
    ];
    let host = template::host(&req.host_path).to_owned();
    for (endpoint, templates) in candidates {
        for t in templates {
            let parsed = template::parse(t);
            if let Some(fields) = template::matches(&parsed.host_path, &req.host_path, b.fields) {
                let ctx = Ctx {
                    shared,
                    req,
                    endpoint,
                    host,
                    fields,
                    template_query: parsed.query,
                };
                return run(&ctx).into_response();
            }
        }
    }
    let known_host = candidates.iter().flat_map(|(_, ts)| ts.iter()).any(|t| {
        let parsed = template::parse(t);
        template::matches(template::host(&parsed.host_path), &host, b.fields).is_some()
    });
    let unfilled = req.host_path.contains('{') || req.host_path.contains("%7B");
    let reason = if unfilled {
        format!(
            "the URL /{} still holds a template part ({{...}}): fill it in from the connection \
             or from the callback",
            req.host_path
        )
    } else if known_host {
        format!(
            "no {} endpoint at /{}: check the path of the URL",
            b.name, req.host_path
        )
    } else {
        format!(
            "no such host {host:?} for {}: a connection field was not filled in, or is not a \
             valid host part (the hosts served: {})",
            b.name,
            served_hosts(b).join(", ")
        )
    };
    shared.lock().refusals.push(Refusal {
        endpoint: "unknown",
        status: 404,
        error: "not_found".into(),
        reason: reason.clone(),
    });
    (StatusCode::NOT_FOUND, Body::from(reason)).into_response()
}

fn served_hosts(b: &Behaviour) -> Vec<String> {
    let mut hosts: Vec<String> = [
        b.authorization_urls,
        b.token_urls,
        b.refresh_urls,
        b.revocation_urls,
        b.api_urls,
    ]
    .iter()
    .flat_map(|ts| ts.iter())
    .map(|t| template::host(&template::parse(t).host_path).to_owned())
    .collect();
    hosts.dedup();
    hosts
}

fn run(ctx: &Ctx<'_>) -> Reply {
    for (name, value) in &ctx.template_query {
        if ctx.req.param(name) != Some(value.as_str()) {
            return ctx.bad_request(
                "invalid_request",
                format!(
                    "the {} URL must carry {name}={value} (it is part of the published URL)",
                    ctx.endpoint.name()
                ),
            );
        }
    }
    match ctx.endpoint {
        Endpoint::Authorize => authorize::authorize(ctx),
        Endpoint::Token => token::token(ctx),
        Endpoint::Refresh => token::refresh_endpoint(ctx),
        Endpoint::Revoke => token::revoke(ctx),
        Endpoint::Api => api::api(ctx),
    }
}
