//! The change watcher: reads the store's change feed in the background and drops what this
//! engine holds in memory about an instance another process changed (a disable, a
//! disconnect, a refresh, a key rotation), so that the hot path never reads the store and
//! still sees such a change within [`super::DEFAULT_CHANGE_POLL`] plus one read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, Weak};

use super::{Engine, Inner};

/// How many changes one read of the feed asks for.
const BATCH: usize = 512;

/// Whether the watcher task runs.
#[derive(Default)]
pub(crate) struct Watcher {
    started: AtomicBool,
}

impl Engine {
    /// Starts the change watcher on the current tokio runtime, once; without a runtime it
    /// is started by the first call that caches a token. It ends when the engine is dropped
    /// or shut down.
    pub(super) fn ensure_watcher(&self) {
        if self.inner.watcher.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.watcher.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(watch(weak));
    }

    /// Reads the feed from `cursor` on and drops what changed; `None`: first read, which
    /// drops everything held (it may predate the cursor).
    async fn follow_changes(&self, cursor: &mut Option<u64>) -> Result<(), granary_store::Error> {
        let store = &self.inner.store;
        let Some(after) = *cursor else {
            let latest = store.latest_change().await?;
            *cursor = Some(latest);
            self.invalidate_all();
            return Ok(());
        };
        let mut after = after;
        loop {
            let batch = store.changes_since(after, BATCH).await?;
            if batch.missed {
                tracing::info!(
                    after,
                    "the store dropped changes this process had not read yet; forgetting every token held in memory"
                );
                after = store.latest_change().await?;
                self.invalidate_all();
                *cursor = Some(after);
                return Ok(());
            }
            let full = batch.changes.len() == BATCH;
            for change in &batch.changes {
                self.invalidate(&change.instance);
                after = after.max(change.seq);
            }
            *cursor = Some(after);
            if !full {
                return Ok(());
            }
        }
    }

    /// Drops the in-memory token and remembered failure of `id`. A slow path that read the
    /// store before this and caches after it notices (the flight's generation moved) and
    /// drops what it cached.
    pub(super) fn invalidate(&self, id: &str) {
        let flight = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned();
        if let Some(flight) = flight {
            flight.bump_generation();
        }
        self.forget(id);
    }

    fn invalidate_all(&self) {
        let flights: Vec<_> = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for flight in flights {
            flight.bump_generation();
        }
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The watcher's loop: holds the engine only while it reads, so that dropping every
/// [`Engine`] ends it.
async fn watch(weak: Weak<Inner>) {
    let mut cursor = None;
    let mut failing = false;
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let engine = Engine { inner };
        if engine.is_stopping() {
            return;
        }
        match engine.follow_changes(&mut cursor).await {
            Ok(()) => failing = false,
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot read the store's change feed; tokens held in memory are dropped until it works again");
                }
                failing = true;
                // Without the feed, what another process changed cannot be seen: hold
                // nothing, so that every call reads the store.
                engine.invalidate_all();
            }
        }
        let poll = engine.inner.change_poll;
        let stopping = engine.inner.tasks.stopping.clone();
        drop(engine);
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = stopping.cancelled() => return,
        }
    }
}
