//! The suite must fail a store that breaks a contract, naming that contract: for every check
//! in `CHECKS`, a store with one bug under which that check fails (alone, or with a named set
//! of other checks that guard the same behaviour), while a store without the bug passes.
//!
//! The checks over one store run on a `MemoryStore` wrapped by [`Broken`]. The checks that
//! need a durable store shared between processes run on a wrapped `SqliteStore` with child
//! processes: this target has `harness = false`, so a child started by a check (this
//! executable again) reaches `granary_store_testkit::main`, and its [`Broken`] wrapper reads
//! its bug from a marker file the parent left in the store's folder.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use granary_store::{
    AdminSession, ApiKeyRecord, CHANGES_KEPT, Capabilities, Change, Changes, DeliveryAttempt,
    DeliveryOutcome, Error, Instance, InstanceCounts, InstanceFilter, InstanceStatus,
    InstanceToken, InstanceWithToken, Integration, Lease, MemoryStore, PendingAuthorization,
    ReconnectLink, Result, Store, Timestamp, TokenRecord, WebhookDelivery, WebhookEndpoint,
    select_due,
};
use granary_store_sqlite::SqliteStore;
use granary_store_testkit::{Backend, CHECKS, Options, Outcome, Report, run_all};

macro_rules! bugs {
    ($($bug:ident),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Bug { $($bug),* }
        impl Bug {
            const ALL: &[Bug] = &[$(Bug::$bug),*];
        }
    };
}

bugs![
    None,
    // Records.
    IntegrationPutKeepsFirst,
    IntegrationsListedReversed,
    InstanceDropsHeaders,
    InstanceDropsTokenLifetime,
    InstanceDropsConnection,
    InstanceDropsProfile,
    UpdateKeepsConnectionAndProfile,
    CreateOverwrites,
    UpdateIgnoresVersion,
    DeleteDoesNothing,
    ReleaseOfMissingSaysTrue,
    SecretTruncated,
    // Pending authorizations.
    TakeKeepsPending,
    TakeReturnsExpired,
    TakeNotAtomic,
    // Tokens.
    TokenLosesRetryAt,
    TokenDropsKept,
    TokenCasKeepsKept,
    TokenIgnoresVersion,
    TokenDeleteIgnoresVersion,
    TokenCasNotAtomic,
    TokenWriteBack,
    // Leases.
    LeaseNotAtomic,
    LeaseNeverExpires,
    LeaseTakesOver,
    ReleaseByAnyone,
    // Fenced writes.
    FenceIgnoresLease,
    FenceAcceptsExpiredLease,
    // The change feed, kept by the wrapper itself (`OwnFeed` is that feed without a bug).
    OwnFeed,
    FeedSkipsTokenDelete,
    FeedOnFailedWrites,
    FeedIgnoresLimit,
    FeedSilentGap,
    FeedSeqNotAtomic,
    FeedInProcess,
    // The key check.
    KeyCheckAlwaysReplaces,
    // The queries answered from an index.
    DueIgnoresBefore,
    DueByInstance,
    DueIgnoresCursor,
    DueStaleExpiry,
    ObtainedByExpiry,
    PageRepeatsCursor,
    PageWithoutTokens,
    PageIgnoresFilter,
    CountsMissDisabled,
    // Admin sessions, their banners, API keys.
    SessionCreateOverwrites,
    SessionGetReturnsExpired,
    BannerTakeKeeps,
    BannerTakeNotAtomic,
    ApiKeyCreateOverwrites,
    RevokedKeyStillFound,
    // Sessions and API keys kept in this process's memory (`own`), not in the store.
    ServerStateInProcess,
    // Webhooks and reconnect links.
    EndpointPutKeepsFirst,
    EndpointDeleteKeepsDeliveries,
    EnqueueNotAllOrNone,
    ClaimTwice,
    ClaimNotAtomic,
    FinishIgnoresHolder,
    FinishAcceptsExpiredClaim,
    LogOldestFirst,
    PurgeIgnoresBefore,
    LinkFindTakes,
    LinkCreateOverwrites,
    LinkTakeReturnsExpired,
    LinkTakeNotAtomic,
    // Webhooks and reconnect links kept in this process's memory (`own`), not in the store.
    WebhooksInProcess,
];

impl Bug {
    fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.iter().copied().find(|b| format!("{b:?}") == name)
    }

    fn own_feed(self) -> bool {
        matches!(
            self,
            Bug::OwnFeed
                | Bug::FeedSkipsTokenDelete
                | Bug::FeedOnFailedWrites
                | Bug::FeedIgnoresLimit
                | Bug::FeedSilentGap
                | Bug::FeedSeqNotAtomic
                | Bug::FeedInProcess
        )
    }
}

/// A feed kept by the wrapper, in this process's memory.
#[derive(Default)]
struct Feed {
    last: u64,
    changes: VecDeque<Change>,
    /// Changes were dropped without `missed` ever being reported (the gap bug).
    silent: bool,
}

struct Broken {
    inner: Arc<dyn Store>,
    bug: Bug,
    feed: Mutex<Feed>,
    written_back: Mutex<BTreeMap<String, TokenRecord>>,
    /// Keys revoked while the bug `RevokedKeyStillFound` is on, by digest.
    revoked: Mutex<BTreeMap<String, ApiKeyRecord>>,
    /// Where sessions and API keys go under `ServerStateInProcess`.
    own: Arc<dyn Store>,
    /// The expiry of each instance's first token write: a due index never updated
    /// (`DueStaleExpiry`).
    first_expiry: Mutex<BTreeMap<String, Option<Timestamp>>>,
    /// The deliveries of deleted endpoints, still listed (`EndpointDeleteKeepsDeliveries`).
    orphans: Mutex<BTreeMap<String, Vec<WebhookDelivery>>>,
    /// The deliveries handed out by the last claim, handed out once more (`ClaimTwice`).
    handed: Mutex<Vec<WebhookDelivery>>,
}

#[derive(PartialEq)]
enum Write {
    Record,
    TokenDelete,
}

impl Broken {
    fn new(inner: Arc<dyn Store>, bug: Bug) -> Self {
        Self {
            inner,
            bug,
            feed: Mutex::new(Feed::default()),
            written_back: Mutex::new(BTreeMap::new()),
            revoked: Mutex::new(BTreeMap::new()),
            own: Arc::new(MemoryStore::new()),
            first_expiry: Mutex::new(BTreeMap::new()),
            orphans: Mutex::new(BTreeMap::new()),
            handed: Mutex::new(Vec::new()),
        }
    }

    /// Where this store keeps webhooks and reconnect links: the wrapped store, or (the bug)
    /// this process's memory.
    fn webhooks(&self) -> &dyn Store {
        if self.bug == Bug::WebhooksInProcess {
            self.own.as_ref()
        } else {
            self.inner.as_ref()
        }
    }

    /// Every delivery of every endpoint.
    async fn every_delivery(&self) -> Result<Vec<WebhookDelivery>> {
        let mut all = Vec::new();
        for endpoint in self.webhooks().list_webhook_endpoints().await? {
            all.extend(
                self.webhooks()
                    .list_deliveries(&endpoint.id, usize::MAX)
                    .await?,
            );
        }
        Ok(all)
    }

    /// Where this store keeps sessions and API keys: the wrapped store, or (the bug) this
    /// process's memory.
    fn server_state(&self) -> &dyn Store {
        if self.bug == Bug::ServerStateInProcess {
            self.own.as_ref()
        } else {
            self.inner.as_ref()
        }
    }

    fn feed(&self) -> std::sync::MutexGuard<'_, Feed> {
        self.feed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends to the wrapper's own feed after a write (`changed`: it succeeded and changed
    /// something).
    async fn record(&self, instance: &str, changed: bool, write: Write) {
        if !self.bug.own_feed()
            || (!changed && self.bug != Bug::FeedOnFailedWrites)
            || (write == Write::TokenDelete && self.bug == Bug::FeedSkipsTokenDelete)
        {
            return;
        }
        let seq = self.feed().last + 1;
        if self.bug == Bug::FeedSeqNotAtomic {
            // Number read, other tasks run, then the change appended: a check-then-act race.
            tokio::task::yield_now().await;
        }
        let mut feed = self.feed();
        feed.last = feed.last.max(seq);
        feed.changes.push_back(Change {
            seq,
            instance: instance.to_string(),
        });
        let kept = usize::try_from(CHANGES_KEPT).unwrap_or(usize::MAX);
        if feed.changes.len() > kept + 256 {
            let dropped = feed.changes.len() - kept;
            feed.changes.drain(..dropped);
            feed.silent = self.bug == Bug::FeedSilentGap;
        }
    }

    async fn record_result<T>(&self, instance: &str, result: &Result<T>, write: Write) {
        self.record(instance, result.is_ok(), write).await;
    }
}

fn conflict(instance: &str, why: &str) -> Error {
    Error::conflict(format!("token of instance `{instance}`"), why)
}

#[async_trait]
impl Store for Broken {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        if self.bug == Bug::IntegrationPutKeepsFirst
            && self
                .inner
                .get_integration(&integration.name)
                .await?
                .is_some()
        {
            return Ok(());
        }
        self.inner.put_integration(integration).await
    }
    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        self.inner.get_integration(name).await
    }
    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        let mut list = self.inner.list_integrations().await?;
        if self.bug == Bug::IntegrationsListedReversed {
            list.reverse();
        }
        Ok(list)
    }
    async fn delete_integration(&self, name: &str) -> Result<bool> {
        self.inner.delete_integration(name).await
    }
    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        let mut instance = instance.clone();
        match self.bug {
            Bug::InstanceDropsHeaders => instance.extra_token_headers.clear(),
            Bug::InstanceDropsTokenLifetime => instance.token_lifetime = None,
            Bug::InstanceDropsConnection => instance.connection.clear(),
            Bug::InstanceDropsProfile => instance.profile = None,
            Bug::SecretTruncated => {
                if let Some(secret) = &instance.client_secret {
                    let bytes = secret.as_bytes();
                    let kept = &bytes[..bytes.len().min(65_535)];
                    instance.client_secret = Some(granary_store::Sealed::new(kept.to_vec()));
                }
            }
            Bug::CreateOverwrites => {
                if let Some(current) = self.inner.get_instance(&instance.id).await? {
                    instance.version = current.version;
                    let result = self.inner.update_instance(&instance).await.map(|_| 1);
                    self.record_result(&instance.id, &result, Write::Record)
                        .await;
                    return result;
                }
            }
            _ => {}
        }
        let result = self.inner.create_instance(&instance).await;
        self.record_result(&instance.id, &result, Write::Record)
            .await;
        result
    }
    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        self.inner.get_instance(id).await
    }
    async fn list_instances(&self) -> Result<Vec<Instance>> {
        self.inner.list_instances().await
    }
    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        let mut instance = instance.clone();
        match self.bug {
            Bug::UpdateIgnoresVersion => {
                if let Some(current) = self.inner.get_instance(&instance.id).await? {
                    instance.version = current.version;
                }
            }
            Bug::InstanceDropsConnection => instance.connection.clear(),
            Bug::InstanceDropsProfile => instance.profile = None,
            Bug::UpdateKeepsConnectionAndProfile => {
                // An UPDATE statement that leaves the new columns out.
                if let Some(current) = self.inner.get_instance(&instance.id).await? {
                    instance.connection = current.connection;
                    instance.profile = current.profile;
                }
            }
            _ => {}
        }
        let result = self.inner.update_instance(&instance).await;
        self.record_result(&instance.id, &result, Write::Record)
            .await;
        result
    }
    async fn delete_instance(&self, id: &str) -> Result<bool> {
        if self.bug == Bug::DeleteDoesNothing {
            return Ok(self.inner.get_instance(id).await?.is_some());
        }
        let result = self.inner.delete_instance(id).await;
        let changed = matches!(result, Ok(true));
        self.record(id, changed, Write::Record).await;
        result
    }
    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        self.inner.put_pending(pending).await
    }
    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        match self.bug {
            Bug::TakeReturnsExpired => self.inner.take_pending(state, Timestamp::EPOCH).await,
            Bug::TakeKeepsPending => {
                let taken = self.inner.take_pending(state, now).await?;
                if let Some(pending) = &taken {
                    self.inner.put_pending(pending).await?;
                }
                Ok(taken)
            }
            Bug::TakeNotAtomic => {
                // Read, let others run, then remove: a check-then-act race.
                let taken = self.inner.take_pending(state, now).await?;
                if let Some(pending) = &taken {
                    self.inner.put_pending(pending).await?;
                    tokio::task::yield_now().await;
                    self.inner.take_pending(state, now).await?;
                }
                Ok(taken)
            }
            _ => self.inner.take_pending(state, now).await,
        }
    }
    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        self.inner.purge_expired_pendings(now).await
    }
    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        if self.bug == Bug::TokenWriteBack {
            let cached = self
                .written_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(instance)
                .cloned();
            if cached.is_some() {
                return Ok(cached);
            }
        }
        self.inner.get_token(instance).await
    }
    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected: Option<u64>,
    ) -> Result<u64> {
        self.first_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(instance.to_string())
            .or_insert(token.expires_at);
        let mut token = token.clone();
        match self.bug {
            Bug::TokenDropsKept => token.kept.clear(),
            Bug::TokenCasKeepsKept if expected.is_some() => {
                // A compare-and-swap UPDATE that leaves the kept values out.
                if let Some(current) = self.inner.get_token(instance).await? {
                    token.kept = current.kept;
                }
            }
            _ => {}
        }
        let result = match self.bug {
            Bug::TokenLosesRetryAt => {
                if let Some(outcome) = &mut token.last_refresh {
                    if let granary_store::RefreshResult::Failed { retry_at, .. } =
                        &mut outcome.result
                    {
                        *retry_at = None;
                    }
                }
                self.inner.put_token(instance, &token, expected).await
            }
            Bug::TokenIgnoresVersion => loop {
                // Writes over whatever is stored, retrying until it lands.
                let current = self.inner.get_token(instance).await?.map(|t| t.version);
                match self.inner.put_token(instance, &token, current).await {
                    Err(Error::Conflict { .. }) => continue,
                    other => break other,
                }
            },
            Bug::TokenCasNotAtomic => {
                let current = self.inner.get_token(instance).await?.map(|t| t.version);
                if current != expected {
                    return Err(conflict(instance, "stale"));
                }
                tokio::task::yield_now().await;
                let fresh = self.inner.get_token(instance).await?.map(|t| t.version);
                self.inner.put_token(instance, &token, fresh).await
            }
            Bug::TokenWriteBack => {
                // Acknowledged from this process's memory, never written to the store.
                if self.inner.get_instance(instance).await?.is_none() {
                    return Err(Error::not_found(format!("instance `{instance}`")));
                }
                let current = self.get_token(instance).await?.map(|t| t.version);
                if current != expected {
                    return Err(conflict(instance, "stale"));
                }
                token.version = current.map_or(1, |v| v + 1);
                self.written_back
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(instance.to_string(), token.clone());
                Ok(token.version)
            }
            _ => self.inner.put_token(instance, &token, expected).await,
        };
        self.record_result(instance, &result, Write::Record).await;
        result
    }
    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let mut token = token.clone();
        match self.bug {
            Bug::TokenDropsKept => token.kept.clear(),
            Bug::TokenCasKeepsKept => {
                if let Some(current) = self.inner.get_token(instance).await? {
                    token.kept = current.kept;
                }
            }
            _ => {}
        }
        let token = &token;
        let result = match self.bug {
            Bug::FenceIgnoresLease => {
                self.inner
                    .put_token(instance, token, Some(expected_version))
                    .await
            }
            Bug::FenceAcceptsExpiredLease => {
                let lease = self.inner.get_lease(instance).await?;
                if self.inner.get_instance(instance).await?.is_none() {
                    Err(Error::not_found(format!("instance `{instance}`")))
                } else if lease.is_some_and(|l| l.holder == holder && l.expires >= now) {
                    self.inner
                        .put_token(instance, token, Some(expected_version))
                        .await
                } else {
                    Err(conflict(instance, "no live lease"))
                }
            }
            _ => {
                self.inner
                    .put_token_fenced(instance, token, expected_version, holder, now)
                    .await
            }
        };
        self.record_result(instance, &result, Write::Record).await;
        result
    }
    async fn delete_token(&self, instance: &str, expected: Option<u64>) -> Result<bool> {
        let result = if self.bug == Bug::TokenDeleteIgnoresVersion {
            self.inner.delete_token(instance, None).await
        } else {
            self.inner.delete_token(instance, expected).await
        };
        let changed = matches!(result, Ok(true));
        self.record(instance, changed, Write::TokenDelete).await;
        result
    }
    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        match self.bug {
            Bug::LeaseNeverExpires => {
                if let Some(lease) = self.inner.get_lease(instance).await? {
                    if lease.holder != holder {
                        return Ok(false);
                    }
                }
            }
            Bug::LeaseNotAtomic => {
                if let Some(lease) = self.inner.get_lease(instance).await? {
                    if !lease.can_be_taken_by(holder, now) {
                        return Ok(false);
                    }
                }
                tokio::task::yield_now().await;
                if let Some(lease) = self.inner.get_lease(instance).await? {
                    self.inner.release_lease(instance, &lease.holder).await?;
                }
            }
            Bug::LeaseTakesOver => loop {
                // Takes the lease from whoever holds it, live or not, until it has it.
                if let Some(lease) = self.inner.get_lease(instance).await? {
                    self.inner.release_lease(instance, &lease.holder).await?;
                }
                if self
                    .inner
                    .try_acquire_lease(instance, holder, now, ttl)
                    .await?
                {
                    return Ok(true);
                }
            },
            _ => {}
        }
        self.inner
            .try_acquire_lease(instance, holder, now, ttl)
            .await
    }
    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        if self.bug == Bug::ReleaseOfMissingSaysTrue
            && self.inner.get_instance(instance).await?.is_none()
        {
            return Ok(true);
        }
        if self.bug == Bug::ReleaseByAnyone {
            if let Some(lease) = self.inner.get_lease(instance).await? {
                return self.inner.release_lease(instance, &lease.holder).await;
            }
        }
        self.inner.release_lease(instance, holder).await
    }
    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        self.inner.get_lease(instance).await
    }
    async fn latest_change(&self) -> Result<u64> {
        if self.bug.own_feed() {
            return Ok(self.feed().last);
        }
        self.inner.latest_change().await
    }
    async fn put_key_check(
        &self,
        check: &granary_store::Sealed,
        replace: bool,
    ) -> Result<granary_store::Sealed> {
        let replace = replace || self.bug == Bug::KeyCheckAlwaysReplaces;
        self.inner.put_key_check(check, replace).await
    }
    async fn create_session(&self, session: &AdminSession) -> Result<()> {
        if self.bug == Bug::SessionCreateOverwrites {
            self.server_state().delete_session(&session.digest).await?;
        }
        self.server_state().create_session(session).await
    }
    async fn get_session(&self, digest: &str, now: Timestamp) -> Result<Option<AdminSession>> {
        let now = if self.bug == Bug::SessionGetReturnsExpired {
            Timestamp::EPOCH
        } else {
            now
        };
        self.server_state().get_session(digest, now).await
    }
    async fn delete_session(&self, digest: &str) -> Result<bool> {
        self.server_state().delete_session(digest).await
    }
    async fn set_session_banner(&self, digest: &str, banner: &str, now: Timestamp) -> Result<bool> {
        self.server_state()
            .set_session_banner(digest, banner, now)
            .await
    }
    async fn take_session_banner(&self, digest: &str, now: Timestamp) -> Result<Option<String>> {
        let taken = self.server_state().take_session_banner(digest, now).await?;
        match (self.bug, &taken) {
            (Bug::BannerTakeKeeps, Some(banner)) => {
                self.server_state()
                    .set_session_banner(digest, banner, now)
                    .await?;
            }
            (Bug::BannerTakeNotAtomic, Some(banner)) => {
                // Read, let others run, then remove: a check-then-act race.
                self.server_state()
                    .set_session_banner(digest, banner, now)
                    .await?;
                tokio::task::yield_now().await;
                self.server_state().take_session_banner(digest, now).await?;
            }
            _ => {}
        }
        Ok(taken)
    }
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        self.server_state().purge_expired_sessions(now).await
    }
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        if self.bug == Bug::ApiKeyCreateOverwrites {
            self.server_state().revoke_api_key(&key.id).await?;
        }
        self.server_state().create_api_key(key).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.server_state().list_api_keys().await
    }
    async fn find_api_key(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        let revoked = self
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned();
        match revoked {
            Some(key) => Ok(Some(key)),
            None => self.server_state().find_api_key(digest).await,
        }
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        if self.bug == Bug::RevokedKeyStillFound {
            let keys = self.server_state().list_api_keys().await?;
            if let Some(key) = keys.into_iter().find(|k| k.id == id) {
                self.revoked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.digest.clone(), key);
            }
        }
        self.server_state().revoke_api_key(id).await
    }

    async fn put_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        if self.bug == Bug::EndpointPutKeepsFirst {
            let listed = self.webhooks().list_webhook_endpoints().await?;
            if listed.iter().any(|e| e.id == endpoint.id) {
                return Ok(());
            }
        }
        self.webhooks().put_webhook_endpoint(endpoint).await
    }
    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.webhooks().list_webhook_endpoints().await
    }
    async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool> {
        if self.bug == Bug::EndpointDeleteKeepsDeliveries {
            let kept = self.webhooks().list_deliveries(id, usize::MAX).await?;
            self.orphans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.to_string())
                .or_default()
                .extend(kept);
        }
        self.webhooks().delete_webhook_endpoint(id).await
    }
    async fn enqueue_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        if self.bug == Bug::EnqueueNotAllOrNone {
            for delivery in deliveries {
                self.webhooks()
                    .enqueue_deliveries(std::slice::from_ref(delivery))
                    .await?;
            }
            return Ok(());
        }
        self.webhooks().enqueue_deliveries(deliveries).await
    }
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        match self.bug {
            Bug::ClaimNotAtomic => {
                // Read the claimable ones, let others run, then claim: a check-then-act race.
                let mut due: Vec<WebhookDelivery> = self
                    .every_delivery()
                    .await?
                    .into_iter()
                    .filter(|d| d.is_claimable(now))
                    .collect();
                due.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
                due.truncate(limit);
                tokio::task::yield_now().await;
                self.webhooks()
                    .claim_deliveries(now, holder, until, limit)
                    .await?;
                for d in &mut due {
                    d.claim(holder, until);
                }
                Ok(due)
            }
            Bug::ClaimTwice => {
                let mut claimed = self
                    .webhooks()
                    .claim_deliveries(now, holder, until, limit)
                    .await?;
                let before = std::mem::replace(
                    &mut *self.handed.lock().unwrap_or_else(|p| p.into_inner()),
                    claimed.clone(),
                );
                claimed.extend(before);
                Ok(claimed)
            }
            _ => {
                self.webhooks()
                    .claim_deliveries(now, holder, until, limit)
                    .await
            }
        }
    }
    async fn finish_delivery_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let mut holder = holder.to_string();
        let mut now = now;
        match self.bug {
            Bug::FinishIgnoresHolder => {
                let all = self.every_delivery().await?;
                if let Some(by) = all
                    .iter()
                    .find(|d| d.id == id)
                    .and_then(|d| d.claimed_by.clone())
                {
                    holder = by;
                }
            }
            Bug::FinishAcceptsExpiredClaim => now = Timestamp::EPOCH,
            _ => {}
        }
        self.webhooks()
            .finish_delivery_attempt(id, &holder, now, attempt, outcome)
            .await
    }
    async fn list_deliveries(&self, endpoint: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        let mut listed = self.webhooks().list_deliveries(endpoint, limit).await?;
        if let Some(orphans) = self
            .orphans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
        {
            listed.extend(orphans.iter().cloned());
        }
        if self.bug == Bug::LogOldestFirst {
            listed.reverse();
        }
        Ok(listed)
    }
    async fn purge_finished_deliveries(&self, before: Timestamp) -> Result<u64> {
        let before = if self.bug == Bug::PurgeIgnoresBefore {
            Timestamp::from_unix_millis(i64::MAX)
        } else {
            before
        };
        self.webhooks().purge_finished_deliveries(before).await
    }
    async fn create_reconnect_link(&self, link: &ReconnectLink) -> Result<()> {
        if self.bug == Bug::LinkCreateOverwrites {
            self.webhooks()
                .take_reconnect_link(&link.digest, Timestamp::EPOCH)
                .await?;
        }
        self.webhooks().create_reconnect_link(link).await
    }
    async fn find_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        if self.bug == Bug::LinkFindTakes {
            return self.webhooks().take_reconnect_link(digest, now).await;
        }
        self.webhooks().find_reconnect_link(digest, now).await
    }
    async fn take_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        match self.bug {
            Bug::LinkTakeReturnsExpired => {
                self.webhooks()
                    .take_reconnect_link(digest, Timestamp::EPOCH)
                    .await
            }
            Bug::LinkTakeNotAtomic => {
                // Read, let others run, then remove: a check-then-act race.
                let found = self.webhooks().find_reconnect_link(digest, now).await?;
                tokio::task::yield_now().await;
                self.webhooks().take_reconnect_link(digest, now).await?;
                Ok(found)
            }
            _ => self.webhooks().take_reconnect_link(digest, now).await,
        }
    }
    async fn purge_expired_reconnect_links(&self, now: Timestamp) -> Result<u64> {
        self.webhooks().purge_expired_reconnect_links(now).await
    }
    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        let far = Timestamp::from_unix_millis(i64::MAX);
        match self.bug {
            Bug::DueIgnoresBefore => self.inner.tokens_expiring_before(far, after, limit).await,
            Bug::DueIgnoresCursor => self.inner.tokens_expiring_before(before, None, limit).await,
            Bug::DueByInstance => {
                let mut all = self
                    .inner
                    .tokens_expiring_before(before, None, usize::MAX)
                    .await?;
                all.sort_by(|a, b| a.instance.cmp(&b.instance));
                let after = after.map(|(_, id)| id);
                Ok(all
                    .into_iter()
                    .filter(|t| after.is_none_or(|id| t.instance.as_str() > id))
                    .take(limit)
                    .collect())
            }
            Bug::DueStaleExpiry => {
                let first = self
                    .first_expiry
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let stale: Vec<(String, TokenRecord)> = self
                    .inner
                    .tokens_obtained_before(far, None, usize::MAX)
                    .await?
                    .into_iter()
                    .map(|t| {
                        let mut token = t.token;
                        if let Some(expires) = first.get(&t.instance) {
                            token.expires_at = *expires;
                        }
                        (t.instance, token)
                    })
                    .collect();
                Ok(select_due(
                    stale.iter().map(|(id, token)| (id.as_str(), token)),
                    |token| token.expires_at,
                    before,
                    after,
                    limit,
                ))
            }
            _ => {
                self.inner
                    .tokens_expiring_before(before, after, limit)
                    .await
            }
        }
    }
    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        if self.bug == Bug::ObtainedByExpiry {
            return self
                .inner
                .tokens_expiring_before(before, after, limit)
                .await;
        }
        self.inner
            .tokens_obtained_before(before, after, limit)
            .await
    }
    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        match self.bug {
            Bug::PageRepeatsCursor => {
                // `>=` instead of `>`: the last instance of a page starts the next.
                let mut page = Vec::new();
                if let Some(id) = after {
                    if let Some(instance) = self.inner.get_instance(id).await? {
                        let token = self.inner.get_token(id).await?;
                        page.push(InstanceWithToken { instance, token });
                    }
                }
                let rest = self
                    .inner
                    .list_instances_page(after, limit.saturating_sub(page.len()), filter)
                    .await?;
                page.extend(rest);
                Ok(page)
            }
            Bug::PageWithoutTokens => Ok(self
                .inner
                .list_instances_page(after, limit, filter)
                .await?
                .into_iter()
                .map(|entry| InstanceWithToken {
                    token: None,
                    ..entry
                })
                .collect()),
            Bug::PageIgnoresFilter => {
                self.inner
                    .list_instances_page(after, limit, &InstanceFilter::all())
                    .await
            }
            _ => self.inner.list_instances_page(after, limit, filter).await,
        }
    }
    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        let counts = self.inner.count_instances_by_status().await?;
        if self.bug == Bug::CountsMissDisabled {
            let mut without = InstanceCounts::default();
            for status in [
                InstanceStatus::New,
                InstanceStatus::Authorized,
                InstanceStatus::NeedsAuthorization,
            ] {
                without.add(status, counts.get(status));
            }
            return Ok(without);
        }
        Ok(counts)
    }
    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes> {
        if !self.bug.own_feed() {
            return self.inner.changes_since(after, limit).await;
        }
        let feed = self.feed();
        let oldest = feed.changes.front().map_or(feed.last + 1, |c| c.seq);
        let missed = !feed.silent && after < feed.last && after + 1 < oldest;
        let limit = if self.bug == Bug::FeedIgnoresLimit {
            usize::MAX
        } else {
            limit
        };
        let changes = feed
            .changes
            .iter()
            .filter(|c| c.seq > after)
            .take(limit)
            .cloned()
            .collect();
        Ok(Changes { changes, missed })
    }
}

/// Which store a [`Broken`] wraps.
#[derive(Clone, Copy, PartialEq)]
enum Inner {
    Memory,
    Sqlite,
}

/// Opens [`Broken`] stores; `bug: None` (a child process) reads the bug from the folder.
struct BrokenBackend {
    bug: Option<Bug>,
    inner: Inner,
}

const MARKER: &str = "broken-bug";

#[async_trait]
impl Backend for BrokenBackend {
    fn name(&self) -> &str {
        "broken"
    }
    async fn open(&self, dir: &Path) -> Result<Arc<dyn Store>> {
        let inner: Arc<dyn Store> = match self.inner {
            Inner::Memory => Arc::new(MemoryStore::new()),
            Inner::Sqlite => Arc::new(SqliteStore::open(dir.join("granary.db")).await?),
        };
        let marker = dir.join(MARKER);
        let bug = match self.bug {
            Some(bug) => {
                if self.inner == Inner::Sqlite {
                    std::fs::write(&marker, format!("{bug:?}"))
                        .map_err(|e| Error::backend("writing the bug marker", e))?;
                }
                bug
            }
            None => {
                let name = std::fs::read_to_string(&marker)
                    .map_err(|e| Error::backend("reading the bug marker", e))?;
                Bug::from_name(name.trim())
                    .ok_or_else(|| Error::unsupported(format!("unknown bug `{name}`")))?
            }
        };
        Ok(Arc::new(Broken::new(inner, bug)))
    }
}

/// The checks that need a durable store shared between processes (run on SQLite).
const PROCESS_CHECKS: &[&str] = &[
    "reopen_keeps_everything",
    "reopen_keeps_sessions_and_api_keys",
    "processes_race_banner",
    "reopen_keeps_webhooks",
    "processes_race_claims",
    "processes_race_lease",
    "processes_race_token_cas",
    "processes_see_changes",
    "processes_fence_token_put",
    "durable_after_sigkill",
];

/// One bug, the checks it must fail (exactly these), and words of the contract the first
/// of them must name.
struct Case {
    bug: Bug,
    fails: &'static [&'static str],
    contract: &'static str,
}

const fn case(bug: Bug, fails: &'static [&'static str], contract: &'static str) -> Case {
    Case {
        bug,
        fails,
        contract,
    }
}

/// Bugs for the checks over one store (on MemoryStore).
const STORE_CASES: &[Case] = &[
    case(
        Bug::IntegrationPutKeepsFirst,
        &["integration_round_trip"],
        "a put replaces",
    ),
    case(
        Bug::IntegrationsListedReversed,
        &["integration_list_and_delete"],
        "ordered by name",
    ),
    case(
        Bug::InstanceDropsHeaders,
        &["instance_round_trip", "instance_create_rules"],
        "stores every field",
    ),
    case(
        Bug::InstanceDropsTokenLifetime,
        &["instance_round_trip", "instance_create_rules"],
        "stores every field",
    ),
    case(
        Bug::InstanceDropsConnection,
        &[
            "instance_round_trip",
            "instance_create_rules",
            "instance_update_cas",
        ],
        "stores every field",
    ),
    case(
        Bug::InstanceDropsProfile,
        &[
            "instance_round_trip",
            "instance_create_rules",
            "instance_update_cas",
        ],
        "stores every field",
    ),
    case(
        Bug::UpdateKeepsConnectionAndProfile,
        &["instance_update_cas"],
        "update_instance writes only over the version",
    ),
    case(
        Bug::CreateOverwrites,
        &["instance_create_rules", "changes_not_on_failed_writes"],
        "AlreadyExists on a taken id",
    ),
    case(
        Bug::UpdateIgnoresVersion,
        &["instance_update_cas", "changes_not_on_failed_writes"],
        "with a stale version fails with Conflict",
    ),
    case(
        Bug::DeleteDoesNothing,
        &[
            "instance_list_and_delete",
            "integration_list_and_delete",
            "changes_every_write",
            "tokens_due_follow_writes",
        ],
        "also removes",
    ),
    case(
        Bug::ReleaseOfMissingSaysTrue,
        &["missing_keys"],
        "delete returns false",
    ),
    case(
        Bug::SecretTruncated,
        &["sealed_bytes_exact"],
        "opaque bytes kept unchanged",
    ),
    case(
        Bug::TakeKeepsPending,
        &[
            "pending_take_once",
            "pending_expiry",
            "pending_take_concurrent",
        ],
        "exactly once",
    ),
    case(
        Bug::TakeReturnsExpired,
        &["pending_expiry"],
        "never returns an expired",
    ),
    case(
        Bug::TakeNotAtomic,
        &["pending_take_concurrent"],
        "exactly one gets",
    ),
    case(
        Bug::TokenLosesRetryAt,
        &[
            "token_round_trip",
            "token_cas",
            "token_delete_is_compare_and_swap",
            "token_cas_concurrent",
            "token_put_fenced",
        ],
        "returns the record unchanged",
    ),
    case(
        Bug::TokenDropsKept,
        &[
            "token_round_trip",
            "token_cas",
            "token_delete_is_compare_and_swap",
            "token_cas_concurrent",
            "token_put_fenced",
        ],
        "returns the record unchanged",
    ),
    case(
        Bug::TokenCasKeepsKept,
        &[
            "token_cas",
            "token_delete_is_compare_and_swap",
            "token_cas_concurrent",
            "token_put_fenced",
        ],
        "stores the record as given (its kept values included)",
    ),
    case(
        Bug::TokenIgnoresVersion,
        &[
            "token_cas",
            "token_cas_concurrent",
            "changes_not_on_failed_writes",
        ],
        "never overwrites a newer token",
    ),
    case(
        Bug::TokenDeleteIgnoresVersion,
        &[
            "token_delete_is_compare_and_swap",
            "changes_not_on_failed_writes",
        ],
        "never removes a newer token",
    ),
    case(
        Bug::TokenCasNotAtomic,
        &["token_cas_concurrent"],
        "exactly one wins",
    ),
    case(
        Bug::LeaseNotAtomic,
        &["lease_exclusive_concurrent"],
        "exactly one gets a free lease",
    ),
    case(
        Bug::LeaseNeverExpires,
        &["lease_expiry_takeover", "token_put_fenced"],
        "takes over an expired lease",
    ),
    case(
        Bug::ReleaseByAnyone,
        &["lease_release_and_renew", "lease_expiry_takeover"],
        "only the holder",
    ),
    case(
        Bug::FenceIgnoresLease,
        &["token_put_fenced", "changes_not_on_failed_writes"],
        "unless the holder holds a live lease",
    ),
    case(
        Bug::FenceAcceptsExpiredLease,
        &["token_put_fenced"],
        "unless the holder holds a live lease",
    ),
    case(Bug::OwnFeed, &[], ""),
    case(
        Bug::DueIgnoresBefore,
        &["tokens_due_by_expiry", "tokens_due_follow_writes"],
        "with expires_at before the time",
    ),
    case(
        Bug::DueByInstance,
        &["tokens_due_by_expiry", "tokens_due_follow_writes"],
        "ordered by (expires_at, instance)",
    ),
    case(
        Bug::DueIgnoresCursor,
        &["tokens_due_by_expiry"],
        "after the cursor",
    ),
    case(
        Bug::DueStaleExpiry,
        &["tokens_due_follow_writes"],
        "reflect every token write and delete at once",
    ),
    case(
        Bug::ObtainedByExpiry,
        &["tokens_due_by_expiry", "tokens_due_follow_writes"],
        "likewise by obtained_at",
    ),
    case(
        Bug::PageRepeatsCursor,
        &["instances_page_and_counts"],
        "lists each instance once",
    ),
    case(
        Bug::PageWithoutTokens,
        &["instances_page_and_counts"],
        "with its token record",
    ),
    case(
        Bug::PageIgnoresFilter,
        &["instances_page_and_counts"],
        "only those passing the filter",
    ),
    case(
        Bug::CountsMissDisabled,
        &["instances_page_and_counts"],
        "counts every status",
    ),
    case(
        Bug::FeedSkipsTokenDelete,
        &["changes_every_write"],
        "appends exactly one change",
    ),
    case(
        Bug::FeedOnFailedWrites,
        &["changes_not_on_failed_writes"],
        "appends no change",
    ),
    case(
        Bug::FeedIgnoresLimit,
        &["changes_limit_and_paging", "changes_kept_or_missed"],
        "at most `limit` changes",
    ),
    case(
        Bug::FeedSilentGap,
        &["changes_kept_or_missed"],
        "never a silent gap",
    ),
    case(
        Bug::FeedSeqNotAtomic,
        &["changes_concurrent"],
        "distinct change numbers",
    ),
    case(
        Bug::KeyCheckAlwaysReplaces,
        &["key_check_first_wins"],
        "keeps it unless `replace`",
    ),
    case(
        Bug::SessionCreateOverwrites,
        &["session_round_trip", "session_expiry"],
        "AlreadyExists on a taken digest",
    ),
    case(
        Bug::SessionGetReturnsExpired,
        &["session_expiry"],
        "never returns a session expired",
    ),
    case(
        Bug::BannerTakeKeeps,
        &["session_banner_take_once", "session_banner_take_concurrent"],
        "exactly once",
    ),
    case(
        Bug::BannerTakeNotAtomic,
        &["session_banner_take_concurrent"],
        "exactly one gets the banner",
    ),
    case(
        Bug::ApiKeyCreateOverwrites,
        &["api_key_round_trip"],
        "AlreadyExists on a taken id or digest",
    ),
    case(
        Bug::RevokedKeyStillFound,
        &["api_key_revoke"],
        "no longer finds it by digest",
    ),
    case(
        Bug::EndpointPutKeepsFirst,
        &["webhook_endpoint_round_trip"],
        "a put with a stored id replaces it",
    ),
    case(
        Bug::EndpointDeleteKeepsDeliveries,
        &["webhook_endpoint_delete_cascades"],
        "deletes the endpoint's deliveries with it",
    ),
    case(
        Bug::EnqueueNotAllOrNone,
        &["delivery_enqueue_all_or_none"],
        "all or none",
    ),
    case(
        Bug::ClaimTwice,
        &[
            "delivery_claim_rules",
            "delivery_claim_concurrent",
            "delivery_finish_attempt",
        ],
        "whose claim is none or expired",
    ),
    case(
        Bug::ClaimNotAtomic,
        &["delivery_claim_concurrent"],
        "claimed by exactly one",
    ),
    case(
        Bug::FinishIgnoresHolder,
        &["delivery_finish_attempt"],
        "unless holder holds a live claim",
    ),
    case(
        Bug::FinishAcceptsExpiredClaim,
        &["delivery_finish_attempt"],
        "unless holder holds a live claim",
    ),
    case(
        Bug::LogOldestFirst,
        &["delivery_log_and_purge"],
        "newest created first",
    ),
    case(
        Bug::PurgeIgnoresBefore,
        &["delivery_log_and_purge"],
        "created before `before`",
    ),
    case(
        Bug::LinkFindTakes,
        &["reconnect_link_round_trip", "reconnect_link_expiry"],
        "does not take it",
    ),
    case(
        Bug::LinkCreateOverwrites,
        &["reconnect_link_round_trip", "reconnect_link_expiry"],
        "AlreadyExists on a taken digest",
    ),
    case(
        Bug::LinkTakeReturnsExpired,
        &["reconnect_link_expiry"],
        "never found nor taken",
    ),
    case(
        Bug::LinkTakeNotAtomic,
        &["reconnect_link_take_concurrent"],
        "exactly one gets the link",
    ),
];

/// Bugs for the checks with reopening and child processes (on SQLite, children included).
const PROCESS_CASES: &[Case] = &[
    case(
        Bug::FeedInProcess,
        &["reopen_keeps_everything", "processes_see_changes"],
        "change numbers survive a reopen",
    ),
    case(
        Bug::LeaseTakesOver,
        &["processes_race_lease", "reopen_keeps_everything"],
        "exclusive across processes",
    ),
    case(
        Bug::TokenIgnoresVersion,
        &["processes_race_token_cas"],
        "atomic across processes",
    ),
    case(
        Bug::FeedInProcess,
        &["processes_see_changes", "reopen_keeps_everything"],
        "shows in changes_since",
    ),
    case(
        Bug::FenceIgnoresLease,
        &["processes_fence_token_put"],
        "does not hold the live lease writes nothing",
    ),
    case(
        Bug::ServerStateInProcess,
        &[
            "reopen_keeps_sessions_and_api_keys",
            "processes_race_banner",
        ],
        "keeps admin sessions, their banners and API keys",
    ),
    case(
        Bug::BannerTakeKeeps,
        &["processes_race_banner"],
        "atomic across processes",
    ),
    case(
        Bug::TokenWriteBack,
        &[
            "durable_after_sigkill",
            "reopen_keeps_everything",
            "processes_race_token_cas",
            "processes_see_changes",
            "processes_fence_token_put",
        ],
        "last committed version",
    ),
    case(
        Bug::WebhooksInProcess,
        &["reopen_keeps_webhooks", "processes_race_claims"],
        "keeps webhook endpoints, deliveries",
    ),
];

async fn run(bug: Bug, inner: Inner, filters: &[&str]) -> Report {
    let mut options = Options::with_children();
    options.filters = filters.iter().map(|f| f.to_string()).collect();
    options.sigkill_rounds = 3;
    options.check_timeout = Duration::from_secs(60);
    run_all(
        &BrokenBackend {
            bug: Some(bug),
            inner,
        },
        &options,
    )
    .await
}

fn failed_checks(report: &Report) -> Vec<&'static str> {
    report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .map(|r| r.check)
        .collect()
}

/// Checks `report` against `case`; returns the checks it proved failing.
fn judge(case: &Case, report: &Report, failures: &mut Vec<String>) -> Vec<&'static str> {
    let failed: BTreeSet<&str> = report
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .map(|r| r.check)
        .collect();
    let expected: BTreeSet<&str> = case.fails.iter().copied().collect();
    if failed != expected {
        failures.push(format!(
            "{:?}: expected exactly {expected:?} to fail, {failed:?} failed: {:#?}",
            case.bug,
            report
                .results
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
                .collect::<Vec<_>>()
        ));
        return Vec::new();
    }
    for result in &report.results {
        if let Outcome::Failed(violation) = &result.outcome {
            if violation.contract.is_empty() {
                failures.push(format!(
                    "{:?}: {} failed without naming a contract",
                    case.bug, result.check
                ));
            }
            if Some(&result.check) == case.fails.first()
                && !violation.contract.contains(case.contract)
            {
                failures.push(format!(
                    "{:?}: {} should break a contract with \"{}\", broke \"{}\" ({})",
                    case.bug, result.check, case.contract, violation.contract, violation.detail
                ));
            }
        }
    }
    case.fails.to_vec()
}

async fn every_check_fails_a_store_with_its_bug() -> Vec<String> {
    let mut failures = Vec::new();
    let mut proven: BTreeSet<&str> = BTreeSet::new();

    // Without a bug, every check passes (those of capabilities not claimed skip).
    let clean = run(Bug::None, Inner::Memory, &[]).await;
    judge(&case(Bug::None, &[], ""), &clean, &mut failures);
    if clean.results.len() != CHECKS.len() || clean.skipped() != PROCESS_CHECKS.len() {
        failures.push(format!(
            "a correct memory store: {} results, {} skipped; expected {} and {}",
            clean.results.len(),
            clean.skipped(),
            CHECKS.len(),
            PROCESS_CHECKS.len()
        ));
    }
    let clean = run(Bug::None, Inner::Sqlite, PROCESS_CHECKS).await;
    judge(&case(Bug::None, &[], ""), &clean, &mut failures);
    if clean.passed() != PROCESS_CHECKS.len() {
        failures.push(format!(
            "a correct SQLite store passed {} of the {} process checks: {:?}",
            clean.passed(),
            PROCESS_CHECKS.len(),
            clean.lines()
        ));
    }

    for case in STORE_CASES {
        let report = run(case.bug, Inner::Memory, &[]).await;
        proven.extend(judge(case, &report, &mut failures));
        println!("{:?}: {:?} fail", case.bug, failed_checks(&report));
    }
    for case in PROCESS_CASES {
        let report = run(case.bug, Inner::Sqlite, PROCESS_CHECKS).await;
        proven.extend(judge(case, &report, &mut failures));
        println!(
            "{:?} (SQLite, child processes): fails {:?}",
            case.bug, case.fails
        );
    }

    let unproven: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|c| !proven.contains(c))
        .collect();
    if !unproven.is_empty() {
        failures.push(format!(
            "no bug proves that these checks can fail: {unproven:?}"
        ));
    }
    println!(
        "catches_broken_stores: {} of {} checks proven to fail a store with a bug",
        CHECKS.iter().filter(|c| proven.contains(*c)).count(),
        CHECKS.len()
    );
    failures
}

fn main() -> ExitCode {
    if granary_store_testkit::is_child_process() {
        return granary_store_testkit::main(BrokenBackend {
            bug: None,
            inner: Inner::Sqlite,
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let failures = runtime.block_on(every_check_fails_a_store_with_its_bug());
    if failures.is_empty() {
        println!("test every_check_fails_a_store_with_its_bug ... ok");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("FAILED: {failure}");
        }
        ExitCode::FAILURE
    }
}
