//! A granary store backend written outside the granary workspace: [`MapStore`], which keeps
//! pending authorizations in a map of its own and hands every other record to granary's
//! [`MemoryStore`], and a test target that runs the whole conformance suite on it
//! (`tests/conformance.rs`).
//!
//! A backend implements [`Store`]; each method's documentation in `granary_store` states its
//! contract (atomic? single use? what on a missing key? which error on a lost
//! compare-and-swap?), and `docs/guides/writing-a-backend.md` in the granary repository
//! walks through them. The suite checks every contract and names the one a failure broke.
//!
//! Run it: `cargo xtask example-backend` from the granary workspace, or
//! `cargo test --manifest-path examples/custom-backend/Cargo.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use granary_store::{
    AdminSession, ApiKeyRecord, Capabilities, Changes, DeliveryAttempt, DeliveryOutcome, Error,
    Instance, InstanceCounts, InstanceFilter, InstanceToken, InstanceWithToken, Integration, Lease,
    MemoryStore, PendingAuthorization, ReconnectLink, Result, Sealed, Store, Timestamp,
    TokenRecord, WebhookDelivery, WebhookEndpoint,
};
use tokio::sync::Mutex;

/// A store in memory: gone when the process ends.
///
/// Pending authorizations (the `state` of an authorization in progress, taken at most once
/// by the callback) live in `pendings`, a map of this crate, to show what a backend writes
/// itself: the take-once rule, expiry judged by the caller's `now`, `NotFound` for an
/// unknown instance, and the cascade when an instance is deleted. Integrations, instances,
/// tokens, leases, the change feed, the key check, the server's admin sessions and API
/// keys, webhooks and reconnect links are delegated to `records`, a [`MemoryStore`]; a real backend writes those methods
/// the same way, against its own storage.
#[derive(Default)]
pub struct MapStore {
    /// Pending authorizations by state. An async mutex, because `put_pending` and
    /// `delete_instance` hold it across a call to `records` (which awaits), so that a
    /// pending authorization is never stored for an instance deleted meanwhile.
    pendings: Mutex<BTreeMap<String, PendingAuthorization>>,
    /// Every other record.
    records: MemoryStore,
}

impl MapStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MapStore {
    /// Nothing survives the process, and one process holds the store: no capability is
    /// claimed, and the suite skips (and reports) the checks that need one. A file-backed
    /// store would say `Capabilities::NONE.durable()`, one that several processes share
    /// `Capabilities::NONE.durable().shared_between_processes()`.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    // --- Pending authorizations: written here. ---

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        let mut pendings = self.pendings.lock().await;
        if pendings.contains_key(&pending.state) {
            return Err(Error::already_exists(
                "pending authorization with this state",
            ));
        }
        // Checked under the lock that `delete_instance` takes too.
        if self
            .records
            .get_instance(&pending.instance)
            .await?
            .is_none()
        {
            return Err(Error::not_found(format!("instance `{}`", pending.instance)));
        }
        pendings.insert(pending.state.clone(), pending.clone());
        Ok(())
    }

    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        // Removed whether expired or not: one taker gets it, an expired one nobody does.
        let taken = self.pendings.lock().await.remove(state);
        Ok(taken.filter(|pending| !pending.is_expired(now)))
    }

    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        let mut pendings = self.pendings.lock().await;
        let before = pendings.len();
        pendings.retain(|_, pending| !pending.is_expired(now));
        Ok(u64::try_from(before - pendings.len()).unwrap_or(u64::MAX))
    }

    async fn delete_instance(&self, id: &str) -> Result<bool> {
        // The instance, its token and its lease go in `records`; its pending authorizations
        // here, under the lock, so that no `put_pending` for it slips in between.
        let mut pendings = self.pendings.lock().await;
        let deleted = self.records.delete_instance(id).await?;
        pendings.retain(|_, pending| pending.instance != id);
        Ok(deleted)
    }

    // --- Everything else: delegated to the MemoryStore. ---

    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        self.records.put_integration(integration).await
    }

    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        self.records.get_integration(name).await
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        self.records.list_integrations().await
    }

    async fn delete_integration(&self, name: &str) -> Result<bool> {
        self.records.delete_integration(name).await
    }

    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        self.records.create_instance(instance).await
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        self.records.get_instance(id).await
    }

    async fn list_instances(&self) -> Result<Vec<Instance>> {
        self.records.list_instances().await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        self.records.update_instance(instance).await
    }

    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        self.records.get_token(instance).await
    }

    // The queries. `Store` has defaults for these that scan every instance (correct, but
    // one read per instance); a real backend answers them from an index on the token's
    // expiry and time obtained, and pages instances by key with their token joined.
    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        self.records
            .tokens_expiring_before(before, after, limit)
            .await
    }

    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        self.records
            .tokens_obtained_before(before, after, limit)
            .await
    }

    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        self.records.list_instances_page(after, limit, filter).await
    }

    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        self.records.count_instances_by_status().await
    }

    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        self.records
            .put_token(instance, token, expected_version)
            .await
    }

    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.records
            .put_token_fenced(instance, token, expected_version, holder, now)
            .await
    }

    async fn delete_token(&self, instance: &str, expected_version: Option<u64>) -> Result<bool> {
        self.records.delete_token(instance, expected_version).await
    }

    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        self.records
            .try_acquire_lease(instance, holder, now, ttl)
            .await
    }

    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        self.records.release_lease(instance, holder).await
    }

    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        self.records.get_lease(instance).await
    }

    async fn latest_change(&self) -> Result<u64> {
        self.records.latest_change().await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes> {
        self.records.changes_since(after, limit).await
    }

    async fn put_key_check(&self, check: &Sealed, replace: bool) -> Result<Sealed> {
        self.records.put_key_check(check, replace).await
    }

    async fn create_session(&self, session: &AdminSession) -> Result<()> {
        self.records.create_session(session).await
    }

    async fn get_session(&self, digest: &str, now: Timestamp) -> Result<Option<AdminSession>> {
        self.records.get_session(digest, now).await
    }

    async fn delete_session(&self, digest: &str) -> Result<bool> {
        self.records.delete_session(digest).await
    }

    async fn set_session_banner(&self, digest: &str, banner: &str, now: Timestamp) -> Result<bool> {
        self.records.set_session_banner(digest, banner, now).await
    }

    async fn take_session_banner(&self, digest: &str, now: Timestamp) -> Result<Option<String>> {
        self.records.take_session_banner(digest, now).await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        self.records.purge_expired_sessions(now).await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.records.create_api_key(key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.records.list_api_keys().await
    }

    async fn find_api_key(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        self.records.find_api_key(digest).await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        self.records.revoke_api_key(id).await
    }

    async fn put_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.records.put_webhook_endpoint(endpoint).await
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.records.list_webhook_endpoints().await
    }

    async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool> {
        self.records.delete_webhook_endpoint(id).await
    }

    async fn enqueue_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        self.records.enqueue_deliveries(deliveries).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        self.records
            .claim_deliveries(now, holder, until, limit)
            .await
    }

    async fn finish_delivery_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        self.records
            .finish_delivery_attempt(id, holder, now, attempt, outcome)
            .await
    }

    async fn list_deliveries(&self, endpoint: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        self.records.list_deliveries(endpoint, limit).await
    }

    async fn purge_finished_deliveries(&self, before: Timestamp) -> Result<u64> {
        self.records.purge_finished_deliveries(before).await
    }

    async fn create_reconnect_link(&self, link: &ReconnectLink) -> Result<()> {
        self.records.create_reconnect_link(link).await
    }

    async fn find_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        self.records.find_reconnect_link(digest, now).await
    }

    async fn take_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        self.records.take_reconnect_link(digest, now).await
    }

    async fn purge_expired_reconnect_links(&self, now: Timestamp) -> Result<u64> {
        self.records.purge_expired_reconnect_links(now).await
    }
}
