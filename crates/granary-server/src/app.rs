//! [`AppState`]: the engine plus the server's own state, shared by every handler.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use granary_flow::engine::{Engine, Event};
use secrecy::SecretString;
use tokio::sync::broadcast::error::RecvError;

use crate::api_keys::ApiKeys;
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::settings::Settings;
use crate::throttle::SignInThrottle;

/// How often the server reads the API keys from the store again, to see keys revoked on
/// another node (or by the CLI).
const API_KEY_RELOAD: std::time::Duration = std::time::Duration::from_secs(1);

/// What every handler reads. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The shared parts of [`AppState`].
pub struct Shared {
    /// The token lifecycle.
    pub engine: Engine,
    /// The settings in force.
    pub settings: Settings,
    /// The admin token (sign-in).
    pub admin_token: SecretString,
    /// Signed-in admins (in the store, shared by every node).
    pub sessions: Sessions,
    /// The REST API's keys.
    pub api_keys: ApiKeys,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Failed sign-ins by client address (per node: see `throttle`).
    pub sign_in: SignInThrottle,
    /// Unusable reconnect links opened, by client address (per node, like `sign_in`).
    pub reconnect: SignInThrottle,
    /// When the server started.
    pub started: Instant,
    /// Turns true when the server shuts down: long-lived responses (events) end then.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// The state of a server; starts a task that counts the engine's events for `/metrics`
    /// (so it must be called inside a tokio runtime).
    pub fn new(
        engine: Engine,
        settings: Settings,
        admin_token: SecretString,
        api_keys: ApiKeys,
    ) -> Self {
        let sessions = Sessions::new(Arc::clone(engine.store()));
        let state = Self(Arc::new(Shared {
            engine,
            settings,
            admin_token,
            sessions,
            api_keys,
            metrics: Metrics::default(),
            sign_in: SignInThrottle::default(),
            reconnect: SignInThrottle::default(),
            started: Instant::now(),
            closing: tokio::sync::watch::Sender::new(false),
        }));
        let weak = Arc::downgrade(&state.0);
        let mut events = state.engine.subscribe();
        tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let Some(shared) = weak.upgrade() else { return };
                count(&shared.metrics, &event);
            }
        });
        // Keys revoked (or created) on another node (or by the CLI) on the same store are seen
        // within a second; the request path itself never reads the store for a known key.
        let weak = Arc::downgrade(&state.0);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(API_KEY_RELOAD);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                shared.sign_in.log_due();
                if let Some(summary) = shared.reconnect.take_summary() {
                    tracing::warn!(
                        refused = summary.refused,
                        throttled = summary.throttled,
                        addresses = summary.addresses,
                        "reconnect links that were unknown, used or expired were opened (one line per minute)"
                    );
                }
                if let Err(error) = shared.api_keys.reload_if_changed().await {
                    tracing::warn!(%error, "cannot reload the API keys; keeping the ones loaded");
                }
            }
        });
        state
    }
}

/// Counts one engine event.
fn count(metrics: &Metrics, event: &Event) {
    match event {
        Event::Authorized { .. } => metrics.authorized(),
        Event::Refreshed { .. } => metrics.refreshed(),
        Event::RefreshFailed { transient, .. } => {
            metrics.failed(if *transient {
                "refresh_transient"
            } else {
                "refresh_failed"
            });
        }
        Event::NeedsAuthorization { .. } => metrics.failed("needs_authorization"),
        _ => {}
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_url", &self.settings.public_url.as_str())
            .finish_non_exhaustive()
    }
}
