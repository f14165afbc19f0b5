//! The [`Store`] trait: the few methods a backend writes, each with its contract.

use std::time::Duration;

use async_trait::async_trait;

use crate::query::{self, InstanceCounts, InstanceFilter, InstanceToken, InstanceWithToken};
use crate::{
    AdminSession, ApiKeyRecord, Changes, DeliveryAttempt, DeliveryOutcome, Error, Instance,
    Integration, Lease, PendingAuthorization, ReconnectLink, Result, Sealed, Timestamp,
    TokenRecord, WebhookDelivery, WebhookEndpoint,
};

/// What a backend promises beyond the contracts every backend keeps.
///
/// The conformance suite skips the checks of a capability a backend does not claim. Start
/// from [`Capabilities::NONE`] (or `Capabilities::default()`) and name each claim:
///
/// ```
/// use granary_store::Capabilities;
///
/// // A store that keeps nothing on disk (like `MemoryStore`).
/// let memory = Capabilities::NONE;
/// // A file on disk that one process opens at a time.
/// let one_process = Capabilities::NONE.durable();
/// // A database that several processes (or nodes) share.
/// let shared = Capabilities::NONE.durable().shared_between_processes();
/// assert!(shared.durable && shared.shared_between_processes);
/// assert!(one_process.durable && !one_process.shared_between_processes);
/// assert_eq!(memory, Capabilities::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// Everything a method reported as done survives a restart, a crash of the process,
    /// and a crash of the machine.
    pub durable: bool,
    /// Several processes may open the same store at once, and every contract (take once,
    /// lease exclusivity, compare-and-swap) holds across them.
    pub shared_between_processes: bool,
}

impl Capabilities {
    /// No claim beyond the contracts every backend keeps: nothing survives the process, and
    /// one process opens the store.
    pub const NONE: Self = Self {
        durable: false,
        shared_between_processes: false,
    };

    /// These capabilities, and [`durable`](Self#structfield.durable): what a method reported
    /// as done survives a restart and a crash.
    #[must_use]
    pub const fn durable(self) -> Self {
        Self {
            durable: true,
            ..self
        }
    }

    /// These capabilities, and
    /// [`shared_between_processes`](Self#structfield.shared_between_processes): several
    /// processes may open the same store at once.
    #[must_use]
    pub const fn shared_between_processes(self) -> Self {
        Self {
            shared_between_processes: true,
            ..self
        }
    }
}

/// Where granary keeps integrations, instances, pending authorizations, tokens and leases,
/// and the server keeps its admin sessions and API keys.
///
/// Usable as `Arc<dyn Store>`. Every method is atomic: it either happens entirely or not at
/// all, and concurrent calls (from tasks of one process, and from other processes when the
/// backend claims [`Capabilities::shared_between_processes`]) behave as if they ran one
/// after the other. A method that returned `Ok` on a [`Capabilities::durable`] backend has
/// reached stable storage.
///
/// Conventions of every method:
/// - a `get_*` of a missing key returns `Ok(None)`;
/// - a `delete_*` returns whether something was removed (`Ok(false)` for a missing key);
/// - a write that refers to a missing record (an instance of an unknown integration, a token
///   of an unknown instance) fails with [`Error::NotFound`](crate::Error::NotFound);
/// - a version compare-and-swap that loses fails with
///   [`Error::Conflict`](crate::Error::Conflict) and changes nothing;
/// - lists are ordered by key;
/// - time comes from the caller (`now`): a store never reads the clock;
/// - a write whose future is dropped before it completes may or may not have happened (as
///   with any database): read again before deciding what to do;
/// - every write that changes an instance or its token record (`create_instance`,
///   `update_instance`, `delete_instance`, `put_token`, `put_token_fenced`, and
///   `delete_token` when it removed a record) appends one [`Change`](crate::Change) naming
///   the instance to the change feed, in the same atomic step, so that other processes learn
///   of it (see [`Store::changes_since`]). A write that fails appends nothing.
#[async_trait]
pub trait Store: Send + Sync {
    /// What this backend promises.
    fn capabilities(&self) -> Capabilities;

    /// Inserts or replaces the integration named `integration.name`.
    async fn put_integration(&self, integration: &Integration) -> Result<()>;

    /// The integration named `name`, or `None`.
    async fn get_integration(&self, name: &str) -> Result<Option<Integration>>;

    /// Every integration, ordered by name.
    async fn list_integrations(&self) -> Result<Vec<Integration>>;

    /// Removes the integration named `name`. Fails with `Conflict` (and removes nothing)
    /// while an instance still belongs to it: delete those first.
    async fn delete_integration(&self, name: &str) -> Result<bool>;

    /// Creates `instance` with version 1 and returns that version (the given
    /// `instance.version` is ignored). Fails with `AlreadyExists` when the id is taken and
    /// with `NotFound` when its integration does not exist.
    async fn create_instance(&self, instance: &Instance) -> Result<u64>;

    /// The instance with this id, or `None`.
    async fn get_instance(&self, id: &str) -> Result<Option<Instance>>;

    /// Every instance, ordered by id.
    async fn list_instances(&self) -> Result<Vec<Instance>>;

    /// Replaces the instance `instance.id` if the store holds version `instance.version`,
    /// and returns the new version (one more). Fails with `Conflict` when the stored version
    /// differs (nothing is written), `NotFound` when the instance or its integration does
    /// not exist.
    async fn update_instance(&self, instance: &Instance) -> Result<u64>;

    /// Removes the instance and, in the same atomic step, its token record, its pending
    /// authorizations and its lease.
    async fn delete_instance(&self, id: &str) -> Result<bool>;

    /// Stores a pending authorization under `pending.state`. Fails with `AlreadyExists`
    /// when the state is taken, `NotFound` when the instance does not exist.
    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()>;

    /// Removes the pending authorization `state` and returns it, atomically and at most
    /// once: of any number of concurrent takers, one gets it and the others get `None`.
    /// An expired one (`expires <= now`) is never returned (it is removed, and `None`
    /// returned). A missing state gives `None`.
    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>>;

    /// Removes every pending authorization with `expires <= now`; returns how many.
    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64>;

    /// The token record of `instance`, or `None`.
    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>>;

    /// Writes the token record of `instance` if the stored version is `expected_version`
    /// (`None`: no record may exist yet), and returns the new version (`expected + 1`, or 1).
    /// The given `token.version` is ignored. Fails with `Conflict` when the stored version
    /// differs, so that a stale writer never overwrites a newer token; `NotFound` when the
    /// instance does not exist.
    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64>;

    /// Writes the token record of `instance` like [`Store::put_token`] with
    /// `Some(expected_version)`, and only while `holder` holds the lease of `instance`
    /// unexpired at `now` (`expires > now`): the fence that keeps a process which lost its
    /// lease (it stalled, and another process took the lease over) from writing. Fails with
    /// `Conflict`, writing nothing, when the lease is missing, expired, or held by another
    /// holder, or when the stored version is not `expected_version`; `NotFound` when the
    /// instance does not exist.
    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> Result<u64>;

    /// Removes the token record of `instance` if the stored version is `expected_version`,
    /// and returns whether a record was removed. `Some(v)`: removes the record only when its
    /// version is `v`; fails with `Conflict` (and removes nothing) when a record with another
    /// version is stored, so that a token written since it was read (a refresh in another
    /// process) is never dropped unseen. `None`: removes whatever record is stored (for
    /// callers that mean to forget every token, such as admin tooling). With either, a
    /// missing record answers `Ok(false)`.
    async fn delete_token(&self, instance: &str, expected_version: Option<u64>) -> Result<bool>;

    /// Takes the refresh lease of `instance` for `holder` until `now + ttl`, and returns
    /// whether it did. It succeeds when no lease exists, when the lease expired
    /// (`expires <= now`: taken over), or when `holder` holds it already (renewed). Only one
    /// holder at a time succeeds, across every process that shares the store. Fails with
    /// `NotFound` when the instance does not exist.
    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool>;

    /// Releases the lease of `instance` if `holder` holds it (expired or not), and returns
    /// whether it did. A lease of another holder is left untouched.
    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool>;

    /// The lease of `instance` as stored (possibly expired), or `None`.
    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>>;

    // Queries that answer from an index, so that their cost follows what they return, not
    // the number of instances kept. The defaults scan (list every instance, read every
    // token): correct, so a backend written before them still works, but one read per
    // instance. Every backend of this workspace answers them from an index or ordered key.

    /// The token records whose access token expires before `before` (`expires_at` known and
    /// `< before`), ordered by (`expires_at`, instance id), only those after the cursor
    /// `after` in that order (the expiry and instance of the last record of the previous
    /// batch; `None`: from the first), at most `limit`. Records of unknown expiry
    /// (`expires_at: None`) are never listed (see [`Store::tokens_obtained_before`]). Every
    /// token write and delete is reflected at once: a record is listed under the expiry it
    /// holds now, and a deleted one (or one of a deleted instance) not at all.
    ///
    /// The background refresher asks this for the tokens due in its coming round, in
    /// batches, instead of reading every token.
    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        query::scan_due(self, |token| token.expires_at, before, after, limit).await
    }

    /// The token records obtained before `before` (`obtained_at < before`), ordered by
    /// (`obtained_at`, instance id), after the cursor `after`, at most `limit`, like
    /// [`Store::tokens_expiring_before`] (whatever their expiry). For the tokens of unknown
    /// expiry that are refreshed once they are a given age, and for refreshing tokens idle
    /// for longer than a given time.
    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        query::scan_due(self, |token| Some(token.obtained_at), before, after, limit).await
    }

    /// One page of instances, each with its token record (or `None`) as stored at the same
    /// moment: those passing `filter`, ordered by id, with an id above `after` (`None`: from
    /// the first), at most `limit`. A caller pages by passing the id of the last instance of
    /// a page as the next `after`, and has seen every instance once when a page holds fewer
    /// than `limit`.
    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        let mut page = Vec::new();
        for instance in self.list_instances().await? {
            if page.len() >= limit {
                break;
            }
            if after.is_some_and(|after| instance.id.as_str() <= after)
                || !filter.matches(&instance)
            {
                continue;
            }
            let token = self.get_token(&instance.id).await?;
            page.push(InstanceWithToken { instance, token });
        }
        Ok(page)
    }

    /// How many instances have each status, counted in one step.
    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        let mut counts = InstanceCounts::default();
        for instance in self.list_instances().await? {
            counts.add(instance.status, 1);
        }
        Ok(counts)
    }

    /// The number of the newest change in the feed; 0 when nothing changed yet. A reader
    /// starts from it and asks [`Store::changes_since`] for what follows.
    async fn latest_change(&self) -> Result<u64>;

    /// The changes numbered above `after`, oldest first, at most `limit` of them. Numbers
    /// grow with every change and are never reused, across every process that shares the
    /// store, and a change is listed only once the write that made it is visible to readers.
    /// Changes become visible in number order: once change `n` is listed, no change below
    /// `n` appears later (a reader moves its cursor past what it read and would never see
    /// it). A backend whose writers commit concurrently must number changes in commit
    /// order, e.g. from a counter row updated inside the write's transaction rather than
    /// from a sequence. Numbers need not be consecutive, but a backend with gaps may
    /// report `missed` when nothing was dropped (harmless: the reader drops what it holds).
    /// The store keeps at least the newest [`CHANGES_KEPT`](crate::CHANGES_KEPT) changes;
    /// when some change above `after` was dropped, `missed` is set (never a silent gap).
    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes>;

    /// The store's key check: a value the engine's master key sealed, so that a process
    /// whose key cannot open the store's secrets refuses to start instead of failing at the
    /// first token. Stores `check` when `replace` is true or no check is stored yet, and
    /// returns the check stored afterwards (the given one, or the one already there),
    /// atomically: of processes storing a first check at once, one value wins and every
    /// caller gets that value back. The value is kept as given, like any [`Sealed`], and
    /// survives like the records do (durable when the store is).
    ///
    /// The default answers `Unsupported`; the facade then opens without the check and logs
    /// a warning. Every backend of this workspace implements it.
    async fn put_key_check(&self, check: &Sealed, replace: bool) -> Result<Sealed> {
        let _ = (check, replace);
        Err(Error::unsupported(
            "this store keeps no key check, so a wrong master key shows only at the first \
             secret it opens",
        ))
    }

    // Admin sessions and API keys: the server's state that every node on the store must see.
    // The defaults answer `Unsupported` (a backend written before them still compiles, and
    // the server then refuses to start with that message); every backend of this workspace
    // implements them.

    /// Stores `session` under `session.digest`. Fails with `AlreadyExists` (and changes
    /// nothing) when the digest is taken.
    async fn create_session(&self, session: &AdminSession) -> Result<()> {
        let _ = session;
        Err(unsupported_sessions())
    }

    /// The session with this digest, unexpired at `now` (`expires > now`), or `None` (also
    /// for an expired one, which may be removed).
    async fn get_session(&self, digest: &str, now: Timestamp) -> Result<Option<AdminSession>> {
        let _ = (digest, now);
        Err(unsupported_sessions())
    }

    /// Removes the session with this digest and its banner, expired or not; returns whether
    /// a session was removed.
    async fn delete_session(&self, digest: &str) -> Result<bool> {
        let _ = digest;
        Err(unsupported_sessions())
    }

    /// Keeps `banner` (an opaque string the caller serialised) as the one-time banner of the
    /// session with this digest, replacing the one kept, and returns whether it did: only a
    /// session unexpired at `now` keeps one (a missing or expired session keeps nothing and
    /// answers `Ok(false)`), at most one each, removed with the session.
    async fn set_session_banner(&self, digest: &str, banner: &str, now: Timestamp) -> Result<bool> {
        let _ = (digest, banner, now);
        Err(unsupported_sessions())
    }

    /// Removes the banner of the session with this digest and returns it, atomically and at
    /// most once: of any number of concurrent takers (in any process sharing the store), one
    /// gets it and the others get `None`. A session that is missing, expired at `now`, or
    /// keeps no banner gives `None`. The session itself stays.
    async fn take_session_banner(&self, digest: &str, now: Timestamp) -> Result<Option<String>> {
        let _ = (digest, now);
        Err(unsupported_sessions())
    }

    /// Removes every session with `expires <= now`, with its banner; returns how many
    /// sessions.
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let _ = now;
        Err(unsupported_sessions())
    }

    /// Stores the API key `key`. Fails with `AlreadyExists` (and changes nothing) when its id
    /// or its digest is taken.
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let _ = key;
        Err(unsupported_api_keys())
    }

    /// Every API key, ordered by id.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Err(unsupported_api_keys())
    }

    /// The API key whose digest is `digest`, or `None` (a revoked key is never found).
    async fn find_api_key(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        let _ = digest;
        Err(unsupported_api_keys())
    }

    /// Revokes the API key `id`: removes it, so that neither `find_api_key` nor
    /// `list_api_keys` returns it again; returns whether it existed.
    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let _ = id;
        Err(unsupported_api_keys())
    }

    // Webhooks and reconnect links (issue 16): kept in the store so that every node sees
    // them and a restart loses no pending delivery. The defaults answer `Unsupported`, like
    // the server's state above; every backend of this workspace implements them.

    /// Stores `endpoint` under its id, creating it or replacing the one stored (its
    /// deliveries stay).
    async fn put_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let _ = endpoint;
        Err(unsupported_webhooks())
    }

    /// Every webhook endpoint, ordered by id.
    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        Err(unsupported_webhooks())
    }

    /// Removes the endpoint `id` and every delivery to it, atomically (no reader sees the
    /// deliveries without the endpoint); returns whether the endpoint existed.
    async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool> {
        let _ = id;
        Err(unsupported_webhooks())
    }

    /// Stores `deliveries` as given, all or none: when one's id is taken (or appears twice)
    /// the answer is `AlreadyExists`, when one's endpoint does not exist `NotFound`, and
    /// nothing is stored.
    async fn enqueue_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        let _ = deliveries;
        Err(unsupported_webhooks())
    }

    /// Claims up to `limit` deliveries for `holder` until `until`, atomically, and returns
    /// them as claimed: those that are `Pending`, due (`next_attempt <= now`) and unclaimed
    /// or with an expired claim (`claimed_until <= now`), the oldest `next_attempt` first
    /// (then by id). Each gets `claimed_by = holder` and `claimed_until = until`.
    ///
    /// Of any number of concurrent claimers (tasks, processes, nodes on a shared store), no
    /// two ever get the same delivery while its claim lives: this is how each delivery is
    /// sent once. A claim that expired (its holder died) is handed out again.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let _ = (now, holder, until, limit);
        Err(unsupported_webhooks())
    }

    /// Records an attempt on delivery `id` by `holder`, only when `holder` holds a live
    /// claim on it at `now` (`claimed_by == holder`, `claimed_until > now`); otherwise
    /// (missing, unclaimed, claimed by another, expired) answers `Ok(false)` and changes
    /// nothing. Appends `attempt` (keeping the newest
    /// [`DELIVERY_ATTEMPTS_KEPT`](crate::DELIVERY_ATTEMPTS_KEPT)), sets the state and
    /// `next_attempt` from `outcome` (`RetryAt(t)`: `Pending` due at `t`; `Delivered` and
    /// `GaveUp`: finished, `next_attempt = now`) and clears the claim, atomically.
    async fn finish_delivery_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let _ = (id, holder, now, attempt, outcome);
        Err(unsupported_webhooks())
    }

    /// The deliveries to endpoint `endpoint` (the delivery log), newest `created` first
    /// (then by id, descending), at most `limit`.
    async fn list_deliveries(&self, endpoint: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        let _ = (endpoint, limit);
        Err(unsupported_webhooks())
    }

    /// Removes every `Delivered` or `Failed` delivery with `created < before` (never a
    /// pending one); returns how many.
    async fn purge_finished_deliveries(&self, before: Timestamp) -> Result<u64> {
        let _ = before;
        Err(unsupported_webhooks())
    }

    /// Stores `link` under its digest. Fails with `AlreadyExists` (and changes nothing) when
    /// the digest is taken.
    async fn create_reconnect_link(&self, link: &ReconnectLink) -> Result<()> {
        let _ = link;
        Err(unsupported_reconnect_links())
    }

    /// The link with this digest, unexpired at `now` (`expires > now`) and not taken, or
    /// `None`. Does not take it.
    async fn find_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let _ = (digest, now);
        Err(unsupported_reconnect_links())
    }

    /// Removes the link with this digest and returns it, atomically and at most once: of any
    /// number of concurrent takers (in any process sharing the store), one gets it and the
    /// others get `None`. An expired link (`expires <= now`) is never returned.
    async fn take_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let _ = (digest, now);
        Err(unsupported_reconnect_links())
    }

    /// Removes every link with `expires <= now`; returns how many.
    async fn purge_expired_reconnect_links(&self, now: Timestamp) -> Result<u64> {
        let _ = now;
        Err(unsupported_reconnect_links())
    }
}

fn unsupported_sessions() -> Error {
    Error::unsupported(
        "this store keeps no admin sessions: use a backend that implements the session \
         methods of `Store` (every backend of granary does)",
    )
}

fn unsupported_api_keys() -> Error {
    Error::unsupported(
        "this store keeps no API keys: use a backend that implements the API key methods of \
         `Store` (every backend of granary does)",
    )
}

fn unsupported_webhooks() -> Error {
    Error::unsupported(
        "this store keeps no webhooks: use a backend that implements the webhook methods of \
         `Store` (every backend of granary does)",
    )
}

fn unsupported_reconnect_links() -> Error {
    Error::unsupported(
        "this store keeps no reconnect links: use a backend that implements the reconnect \
         link methods of `Store` (every backend of granary does)",
    )
}
