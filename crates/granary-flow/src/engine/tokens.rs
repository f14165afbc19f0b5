//! `access_token`: the in-memory hot path, and the single-flight, lease-guarded refresh
//! behind it; key rotation (re-sealing every stored secret).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use granary_store::{
    InstanceStatus, RefreshErrorKind, RefreshOutcome, RefreshResult, Sealed, Timestamp, TokenRecord,
};
use secrecy::{ExposeSecret as _, SecretString};

use super::seal::{Field, Keyring};
use super::{Engine, EngineError, EngineResult, Event};
use crate::protocol;

/// How long a caller waits before it retries a refresh that failed with a transient error,
/// while the current token is still valid (unless the provider asked for longer).
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// How many times a re-seal write is retried when it races a refresh.
const CAS_ATTEMPTS: usize = 8;

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

    /// Whether two handles hold the same token.
    pub fn same_token(&self, other: &AccessToken) -> bool {
        self.0.sealed == other.0.sealed
    }
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
}

/// The single-flight state of one instance.
#[derive(Default)]
pub(crate) struct Flight {
    pub(super) lock: tokio::sync::Mutex<FlightState>,
    /// Refresh attempts finished so far; a waiter that sees it move shares the outcome.
    attempts: AtomicU64,
}

#[derive(Default)]
pub(super) struct FlightState {
    last_failure: Option<Arc<crate::Error>>,
    retry_not_before: Option<Timestamp>,
}

/// What a caller accepts.
#[derive(Clone)]
pub(crate) struct Want {
    /// The token must still be outside the margin at this time.
    fresh_at: Timestamp,
    /// Not this token (it was refused with a 401).
    reject: Option<Sealed>,
}

impl Want {
    fn rejects(&self, sealed: &Sealed) -> bool {
        self.reject.as_ref() == Some(sealed)
    }

    fn accepts(&self, sealed: &Sealed, refresh_at: Option<Timestamp>) -> bool {
        !self.rejects(sealed) && refresh_at.is_none_or(|at| self.fresh_at < at)
    }

    fn valid(&self, sealed: &Sealed, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
        !self.rejects(sealed) && expires_at.is_none_or(|at| now < at)
    }
}

/// What [`Engine::reseal_all`] re-sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Instances looked at.
    pub instances: usize,
    /// Client secrets re-sealed under the current key.
    pub client_secrets: usize,
    /// Token records re-sealed under the current key.
    pub token_records: usize,
}

impl Engine {
    /// A valid access token of `instance`.
    ///
    /// Outside the refresh margin it comes from memory. Inside it (or when nothing is in
    /// memory yet) one caller per process refreshes while the others wait and share the
    /// result, and the store lease makes it one refresh across processes. A token without
    /// a known expiry stays valid until [`Engine::force_refresh`] is called after a 401.
    ///
    /// # Errors
    /// [`EngineError::NeedsAuthorization`] after the provider refused the refresh token
    /// (no refresh is tried until the instance is authorized again);
    /// [`EngineError::NotAuthorized`], [`EngineError::Disabled`]; [`EngineError::Refresh`]
    /// when a refresh failed and the current token has expired (while it is valid, it is
    /// returned).
    pub async fn access_token(&self, instance: &str) -> EngineResult<AccessToken> {
        if let Some(token) = self.cached_fresh(instance) {
            return Ok(token);
        }
        let want = Want {
            fresh_at: self.now(),
            reject: None,
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
        };
        self.slow_path(instance, want).await
    }

    /// Refreshes ahead of time: when the token would be inside the margin at `until`, or
    /// when `force` is set.
    pub(crate) async fn refresh_ahead(
        &self,
        instance: &str,
        until: Timestamp,
        force: bool,
    ) -> EngineResult<AccessToken> {
        let reject = if force {
            match self.inner.store.get_token(instance).await? {
                Some(record) => Some(record.access_token),
                None => None,
            }
        } else {
            None
        };
        self.slow_path(
            instance,
            Want {
                fresh_at: until,
                reject,
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
    }

    /// Drops the single-flight state of `instance` (a remembered failure, its backoff): the
    /// next caller starts afresh.
    pub(super) fn drop_flight(&self, instance: &str) {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance);
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
        entry
            .refresh_at
            .is_none_or(|at| now < at)
            .then(|| entry.token.clone())
    }

    fn cached_matching(
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

    async fn slow_path(&self, instance: &str, want: Want) -> EngineResult<AccessToken> {
        let flight = self.flight(instance);
        let seen = flight.attempts.load(Ordering::SeqCst);
        let mut state = flight.lock.lock().await;
        let accepts = |entry: &Cached| want.accepts(&entry.token.0.sealed, entry.refresh_at);
        if let Some(token) = self.cached_matching(instance, accepts) {
            return Ok(token);
        }
        let now = self.now();
        if let Some(failure) = state.last_failure.clone() {
            // The refresh this caller waited for failed: share its outcome rather than
            // asking again at once; so does a caller that comes soon after.
            let shared = flight.attempts.load(Ordering::SeqCst) != seen;
            let backing_off = state.retry_not_before.is_some_and(|at| now < at);
            if shared || backing_off {
                if let Some(token) = self.still_valid(instance, &want, now) {
                    return Ok(token);
                }
                if shared {
                    return Err(EngineError::Refresh {
                        instance: instance.to_string(),
                        source: failure,
                    });
                }
            }
        }
        let result = self.refresh_locked(instance, &want).await;
        flight.attempts.fetch_add(1, Ordering::SeqCst);
        match result {
            Err(EngineError::Refresh {
                instance: id,
                source,
            }) => {
                let wait = source
                    .retry_after()
                    .unwrap_or(FAILURE_BACKOFF)
                    .max(FAILURE_BACKOFF);
                state.retry_not_before = Some(self.now().saturating_add(wait));
                state.last_failure = Some(source.clone());
                match self.still_valid(instance, &want, self.now()) {
                    Some(token) => Ok(token),
                    None => Err(EngineError::Refresh {
                        instance: id,
                        source,
                    }),
                }
            }
            other => {
                state.last_failure = None;
                state.retry_not_before = None;
                other
            }
        }
    }

    fn still_valid(&self, instance: &str, want: &Want, now: Timestamp) -> Option<AccessToken> {
        self.cached_matching(instance, |entry| {
            want.valid(&entry.token.0.sealed, entry.token.0.expires_at, now)
        })
    }

    /// Under the in-process flight lock: reads the store, and refreshes under the store
    /// lease, or waits for the process that holds it.
    async fn refresh_locked(&self, id: &str, want: &Want) -> EngineResult<AccessToken> {
        let deadline = Instant::now() + self.inner.lease_wait;
        loop {
            let record = self.authorized_record(id).await?;
            let now = self.now();
            if want.accepts(&record.access_token, self.refresh_at(&record)) {
                return self.open_and_cache(id, &record);
            }
            if record.refresh_token.is_none() {
                if want.valid(&record.access_token, record.expires_at, now) {
                    return self.open_and_cache(id, &record);
                }
                let reason = "the access token expired or was refused, and the provider issued \
                              no refresh token";
                return Err(self.needs_authorization(id, reason).await);
            }
            let holder = &self.inner.holder;
            if self
                .inner
                .store
                .try_acquire_lease(id, holder, now, self.inner.lease_ttl)
                .await?
            {
                let result = self.refresh_under_lease(id, want).await;
                if let Err(error) = self.inner.store.release_lease(id, holder).await {
                    tracing::warn!(instance = id, %error, "could not release the refresh lease; it expires by itself");
                }
                return result;
            }
            if let Some(token) = self
                .wait_for_other_process(id, &record, want, deadline)
                .await?
            {
                return Ok(token);
            }
        }
    }

    /// The token record of an authorized instance, or the error that says why there is none.
    async fn authorized_record(&self, id: &str) -> EngineResult<TokenRecord> {
        let instance = self.instance(id).await?;
        match instance.status {
            InstanceStatus::Authorized => {}
            InstanceStatus::New => {
                return Err(EngineError::NotAuthorized {
                    instance: id.to_string(),
                });
            }
            InstanceStatus::Disabled => {
                return Err(EngineError::Disabled {
                    instance: id.to_string(),
                });
            }
            InstanceStatus::NeedsAuthorization => {
                self.forget(id);
                let reason = match self.inner.store.get_token(id).await? {
                    Some(TokenRecord {
                        last_refresh:
                            Some(RefreshOutcome {
                                result: RefreshResult::Failed { message, .. },
                                ..
                            }),
                        ..
                    }) => message,
                    _ => "the provider refused the refresh token".to_string(),
                };
                return Err(EngineError::NeedsAuthorization {
                    instance: id.to_string(),
                    reason,
                });
            }
        }
        self.inner
            .store
            .get_token(id)
            .await?
            .ok_or_else(|| EngineError::NotAuthorized {
                instance: id.to_string(),
            })
    }

    async fn refresh_under_lease(&self, id: &str, want: &Want) -> EngineResult<AccessToken> {
        // Another process may have written a new token between the read and the lease.
        let record = self.authorized_record(id).await?;
        if want.accepts(&record.access_token, self.refresh_at(&record)) {
            return self.open_and_cache(id, &record);
        }
        let instance = self.instance(id).await?;
        let config = self.client_config(&instance).await?;
        let keyring = self.keyring();
        let Some(sealed_refresh) = &record.refresh_token else {
            return Err(self
                .needs_authorization(id, "the provider issued no refresh token")
                .await);
        };
        let refresh_token = keyring.open_string(id, Field::RefreshToken, sealed_refresh)?;
        let started = self.now();
        let outcome = protocol::refresh(
            &self.inner.http,
            &config,
            &refresh_token,
            None::<&[&str]>,
            &self.inner.retry,
        )
        .await;
        match outcome {
            Ok(refreshed) => {
                let tokens = &refreshed.tokens;
                let mut new = TokenRecord {
                    access_token: keyring.seal_str(id, Field::AccessToken, &tokens.access_token)?,
                    refresh_token: Some(if refreshed.rotated {
                        keyring.seal_str(id, Field::RefreshToken, &refreshed.refresh_token)?
                    } else {
                        sealed_refresh.clone()
                    }),
                    token_type: tokens
                        .token_type
                        .clone()
                        .unwrap_or_else(|| record.token_type.clone()),
                    scope: tokens
                        .scope
                        .as_ref()
                        .map(|s| s.join(" "))
                        .or_else(|| record.scope.clone()),
                    expires_at: tokens.expires_in.map(|d| started.saturating_add(d)),
                    obtained_at: started,
                    last_refresh: Some(RefreshOutcome {
                        at: self.now(),
                        result: RefreshResult::Ok,
                    }),
                    version: 0,
                };
                // The new record (with a rotated refresh token) is written before anything
                // else happens; the compare-and-swap keeps a late writer from overwriting a
                // newer token.
                match self
                    .inner
                    .store
                    .put_token(id, &new, Some(record.version))
                    .await
                {
                    Ok(version) => new.version = version,
                    Err(granary_store::Error::Conflict { .. }) => {
                        tracing::warn!(
                            instance = id,
                            "a newer token was stored while this refresh ran (the lease expired?); keeping the newer one"
                        );
                        let latest = self.authorized_record(id).await?;
                        return self.open_and_cache(id, &latest);
                    }
                    Err(error) => return Err(error.into()),
                }
                let token = self.cache_record(id, &new, tokens.access_token.expose_secret());
                self.emit(Event::Refreshed {
                    instance: id.to_string(),
                    expires_at: new.expires_at,
                    rotated: refreshed.rotated,
                });
                Ok(token)
            }
            Err(error) if error.needs_reauthorization() => {
                let reason = error.to_string();
                self.record_failure(id, &record, RefreshErrorKind::InvalidGrant, &reason)
                    .await;
                Err(self.needs_authorization(id, &reason).await)
            }
            Err(error) => {
                let kind = if error.is_transient() {
                    RefreshErrorKind::Transient
                } else if matches!(error, crate::Error::InvalidClient { .. }) {
                    RefreshErrorKind::InvalidClient
                } else {
                    RefreshErrorKind::Other
                };
                let message = error.to_string();
                let written = self.record_failure(id, &record, kind, &message).await;
                // Keep serving the current token while it is valid.
                if let Err(open) = self.open_and_cache(id, written.as_ref().unwrap_or(&record)) {
                    tracing::warn!(instance = id, error = %open, "the current token does not open");
                }
                self.emit(Event::RefreshFailed {
                    instance: id.to_string(),
                    message,
                    transient: error.is_transient(),
                });
                Err(EngineError::Refresh {
                    instance: id.to_string(),
                    source: Arc::new(error),
                })
            }
        }
    }

    /// Waits for the process that holds the lease to store a new token. `Ok(None)`: the
    /// lease is free (or the record changed without an acceptable token): try again.
    async fn wait_for_other_process(
        &self,
        id: &str,
        record: &TokenRecord,
        want: &Want,
        deadline: Instant,
    ) -> EngineResult<Option<AccessToken>> {
        loop {
            if Instant::now() >= deadline {
                if want.valid(&record.access_token, record.expires_at, self.now()) {
                    return self.open_and_cache(id, record).map(Some);
                }
                return Err(EngineError::RefreshTimedOut {
                    instance: id.to_string(),
                    waited: self.inner.lease_wait,
                });
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 10);
            tokio::time::sleep(self.inner.poll_interval + jitter).await;
            let Some(latest) = self.inner.store.get_token(id).await? else {
                return Ok(None);
            };
            if latest.version != record.version {
                if want.accepts(&latest.access_token, self.refresh_at(&latest)) {
                    return self.open_and_cache(id, &latest).map(Some);
                }
                return Ok(None);
            }
            match self.inner.store.get_lease(id).await? {
                Some(lease) if !lease.can_be_taken_by(&self.inner.holder, self.now()) => {}
                _ => return Ok(None),
            }
        }
    }

    /// Stores how the refresh failed (best effort; a newer record wins). Returns the
    /// record as written.
    async fn record_failure(
        &self,
        id: &str,
        record: &TokenRecord,
        kind: RefreshErrorKind,
        message: &str,
    ) -> Option<TokenRecord> {
        let mut failed = record.clone();
        failed.last_refresh = Some(RefreshOutcome {
            at: self.now(),
            result: RefreshResult::Failed {
                kind,
                message: message.to_string(),
            },
        });
        match self
            .inner
            .store
            .put_token(id, &failed, Some(record.version))
            .await
        {
            Ok(version) => {
                failed.version = version;
                Some(failed)
            }
            Err(error) => {
                tracing::warn!(instance = id, %error, "could not record the failed refresh");
                None
            }
        }
    }

    /// Marks the instance "needs authorization", drops its token from memory, tells the
    /// subscribers, and returns the error for the caller.
    async fn needs_authorization(&self, id: &str, reason: &str) -> EngineError {
        if let Err(error) = self
            .set_status(id, InstanceStatus::NeedsAuthorization)
            .await
        {
            tracing::warn!(instance = id, %error, "could not mark the instance as needing authorization");
        }
        self.forget(id);
        self.emit(Event::NeedsAuthorization {
            instance: id.to_string(),
            reason: reason.to_string(),
        });
        EngineError::NeedsAuthorization {
            instance: id.to_string(),
            reason: reason.to_string(),
        }
    }

    /// When the token enters the refresh margin: `margin` before expiry, but never before
    /// half of its lifetime.
    pub(crate) fn refresh_at(&self, record: &TokenRecord) -> Option<Timestamp> {
        let expires = record.expires_at?;
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

    fn open_and_cache(&self, id: &str, record: &TokenRecord) -> EngineResult<AccessToken> {
        let secret = self
            .keyring()
            .open_string(id, Field::AccessToken, &record.access_token)?;
        Ok(self.cache_record(id, record, secret.expose_secret()))
    }

    pub(crate) fn cache_record(&self, id: &str, record: &TokenRecord, secret: &str) -> AccessToken {
        let token = AccessToken(Arc::new(TokenInner {
            secret: SecretString::from(secret.to_string()),
            token_type: record.token_type.clone(),
            expires_at: record.expires_at,
            sealed: record.access_token.clone(),
        }));
        let cached = Cached {
            token: token.clone(),
            refresh_at: self.refresh_at(record),
        };
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), cached);
        token
    }

    /// Seals with `keyring` from now on (its previous keys still open older values); call
    /// [`Engine::reseal_all`] next.
    pub fn replace_keyring(&self, keyring: Keyring) {
        *self
            .inner
            .keyring
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keyring);
    }

    /// Re-seals every client secret and token under the current key, so that the previous
    /// keys can be dropped. Pending authorizations are not re-sealed: they expire within
    /// 10 minutes, so keep the previous key loaded that long.
    pub async fn reseal_all(&self) -> EngineResult<ResealReport> {
        let mut report = ResealReport::default();
        for listed in self.inner.store.list_instances().await? {
            report.instances += 1;
            if self.reseal_client_secret(&listed.id).await? {
                report.client_secrets += 1;
            }
            if self.reseal_token(&listed.id).await? {
                report.token_records += 1;
            }
        }
        Ok(report)
    }

    async fn reseal_client_secret(&self, id: &str) -> EngineResult<bool> {
        for _ in 0..CAS_ATTEMPTS {
            let keyring = self.keyring();
            let mut instance = self.instance(id).await?;
            let Some(sealed) = instance
                .client_secret
                .as_ref()
                .filter(|s| keyring.needs_reseal(s))
            else {
                return Ok(false);
            };
            let secret = keyring.open(id, Field::ClientSecret, sealed)?;
            instance.client_secret =
                Some(keyring.seal(id, Field::ClientSecret, secret.expose_secret())?);
            match self.inner.store.update_instance(&instance).await {
                Ok(_) => return Ok(true),
                Err(granary_store::Error::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Invalid(format!(
            "instance `{id}` kept changing while it was re-sealed: run the rotation again"
        )))
    }

    async fn reseal_token(&self, id: &str) -> EngineResult<bool> {
        for _ in 0..CAS_ATTEMPTS {
            let keyring = self.keyring();
            let Some(mut record) = self.inner.store.get_token(id).await? else {
                return Ok(false);
            };
            let refresh_stale = record
                .refresh_token
                .as_ref()
                .is_some_and(|s| keyring.needs_reseal(s));
            if !keyring.needs_reseal(&record.access_token) && !refresh_stale {
                return Ok(false);
            }
            let access = keyring.open(id, Field::AccessToken, &record.access_token)?;
            record.access_token = keyring.seal(id, Field::AccessToken, access.expose_secret())?;
            if let Some(sealed) = &record.refresh_token {
                let refresh = keyring.open(id, Field::RefreshToken, sealed)?;
                record.refresh_token =
                    Some(keyring.seal(id, Field::RefreshToken, refresh.expose_secret())?);
            }
            match self
                .inner
                .store
                .put_token(id, &record, Some(record.version))
                .await
            {
                Ok(version) => {
                    record.version = version;
                    let secret = std::str::from_utf8(access.expose_secret()).unwrap_or_default();
                    if self.cached_matching(id, |_| true).is_some() {
                        self.cache_record(id, &record, secret);
                    }
                    return Ok(true);
                }
                Err(granary_store::Error::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Invalid(format!(
            "the token of instance `{id}` kept changing while it was re-sealed: run the rotation again"
        )))
    }
}
