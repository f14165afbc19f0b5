//! Refreshes in flight and how they stop: [`Engine::shutdown`] waits for them (bounded by a
//! grace period) so that a provider's answer, a rotated refresh token above all, is stored
//! before the process exits.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Engine;

/// How long [`Engine::shutdown`] waits, after cancelling what outlived the grace period, for
/// the cancelled refreshes to release their leases.
const RELEASE_WAIT: Duration = Duration::from_millis(500);

/// The engine's background work and the signals that end it.
#[derive(Default)]
pub(crate) struct Tasks {
    /// Every refresh (and every caller's slow path) runs as a task tracked here, detached
    /// from its caller: a caller that goes away (a closed HTTP connection) does not cut a
    /// refresh short.
    pub(super) tracker: TaskTracker,
    /// Set when shutdown starts: background rounds and the change watcher stop.
    pub(super) stopping: CancellationToken,
    /// Set when the grace period is over: refreshes still running give up (and release their
    /// leases).
    pub(super) cancel: CancellationToken,
}

/// What [`Engine::shutdown`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether every refresh in flight finished within the grace period.
    pub finished_in_grace: bool,
    /// Refreshes still running when the grace period ended (cancelled; their leases
    /// released).
    pub cancelled: usize,
}

impl Engine {
    /// Stops the engine's background work: no new background refresh starts, refreshes in
    /// flight finish and store their result for up to `grace`, and whatever still runs then
    /// is cancelled and releases its lease (within a further half second). Callers that ask for a
    /// token after this still get one (a server finishing its last requests).
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let tasks = &self.inner.tasks;
        tasks.stopping.cancel();
        tasks.tracker.close();
        if tokio::time::timeout(grace, tasks.tracker.wait())
            .await
            .is_ok()
        {
            return ShutdownReport {
                finished_in_grace: true,
                cancelled: 0,
            };
        }
        let cancelled = tasks.tracker.len();
        tracing::warn!(
            cancelled,
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "refreshes still running at the end of the shutdown grace period are cancelled"
        );
        tasks.cancel.cancel();
        if tokio::time::timeout(RELEASE_WAIT, tasks.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some cancelled refreshes did not end in time");
        }
        ShutdownReport {
            finished_in_grace: false,
            cancelled,
        }
    }

    /// Whether [`Engine::shutdown`] has started.
    pub fn is_stopping(&self) -> bool {
        self.inner.tasks.stopping.is_cancelled()
    }

    /// Runs `work` as a tracked task, detached from the caller, and awaits it.
    pub(super) async fn detached<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.inner.tasks.tracker.spawn(work).await.ok()
    }

    /// Completes when the grace period of a shutdown is over.
    pub(super) async fn cancelled(&self) {
        self.inner.tasks.cancel.cancelled().await;
    }
}
