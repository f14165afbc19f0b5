//! The opt-in background refresher: refreshes tokens ahead of expiry, a few at a time, with
//! jitter, so that idle instances stay connected. Stopping it stops new refreshes; those in
//! flight run on as tracked tasks of the engine (see [`Engine::shutdown`]).

use std::sync::Arc;
use std::time::Duration;

use granary_store::InstanceStatus;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Engine, ShutdownReport};

/// How the background refresher works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefresherConfig {
    /// How often it looks at every instance (default 30 s).
    pub interval: Duration,
    /// How many refreshes run at once (default 4).
    pub concurrency: usize,
    /// Each refresh starts after a random delay up to this (default 5 s), so that many
    /// instances do not hit a provider in the same second.
    pub jitter: Duration,
    /// Refresh even a fresh token once it is this old, for providers whose refresh tokens
    /// expire when unused (default: off).
    pub max_idle: Option<Duration>,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            concurrency: 4,
            jitter: Duration::from_secs(5),
            max_idle: None,
        }
    }
}

/// A running background refresher. Dropping it (or [`Refresher::stop`]) starts no new
/// refresh; a refresh already talking to the provider finishes and stores its answer.
#[derive(Debug)]
pub struct Refresher {
    engine: Engine,
    stop: CancellationToken,
}

impl Refresher {
    /// Stops starting refreshes.
    pub fn stop(self) {
        drop(self);
    }

    /// Stops starting refreshes, then shuts the engine down: refreshes in flight finish and
    /// store their answer for up to `grace` (see [`Engine::shutdown`]).
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        self.stop.cancel();
        self.engine.shutdown(grace).await
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Engine {
    /// Starts the background refresher on the current tokio runtime. Each round it
    /// refreshes every authorized instance whose token would enter the refresh margin
    /// before the next round (or is older than `max_idle`).
    pub fn spawn_refresher(&self, config: RefresherConfig) -> Refresher {
        let engine = self.clone();
        let stop = self.inner.tasks.stopping.child_token();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
            loop {
                tokio::select! {
                    _ = engine.refresh_round(&config, &permits, &stopped) => {}
                    () = stopped.cancelled() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep(config.interval) => {}
                    () = stopped.cancelled() => return,
                }
            }
        });
        Refresher {
            engine: self.clone(),
            stop,
        }
    }

    /// One round of the refresher; returns how many refreshes it started.
    async fn refresh_round(
        &self,
        config: &RefresherConfig,
        permits: &Arc<Semaphore>,
        stop: &CancellationToken,
    ) -> usize {
        let instances = match self.inner.store.list_instances().await {
            Ok(instances) => instances,
            Err(error) => {
                tracing::warn!(%error, "the background refresher could not list the instances");
                return 0;
            }
        };
        let mut tasks = Vec::new();
        for instance in instances {
            if instance.status != InstanceStatus::Authorized {
                continue;
            }
            let Ok(Some(record)) = self.inner.store.get_token(&instance.id).await else {
                continue;
            };
            let now = self.now();
            let until = now.saturating_add(config.interval + config.jitter);
            let due = self.refresh_at(&record).is_some_and(|at| at <= until);
            let idle = config
                .max_idle
                .is_some_and(|idle| record.obtained_at.saturating_add(idle) <= now);
            if !due && !idle {
                continue;
            }
            let engine = self.clone();
            let permits = permits.clone();
            let jitter = config.jitter;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let millis = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
                let delay = Duration::from_millis(rand::random::<u64>() % millis.max(1));
                let ready = async {
                    let permit = permits.acquire_owned().await;
                    tokio::time::sleep(delay).await;
                    permit
                };
                // A refresh not started when the refresher stops is not started at all.
                let _permit = tokio::select! {
                    Ok(permit) = ready => permit,
                    () = stop.cancelled() => return,
                    else => return,
                };
                if let Err(error) = engine
                    .refresh_ahead(&instance.id, until, idle && !due)
                    .await
                {
                    tracing::warn!(instance = %instance.id, %error, "background refresh failed");
                }
            }));
        }
        let started = tasks.len();
        for task in tasks {
            let _ = task.await;
        }
        started
    }
}
