//! The opt-in background refresher: refreshes tokens ahead of expiry, a few at a time, with
//! jitter, so that idle instances stay connected.

use std::sync::Arc;
use std::time::Duration;

use granary_store::InstanceStatus;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::Engine;

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

/// A running background refresher; it stops when dropped (or by [`Refresher::stop`]).
#[derive(Debug)]
pub struct Refresher {
    task: JoinHandle<()>,
}

impl Refresher {
    /// Stops it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Engine {
    /// Starts the background refresher on the current tokio runtime. Each round it
    /// refreshes every authorized instance whose token would enter the refresh margin
    /// before the next round (or is older than `max_idle`).
    pub fn spawn_refresher(&self, config: RefresherConfig) -> Refresher {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
            loop {
                engine.refresh_round(&config, &permits).await;
                tokio::time::sleep(config.interval).await;
            }
        });
        Refresher { task }
    }

    /// One round of the refresher; returns how many refreshes it started.
    async fn refresh_round(&self, config: &RefresherConfig, permits: &Arc<Semaphore>) -> usize {
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
            tasks.push(tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let millis = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
                if millis > 0 {
                    tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % millis)).await;
                }
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
