//! The token lifecycle over a [`Store`]: integrations, instances, authorization, sealed
//! tokens, single-flight refresh, events, an authorized HTTP client and a background
//! refresher.
//!
//! The [`Engine`] is the only code that decides when to talk to the provider. It seals every
//! secret (client secret, tokens, PKCE verifier) with the [`Keyring`] before it reaches the
//! store, so a backend never sees a plaintext secret.
//!
//! [`Engine::access_token`] answers from an in-memory cache while the token is outside the
//! refresh margin: no store round trip, no decryption, and no lock held across an await.
//! Inside the margin one task per process refreshes (a per-instance async mutex that every
//! other caller waits on), and the store's lease makes it one refresh across every process
//! that shares the store; the others wait for the new token record and read it. A version
//! compare-and-swap on the token record keeps a late writer from overwriting a newer token.
//!
//! Across processes: the lease is short and renewed while its refresh runs, and a refresh
//! stores its result only while it holds the lease (fencing); a failed refresh records in the
//! store when the next attempt may be made, which every process honours; and every engine
//! reads the store's change feed in the background, so that what another process changed
//! (a disable, a disconnect, a refresh, a key rotation) drops what this one holds in memory
//! within a second. [`Engine::shutdown`] lets refreshes in flight finish and store their
//! result, up to a grace period.

pub mod api_path;
mod authorization;
mod backoff;
mod cas;
mod changes;
mod client;
mod clock;
mod disconnect;
mod error;
mod events;
mod extras;
mod grant;
mod ids;
mod instances;
mod integrations;
mod lease;
mod listing;
mod reconnect;
mod refresh;
mod refresher;
mod reports;
mod reseal;
pub mod seal;
mod setup;
mod shutdown;
mod tokens;
mod webhook_secret;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use granary_store::{Store, Timestamp};
use tokio::sync::broadcast;
use url::Url;

pub use api_path::{ApiUrlError, PathRefused};
pub use authorization::{AUTHORIZATION_LIFETIME, AuthorizationStart};
pub use backoff::{BACKOFF_BASE, BACKOFF_CAP, DEFINITIVE_FAILURES_BEFORE_REAUTHORIZATION};
pub use client::AuthorizedClient;
pub use clock::{Clock, ManualClock, SystemClock};
pub use disconnect::DisconnectReport;
pub use error::{EngineError, EngineResult, ErrorKind};
pub use events::Event;
pub use grant::missing_refresh_token_cause;
pub use ids::{IdKind, is_valid_id, validate_id};
pub use instances::{InstanceUpdate, NewInstance};
pub use integrations::IntegrationFlows;
pub use listing::{DEFAULT_PAGE_SIZE, InstancePage, MAX_PAGE_SIZE, check_page};
pub use reconnect::{
    DEFAULT_RECONNECT_LINK_TTL, MAX_RECONNECT_LINK_TTL, ReconnectLinkCreated, ReconnectTarget,
    secret_digest as reconnect_secret_digest,
};
pub use refresher::{RefreshRound, Refresher, RefresherConfig};
pub use reports::{DeleteReport, InstanceReport, RefreshFailure, TokenSummary};
pub use reseal::{KeyReloader, ResealReport};
pub use seal::{Field, KeyId, Keyring, MasterKey, SealError};
pub use setup::{ApiTarget, InstanceEndpoints};
pub use shutdown::ShutdownReport;
pub use tokens::{AccessToken, MAX_TOKEN_LIFETIME};

use crate::protocol::{RetryPolicy, Timeouts};
use changes::Watcher;
use shutdown::Tasks;
use tokens::{Cache, Flight};

/// How many opened access tokens an engine keeps in memory by default: those its callers
/// use, not one per instance kept in the store.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 10_000;

/// The default refresh margin: a token is refreshed when it has less than this left (but
/// never earlier than half its lifetime).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long a refresh lease lasts by default. The holder renews it every third of this while
/// its refresh runs (a heartbeat), so a lease only lapses when its holder died or stalled:
/// another process then takes over within this time.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);

/// The default deadline of one refresh, its retries included.
pub const DEFAULT_REFRESH_DEADLINE: Duration = Duration::from_secs(30);

/// How often the engine reads the store's change feed by default, so that what another
/// process changed is seen here within a second.
pub const DEFAULT_CHANGE_POLL: Duration = Duration::from_millis(200);

/// How long parsing an imported document may take by default. The document's size and
/// depth are checked before it is parsed, so parsing is linear in its size and this is a
/// backstop, not the guard.
pub const DEFAULT_IMPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_CAPACITY: usize = 1024;

/// Builds an [`Engine`]; see [`Engine::builder`].
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    keyring: Keyring,
    public_url: Url,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    margin: Duration,
    holder: Option<String>,
    lease_ttl: Duration,
    refresh_deadline: Duration,
    change_poll: Duration,
    poll_interval: Duration,
    retry: RetryPolicy,
    key_reloader: Option<KeyReloader>,
    import_limits: granary_openapi::Limits,
    import_timeout: Duration,
    allow_insecure_http: bool,
    default_token_lifetime: Option<Duration>,
    reconnect_link_ttl: Option<Duration>,
    token_cache_capacity: usize,
}

impl EngineBuilder {
    /// How many opened access tokens this engine keeps in memory at most (default
    /// [`DEFAULT_TOKEN_CACHE_CAPACITY`]). Beyond it, the tokens no caller asked for since the
    /// last eviction go first; an evicted token is read from the store again when asked for.
    pub fn token_cache_capacity(mut self, capacity: usize) -> Self {
        self.token_cache_capacity = capacity.max(1);
        self
    }

    /// How long a token whose expiry the provider did not state (no `expires_in`, as
    /// Salesforce answers) is taken to live when a refresh token is held: once it is this
    /// old, the next caller (or the background refresher) refreshes it. Default `None`: such
    /// a token is used until it is refused and a caller reports it
    /// ([`Engine::token_rejected`], [`Engine::force_refresh`]). Without a refresh token it
    /// does not apply (there is nothing to refresh).
    pub fn default_token_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.default_token_lifetime = lifetime.filter(|l| !l.is_zero());
        self
    }

    /// How long the reconnect link made when an instance comes to need authorization lives
    /// (default [`DEFAULT_RECONNECT_LINK_TTL`]); the link is in the
    /// [`Event::NeedsAuthorization`] event, for whoever hands it to the account's owner.
    /// `None`: no link is made.
    pub fn reconnect_link_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.reconnect_link_ttl = ttl.filter(|t| !t.is_zero());
        self
    }

    /// The limits an imported document must keep (default [`granary_openapi::Limits`]:
    /// 64 MiB, 128 levels), checked before it is parsed.
    pub fn import_limits(mut self, limits: granary_openapi::Limits) -> Self {
        self.import_limits = limits;
        self
    }

    /// How long parsing an imported document may take (default [`DEFAULT_IMPORT_TIMEOUT`]);
    /// parsing runs on a blocking thread, never on the async workers.
    pub fn import_timeout(mut self, timeout: Duration) -> Self {
        self.import_timeout = timeout;
        self
    }

    /// Whether provider URLs may use plain http to hosts other than loopback (default
    /// false); see [`crate::protocol::check_provider_url`].
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The HTTP client for every request to a provider (default:
    /// [`crate::protocol::http_client`] with the default timeouts).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The clock (default: the system clock). Tests inject a [`ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The refresh margin (default 60 s); capped at half of each token's lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The name this engine holds refresh leases under (default: random, one per engine).
    pub fn holder_id(mut self, holder: impl Into<String>) -> Self {
        self.holder = Some(holder.into());
        self
    }

    /// How long a refresh lease lasts unless renewed (default [`DEFAULT_LEASE_TTL`]); the
    /// holder renews it every third of this while its refresh runs.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The deadline of one refresh, retries and backoff included (default
    /// [`DEFAULT_REFRESH_DEADLINE`]). A caller waits at most this (plus one lease time when
    /// another process refreshes).
    pub fn refresh_deadline(mut self, deadline: Duration) -> Self {
        self.refresh_deadline = deadline;
        self
    }

    /// How often the store's change feed is read (default [`DEFAULT_CHANGE_POLL`]): what
    /// another process changes is seen here within about this plus one store read.
    pub fn change_poll(mut self, interval: Duration) -> Self {
        self.change_poll = interval;
        self
    }

    /// Where to load the keys again when a stored value names a key this engine does not
    /// hold (another process rotated the key): the facade reloads its key file.
    pub fn key_reloader(mut self, reloader: KeyReloader) -> Self {
        self.key_reloader = Some(reloader);
        self
    }

    /// How often a caller that waits for another process's refresh reads the store
    /// (default 50 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How a refresh is retried on transient faults.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when the public URL cannot carry a path, and
    /// [`EngineError::Protocol`] when the default HTTP client cannot be built.
    pub fn build(self) -> EngineResult<Engine> {
        if self.public_url.cannot_be_a_base() {
            return Err(EngineError::Invalid(format!(
                "the public URL {} cannot carry a path: give the URL granary is reached at, such \
                 as https://granary.example.com",
                self.public_url
            )));
        }
        let redirect_uri = redirect_uri(&self.public_url);
        let admin_url = admin_url(&self.public_url);
        let http = match self.http {
            Some(http) => http,
            None => crate::protocol::http_client(&Timeouts::default())?,
        };
        let holder = self.holder.unwrap_or_else(random_holder);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let engine = Engine {
            inner: Arc::new(Inner {
                store: self.store,
                keyring: RwLock::new(Arc::new(self.keyring)),
                http,
                redirect_uri,
                admin_url,
                clock: self.clock,
                margin: self.margin,
                holder,
                lease_ttl: self.lease_ttl,
                refresh_deadline: self.refresh_deadline,
                change_poll: self.change_poll,
                poll_interval: self.poll_interval,
                retry: self.retry,
                key_reloader: self.key_reloader,
                import_limits: self.import_limits,
                import_timeout: self.import_timeout,
                allow_insecure_http: self.allow_insecure_http,
                default_token_lifetime: self.default_token_lifetime,
                reconnect_link_ttl: self.reconnect_link_ttl,
                lifetime_floor: Mutex::new(refresher::LifetimeFloor::default()),
                token_cache_capacity: self.token_cache_capacity,
                events,
                cache: RwLock::new(Cache::default()),
                api_targets: RwLock::new(HashMap::new()),
                flights: Mutex::new(HashMap::new()),
                watcher: Watcher::default(),
                tasks: Tasks::default(),
            }),
        };
        engine.ensure_watcher();
        Ok(engine)
    }
}

/// The token lifecycle of every instance in one store. Cheap to clone (it is an `Arc`).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    keyring: RwLock<Arc<Keyring>>,
    http: reqwest::Client,
    redirect_uri: Url,
    /// `{public_url}/admin/`, where the links of the admin page start.
    admin_url: Url,
    clock: Arc<dyn Clock>,
    margin: Duration,
    holder: String,
    lease_ttl: Duration,
    refresh_deadline: Duration,
    change_poll: Duration,
    poll_interval: Duration,
    retry: RetryPolicy,
    key_reloader: Option<KeyReloader>,
    import_limits: granary_openapi::Limits,
    import_timeout: Duration,
    allow_insecure_http: bool,
    default_token_lifetime: Option<Duration>,
    /// The lifetime of the reconnect link of a needs-authorization event; `None`: none.
    reconnect_link_ttl: Option<Duration>,
    /// The shortest token lifetime of an instance (`Instance::token_lifetime`), for the
    /// background refresher's scan by age (see `refresher.rs`).
    lifetime_floor: Mutex<refresher::LifetimeFloor>,
    token_cache_capacity: usize,
    events: broadcast::Sender<Event>,
    /// The opened access token of each instance, with when to refresh it.
    cache: RwLock<Cache>,
    /// The API targets of the proxy and the authorized client, by instance
    /// (`api_path::CachedTarget`).
    api_targets: RwLock<HashMap<String, api_path::CachedTarget>>,
    /// The single-flight state of each instance.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// The reader of the store's change feed.
    watcher: Watcher,
    /// Refreshes in flight, and the signals that stop them.
    tasks: Tasks,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("redirect_uri", &self.inner.redirect_uri.as_str())
            .field("margin", &self.inner.margin)
            .field("holder", &self.inner.holder)
            .field("keyring", &self.keyring().current_id())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder for an engine over `store`, sealing with `keyring`, reached at `public_url`
    /// (the redirect URI is `{public_url}/admin/oauth/`).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use granary_flow::engine::{Engine, Keyring, MasterKey, NewInstance};
    /// use granary_store::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (key, _bytes) = MasterKey::generate(); // keep the bytes: they open the secrets
    /// let engine = Engine::builder(
    ///     Arc::new(MemoryStore::new()),
    ///     Keyring::new(key, Vec::new()),
    ///     "https://granary.example.com".parse()?,
    /// )
    /// .build()?;
    /// let openapi = br#"{"openapi": "3.0.0", "info": {"title": "Box", "version": "1"},
    ///   "paths": {}, "components": {"securitySchemes": {"OAuth2": {"type": "oauth2",
    ///   "flows": {"authorizationCode": {
    ///     "authorizationUrl": "https://account.box.com/api/oauth2/authorize",
    ///     "tokenUrl": "https://api.box.com/oauth2/token", "scopes": {}}}}}}}"#;
    /// engine.import_integration("box", openapi).await?;
    /// engine.create_instance(NewInstance::new("box-prod", "box", "my-client-id")).await?;
    /// // Send the user to `start.url`; the provider redirects to
    /// // https://granary.example.com/admin/oauth/, whose query goes to complete_authorization.
    /// let start = engine.begin_authorization("box-prod").await?;
    /// assert_eq!(start.url.host_str(), Some("account.box.com"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(store: Arc<dyn Store>, keyring: Keyring, public_url: Url) -> EngineBuilder {
        EngineBuilder {
            store,
            keyring,
            public_url,
            http: None,
            clock: Arc::new(SystemClock),
            margin: DEFAULT_REFRESH_MARGIN,
            holder: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            refresh_deadline: DEFAULT_REFRESH_DEADLINE,
            change_poll: DEFAULT_CHANGE_POLL,
            poll_interval: Duration::from_millis(50),
            retry: RetryPolicy::default(),
            key_reloader: None,
            import_limits: granary_openapi::Limits::default(),
            import_timeout: DEFAULT_IMPORT_TIMEOUT,
            allow_insecure_http: false,
            default_token_lifetime: None,
            reconnect_link_ttl: Some(DEFAULT_RECONNECT_LINK_TTL),
            token_cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
        }
    }

    /// Checks a provider URL against the URL rule of this engine
    /// ([`crate::protocol::check_provider_url`]).
    pub(crate) fn check_provider_url(&self, what: &str, url: &Url) -> EngineResult<()> {
        crate::protocol::check_provider_url(what, url, self.inner.allow_insecure_http)
            .map_err(EngineError::Invalid)
    }

    /// The store the engine runs over.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The redirect URI every authorization uses: `{public_url}/admin/oauth/`.
    pub fn redirect_uri(&self) -> &Url {
        &self.inner.redirect_uri
    }

    /// The name this engine holds refresh leases under.
    pub fn holder_id(&self) -> &str {
        &self.inner.holder
    }

    /// The refresh margin.
    pub fn refresh_margin(&self) -> Duration {
        self.inner.margin
    }

    /// The current time of the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// A subscription to the engine's [`Event`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The HTTP client the engine talks to providers with.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        self.inner
            .keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn emit(&self, event: Event) {
        tracing::info!(instance = event.instance(), ?event, "granary event");
        // No subscriber is not an error.
        let _ = self.inner.events.send(event);
    }
}

/// `{public_url}/admin/`: where the admin page, its callback and its links live.
fn admin_url(public_url: &Url) -> Url {
    let mut base = public_url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let path = format!("{}/admin/", base.path().trim_end_matches('/'));
    base.set_path(&path);
    base
}

fn redirect_uri(public_url: &Url) -> Url {
    let mut uri = admin_url(public_url);
    let path = format!("{}oauth/", uri.path());
    uri.set_path(&path);
    uri
}

fn random_holder() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("engine-{}-{}", std::process::id(), hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_has_the_trailing_slash() {
        for (base, want) in [
            ("https://g.example", "https://g.example/admin/oauth/"),
            ("https://g.example/", "https://g.example/admin/oauth/"),
            (
                "https://g.example/pre/",
                "https://g.example/pre/admin/oauth/",
            ),
            (
                "http://127.0.0.1:8080?x=1",
                "http://127.0.0.1:8080/admin/oauth/",
            ),
        ] {
            let got = redirect_uri(&Url::parse(base).unwrap());
            assert_eq!(got.as_str(), want);
        }
    }
}
