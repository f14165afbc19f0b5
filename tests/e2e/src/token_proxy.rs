//! The fault proxy of the `lifecycle` and `multinode` runners: an HTTP/1.1 listener on
//! 127.0.0.1 in front of the provider's token endpoint, and nothing else. Each request is
//! handled by the [`Mode`] in force when it arrives; the proxy counts what it received and
//! forwarded, and the runner waits for arrivals ([`Proxy::wait_refreshes`]) instead of
//! sleeping.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with a request that arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward it and pass the answer back.
    Pass,
    /// Forward it at once, and pass the answer back this many milliseconds after the
    /// provider gave it (the provider has acted, e.g. rotated the refresh token, while the
    /// caller still waits).
    HoldAnswer(u64),
    /// Keep it without forwarding until [`Proxy::release`] says what to do.
    Hang,
    /// Answer `503` with `Retry-After: <seconds>` without forwarding.
    Unavailable(u64),
    /// Forward it; in a successful JSON answer, set `expires_in` to this value.
    ExpiresIn(i64),
    /// Answer `400` with an empty body without forwarding.
    EmptyBadRequest,
}

/// What a request held by [`Mode::Hang`] gets when released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// `400 {"error":"invalid_grant"}`, without forwarding (what the provider answers a
    /// refresh token that was already used, without its side effects).
    InvalidGrant,
    /// The connection is closed without an answer.
    Drop,
}

/// The proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Token requests received (every grant type).
    pub received: usize,
    /// Refresh requests (`grant_type=refresh_token`) received.
    pub refreshes: usize,
    /// Requests forwarded to the provider.
    pub forwarded: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "token_requests={} refresh_requests={} forwarded={}",
            self.received, self.refreshes, self.forwarded
        )
    }
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    mode: Mutex<Mode>,
    received: AtomicUsize,
    refreshes: AtomicUsize,
    forwarded: AtomicUsize,
    /// Where each refresh request came from (the sender's address), in order of arrival.
    refresh_peers: Mutex<Vec<SocketAddr>>,
    /// The number of refresh requests received, for waiters.
    arrivals: watch::Sender<usize>,
    /// (generation, action): a held request waits until the generation changes.
    release: watch::Sender<(u64, Release)>,
}

/// A running proxy; it stops with the runtime.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
    /// `http://127.0.0.1:<port>/token`: the token URL to give granary.
    pub token_url: String,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream` (the provider's token endpoint).
    pub async fn start(upstream: String) -> Result<Proxy, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the proxy cannot listen on 127.0.0.1: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let inner = Arc::new(Inner {
            upstream,
            http,
            mode: Mutex::new(Mode::Pass),
            received: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            refresh_peers: Mutex::new(Vec::new()),
            arrivals: watch::channel(0).0,
            release: watch::channel((0, Release::Drop)).0,
        });
        let accepting = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(accepting.clone(), stream));
            }
        });
        Ok(Proxy {
            inner,
            token_url: format!("http://{address}/token"),
        })
    }

    /// Sets the mode for the requests that arrive from now on.
    pub fn set(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Back to [`Mode::Pass`] with counters at zero; requests still held are dropped.
    pub fn reset(&self) {
        self.set(Mode::Pass);
        self.release(Release::Drop);
        self.inner.received.store(0, Ordering::SeqCst);
        self.inner.refreshes.store(0, Ordering::SeqCst);
        self.inner.forwarded.store(0, Ordering::SeqCst);
        self.inner
            .refresh_peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner.arrivals.send_replace(0);
    }

    /// Answers every request held by [`Mode::Hang`] so far with `action`.
    pub fn release(&self, action: Release) {
        self.inner.release.send_modify(|(generation, what)| {
            *generation += 1;
            *what = action;
        });
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        Counts {
            received: self.inner.received.load(Ordering::SeqCst),
            refreshes: self.inner.refreshes.load(Ordering::SeqCst),
            forwarded: self.inner.forwarded.load(Ordering::SeqCst),
        }
    }

    /// The addresses the refresh requests since the last reset came from (the sending
    /// process's end of each connection), in order of arrival.
    pub fn refresh_peers(&self) -> Vec<SocketAddr> {
        self.inner
            .refresh_peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.token_url
            .trim_start_matches("http://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until `n` refresh requests have arrived since the last reset; false on timeout.
    pub async fn wait_refreshes(&self, n: usize, timeout: Duration) -> bool {
        let mut arrivals = self.inner.arrivals.subscribe();
        tokio::time::timeout(timeout, arrivals.wait_for(|count| *count >= n))
            .await
            .is_ok_and(|result| result.is_ok())
    }
}

/// One request, read whole.
struct Request {
    head: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 64 * 1024 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let head: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length = head
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some(Request { head, body })
}

/// An answer to write back.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: body.as_bytes().to_vec(),
        }
    }
}

async fn write_answer(stream: &mut TcpStream, answer: Answer) {
    let reason = StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
}

/// Headers passed back from the provider's answer.
const PASSED_BACK: &[&str] = &[
    "content-type",
    "cache-control",
    "pragma",
    "www-authenticate",
    "retry-after",
];

async fn forward(inner: &Inner, request: &Request) -> Answer {
    inner.forwarded.fetch_add(1, Ordering::SeqCst);
    let mut upstream = inner.http.post(&inner.upstream).body(request.body.clone());
    for (name, value) in &request.head {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            upstream = upstream.header(name.as_str(), value.as_str());
        }
    }
    match upstream.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter(|(name, _)| PASSED_BACK.contains(&name.as_str()))
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            Answer {
                status,
                headers,
                body,
            }
        }
        Err(error) => Answer::json(
            502,
            &serde_json::json!({ "error": "proxy", "detail": error.to_string() }).to_string(),
        ),
    }
}

async fn handle(inner: Arc<Inner>, mut stream: TcpStream) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let mode = *inner.mode.lock().unwrap_or_else(|e| e.into_inner());
    // Subscribed before the arrival is announced, so that a release that follows the
    // announcement is never missed.
    let mut release = inner.release.subscribe();
    let generation = release.borrow_and_update().0;
    inner.received.fetch_add(1, Ordering::SeqCst);
    let body = String::from_utf8_lossy(&request.body);
    if body
        .split('&')
        .any(|pair| pair == "grant_type=refresh_token")
    {
        inner.refreshes.fetch_add(1, Ordering::SeqCst);
        if let Ok(peer) = stream.peer_addr() {
            inner
                .refresh_peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(peer);
        }
        inner.arrivals.send_modify(|count| *count += 1);
    }
    let answer = match mode {
        Mode::Pass => forward(&inner, &request).await,
        Mode::HoldAnswer(millis) => {
            let answer = forward(&inner, &request).await;
            tokio::time::sleep(Duration::from_millis(millis)).await;
            answer
        }
        Mode::Hang => {
            if release.wait_for(|(g, _)| *g != generation).await.is_err() {
                return;
            }
            let action = release.borrow().1;
            match action {
                Release::InvalidGrant => Answer::json(
                    400,
                    r#"{"error":"invalid_grant","error_description":"refresh token already used"}"#,
                ),
                Release::Drop => return,
            }
        }
        Mode::Unavailable(seconds) => Answer {
            status: 503,
            headers: vec![
                ("retry-after".into(), seconds.to_string()),
                ("content-type".into(), "text/plain".into()),
            ],
            body: b"maintenance".to_vec(),
        },
        Mode::ExpiresIn(seconds) => {
            let mut answer = forward(&inner, &request).await;
            if answer.status == 200 {
                if let Ok(serde_json::Value::Object(mut fields)) =
                    serde_json::from_slice::<serde_json::Value>(&answer.body)
                {
                    fields.insert("expires_in".into(), seconds.into());
                    answer.body = serde_json::Value::Object(fields).to_string().into_bytes();
                }
            }
            answer
        }
        Mode::EmptyBadRequest => Answer {
            status: 400,
            headers: Vec::new(),
            body: Vec::new(),
        },
    };
    write_answer(&mut stream, answer).await;
}
