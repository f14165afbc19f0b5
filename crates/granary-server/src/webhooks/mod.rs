//! Signed webhooks: an admin registers endpoints (URL, event types, a secret shown once);
//! each engine event becomes one delivery per enabled endpoint subscribed to its type, kept
//! in the store until a receiver accepts it, posted signed (HMAC-SHA256 over time and body)
//! and retried with bounded exponential backoff; every attempt is in the delivery log.
//!
//! - [`endpoints`]: create, enable/disable, delete, list, the delivery log (shared by the
//!   admin page, the REST API in [`api`] and the CLI);
//! - [`payload`]: the JSON body, one struct;
//! - [`signature`]: the `Granary-Signature` header and [`verify`], the receiver's check;
//! - [`enqueue`]: the task that turns engine events into deliveries;
//! - [`worker`]: the task that claims, posts and records them.
//!
//! [`Webhooks::spawn`] starts both tasks; [`Webhooks::shutdown`] stops them (posts in
//! flight are recorded first, within the grace period). With several nodes on one store,
//! each delivery is claimed by one node at a time; a node that dies after sending and before
//! recording leaves a claim that expires, and the delivery is sent again with the same
//! `Granary-Delivery` id: receivers dedupe by it.

pub mod api;
pub mod endpoints;
pub mod enqueue;
pub mod payload;
pub mod signature;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use granary_flow::engine::Engine;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use endpoints::{Created, WebhookError};
pub use payload::{EVENT_TYPES, Payload};
pub use signature::{
    DEFAULT_REPLAY_WINDOW, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, VerifyError, sign,
    verify,
};

use crate::settings::WebhookSettings;

/// The running webhook tasks of a node (enqueuer and worker). Dropping it stops them.
#[derive(Debug)]
pub struct Webhooks {
    stop_worker: watch::Sender<bool>,
    stop_enqueuer: watch::Sender<bool>,
    worker: Option<JoinHandle<()>>,
    enqueuer: Option<JoinHandle<()>>,
}

impl Webhooks {
    /// Starts the enqueuer (subscribed to the engine's events before this returns, so no
    /// event after it is missed) and the worker, holding claims as `{holder id}/webhooks`.
    /// Must be called inside a tokio runtime.
    pub fn spawn(engine: &Engine, settings: &WebhookSettings) -> Self {
        let holder = format!("{}/webhooks", engine.holder_id());
        Self::spawn_as(engine, settings, holder)
    }

    /// [`spawn`](Self::spawn) with claims held as `holder` (tests run two workers in one
    /// process).
    pub fn spawn_as(engine: &Engine, settings: &WebhookSettings, holder: String) -> Self {
        let (stop_worker, worker_stopped) = watch::channel(false);
        let (stop_enqueuer, enqueuer_stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let enqueuer = tokio::spawn(enqueue::run(
            engine.clone(),
            engine.subscribe(),
            Arc::clone(&wake),
            enqueuer_stopped,
        ));
        let worker = tokio::spawn(worker::run(
            engine.clone(),
            settings.clone(),
            holder,
            wake,
            worker_stopped,
        ));
        Self {
            stop_worker,
            stop_enqueuer,
            worker: Some(worker),
            enqueuer: Some(enqueuer),
        }
    }

    /// Stops the worker: no new claim; posts in flight finish and are recorded for up to
    /// `grace`, then are cut short (their claims expire and the deliveries are sent again,
    /// by this node after a restart or by another). The enqueuer keeps storing deliveries
    /// (they are sent after a restart): `serve` stops the worker with the refresher, and the
    /// enqueuer after it, so that the events of refreshes finishing in the grace period are
    /// kept.
    pub async fn stop_worker(&mut self, grace: Duration) {
        let _ = self.stop_worker.send(true);
        if let Some(worker) = self.worker.take() {
            stop_within(
                worker,
                grace,
                "webhook posts still running at the end of the grace period were cut short",
            )
            .await;
        }
    }

    /// Stops both tasks: the worker as [`stop_worker`](Self::stop_worker), then the
    /// enqueuer, which stores the deliveries of the events already emitted first.
    pub async fn shutdown(mut self, grace: Duration) {
        self.stop_worker(grace).await;
        let _ = self.stop_enqueuer.send(true);
        if let Some(enqueuer) = self.enqueuer.take() {
            stop_within(
                enqueuer,
                grace,
                "the last events could not be stored as webhook deliveries in time",
            )
            .await;
        }
    }
}

/// Waits up to `grace` for `task`, then aborts it with a warning.
async fn stop_within(task: JoinHandle<()>, grace: Duration, warning: &str) {
    let abort = task.abort_handle();
    if tokio::time::timeout(grace, task).await.is_err() {
        tracing::warn!("{warning}");
        abort.abort();
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        let _ = self.stop_worker.send(true);
        let _ = self.stop_enqueuer.send(true);
    }
}
