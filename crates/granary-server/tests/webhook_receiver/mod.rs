//! A webhook receiver on 127.0.0.1 for the tests: records every request and answers the
//! statuses it is told, in order (then the default status).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub signature: String,
    pub event: String,
    pub delivery: String,
    pub content_type: String,
    pub body: Vec<u8>,
    /// The status it was answered.
    pub answered: u16,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<Mutex<u16>>,
    sender: mpsc::UnboundedSender<Received>,
    delay: std::time::Duration,
}

pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<Mutex<u16>>,
    pub received: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers `script` in order, then `default`.
    pub async fn start(script: &[u16], default: u16) -> Self {
        Self::start_slow(script, default, std::time::Duration::ZERO).await
    }

    /// [`start`](Self::start), answering each request after `delay`.
    pub async fn start_slow(script: &[u16], default: u16, delay: std::time::Duration) -> Self {
        let (sender, received) = mpsc::unbounded_channel();
        let shared = Shared {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            default: Arc::new(Mutex::new(default)),
            sender,
            delay,
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            script: shared.script,
            default: shared.default,
            received,
            task,
        }
    }

    /// From now on, answers `status`.
    pub fn answer(&self, status: u16) {
        self.script.lock().unwrap().clear();
        *self.default.lock().unwrap() = status;
    }

    /// The next request (fails after 30 s).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.received.recv())
            .await
            .expect("a delivery within 30 s")
            .expect("the receiver runs")
    }

    /// The requests received so far and not taken yet.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.received.try_recv() {
            out.push(r);
        }
        out
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn hook(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*shared.default.lock().unwrap());
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let _ = shared.sender.send(Received {
        at: Instant::now(),
        signature: header("granary-signature"),
        event: header("granary-event"),
        delivery: header("granary-delivery"),
        content_type: header("content-type"),
        body: body.to_vec(),
        answered: status,
    });
    tokio::time::sleep(shared.delay).await;
    StatusCode::from_u16(status).unwrap()
}
