//! The API the proxy suite calls through granary: an axum app on 127.0.0.1 that takes only
//! access tokens the provider says are active (RFC 7662 introspection at the provider's
//! `/token/introspection`, authenticated as a client of its own), and counts every request
//! it receives; and "elsewhere", a listener that stands for any other host and counts the
//! connections made to it.
//!
//! Routes, under `/v1`: `GET /v1/hello` answers `{"hello": "<sub>", "query": "..."}`;
//! `POST /v1/upload` reads the body as it streams, counts its bytes and their SHA-256 and
//! answers `{"bytes": N, "sha256": "<hex>"}`, publishing the bytes received so far
//! ([`Api::progress`]); anything else is 404. A missing, unknown, expired or revoked token
//! is 401 with `WWW-Authenticate: Bearer error="invalid_token"`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// How long a positive introspection answer is trusted when caching is on (bench only).
const CACHE_FOR: Duration = Duration::from_secs(60);

/// What the API counted.
#[derive(Default)]
pub struct Counts {
    /// Requests received (any path, any answer).
    pub requests: AtomicU64,
    /// Requests answered 401.
    pub refused: AtomicU64,
    /// Requests answered 2xx.
    pub served: AtomicU64,
    /// Introspection requests sent to the provider.
    pub introspections: AtomicU64,
}

impl Counts {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// `requests=N refused=N served=N introspections=N`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            Self::get(&self.requests),
            Self::get(&self.refused),
            Self::get(&self.served),
            Self::get(&self.introspections),
        )
    }
}

struct Shared {
    introspection_url: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    counts: Counts,
    progress: watch::Sender<u64>,
    /// Active tokens and until when they are trusted, when caching is on.
    cache: Option<Mutex<HashMap<String, Instant>>>,
    /// How long `GET /v1/hello` works before it answers: the time a real API takes to
    /// serve a request (zero in the conformance scenarios).
    service_time: Duration,
}

/// A running API; stopped by [`Api::stop`] or when dropped.
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Api {
    /// Starts the API on a free port of 127.0.0.1; it introspects at `issuer` as
    /// `client_id`/`client_secret`, and with `cache` trusts an active token for a minute
    /// (what a busy resource server does; the bench only).
    pub async fn start(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        cache: bool,
        service_time: Duration,
    ) -> Result<Api, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the API cannot listen: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            introspection_url: format!("{issuer}/token/introspection"),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?,
            counts: Counts::default(),
            progress: watch::channel(0).0,
            cache: cache.then(|| Mutex::new(HashMap::new())),
            service_time,
        });
        let app = Router::new()
            .route("/v1/hello", get(hello))
            .route("/v1/upload", post(upload))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&shared),
                count,
            ))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Api {
            origin: format!("http://{address}"),
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// What the API counted so far.
    pub fn counts(&self) -> &Counts {
        &self.shared.counts
    }

    /// The bytes of the upload in progress received so far (0 when a new one begins).
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.shared.progress.subscribe()
    }

    /// Stops the API and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn count(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    shared.counts.requests.fetch_add(1, Ordering::SeqCst);
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        shared.counts.refused.fetch_add(1, Ordering::SeqCst);
    } else if response.status().is_success() {
        shared.counts.served.fetch_add(1, Ordering::SeqCst);
    }
    response
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"invalid_token\", error_description=\"{why}\""),
        )],
        axum::Json(json!({"error": "invalid_token", "why": why})),
    )
        .into_response()
}

/// The subject of the request's bearer token when the provider says it is active.
async fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("no bearer token"))?;
    if let Some(cache) = &shared.cache {
        let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache
            .get(token)
            .is_some_and(|until| *until > Instant::now())
        {
            return Ok("cached".to_string());
        }
    }
    shared.counts.introspections.fetch_add(1, Ordering::SeqCst);
    let answer = shared
        .http
        .post(&shared.introspection_url)
        .basic_auth(&shared.client_id, Some(&shared.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .map_err(|e| {
            (
                StatusCode::BAD_GATEWAY,
                format!("introspection failed: {e}"),
            )
                .into_response()
        })?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err((
            StatusCode::BAD_GATEWAY,
            format!("introspection answered {status}: {body}"),
        )
            .into_response());
    }
    if body.get("active") != Some(&Value::Bool(true)) {
        return Err(unauthorized("the token is not active"));
    }
    if let Some(cache) = &shared.cache {
        cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_string(), Instant::now() + CACHE_FOR);
    }
    Ok(body
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string())
}

async fn hello(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match authenticate(&shared, request.headers()).await {
        Ok(sub) => {
            if !shared.service_time.is_zero() {
                tokio::time::sleep(shared.service_time).await;
            }
            hello_answer(&sub, &request)
        }
        Err(refused) => refused,
    }
}

fn hello_answer(sub: &str, request: &Request) -> Response {
    axum::Json(json!({
        "hello": sub,
        "query": request.uri().query().unwrap_or(""),
    }))
    .into_response()
}

async fn upload(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if let Err(refused) = authenticate(&shared, request.headers()).await {
        return refused;
    }
    shared.progress.send_replace(0);
    let mut hasher = sha2::Sha256::new();
    let mut bytes: u64 = 0;
    let mut stream = request.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                shared.progress.send_replace(bytes);
            }
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("the body broke off after {bytes} bytes: {error}"),
                )
                    .into_response();
            }
        }
    }
    axum::Json(json!({"bytes": bytes, "sha256": hex::encode(hasher.finalize())})).into_response()
}

async fn not_found(request: Request) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri()),
    )
        .into_response()
}

/// A listener that stands for any host other than the API's: counts the connections made
/// to it (and answers none of them).
pub struct Elsewhere {
    /// Its address.
    pub address: SocketAddr,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Elsewhere {
    /// Starts it on a free port of 127.0.0.1.
    pub async fn start() -> Result<Elsewhere, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("elsewhere cannot listen: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let connections = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Ok(Elsewhere {
            address,
            connections,
            task,
        })
    }

    /// The connections made to it so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Chunk `index` (of `chunk` bytes, deterministic content) of an upload body.
pub fn upload_chunk(index: usize, chunk: usize) -> Vec<u8> {
    (0..chunk).map(|i| ((index * 7 + i) % 251) as u8).collect()
}

/// The SHA-256 (hex) of the body [`upload_chunk`] makes of `chunks` chunks.
pub fn upload_digest(chunks: usize, chunk: usize) -> String {
    let mut hasher = sha2::Sha256::new();
    for index in 0..chunks {
        hasher.update(upload_chunk(index, chunk));
    }
    hex::encode(hasher.finalize())
}
