//! A webhook receiver of the suite: axum on 127.0.0.1 that records every post it gets (the
//! event, delivery and signature headers, the raw body, when, and what it answered) and
//! answers the status the scenario sets; scenarios wait for what arrives, not for time.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use granary_server::webhooks::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// One post the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `Granary-Event`.
    pub event: String,
    /// `Granary-Delivery`.
    pub delivery: String,
    /// `Granary-Signature`.
    pub signature: String,
    /// The body, as received.
    pub body: Vec<u8>,
    /// When it arrived (unix seconds): the `now` of its signature check.
    pub at: u64,
    /// The status the receiver answered.
    pub answered: u16,
}

struct Shared {
    answer: AtomicU16,
    received: Mutex<Vec<Received>>,
    count: watch::Sender<usize>,
}

/// A running receiver; stopped by [`Receiver::stop`] or when dropped.
pub struct Receiver {
    /// The URL to register.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 that answers `status`.
    pub async fn start(status: u16) -> Result<Receiver, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the webhook receiver cannot listen on 127.0.0.1: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            answer: AtomicU16::new(status),
            received: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Receiver {
            url: format!("http://{address}/hook"),
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.answer.store(status, Ordering::SeqCst);
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Waits until `done` holds for what was received, at most `limit`; what was received
    /// then, or an error naming `what` and what came.
    pub async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Result<Vec<Received>, String> {
        let deadline = Instant::now() + limit;
        let mut count = self.shared.count.subscribe();
        loop {
            count.borrow_and_update();
            let received = self.received();
            if done(&received) {
                return Ok(received);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let changed = tokio::time::timeout(left, count.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let got: Vec<String> = received
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.event, r.delivery, r.answered))
                    .collect();
                return Err(format!(
                    "the webhook receiver did not get {what} within {} s; it got [{}]",
                    limit.as_secs(),
                    got.join(", ")
                ));
            }
        }
    }

    /// Stops the receiver.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answered = shared.answer.load(Ordering::SeqCst);
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Ok(mut received) = shared.received.lock() {
        received.push(Received {
            event: header(&headers, EVENT_HEADER),
            delivery: header(&headers, DELIVERY_HEADER),
            signature: header(&headers, SIGNATURE_HEADER),
            body: body.to_vec(),
            at,
            answered,
        });
    }
    shared.count.send_modify(|n| *n += 1);
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
