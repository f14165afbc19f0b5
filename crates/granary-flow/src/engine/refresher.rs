//! The opt-in background refresher: refreshes tokens ahead of expiry, a few at a time, with
//! jitter, so that idle instances stay connected. Stopping it stops new refreshes; those in
//! flight run on as tracked tasks of the engine (see [`Engine::shutdown`]).
//!
//! With several processes or nodes on one shared store, each runs its refresher and they
//! divide the due work through the refresh lease: a due instance whose lease another
//! process holds is that process's work, and is skipped rather than waited for. Two that
//! start the same instance at once meet at the lease: one refreshes, the other reads its
//! answer.

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

/// What one round of the refresher did (see [`Engine::run_refresh_round`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshRound {
    /// Authorized instances whose token was due (or idle past `max_idle`).
    pub due: usize,
    /// Of those, the ones this process refreshed (or found refreshed when its turn came).
    pub refreshed: usize,
    /// Of those, the ones skipped because another process held their refresh lease.
    pub claimed_elsewhere: usize,
    /// Of those, the ones whose refresh failed (logged as warnings).
    pub failed: usize,
    /// Of those, the ones not started because the refresher was stopping.
    pub not_started: usize,
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

    /// Runs one round of the background refresher now and waits for its refreshes: for a
    /// process that schedules rounds itself, and to see what a round does.
    pub async fn run_refresh_round(&self, config: &RefresherConfig) -> RefreshRound {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let stop = self.inner.tasks.stopping.child_token();
        self.refresh_round(config, &permits, &stop).await
    }

    /// One round of the refresher.
    async fn refresh_round(
        &self,
        config: &RefresherConfig,
        permits: &Arc<Semaphore>,
        stop: &CancellationToken,
    ) -> RefreshRound {
        let mut round = RefreshRound::default();
        let instances = match self.inner.store.list_instances().await {
            Ok(instances) => instances,
            Err(error) => {
                tracing::warn!(%error, "the background refresher could not list the instances");
                return round;
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
            // Without a refresh token there is nothing to keep alive.
            let idle = record.refresh_token.is_some()
                && config
                    .max_idle
                    .is_some_and(|idle| record.obtained_at.saturating_add(idle) <= now);
            if !due && !idle {
                continue;
            }
            round.due += 1;
            if self.leased_elsewhere(&instance.id).await {
                round.claimed_elsewhere += 1;
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
                    () = stop.cancelled() => return Started::No,
                    else => return Started::No,
                };
                // Claimed by another process while this one waited for its turn.
                if engine.leased_elsewhere(&instance.id).await {
                    return Started::ClaimedElsewhere;
                }
                match engine
                    .refresh_ahead(&instance.id, until, idle && !due)
                    .await
                {
                    Ok(_) => Started::Refreshed,
                    Err(error) => {
                        tracing::warn!(instance = %instance.id, %error, "background refresh failed");
                        Started::Failed
                    }
                }
            }));
        }
        for task in tasks {
            match task.await {
                Ok(Started::Refreshed) => round.refreshed += 1,
                Ok(Started::ClaimedElsewhere) => round.claimed_elsewhere += 1,
                Ok(Started::Failed) | Err(_) => round.failed += 1,
                Ok(Started::No) => round.not_started += 1,
            }
        }
        round
    }

    /// Whether another process holds the live refresh lease of `instance` (its refresh is
    /// that process's work). A lease that cannot be read counts as free: the refresh then
    /// meets the lease itself.
    async fn leased_elsewhere(&self, instance: &str) -> bool {
        match self.inner.store.get_lease(instance).await {
            Ok(Some(lease)) => lease.holder != self.inner.holder && lease.expires > self.now(),
            _ => false,
        }
    }
}

/// How one refresh of a round ended.
enum Started {
    No,
    ClaimedElsewhere,
    Refreshed,
    Failed,
}
