//! What the engine tests across processes share: a wiremock provider, engines over one
//! store (each engine stands for a process: its own memory, holder id and lease), an
//! authorized instance, and a responder that signals when a refresh request arrives.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use granary_flow::engine::{Engine, EngineBuilder, Keyring, ManualClock, MasterKey, NewInstance};
use granary_flow::protocol::RetryPolicy;
use granary_store::{MemoryStore, Store, Timestamp};
use secrecy::{SecretBox, SecretString};
use serde_json::json;
use url::Url;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const START: i64 = 1_800_000_000_000;
pub const KEY: [u8; 32] = [7; 32];

/// A provider, a store and a clock shared by the engines of a test.
pub struct World {
    pub server: MockServer,
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
}

pub fn keyring(key: &[u8; 32]) -> Keyring {
    Keyring::new(
        MasterKey::from_bytes(&SecretBox::new(Box::new(*key))),
        vec![],
    )
}

pub fn token_json(
    access: &str,
    refresh: Option<&str>,
    expires_in: Option<u64>,
) -> serde_json::Value {
    let mut body = json!({"access_token": access, "token_type": "Bearer"});
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    if let Some(expires_in) = expires_in {
        body["expires_in"] = json!(expires_in);
    }
    body
}

impl World {
    /// A world with the integration `stub` and the instance `inst` (not authorized yet).
    pub async fn new() -> Self {
        let world = Self {
            server: MockServer::start().await,
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(ManualClock::new(Timestamp::from_unix_millis(START))),
        };
        let engine = world.engine("setup", |b| b);
        let document = json!({
            "openapi": "3.0.3",
            "info": {"title": "Stub API", "version": "1"},
            "paths": {},
            "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
                "authorizationCode": {
                    "authorizationUrl": format!("{}/authorize", world.server.uri()),
                    "tokenUrl": format!("{}/token", world.server.uri()),
                    "scopes": {"read": "Read", "offline_access": "Stay connected"}
                }
            }}}}
        });
        engine
            .import_integration("stub", document.to_string().as_bytes())
            .await
            .unwrap();
        let mut new = NewInstance::new("inst", "stub", "client-1");
        new.client_secret = Some(SecretString::from("client-secret-value"));
        new.scopes = vec!["read".into(), "offline_access".into()];
        engine.create_instance(new).await.unwrap();
        world
    }

    /// An engine ("process") over the shared store, named `holder`, with test-sized
    /// timings that `tweak` may change.
    pub fn engine(
        &self,
        holder: &str,
        tweak: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Engine {
        self.engine_on(self.store.clone(), holder, tweak)
    }

    /// An engine like [`World::engine`] over `store` (a wrapper of the shared store).
    pub fn engine_on(
        &self,
        store: Arc<dyn Store>,
        holder: &str,
        tweak: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Engine {
        let builder = Engine::builder(
            store,
            keyring(&KEY),
            Url::parse("https://granary.test").unwrap(),
        )
        .clock(self.clock.clone())
        .holder_id(holder)
        .retry_policy(RetryPolicy::none())
        .poll_interval(Duration::from_millis(10))
        .change_poll(Duration::from_millis(20));
        tweak(builder).build().unwrap()
    }

    /// Authorizes `inst` through `engine`: the code exchange answers these tokens.
    pub async fn authorize(
        &self,
        engine: &Engine,
        access: &str,
        refresh: Option<&str>,
        expires_in: Option<u64>,
    ) {
        self.authorize_instance(engine, "inst", access, refresh, expires_in)
            .await;
    }

    /// Creates another instance `id` of the integration `stub` through `engine`.
    pub async fn add_instance(&self, engine: &Engine, id: &str) {
        let mut new = NewInstance::new(id, "stub", "client-1");
        new.client_secret = Some(SecretString::from("client-secret-value"));
        new.scopes = vec!["read".into(), "offline_access".into()];
        engine.create_instance(new).await.unwrap();
    }

    /// Authorizes the instance `id` through `engine`, as [`World::authorize`] does `inst`.
    pub async fn authorize_instance(
        &self,
        engine: &Engine,
        id: &str,
        access: &str,
        refresh: Option<&str>,
        expires_in: Option<u64>,
    ) {
        let guard = Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(token_json(access, refresh, expires_in)),
            )
            .expect(1)
            .mount_as_scoped(&self.server)
            .await;
        let url = engine.begin_authorization(id).await.unwrap().url;
        let state = url
            .query_pairs()
            .find(|(name, _)| name == "state")
            .map(|(_, value)| value.into_owned())
            .unwrap();
        engine
            .complete_authorization(&format!("code=the-code&state={state}"))
            .await
            .unwrap();
        drop(guard);
    }

    /// Answers every refresh with `response`; each arrival is signalled on the receiver.
    pub async fn on_refresh(
        &self,
        response: ResponseTemplate,
    ) -> tokio::sync::mpsc::UnboundedReceiver<()> {
        let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(Signal { arrived, response })
            .mount(&self.server)
            .await;
        arrivals
    }

    /// How many refresh requests the provider received.
    pub async fn refreshes(&self) -> usize {
        self.server
            .received_requests()
            .await
            .expect("the mock server records requests")
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
            .count()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Signals each request, then answers `response` (with its delay, if any).
struct Signal {
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
    response: ResponseTemplate,
}

impl Respond for Signal {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let _ = self.arrived.send(());
        self.response.clone()
    }
}

/// Waits until `check` holds, reading it again after each change of state it depends on
/// (here: short polls, bounded): fails the test with `what` when it never does.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A responder that tells the test when a request arrived and holds the answer until the
/// test releases it: the test acts while the request is known to be in flight, instead of
/// sleeping and hoping it is. The mock server answers nothing else meanwhile (its thread
/// waits here), so the test must not need the server between `arrived` and `release`.
pub struct Gate {
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    response: ResponseTemplate,
}

/// The test's side of a [`Gate`].
pub struct GateHandle {
    arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

impl Respond for Gate {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let _ = self.arrived.send(());
        // Bounded, so that a test that failed before releasing does not hang the server.
        let released = self
            .release
            .lock()
            .map(|release| release.recv_timeout(Duration::from_secs(10)).is_ok())
            .unwrap_or(false);
        if released {
            self.response.clone()
        } else {
            ResponseTemplate::new(599).set_body_string("the test never released the gate")
        }
    }
}

pub fn gate(response: ResponseTemplate) -> (Gate, GateHandle) {
    let (arrived_tx, arrived_rx) = tokio::sync::mpsc::unbounded_channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    (
        Gate {
            arrived: arrived_tx,
            release: std::sync::Mutex::new(release_rx),
            response,
        },
        GateHandle {
            arrived: arrived_rx,
            release: release_tx,
        },
    )
}

impl GateHandle {
    /// Waits until the request is at the provider (held there).
    pub async fn wait_arrived(&mut self, what: &str) {
        tokio::time::timeout(Duration::from_secs(10), self.arrived.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} did not reach the provider within 10 s"))
            .expect("the gate was dropped");
    }

    /// Lets the held request have its answer.
    pub fn release(&self) {
        self.release.send(()).expect("the gate was dropped");
    }
}

/// Mounts a refresh answer that is held until released ([`Gate`]).
pub async fn mount_gated_refresh(server: &MockServer, response: ResponseTemplate) -> GateHandle {
    let (gate, handle) = gate(response);
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(gate)
        .mount(server)
        .await;
    handle
}

impl World {
    /// Answers refreshes with `response`, each held until released.
    pub async fn gated_refresh(&self, response: ResponseTemplate) -> GateHandle {
        mount_gated_refresh(&self.server, response).await
    }
}

/// How [`FeedFault`] answers the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Feed {
    /// As the store does.
    Normal = 0,
    /// No change at all (the reader sees nothing of what others write).
    Hidden = 1,
    /// Changes were dropped before the reader got them (`missed`).
    Missed = 2,
    /// The feed cannot be read.
    Failing = 3,
}

/// The shared store with a change feed that can be hidden, report a missed stretch, or
/// fail; every other method is the store's.
pub struct FeedFault {
    pub inner: Arc<MemoryStore>,
    feed: std::sync::atomic::AtomicU8,
    panic_on_fenced_write: std::sync::atomic::AtomicBool,
    lease_reads: std::sync::atomic::AtomicUsize,
    token_reads: std::sync::atomic::AtomicUsize,
    feed_reads: std::sync::atomic::AtomicUsize,
    #[allow(clippy::type_complexity)]
    hold_token_reads: std::sync::Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::sync::oneshot::Receiver<()>,
        )>,
    >,
}

impl FeedFault {
    pub fn new(inner: Arc<MemoryStore>, feed: Feed) -> Arc<Self> {
        Arc::new(Self {
            inner,
            feed: std::sync::atomic::AtomicU8::new(feed as u8),
            panic_on_fenced_write: std::sync::atomic::AtomicBool::new(false),
            lease_reads: std::sync::atomic::AtomicUsize::new(0),
            token_reads: std::sync::atomic::AtomicUsize::new(0),
            feed_reads: std::sync::atomic::AtomicUsize::new(0),
            hold_token_reads: std::sync::Mutex::new(None),
        })
    }

    /// How many token records were read.
    pub fn token_reads(&self) -> usize {
        self.token_reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many times the change feed was read.
    pub fn feed_reads(&self) -> usize {
        self.feed_reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The next token read reads the record, says so on the first channel, and returns it
    /// only once the second is sent to (or dropped): a reader that read before a change.
    pub fn hold_next_token_read(
        &self,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        *self.hold_token_reads.lock().unwrap() = Some((arrived_tx, release_rx));
        (arrived_rx, release_tx)
    }

    /// How many times a lease was read (a waiting process polls it).
    pub fn lease_reads(&self) -> usize {
        self.lease_reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// From now on a refresh's fenced write panics (a bug in a backend, say).
    pub fn panic_on_fenced_write(&self) {
        self.panic_on_fenced_write
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set(&self, feed: Feed) {
        self.feed
            .store(feed as u8, std::sync::atomic::Ordering::SeqCst);
    }

    fn feed(&self) -> u8 {
        self.feed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Store for FeedFault {
    fn capabilities(&self) -> granary_store::Capabilities {
        self.inner.capabilities()
    }
    // The queries go to the store's own (not the trait's scanning defaults, whose token
    // reads would be counted).
    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> granary_store::Result<Vec<granary_store::InstanceToken>> {
        self.inner
            .tokens_expiring_before(before, after, limit)
            .await
    }
    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> granary_store::Result<Vec<granary_store::InstanceToken>> {
        self.inner
            .tokens_obtained_before(before, after, limit)
            .await
    }
    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &granary_store::InstanceFilter,
    ) -> granary_store::Result<Vec<granary_store::InstanceWithToken>> {
        self.inner.list_instances_page(after, limit, filter).await
    }
    async fn put_integration(&self, i: &granary_store::Integration) -> granary_store::Result<()> {
        self.inner.put_integration(i).await
    }
    async fn get_integration(
        &self,
        name: &str,
    ) -> granary_store::Result<Option<granary_store::Integration>> {
        self.inner.get_integration(name).await
    }
    async fn list_integrations(&self) -> granary_store::Result<Vec<granary_store::Integration>> {
        self.inner.list_integrations().await
    }
    async fn delete_integration(&self, name: &str) -> granary_store::Result<bool> {
        self.inner.delete_integration(name).await
    }
    async fn create_instance(&self, i: &granary_store::Instance) -> granary_store::Result<u64> {
        self.inner.create_instance(i).await
    }
    async fn get_instance(
        &self,
        id: &str,
    ) -> granary_store::Result<Option<granary_store::Instance>> {
        self.inner.get_instance(id).await
    }
    async fn list_instances(&self) -> granary_store::Result<Vec<granary_store::Instance>> {
        self.inner.list_instances().await
    }
    async fn update_instance(&self, i: &granary_store::Instance) -> granary_store::Result<u64> {
        self.inner.update_instance(i).await
    }
    async fn delete_instance(&self, id: &str) -> granary_store::Result<bool> {
        self.inner.delete_instance(id).await
    }
    async fn put_pending(
        &self,
        p: &granary_store::PendingAuthorization,
    ) -> granary_store::Result<()> {
        self.inner.put_pending(p).await
    }
    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> granary_store::Result<Option<granary_store::PendingAuthorization>> {
        self.inner.take_pending(state, now).await
    }
    async fn purge_expired_pendings(&self, now: Timestamp) -> granary_store::Result<u64> {
        self.inner.purge_expired_pendings(now).await
    }
    async fn get_token(
        &self,
        id: &str,
    ) -> granary_store::Result<Option<granary_store::TokenRecord>> {
        self.token_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let read = self.inner.get_token(id).await;
        let hold = self.hold_token_reads.lock().unwrap().take();
        if let Some((arrived, release)) = hold {
            let _ = arrived.send(());
            let _ = release.await;
        }
        read
    }
    async fn put_token(
        &self,
        id: &str,
        token: &granary_store::TokenRecord,
        expected: Option<u64>,
    ) -> granary_store::Result<u64> {
        self.inner.put_token(id, token, expected).await
    }
    async fn put_token_fenced(
        &self,
        id: &str,
        token: &granary_store::TokenRecord,
        expected: u64,
        holder: &str,
        now: Timestamp,
    ) -> granary_store::Result<u64> {
        assert!(
            !self
                .panic_on_fenced_write
                .load(std::sync::atomic::Ordering::SeqCst),
            "the test store panics at a fenced write"
        );
        self.inner
            .put_token_fenced(id, token, expected, holder, now)
            .await
    }
    async fn delete_token(&self, id: &str, expected: Option<u64>) -> granary_store::Result<bool> {
        self.inner.delete_token(id, expected).await
    }
    async fn try_acquire_lease(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> granary_store::Result<bool> {
        self.inner.try_acquire_lease(id, holder, now, ttl).await
    }
    async fn release_lease(&self, id: &str, holder: &str) -> granary_store::Result<bool> {
        self.inner.release_lease(id, holder).await
    }
    async fn get_lease(&self, id: &str) -> granary_store::Result<Option<granary_store::Lease>> {
        self.lease_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get_lease(id).await
    }
    async fn put_key_check(
        &self,
        check: &granary_store::Sealed,
        replace: bool,
    ) -> granary_store::Result<granary_store::Sealed> {
        self.inner.put_key_check(check, replace).await
    }
    async fn latest_change(&self) -> granary_store::Result<u64> {
        if self.feed() == Feed::Failing as u8 {
            return Err(granary_store::Error::backend(
                "the feed fails (test)",
                std::io::Error::other("test"),
            ));
        }
        self.inner.latest_change().await
    }
    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> granary_store::Result<granary_store::Changes> {
        self.feed_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let feed = self.feed();
        if feed == Feed::Failing as u8 {
            return Err(granary_store::Error::backend(
                "the feed fails (test)",
                std::io::Error::other("test"),
            ));
        }
        let mut changes = self.inner.changes_since(after, limit).await?;
        if feed == Feed::Hidden as u8 {
            changes.changes.clear();
        }
        if feed == Feed::Missed as u8 {
            changes.changes.clear();
            changes.missed = true;
        }
        Ok(changes)
    }
}
