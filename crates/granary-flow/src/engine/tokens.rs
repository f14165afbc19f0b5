//! `access_token`: the in-memory hot path, and the single flight per instance behind it
//! (the refresh itself is in `refresh.rs`).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use granary_store::{Instance, Sealed, Timestamp, TokenRecord};

use super::integrations::IntegrationFlows;
use secrecy::{ExposeSecret as _, SecretString};

use super::seal::Field;
use super::{Engine, EngineError, EngineResult};

/// The longest token lifetime taken as given; a longer `expires_in` (or one of 0) is treated
/// as unknown: the token is used until the provider refuses it.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// A valid access token, as [`Engine::access_token`] hands it out. Cheap to clone; its
/// `Debug` does not show the token.
#[derive(Clone)]
pub struct AccessToken(Arc<TokenInner>);

struct TokenInner {
    secret: SecretString,
    token_type: String,
    expires_at: Option<Timestamp>,
    /// The sealed form it was read from: tells a refreshed token from this one.
    sealed: Sealed,
    /// Values kept with the connection (callback values, token-answer fields).
    kept: BTreeMap<String, String>,
}

impl AccessToken {
    /// The token itself, to put in an `Authorization` header. Never log it.
    pub fn secret(&self) -> &str {
        self.0.secret.expose_secret()
    }

    /// The token type the provider gave (usually `Bearer`).
    pub fn token_type(&self) -> &str {
        &self.0.token_type
    }

    /// When it expires; `None` when the provider did not say (valid until refused).
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.0.expires_at
    }

    /// The values kept with the connection, by name: callback parameters and token-answer
    /// fields a provider profile keeps (Salesforce `instance_url`, Slack `team.id`,
    /// QuickBooks `realmId`). Not secret.
    pub fn kept(&self) -> &BTreeMap<String, String> {
        &self.0.kept
    }

    /// Whether two handles hold the same token.
    pub fn same_token(&self, other: &AccessToken) -> bool {
        self.0.sealed == other.0.sealed
    }

    /// The SHA-256 digest of the token, in lowercase hex: what a caller reports to
    /// [`Engine::token_rejected`] (or `POST /api/v1/instances/{id}/token/rejected`) when an
    /// API refused the token, without sending the token itself.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.secret())
    }
}

/// The SHA-256 digest of `text`, in lowercase hex.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("token_type", &self.0.token_type)
            .field("expires_at", &self.0.expires_at)
            .finish()
    }
}

/// The token cache: instance id -> opened token. Hashed with FNV-1a rather than SipHash:
/// the keys are instance ids an admin chose (no untrusted input), and the hash is most of
/// the hot path's lookup.
pub(crate) type Cache = HashMap<String, Cached, BuildHasherDefault<Fnv1a>>;

/// FNV-1a, 64 bits.
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What the cache holds for an instance.
pub(crate) struct Cached {
    token: AccessToken,
    /// From this time on the token is inside the refresh margin; `None`: no expiry known.
    refresh_at: Option<Timestamp>,
    /// Asked for again since it was cached or since the last eviction (set by the hot path,
    /// cleared by an eviction).
    used: AtomicBool,
}

/// Inserts `cached` for `id`, first making room when the cache holds `capacity` tokens
/// (second chance): the tokens nobody asked for again since they were cached or since the
/// last eviction go; if every one was, a tenth of the cache goes (whichever the map yields
/// first).
fn insert_bounded(cache: &mut Cache, id: &str, cached: Cached, capacity: usize) {
    if !cache.contains_key(id) && cache.len() >= capacity {
        cache.retain(|_, entry| entry.used.swap(false, Ordering::Relaxed));
        if cache.len() >= capacity {
            let excess = cache.len() + 1 - capacity + capacity / 10;
            let evicted: Vec<String> = cache.keys().take(excess).cloned().collect();
            for key in evicted {
                cache.remove(&key);
            }
        }
    }
    cache.insert(id.to_string(), cached);
}

/// The single-flight state of one instance.
#[derive(Default)]
pub(crate) struct Flight {
    /// Held by the one task per process that reads the store and refreshes.
    pub(super) lock: Arc<tokio::sync::Mutex<FlightState>>,
    /// Moves whenever another process changed the instance (the change feed): what was read
    /// from the store before is stale.
    generation: AtomicU64,
}

impl Flight {
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(super) fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one process remembers between refreshes of an instance.
#[derive(Default)]
pub(crate) struct FlightState {
    /// The backoff the store records after a failed refresh, mirrored so that callers
    /// during it neither read the store nor ask the provider.
    pub(super) backoff: Option<Backoff>,
}

/// A recorded backoff, as last read or written.
#[derive(Clone)]
pub(crate) struct Backoff {
    /// No request to the provider before this.
    pub(super) retry_at: Timestamp,
    /// Why (the failure as recorded).
    pub(super) reason: String,
    /// The flight's generation when it was read: a later change makes it stale.
    pub(super) generation: u64,
}

/// What a caller accepts.
#[derive(Clone)]
pub(crate) struct Want {
    /// The token must still be outside the margin at this time.
    pub(super) fresh_at: Timestamp,
    /// Not this token (it was refused with a 401, or a refresh was asked for).
    pub(super) reject: Option<Sealed>,
    /// A refresh was asked for (not a refused token): without a refresh token there is
    /// nothing to refresh, and the current token stays.
    pub(super) forced: bool,
}

impl Want {
    fn rejects(&self, sealed: &Sealed) -> bool {
        self.reject.as_ref() == Some(sealed)
    }

    pub(super) fn accepts(&self, sealed: &Sealed, refresh_at: Option<Timestamp>) -> bool {
        !self.rejects(sealed) && refresh_at.is_none_or(|at| self.fresh_at < at)
    }

    pub(super) fn valid(
        &self,
        sealed: &Sealed,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> bool {
        !self.rejects(sealed) && expires_at.is_none_or(|at| now < at)
    }
}

impl Engine {
    /// A valid access token of `instance`.
    ///
    /// Outside the refresh margin it comes from memory. Inside it (or when nothing is in
    /// memory yet) one task per process refreshes while the others wait and share the
    /// result, and the store lease makes it one refresh across processes. A token without
    /// a known expiry stays valid until [`Engine::force_refresh`] is called after a 401.
    ///
    /// # Errors
    /// [`EngineError::NeedsAuthorization`] after the provider refused the refresh token
    /// (no refresh is tried until the instance is authorized again);
    /// [`EngineError::NotAuthorized`], [`EngineError::Disabled`];
    /// [`EngineError::BackingOff`] while a failed refresh's backoff runs and the current
    /// token has expired (no request is sent); [`EngineError::Refresh`] and
    /// [`EngineError::RefreshFailing`] when a refresh failed and the current token has
    /// expired (while it is valid, it is returned).
    pub async fn access_token(&self, instance: &str) -> EngineResult<AccessToken> {
        if let Some(token) = self.cached_fresh(instance) {
            return Ok(token);
        }
        let want = Want {
            fresh_at: self.now(),
            reject: None,
            forced: false,
        };
        // Boxed: the slow path's future is large, and keeping it out of this one keeps the
        // hot path's future small (an awaiting caller moves it).
        Box::pin(self.slow_path(instance, want)).await
    }

    /// A new access token after `rejected` was refused (HTTP 401): refreshes unless another
    /// caller did already.
    pub async fn force_refresh(
        &self,
        instance: &str,
        rejected: &AccessToken,
    ) -> EngineResult<AccessToken> {
        let want = Want {
            fresh_at: self.now(),
            reject: Some(rejected.0.sealed.clone()),
            forced: false,
        };
        self.slow_path(instance, want).await
    }

    /// An API refused the access token whose SHA-256 digest (hex, either case) is `sha256`:
    /// refreshes only if that token is still the current one, so that any number of callers
    /// reporting the same stale token cause one refresh (the single flight of
    /// [`Engine::force_refresh`]); a report of a token already replaced gets the current
    /// token without a request. Returns the token to use from now on.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when `sha256` is not 64 hex digits; without a refresh token,
    /// [`EngineError::NeedsAuthorization`] (the provider refused the token and granary
    /// cannot get another); else as [`Engine::force_refresh`].
    pub async fn token_rejected(&self, instance: &str, sha256: &str) -> EngineResult<AccessToken> {
        let reported = sha256.trim().to_ascii_lowercase();
        if reported.len() != 64 || !reported.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Invalid(
                "the rejected token's digest must be its SHA-256 in hex (64 digits): send \
                 sha256(access_token), never the token itself"
                    .to_string(),
            ));
        }
        let current = self.access_token(instance).await?;
        let digest = current.sha256_hex();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            digest.as_bytes(),
            reported.as_bytes(),
        )) {
            // Replaced already (or never handed out): the current token is the answer.
            return Ok(current);
        }
        self.force_refresh(instance, &current).await
    }

    /// Refreshes now ("Refresh now", `POST .../refresh`): a token other than the one stored
    /// when this was called. Calls at the same time, in this process or others, share one
    /// refresh: a caller that arrives while one runs takes its result.
    ///
    /// # Errors
    /// [`EngineError::NothingToRefresh`] when the grant holds no refresh token and its token
    /// is still valid: no request is sent and nothing changes. Else as
    /// [`Engine::access_token`].
    pub async fn refresh_now(&self, instance: &str) -> EngineResult<AccessToken> {
        self.refresh_ahead(instance, self.now(), true).await
    }

    /// Refreshes ahead of time: when the token would be inside the margin at `until`, or
    /// when `force` is set (then the token stored now is not accepted).
    pub(crate) async fn refresh_ahead(
        &self,
        instance: &str,
        until: Timestamp,
        force: bool,
    ) -> EngineResult<AccessToken> {
        let reject = if force {
            self.inner
                .store
                .get_token(instance)
                .await?
                .map(|record| record.access_token)
        } else {
            None
        };
        self.slow_path(
            instance,
            Want {
                fresh_at: until,
                reject,
                forced: force,
            },
        )
        .await
    }

    /// Drops the in-memory token of `instance`: the next call reads the store.
    pub fn forget(&self, instance: &str) {
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance);
        self.forget_api_target(instance);
    }

    /// The hot path: a read lock, a hash lookup, a comparison and an `Arc` clone.
    fn cached_fresh(&self, instance: &str) -> Option<AccessToken> {
        let now = self.inner.clock.now();
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(instance)?;
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        entry
            .refresh_at
            .is_none_or(|at| now < at)
            .then(|| entry.token.clone())
    }

    pub(super) fn cached_matching(
        &self,
        instance: &str,
        test: impl Fn(&Cached) -> bool,
    ) -> Option<AccessToken> {
        let cache = self
            .inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .get(instance)
            .filter(|entry| test(entry))
            .map(|entry| entry.token.clone())
    }

    pub(super) fn flight(&self, instance: &str) -> Arc<Flight> {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        flights.entry(instance.to_string()).or_default().clone()
    }

    /// Runs the single flight as a task of its own, so that a caller that goes away (a
    /// closed connection, a dropped future) never cuts a refresh short: the provider's
    /// answer is stored and the lease released whatever happens to the caller.
    async fn slow_path(&self, instance: &str, want: Want) -> EngineResult<AccessToken> {
        let engine = self.clone();
        let id = instance.to_string();
        self.detached(async move { engine.single_flight(&id, &want).await })
            .await
            .unwrap_or_else(|| {
                Err(EngineError::Internal(format!(
                    "the refresh of instance `{instance}` ended abnormally (see the log): try again"
                )))
            })
    }

    async fn single_flight(&self, id: &str, want: &Want) -> EngineResult<AccessToken> {
        let flight = self.flight(id);
        let generation = flight.generation();
        let mut state = flight.lock.clone().lock_owned().await;
        let result = self.under_flight_lock(id, want, &flight, &mut state).await;
        if flight.generation() != generation {
            // Another process changed the instance while this one read the store: what was
            // cached may predate that change. The caller still gets its answer once.
            self.forget(id);
        }
        if matches!(result, Err(EngineError::NotFound { .. })) {
            // No such instance: its entry must not stay, or every unknown id asked for would
            // grow the map for good.
            drop(state);
            self.drop_idle_flight(id, flight);
        }
        result
    }

    /// Removes the flight of `instance` from the map when nobody else holds it: only this
    /// caller's reference (`flight`) and the map's exist, and its lock is free. Checked
    /// under the map's mutex, through which every other holder got its reference, so the
    /// single flight holds: a task that asks later gets a new entry, and none can be using
    /// the old one.
    fn drop_idle_flight(&self, instance: &str, flight: Arc<Flight>) {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let idle = flights.get(instance).is_some_and(|held| {
            Arc::ptr_eq(held, &flight)
                && Arc::strong_count(&flight) == 2
                && Arc::strong_count(&flight.lock) == 1
        });
        if idle {
            flights.remove(instance);
        }
    }

    /// How many opened tokens the cache holds (for tests).
    #[doc(hidden)]
    pub fn cached_tokens(&self) -> usize {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many instances have a single-flight entry (for tests).
    #[doc(hidden)]
    pub fn flight_entries(&self) -> usize {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    async fn under_flight_lock(
        &self,
        id: &str,
        want: &Want,
        flight: &Flight,
        state: &mut FlightState,
    ) -> EngineResult<AccessToken> {
        let accepts = |entry: &Cached| want.accepts(&entry.token.0.sealed, entry.refresh_at);
        if let Some(token) = self.cached_matching(id, accepts) {
            return Ok(token);
        }
        let now = self.now();
        let backoff = state
            .backoff
            .clone()
            .filter(|b| b.generation == flight.generation() && now < b.retry_at);
        if let Some(backoff) = backoff {
            if let Some(token) = self.still_valid(id, want, now) {
                return Ok(token);
            }
            if self.cached_matching(id, |_| true).is_some() {
                return Err(self.backing_off(id, &backoff.reason, backoff.retry_at));
            }
            // Nothing held in memory (a change dropped it): the store's record answers,
            // still without asking the provider during the backoff.
        }
        state.backoff = None;
        let result = self.refresh_locked(id, want, flight, state).await;
        match result {
            Err(
                error @ (EngineError::Refresh { .. }
                | EngineError::RefreshFailing { .. }
                | EngineError::ShuttingDown { .. }),
            ) => {
                // Keep serving the current token while it is valid.
                match self.still_valid(id, want, self.now()) {
                    Some(token) => Ok(token),
                    None => Err(error),
                }
            }
            other => other,
        }
    }

    /// The error for a caller during a backoff.
    pub(super) fn backing_off(&self, id: &str, reason: &str, retry_at: Timestamp) -> EngineError {
        let wait = retry_at
            .as_unix_millis()
            .saturating_sub(self.now().as_unix_millis())
            .max(0);
        EngineError::BackingOff {
            instance: id.to_string(),
            reason: reason.to_string(),
            retry_after: Duration::from_millis(u64::try_from(wait).unwrap_or(0)),
        }
    }

    fn still_valid(&self, instance: &str, want: &Want, now: Timestamp) -> Option<AccessToken> {
        self.cached_matching(instance, |entry| {
            want.valid(&entry.token.0.sealed, entry.token.0.expires_at, now)
        })
    }

    /// When the token enters the refresh margin: `margin` before expiry, but never before
    /// half of its lifetime. Without a refresh token nothing can be done before the expiry,
    /// so the token is served from memory until then.
    ///
    /// `lifetime` is what [`Engine::lifetime_for`] answers for the record's instance.
    pub(crate) fn refresh_at(
        &self,
        record: &TokenRecord,
        lifetime: Option<Duration>,
    ) -> Option<Timestamp> {
        let Some(expires) = record.expires_at else {
            // Unknown expiry: with a refresh token and a lifetime, refresh once the token is
            // that old; else use it until it is refused.
            let lifetime = lifetime?;
            record.refresh_token.as_ref()?;
            return Some(record.obtained_at.saturating_add(lifetime));
        };
        if record.refresh_token.is_none() {
            return Some(expires);
        }
        let lifetime = expires
            .as_unix_millis()
            .saturating_sub(record.obtained_at.as_unix_millis())
            .max(0);
        let margin = i64::try_from(self.inner.margin.as_millis()).unwrap_or(i64::MAX);
        let margin = margin.min(lifetime / 2);
        Some(Timestamp::from_unix_millis(
            expires.as_unix_millis().saturating_sub(margin),
        ))
    }

    pub(super) async fn open_and_cache(
        &self,
        id: &str,
        record: &TokenRecord,
    ) -> EngineResult<AccessToken> {
        let secret = self.open_secret(id, Field::AccessToken, &record.access_token)?;
        self.cache_record(id, record, secret.expose_secret()).await
    }

    /// The lifetime of a token of unknown expiry of `instance`: the instance's own
    /// (`Instance::token_lifetime`), else its integration's
    /// ([`IntegrationFlows::token_lifetime`]), else the engine's default
    /// ([`EngineBuilder::default_token_lifetime`](super::EngineBuilder::default_token_lifetime)),
    /// else none: the token is used until it is refused. A provider whose profile says its
    /// tokens never expire (refresh strategy `none`) gets no lifetime but the instance's
    /// own. The one place this rule is decided.
    pub fn unknown_expiry_lifetime(
        &self,
        instance: &Instance,
        integration: Option<&IntegrationFlows>,
    ) -> Option<Duration> {
        let own = instance.token_lifetime.filter(|secs| *secs > 0);
        let never_expires = integration.is_some_and(|flows| {
            super::setup::resolve_profile(instance, flows).is_ok_and(|resolved| {
                resolved.profile.refresh.strategy == Some(crate::profile::RefreshKind::None)
            })
        });
        if own.is_none() && never_expires {
            return None;
        }
        own.or_else(|| integration.and_then(|flows| flows.token_lifetime))
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs)
            .or(self.inner.default_token_lifetime)
    }

    /// The lifetime [`Engine::refresh_at`] uses for `record` of instance `id`: read (with
    /// the instance and its integration) only for a record without an expiry and with a
    /// refresh token, the only one it matters for.
    pub(crate) async fn lifetime_for(
        &self,
        id: &str,
        record: &TokenRecord,
    ) -> EngineResult<Option<Duration>> {
        if record.expires_at.is_some() || record.refresh_token.is_none() {
            return Ok(None);
        }
        let Some(instance) = self.inner.store.get_instance(id).await? else {
            return Ok(self.inner.default_token_lifetime);
        };
        let flows = match self
            .inner
            .store
            .get_integration(&instance.integration)
            .await?
        {
            Some(integration) => Some(IntegrationFlows::of(&integration)?),
            None => None,
        };
        Ok(self.unknown_expiry_lifetime(&instance, flows.as_ref()))
    }

    pub(crate) async fn cache_record(
        &self,
        id: &str,
        record: &TokenRecord,
        secret: &str,
    ) -> EngineResult<AccessToken> {
        let lifetime = self.lifetime_for(id, record).await?;
        self.ensure_watcher();
        let token = AccessToken(Arc::new(TokenInner {
            secret: SecretString::from(secret.to_string()),
            token_type: record.token_type.clone(),
            expires_at: record.expires_at,
            sealed: record.access_token.clone(),
            kept: record.kept.clone(),
        }));
        let cached = Cached {
            token: token.clone(),
            refresh_at: self.refresh_at(record, lifetime),
            // Not yet asked for again: a token read once goes before one callers come back for.
            used: AtomicBool::new(false),
        };
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        insert_bounded(&mut cache, id, cached, self.inner.token_cache_capacity);
        Ok(token)
    }
}

/// When a token obtained at `obtained` with the provider's `expires_in` expires: `None`
/// (unknown, used until refused) when the provider did not say, or said 0 (an answer that
/// would otherwise make every read refresh), or more than [`MAX_TOKEN_LIFETIME`].
pub(crate) fn expiry(obtained: Timestamp, expires_in: Option<Duration>) -> Option<Timestamp> {
    let lifetime = expires_in?;
    if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME {
        tracing::warn!(
            expires_in_s = lifetime.as_secs_f64(),
            "the provider gave the access token a lifetime of 0 or of more than 10 years; its expiry is treated as unknown (it is used until the provider refuses it)"
        );
        return None;
    }
    Some(obtained.saturating_add(lifetime))
}

#[cfg(test)]
mod fnv_tests {
    use std::hash::Hasher as _;

    fn fnv1a(bytes: &[u8]) -> u64 {
        let mut hasher = super::Fnv1a::default();
        hasher.write(bytes);
        hasher.finish()
    }

    #[test]
    fn the_cache_hash_is_fnv1a_64() {
        // The published test vectors of FNV-1a, 64 bits.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}

#[cfg(test)]
mod flight_tests {
    use std::sync::Arc;

    use crate::engine::{Engine, Keyring, MasterKey};

    fn engine() -> Engine {
        Engine::builder(
            Arc::new(granary_store::MemoryStore::new()),
            Keyring::new(MasterKey::generate().0, Vec::new()),
            "http://127.0.0.1:8080".parse().unwrap(),
        )
        .build()
        .unwrap()
    }

    #[tokio::test]
    async fn an_idle_flight_goes_and_one_in_use_stays() {
        let engine = engine();
        let flight = engine.flight("x");
        engine.drop_idle_flight("x", flight);
        assert_eq!(engine.flight_entries(), 0, "nobody else held it");

        // Another caller holds the flight itself.
        let flight = engine.flight("x");
        let other = engine.flight("x");
        engine.drop_idle_flight("x", flight);
        assert_eq!(engine.flight_entries(), 1, "removed under another caller");
        drop(other);

        // Another caller waits on its lock.
        let flight = engine.flight("x");
        let waiting = flight.lock.clone();
        engine.drop_idle_flight("x", flight);
        assert_eq!(engine.flight_entries(), 1, "removed under a waiter");
        drop(waiting);
    }

    #[tokio::test]
    async fn a_flight_that_was_replaced_does_not_remove_its_successor() {
        let engine = engine();
        let old = engine.flight("x");
        // `old` left the map (as after an idle drop) and a new entry was made for the id.
        engine.inner.flights.lock().unwrap().remove("x");
        let successor = engine.flight("x");
        assert!(!Arc::ptr_eq(&old, &successor));
        drop(successor);
        engine.drop_idle_flight("x", old);
        assert_eq!(engine.flight_entries(), 1, "the successor was removed");
    }
}
