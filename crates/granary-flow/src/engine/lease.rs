//! The refresh lease of one process: held while its refresh runs, renewed by a heartbeat so
//! that it lapses only when the process dies or stalls, and released on every exit path.

use std::future::Future;

use super::Engine;

impl Engine {
    /// Runs `work` while renewing the lease of `id` every third of its lifetime, so that it
    /// lapses only when this process dies or stalls.
    pub(super) async fn with_heartbeat<T>(&self, id: &str, work: impl Future<Output = T>) -> T {
        let mut beat = tokio::time::interval(heartbeat_period(self.inner.lease_ttl));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An interval's first tick is at once; the lease was just taken.
        beat.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = beat.tick() => {
                    match self.inner.store.try_acquire_lease(id, &self.inner.holder, self.now(), self.inner.lease_ttl).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(instance = id, "the refresh lease went to another process while this refresh ran (this process stalled?); its answer is stored only if no newer token was"),
                        Err(error) => tracing::warn!(instance = id, %error, "cannot renew the refresh lease"),
                    }
                }
            }
        }
    }
}

/// How often a holder renews its lease: three times per lifetime, so that a renewal late
/// by a whole period still lands before the lease lapses.
fn heartbeat_period(lease_ttl: std::time::Duration) -> std::time::Duration {
    lease_ttl / 3
}

/// A held refresh lease: released by [`HeldLease::release`], or, should the holding task end
/// any other way (a panic, a runtime shutting down), by a task its drop starts.
pub(super) struct HeldLease {
    engine: Engine,
    id: String,
    released: bool,
}

impl HeldLease {
    pub(super) fn new(engine: &Engine, id: &str) -> Self {
        Self {
            engine: engine.clone(),
            id: id.to_string(),
            released: false,
        }
    }

    pub(super) async fn release(mut self) {
        self.released = true;
        release_lease(&self.engine, &self.id).await;
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (engine, id) = (self.engine.clone(), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { release_lease(&engine, &id).await });
        }
    }
}

async fn release_lease(engine: &Engine, id: &str) {
    if let Err(error) = engine
        .inner
        .store
        .release_lease(id, &engine.inner.holder)
        .await
    {
        tracing::warn!(instance = id, %error, "could not release the refresh lease; it lapses by itself");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_heartbeat_beats_three_times_per_lease_lifetime() {
        assert_eq!(
            super::heartbeat_period(Duration::from_secs(6)),
            Duration::from_secs(2)
        );
    }
}
