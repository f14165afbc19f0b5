//! [`MemoryStore`]: every record in one mutex-guarded map per kind; neither durable nor shared.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::query::{InstanceCounts, InstanceFilter, InstanceToken, InstanceWithToken, select_due};
use crate::{
    AdminSession, ApiKeyRecord, CHANGES_KEPT, Capabilities, Change, Changes, DeliveryAttempt,
    DeliveryOutcome, Error, Instance, Integration, Lease, PendingAuthorization, ReconnectLink,
    Result, Sealed, Store, Timestamp, TokenRecord, WebhookDelivery, WebhookEndpoint,
};

/// A store in the memory of one process: for tests, demos and single-run tools.
///
/// Not durable (everything is gone when it is dropped) and not shared between processes.
/// Every method runs under one mutex, which makes each of them atomic; no method awaits
/// while holding it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    integrations: BTreeMap<String, Integration>,
    instances: BTreeMap<String, Instance>,
    pendings: BTreeMap<String, PendingAuthorization>,
    tokens: BTreeMap<String, TokenRecord>,
    leases: BTreeMap<String, Lease>,
    /// The change feed, oldest first: at most `CHANGES_KEPT + TRIM_SLACK` entries, trimmed
    /// to the newest `CHANGES_KEPT` when it grows beyond (a trim every `TRIM_SLACK` changes).
    changes: VecDeque<Change>,
    /// The number of the newest change (0: none yet); never goes back, even after a trim.
    last_change: u64,
    /// The key check (`put_key_check`).
    key_check: Option<Sealed>,
    /// Admin sessions by digest, with their one-time banner.
    sessions: BTreeMap<String, (AdminSession, Option<String>)>,
    /// API keys by id.
    api_keys: BTreeMap<String, ApiKeyRecord>,
    /// Webhook endpoints by id.
    webhook_endpoints: BTreeMap<String, WebhookEndpoint>,
    /// Webhook deliveries by id.
    deliveries: BTreeMap<String, WebhookDelivery>,
    /// Reconnect links by digest (taking one removes it).
    reconnect_links: BTreeMap<String, ReconnectLink>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// use granary_store::{MemoryStore, Store};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> granary_store::Result<()> {
    /// let store = MemoryStore::new();
    /// assert!(!store.capabilities().durable);
    /// assert!(store.list_instances().await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock, so a poisoned lock still holds
        // consistent data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How far the feed may grow beyond [`CHANGES_KEPT`] before it is trimmed.
const TRIM_SLACK: usize = 256;

impl State {
    /// Appends the change of `instance` (call it under the same lock as the write, after
    /// the write succeeded).
    fn changed(&mut self, instance: &str) {
        self.last_change += 1;
        self.changes.push_back(Change {
            seq: self.last_change,
            instance: instance.to_string(),
        });
        let kept = usize::try_from(CHANGES_KEPT).unwrap_or(usize::MAX);
        if self.changes.len() > kept.saturating_add(TRIM_SLACK) {
            let dropped = self.changes.len() - kept;
            self.changes.drain(..dropped);
        }
    }

    /// The version compare-and-swap of `put_token`, with its change.
    fn write_token(
        &mut self,
        instance: &str,
        token: &TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        self.require_instance(instance)?;
        let current = self.tokens.get(instance).map(|t| t.version);
        if current != expected_version {
            return Err(Error::version_conflict(
                format!("token of instance `{instance}`"),
                expected_version,
                current,
            ));
        }
        let version = current.map_or(1, |v| v + 1);
        let mut stored = token.clone();
        stored.version = version;
        self.tokens.insert(instance.to_string(), stored);
        self.changed(instance);
        Ok(version)
    }

    fn require_instance(&self, id: &str) -> Result<()> {
        if self.instances.contains_key(id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("instance `{id}`")))
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        self.state()
            .integrations
            .insert(integration.name.clone(), integration.clone());
        Ok(())
    }

    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        Ok(self.state().integrations.get(name).cloned())
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        Ok(self.state().integrations.values().cloned().collect())
    }

    async fn delete_integration(&self, name: &str) -> Result<bool> {
        let mut state = self.state();
        if let Some(instance) = state.instances.values().find(|i| i.integration == name) {
            return Err(Error::conflict(
                format!("integration `{name}`"),
                format!(
                    "instance `{}` still belongs to it; delete its instances first",
                    instance.id
                ),
            ));
        }
        Ok(state.integrations.remove(name).is_some())
    }

    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        let mut state = self.state();
        if state.instances.contains_key(&instance.id) {
            return Err(Error::already_exists(format!("instance `{}`", instance.id)));
        }
        if !state.integrations.contains_key(&instance.integration) {
            return Err(Error::not_found(format!(
                "integration `{}`",
                instance.integration
            )));
        }
        let mut stored = instance.clone();
        stored.version = 1;
        state.instances.insert(stored.id.clone(), stored);
        state.changed(&instance.id);
        Ok(1)
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        Ok(self.state().instances.get(id).cloned())
    }

    async fn list_instances(&self) -> Result<Vec<Instance>> {
        Ok(self.state().instances.values().cloned().collect())
    }

    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        // A filter over the records in memory: no index to keep in step.
        let state = self.state();
        let records = state.tokens.iter().map(|(id, token)| (id.as_str(), token));
        Ok(select_due(
            records,
            |token| token.expires_at,
            before,
            after,
            limit,
        ))
    }

    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        let state = self.state();
        let records = state.tokens.iter().map(|(id, token)| (id.as_str(), token));
        Ok(select_due(
            records,
            |token| Some(token.obtained_at),
            before,
            after,
            limit,
        ))
    }

    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        use std::ops::Bound;
        let state = self.state();
        let start = after.map_or(Bound::Unbounded, |after| Bound::Excluded(after.to_string()));
        Ok(state
            .instances
            .range((start, Bound::Unbounded))
            .map(|(_, instance)| instance)
            .filter(|instance| filter.matches(instance))
            .take(limit)
            .map(|instance| InstanceWithToken {
                instance: instance.clone(),
                token: state.tokens.get(&instance.id).cloned(),
            })
            .collect())
    }

    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        let mut counts = InstanceCounts::default();
        for instance in self.state().instances.values() {
            counts.add(instance.status, 1);
        }
        Ok(counts)
    }

    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        let mut state = self.state();
        let what = || format!("instance `{}`", instance.id);
        let current = match state.instances.get(&instance.id) {
            Some(current) => current.version,
            None => return Err(Error::not_found(what())),
        };
        if current != instance.version {
            return Err(Error::version_conflict(
                what(),
                Some(instance.version),
                Some(current),
            ));
        }
        if !state.integrations.contains_key(&instance.integration) {
            return Err(Error::not_found(format!(
                "integration `{}`",
                instance.integration
            )));
        }
        let mut stored = instance.clone();
        stored.version = current + 1;
        state.instances.insert(stored.id.clone(), stored);
        state.changed(&instance.id);
        Ok(current + 1)
    }

    async fn delete_instance(&self, id: &str) -> Result<bool> {
        let mut state = self.state();
        if state.instances.remove(id).is_none() {
            return Ok(false);
        }
        state.tokens.remove(id);
        state.leases.remove(id);
        state.pendings.retain(|_, pending| pending.instance != id);
        state.changed(id);
        Ok(true)
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        let mut state = self.state();
        if state.pendings.contains_key(&pending.state) {
            return Err(Error::already_exists(
                "pending authorization with this state",
            ));
        }
        state.require_instance(&pending.instance)?;
        state
            .pendings
            .insert(pending.state.clone(), pending.clone());
        Ok(())
    }

    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        let taken = self.state().pendings.remove(state);
        Ok(taken.filter(|pending| !pending.is_expired(now)))
    }

    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        let mut state = self.state();
        let before = state.pendings.len();
        state.pendings.retain(|_, pending| !pending.is_expired(now));
        Ok(u64::try_from(before - state.pendings.len()).unwrap_or(u64::MAX))
    }

    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        Ok(self.state().tokens.get(instance).cloned())
    }

    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        self.state().write_token(instance, token, expected_version)
    }

    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let mut state = self.state();
        state.require_instance(instance)?;
        Lease::check_fence(state.leases.get(instance), instance, holder, now)?;
        state.write_token(instance, token, Some(expected_version))
    }

    async fn delete_token(&self, instance: &str, expected_version: Option<u64>) -> Result<bool> {
        let mut state = self.state();
        let Some(current) = state.tokens.get(instance).map(|t| t.version) else {
            return Ok(false);
        };
        if expected_version.is_some_and(|expected| expected != current) {
            return Err(Error::version_conflict(
                format!("token of instance `{instance}`"),
                expected_version,
                Some(current),
            ));
        }
        state.tokens.remove(instance);
        state.changed(instance);
        Ok(true)
    }

    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        let mut state = self.state();
        state.require_instance(instance)?;
        if let Some(lease) = state.leases.get(instance) {
            if !lease.can_be_taken_by(holder, now) {
                return Ok(false);
            }
        }
        let lease = Lease {
            instance: instance.to_string(),
            holder: holder.to_string(),
            expires: now.saturating_add(ttl),
        };
        state.leases.insert(instance.to_string(), lease);
        Ok(true)
    }

    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        let mut state = self.state();
        match state.leases.get(instance) {
            Some(lease) if lease.holder == holder => {
                state.leases.remove(instance);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        Ok(self.state().leases.get(instance).cloned())
    }

    async fn latest_change(&self) -> Result<u64> {
        Ok(self.state().last_change)
    }

    async fn put_key_check(&self, check: &Sealed, replace: bool) -> Result<Sealed> {
        let mut state = self.state();
        if replace || state.key_check.is_none() {
            state.key_check = Some(check.clone());
        }
        Ok(state.key_check.clone().unwrap_or_else(|| check.clone()))
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes> {
        let state = self.state();
        // Seqs are consecutive, and a trim drops the oldest: every seq below the oldest kept
        // one was dropped.
        let oldest_kept = state
            .changes
            .front()
            .map_or(state.last_change + 1, |c| c.seq);
        let missed = after < state.last_change && after + 1 < oldest_kept;
        let changes = state
            .changes
            .iter()
            .skip_while(|c| c.seq <= after)
            .take(limit)
            .cloned()
            .collect();
        Ok(Changes { changes, missed })
    }

    async fn create_session(&self, session: &AdminSession) -> Result<()> {
        let mut state = self.state();
        if state.sessions.contains_key(&session.digest) {
            return Err(Error::already_exists("admin session with this digest"));
        }
        state
            .sessions
            .insert(session.digest.clone(), (session.clone(), None));
        Ok(())
    }

    async fn get_session(&self, digest: &str, now: Timestamp) -> Result<Option<AdminSession>> {
        Ok(self
            .state()
            .sessions
            .get(digest)
            .filter(|(session, _)| !session.is_expired(now))
            .map(|(session, _)| session.clone()))
    }

    async fn delete_session(&self, digest: &str) -> Result<bool> {
        Ok(self.state().sessions.remove(digest).is_some())
    }

    async fn set_session_banner(&self, digest: &str, banner: &str, now: Timestamp) -> Result<bool> {
        let mut state = self.state();
        match state.sessions.get_mut(digest) {
            Some((session, kept)) if !session.is_expired(now) => {
                *kept = Some(banner.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn take_session_banner(&self, digest: &str, now: Timestamp) -> Result<Option<String>> {
        let mut state = self.state();
        match state.sessions.get_mut(digest) {
            Some((session, kept)) if !session.is_expired(now) => Ok(kept.take()),
            _ => Ok(None),
        }
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let mut state = self.state();
        let before = state.sessions.len();
        state
            .sessions
            .retain(|_, (session, _)| !session.is_expired(now));
        Ok(u64::try_from(before - state.sessions.len()).unwrap_or(u64::MAX))
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut state = self.state();
        if state.api_keys.contains_key(&key.id) {
            return Err(Error::already_exists(format!("API key `{}`", key.id)));
        }
        if state.api_keys.values().any(|k| k.digest == key.digest) {
            return Err(Error::already_exists("API key with this digest"));
        }
        state.api_keys.insert(key.id.clone(), key.clone());
        Ok(())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(self.state().api_keys.values().cloned().collect())
    }

    async fn find_api_key(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self
            .state()
            .api_keys
            .values()
            .find(|k| k.digest == digest)
            .cloned())
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        Ok(self.state().api_keys.remove(id).is_some())
    }

    async fn put_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.state()
            .webhook_endpoints
            .insert(endpoint.id.clone(), endpoint.clone());
        Ok(())
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        Ok(self.state().webhook_endpoints.values().cloned().collect())
    }

    async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool> {
        let mut state = self.state();
        let existed = state.webhook_endpoints.remove(id).is_some();
        state.deliveries.retain(|_, d| d.endpoint != id);
        Ok(existed)
    }

    async fn enqueue_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        let mut state = self.state();
        let mut ids = std::collections::BTreeSet::new();
        for delivery in deliveries {
            if state.deliveries.contains_key(&delivery.id) || !ids.insert(delivery.id.as_str()) {
                return Err(Error::already_exists(format!(
                    "webhook delivery `{}`",
                    delivery.id
                )));
            }
            if !state.webhook_endpoints.contains_key(&delivery.endpoint) {
                return Err(Error::not_found(format!(
                    "webhook endpoint `{}`",
                    delivery.endpoint
                )));
            }
        }
        for delivery in deliveries {
            state
                .deliveries
                .insert(delivery.id.clone(), delivery.clone());
        }
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let mut state = self.state();
        let mut due: Vec<(Timestamp, String)> = state
            .deliveries
            .values()
            .filter(|d| d.is_claimable(now))
            .map(|d| (d.next_attempt, d.id.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        let mut claimed = Vec::with_capacity(due.len());
        for (_, id) in due {
            if let Some(delivery) = state.deliveries.get_mut(&id) {
                delivery.claim(holder, until);
                claimed.push(delivery.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish_delivery_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let mut state = self.state();
        match state.deliveries.get_mut(id) {
            Some(delivery) if delivery.is_claimed_by(holder, now) => {
                delivery.finish_attempt(now, attempt, outcome);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_deliveries(&self, endpoint: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        let state = self.state();
        let mut listed: Vec<&WebhookDelivery> = state
            .deliveries
            .values()
            .filter(|d| d.endpoint == endpoint)
            .collect();
        listed.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        Ok(listed.into_iter().take(limit).cloned().collect())
    }

    async fn purge_finished_deliveries(&self, before: Timestamp) -> Result<u64> {
        let mut state = self.state();
        let count = state.deliveries.len();
        state.deliveries.retain(|_, d| !d.is_purgeable(before));
        Ok(u64::try_from(count - state.deliveries.len()).unwrap_or(u64::MAX))
    }

    async fn create_reconnect_link(&self, link: &ReconnectLink) -> Result<()> {
        let mut state = self.state();
        if state.reconnect_links.contains_key(&link.digest) {
            return Err(Error::already_exists("reconnect link with this digest"));
        }
        state
            .reconnect_links
            .insert(link.digest.clone(), link.clone());
        Ok(())
    }

    async fn find_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        Ok(self
            .state()
            .reconnect_links
            .get(digest)
            .filter(|link| !link.is_expired(now))
            .cloned())
    }

    async fn take_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let mut state = self.state();
        match state.reconnect_links.get(digest) {
            Some(link) if !link.is_expired(now) => Ok(state.reconnect_links.remove(digest)),
            _ => Ok(None),
        }
    }

    async fn purge_expired_reconnect_links(&self, now: Timestamp) -> Result<u64> {
        let mut state = self.state();
        let count = state.reconnect_links.len();
        state
            .reconnect_links
            .retain(|_, link| !link.is_expired(now));
        Ok(u64::try_from(count - state.reconnect_links.len()).unwrap_or(u64::MAX))
    }
}
