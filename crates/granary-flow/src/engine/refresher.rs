//! The opt-in background refresher: refreshes tokens ahead of expiry, a few at a time, with
//! jitter, so that idle instances stay connected. Stopping it stops new refreshes; those in
//! flight run on as tracked tasks of the engine (see [`Engine::shutdown`]).
//!
//! With several processes or nodes on one shared store, each runs its refresher and they
//! divide the due work through the refresh lease: a due instance whose lease another
//! process holds is that process's work, and is skipped rather than waited for. Two that
//! start the same instance at once meet at the lease: one refreshes, the other reads its
//! answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use granary_store::{Instance, InstanceFilter, InstanceStatus, Timestamp, TokenRecord};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Engine, IntegrationFlows, ShutdownReport};

/// How often the background refresher reads every instance's own token lifetime again
/// (an instance given a shorter one through another process is scanned for from then on;
/// token reads honour it at once).
pub(crate) const LIFETIME_RESCAN: Duration = Duration::from_secs(600);

/// The shortest instance token lifetime, in seconds, as the refresher last knew it.
#[derive(Debug, Default)]
pub(crate) struct LifetimeFloor {
    /// When every instance was last read; `None`: not yet.
    scanned: Option<Timestamp>,
    shortest: Option<u64>,
}

/// How the background refresher works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefresherConfig {
    /// How often it asks the store for the tokens due (default 30 s).
    pub interval: Duration,
    /// How many refreshes run at once (default 4).
    pub concurrency: usize,
    /// How many of them may go to one provider host at once (default 2), so that many
    /// tokens due together do not hit one provider at once.
    pub concurrency_per_host: usize,
    /// A token already due starts its refresh after a random delay up to this (default
    /// 5 s). One that becomes due during the round starts at a random moment before it
    /// does, so a round's refreshes are spread over the interval rather than bunched at its
    /// start.
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
            concurrency_per_host: 2,
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
                // Rounds start one interval apart, however long a round's spread-out
                // refreshes take.
                let next = tokio::time::Instant::now() + config.interval;
                tokio::select! {
                    _ = engine.refresh_round(&config, &permits, &stopped) => {}
                    () = stopped.cancelled() => return,
                }
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
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

    /// One round of the refresher. It asks the store for the token records due in the
    /// coming round (by expiry; by age for tokens of unknown expiry and for `max_idle`), in
    /// batches, rather than reading every instance's token: its cost follows the work due,
    /// not the number of instances kept.
    async fn refresh_round(
        &self,
        config: &RefresherConfig,
        permits: &Arc<Semaphore>,
        stop: &CancellationToken,
    ) -> RefreshRound {
        let mut round = RefreshRound::default();
        let now = self.now();
        let until = now.saturating_add(config.interval + config.jitter);
        let candidates = match self.due_candidates(now, until, config).await {
            Ok(candidates) => candidates,
            Err(error) => {
                tracing::warn!(%error, "the background refresher could not list the tokens due");
                return round;
            }
        };
        let mut tasks = Vec::new();
        let mut hosts = ProviderHosts::default();
        for (id, record) in candidates {
            let lifetime = match self.lifetime_for(&id, &record).await {
                Ok(lifetime) => lifetime,
                Err(error) => {
                    tracing::warn!(instance = %id, %error, "the background refresher could not read the token lifetime");
                    continue;
                }
            };
            let due = self
                .refresh_at(&record, lifetime)
                .is_some_and(|at| at <= until);
            // Without a refresh token there is nothing to keep alive.
            let idle = record.refresh_token.is_some()
                && config
                    .max_idle
                    .is_some_and(|idle| record.obtained_at.saturating_add(idle) <= now);
            if !due && !idle {
                continue;
            }
            // Only authorized instances are refreshed.
            let instance = match self.inner.store.get_instance(&id).await {
                Ok(Some(instance)) if instance.status == InstanceStatus::Authorized => instance,
                _ => continue,
            };
            round.due += 1;
            if self.leased_elsewhere(&instance.id).await {
                round.claimed_elsewhere += 1;
                continue;
            }
            let engine = self.clone();
            let permits = permits.clone();
            let host_permits = hosts.permits(self, &instance, config).await;
            let delay = random_below(start_window(
                now,
                self.refresh_at(&record, lifetime),
                due,
                config,
            ));
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let ready = async {
                    tokio::time::sleep(delay).await;
                    let host = host_permits.acquire_owned().await;
                    let permit = permits.acquire_owned().await;
                    host.and_then(|host| permit.map(|permit| (host, permit)))
                };
                // A refresh not started when the refresher stops is not started at all.
                let _permits = tokio::select! {
                    Ok(permits) = ready => permits,
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

    /// The token records that may be due by `until` (or idle at `now`), by instance: those
    /// expiring before `until` plus the margin (a token is due at its expiry less at most
    /// the margin, so this is a superset; `refresh_at` decides), and, by age, those of
    /// unknown expiry refreshed after the default lifetime and those past `max_idle`. Read
    /// from the store's index in batches of [`DUE_BATCH`].
    async fn due_candidates(
        &self,
        now: Timestamp,
        until: Timestamp,
        config: &RefresherConfig,
    ) -> granary_store::Result<BTreeMap<String, TokenRecord>> {
        let store = &self.inner.store;
        let mut candidates = BTreeMap::new();
        let horizon = until
            .saturating_add(self.inner.margin)
            .saturating_add(Duration::from_millis(1));
        let mut after: Option<(Timestamp, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(at, id)| (*at, id.as_str()));
            let batch = store
                .tokens_expiring_before(horizon, cursor, DUE_BATCH)
                .await?;
            let full = batch.len() == DUE_BATCH;
            for entry in batch {
                after = entry
                    .token
                    .expires_at
                    .map(|at| (at, entry.instance.clone()));
                candidates.insert(entry.instance, entry.token);
            }
            if !full || after.is_none() {
                break;
            }
        }
        // By age: unknown expiry refreshed once as old as the shortest lifetime in use (the
        // engine's default, an integration's, an instance's; `refresh_at` decides each),
        // and tokens idle past `max_idle`.
        let by_lifetime = self
            .shortest_lifetime(now)
            .await?
            .map(|lifetime| until.saturating_sub(lifetime));
        let by_idle = config.max_idle.map(|idle| now.saturating_sub(idle));
        let Some(cutoff) = by_lifetime.into_iter().chain(by_idle).max() else {
            return Ok(candidates);
        };
        let before = cutoff.saturating_add(Duration::from_millis(1));
        let mut after: Option<(Timestamp, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(at, id)| (*at, id.as_str()));
            let batch = store
                .tokens_obtained_before(before, cursor, DUE_BATCH)
                .await?;
            let full = batch.len() == DUE_BATCH;
            for entry in batch {
                after = Some((entry.token.obtained_at, entry.instance.clone()));
                candidates.entry(entry.instance).or_insert(entry.token);
            }
            if !full {
                break;
            }
        }
        Ok(candidates)
    }

    /// The shortest lifetime of a token of unknown expiry any instance may have: the
    /// engine's default, every integration's (there are few), and the shortest instance's
    /// (kept in memory: read from every instance at the first round and every
    /// [`LIFETIME_RESCAN`] after, lowered at once by this engine's own writes).
    async fn shortest_lifetime(&self, now: Timestamp) -> granary_store::Result<Option<Duration>> {
        let store = &self.inner.store;
        let mut shortest = self.inner.default_token_lifetime;
        let mut take = |secs: Option<u64>| {
            if let Some(lifetime) = secs.filter(|s| *s > 0).map(Duration::from_secs) {
                shortest = Some(shortest.map_or(lifetime, |s| s.min(lifetime)));
            }
        };
        for integration in store.list_integrations().await? {
            if let Ok(flows) = IntegrationFlows::of(&integration) {
                take(flows.token_lifetime);
            }
        }
        let scanned = self
            .inner
            .lifetime_floor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .scanned;
        let stale = scanned.is_none_or(|at| at.saturating_add(LIFETIME_RESCAN) <= now);
        if stale {
            // A page at a time, authorized instances only: never every record in memory at
            // once.
            let authorized = InstanceFilter::all().with_status(InstanceStatus::Authorized);
            let mut floor: Option<u64> = None;
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .list_instances_page(after.as_deref(), LIFETIME_SCAN_PAGE, &authorized)
                    .await?;
                let full = page.len() == LIFETIME_SCAN_PAGE;
                for entry in &page {
                    if let Some(secs) = entry.instance.token_lifetime.filter(|s| *s > 0) {
                        floor = Some(floor.map_or(secs, |f| f.min(secs)));
                    }
                }
                after = page.last().map(|entry| entry.instance.id.clone());
                if !full || after.is_none() {
                    break;
                }
            }
            let mut kept = self
                .inner
                .lifetime_floor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            kept.scanned = Some(now);
            kept.shortest = floor;
        }
        take(
            self.inner
                .lifetime_floor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .shortest,
        );
        Ok(shortest)
    }

    /// Lowers the shortest instance lifetime the refresher scans by, when an instance of
    /// this engine is given `secs`.
    pub(crate) fn note_instance_lifetime(&self, secs: Option<u64>) {
        let Some(secs) = secs.filter(|s| *s > 0) else {
            return;
        };
        let mut kept = self
            .inner
            .lifetime_floor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.shortest = Some(kept.shortest.map_or(secs, |s| s.min(secs)));
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

/// How many instances the scan for the shortest instance token lifetime reads at a time.
const LIFETIME_SCAN_PAGE: usize = 1000;

/// How many due token records the refresher reads from the store at a time.
const DUE_BATCH: usize = 256;

/// How long a refresh may wait before it starts: a token already due (or only idle) within
/// the jitter, one that becomes due during the round before it does (at most an interval).
fn start_window(
    now: Timestamp,
    refresh_at: Option<Timestamp>,
    due: bool,
    config: &RefresherConfig,
) -> Duration {
    match refresh_at {
        Some(at) if due && at > now => {
            let until_due = u64::try_from(at.as_unix_millis() - now.as_unix_millis()).unwrap_or(0);
            Duration::from_millis(until_due).min(config.interval)
        }
        _ => config.jitter,
    }
}

/// A random duration below `window` (zero for an empty window).
fn random_below(window: Duration) -> Duration {
    let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random::<u64>() % millis.max(1))
}

/// The refreshes each provider host may take at once during a round.
#[derive(Default)]
struct ProviderHosts {
    permits: HashMap<String, Arc<Semaphore>>,
    flows: HashMap<String, Option<IntegrationFlows>>,
}

impl ProviderHosts {
    /// The permits of the host of `instance`'s token endpoint (its override, else its
    /// integration's). An endpoint that cannot be resolved shares one set of permits with
    /// the others that cannot: its refresh fails and says why.
    async fn permits(
        &mut self,
        engine: &Engine,
        instance: &Instance,
        config: &RefresherConfig,
    ) -> Arc<Semaphore> {
        let flows = match self.flows.get(&instance.integration) {
            Some(flows) => flows.as_ref(),
            None => {
                let read = match engine
                    .inner
                    .store
                    .get_integration(&instance.integration)
                    .await
                {
                    Ok(Some(integration)) => IntegrationFlows::of(&integration).ok(),
                    _ => None,
                };
                self.flows
                    .entry(instance.integration.clone())
                    .or_insert(read)
                    .as_ref()
            }
        };
        let token_url = match &instance.token_url {
            Some(url) => url::Url::parse(url).ok(),
            None => flows
                .and_then(|flows| flows.authorization_code_flow(Some(&instance.scheme)))
                .and_then(|(_, flow)| flow.token_url.clone()),
        };
        let host = token_url
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_default();
        self.permits
            .entry(host)
            .or_insert_with(|| Arc::new(Semaphore::new(config.concurrency_per_host.max(1))))
            .clone()
    }
}

/// How one refresh of a round ended.
enum Started {
    No,
    ClaimedElsewhere,
    Refreshed,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary_store::Timestamp;

    const CONFIG: RefresherConfig = RefresherConfig {
        interval: Duration::from_secs(30),
        concurrency: 4,
        concurrency_per_host: 2,
        jitter: Duration::from_secs(5),
        max_idle: None,
    };

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds * 1000)
    }

    #[test]
    fn a_token_due_later_in_the_round_starts_before_it_is_due() {
        assert_eq!(
            start_window(at(100), Some(at(112)), true, &CONFIG),
            Duration::from_secs(12)
        );
        // Never later than one interval: the next round comes then.
        assert_eq!(
            start_window(at(100), Some(at(134)), true, &CONFIG),
            CONFIG.interval
        );
    }

    #[test]
    fn a_token_already_due_or_only_idle_starts_within_the_jitter() {
        assert_eq!(
            start_window(at(100), Some(at(90)), true, &CONFIG),
            CONFIG.jitter
        );
        assert_eq!(
            start_window(at(100), Some(at(100)), true, &CONFIG),
            CONFIG.jitter
        );
        assert_eq!(
            start_window(at(100), Some(at(500)), false, &CONFIG),
            CONFIG.jitter
        );
        assert_eq!(start_window(at(100), None, true, &CONFIG), CONFIG.jitter);
    }

    #[test]
    fn a_random_delay_stays_below_its_window() {
        for _ in 0..100 {
            assert!(random_below(Duration::from_millis(7)) < Duration::from_millis(7));
        }
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
    }
}
