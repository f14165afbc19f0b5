//! The refresh under the store lease: one deadline, a lease heartbeat, fenced writes, a
//! backoff recorded in the store for every process, and the re-read that keeps a process
//! which lost a race from declaring a live grant dead.

use std::time::Duration;

use granary_store::{InstanceStatus, RefreshErrorKind, RefreshOutcome, RefreshResult, TokenRecord};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;

use super::backoff::{
    DEFINITIVE_FAILURES_BEFORE_REAUTHORIZATION, backoff_after, previous_failures, recorded_backoff,
    unexplained_refusal,
};
use super::grant::expired_without_refresh_token;
use super::lease::HeldLease;
use super::seal::Field;
use super::setup::InstanceSetup;
use super::tokens::{Backoff, Flight, FlightState, Want, expiry};
use super::{AccessToken, Engine, EngineError, EngineResult, Event};
use crate::error::Endpoint;
use crate::protocol::{self, ClientConfig, RefreshStrategy, Refreshed};

/// How one refresh under the lease ended.
enum Attempt {
    /// A token to hand out (refreshed here, or stored by another process meanwhile).
    Token(AccessToken),
    /// The lease went to another process before this one could decide: wait for it.
    LostLease,
}

/// What a renewal presents to the provider.
enum Renewal {
    /// The refresh token (RFC 6749 section 6).
    RefreshToken(SecretString),
    /// The access token, exchanged for a new one (Facebook, Instagram).
    Exchange(SecretString),
}

/// How the call to the provider ended.
enum Call {
    Answered(crate::Result<Refreshed>),
    /// The shutdown's grace period ended first.
    Cancelled,
}

impl Engine {
    /// Under the in-process flight lock: reads the store, honours a recorded backoff, and
    /// refreshes under the store lease or waits for the process that holds it.
    pub(super) async fn refresh_locked(
        &self,
        id: &str,
        want: &Want,
        flight: &Flight,
        state: &mut FlightState,
    ) -> EngineResult<AccessToken> {
        let give_up_at = Instant::now() + self.inner.refresh_deadline + self.inner.lease_ttl;
        loop {
            let record = self.authorized_record(id).await?;
            if let Some(token) = self
                .answer_from_record(id, want, &record, flight, state)
                .await?
            {
                return Ok(token);
            }
            let holder = &self.inner.holder;
            if self
                .inner
                .store
                .try_acquire_lease(id, holder, self.now(), self.inner.lease_ttl)
                .await?
            {
                let lease = HeldLease::new(self, id);
                let attempt = self.refresh_under_lease(id, want, flight, state).await;
                lease.release().await;
                match attempt? {
                    Attempt::Token(token) => return Ok(token),
                    Attempt::LostLease => {}
                }
            }
            if let Some(token) = self
                .wait_for_other_process(id, &record, want, give_up_at)
                .await?
            {
                return Ok(token);
            }
        }
    }

    /// What `record` answers without a refresh: `Some` token when it is acceptable, an
    /// error when the instance cannot be refreshed now (no refresh token, a backoff);
    /// `None`: refresh.
    async fn answer_from_record(
        &self,
        id: &str,
        want: &Want,
        record: &TokenRecord,
        flight: &Flight,
        state: &mut FlightState,
    ) -> EngineResult<Option<AccessToken>> {
        let now = self.now();
        let lifetime = self.lifetime_for(id, record).await?;
        if want.accepts(&record.access_token, self.refresh_at(record, lifetime)) {
            return self.open_and_cache(id, record).await.map(Some);
        }
        if record.refresh_token.is_none() {
            if want.valid(&record.access_token, record.expires_at, now) {
                return self.open_and_cache(id, record).await.map(Some);
            }
            let instance = self.instance(id).await?;
            let cause = self.no_refresh_token_cause(&instance).await;
            let unexpired = record.expires_at.is_none_or(|at| now < at);
            if want.forced && unexpired {
                // A refresh was asked for, not a refused token reported: nothing to do.
                return Err(EngineError::NothingToRefresh {
                    instance: id.to_string(),
                    expires_at: record.expires_at,
                    cause,
                });
            }
            let reason = expired_without_refresh_token(record, now, &cause);
            return Err(self.needs_authorization(id, &reason).await);
        }
        let Some((retry_at, reason)) = recorded_backoff(record) else {
            return Ok(None);
        };
        if now >= retry_at {
            return Ok(None);
        }
        state.backoff = Some(Backoff {
            retry_at,
            reason: reason.clone(),
            generation: flight.generation(),
        });
        if want.valid(&record.access_token, record.expires_at, now) {
            return self.open_and_cache(id, record).await.map(Some);
        }
        Err(self.backing_off(id, &reason, retry_at))
    }

    async fn refresh_under_lease(
        &self,
        id: &str,
        want: &Want,
        flight: &Flight,
        state: &mut FlightState,
    ) -> EngineResult<Attempt> {
        // Another process may have written a new token (or a backoff) between the read and
        // the lease.
        let record = self.authorized_record(id).await?;
        if let Some(token) = self
            .answer_from_record(id, want, &record, flight, state)
            .await?
        {
            return Ok(Attempt::Token(token));
        }
        let instance = self.instance(id).await?;
        let mut setup = self.instance_setup(&instance, &record.kept).await?;
        let renewal = match &setup.config.refresh_strategy {
            RefreshStrategy::RefreshToken => {
                let Some(sealed_refresh) = &record.refresh_token else {
                    return Err(self
                        .needs_authorization(id, "the provider issued no refresh token")
                        .await);
                };
                Renewal::RefreshToken(self.open_secret(id, Field::RefreshToken, sealed_refresh)?)
            }
            RefreshStrategy::AccessTokenExchange(_) => {
                if record.expires_at.is_some_and(|at| at <= self.now()) {
                    let reason = "the access token expired, and this provider renews only an \
                                  unexpired access token (by exchanging it): authorize again";
                    return Err(self.needs_authorization(id, reason).await);
                }
                Renewal::Exchange(self.open_secret(id, Field::AccessToken, &record.access_token)?)
            }
            // Tokens the profile says never expire are not refreshed on a schedule (they get
            // no assumed lifetime); when a refresh is needed all the same (the API refused
            // the token, an admin asked), a refresh token the provider sent is used.
            RefreshStrategy::None => {
                let Some(sealed_refresh) = &record.refresh_token else {
                    let reason = "the provider profile says this provider's tokens are never \
                                  renewed, and it issued no refresh token: authorize again";
                    return Err(self.needs_authorization(id, reason).await);
                };
                let token = self.open_secret(id, Field::RefreshToken, sealed_refresh)?;
                setup.config.refresh_strategy = RefreshStrategy::RefreshToken;
                Renewal::RefreshToken(token)
            }
        };
        let started = self.now();
        match self.call_provider(id, &setup.config, &renewal).await {
            Call::Cancelled => Err(EngineError::ShuttingDown {
                instance: id.to_string(),
            }),
            Call::Answered(Ok(refreshed)) => {
                self.store_refreshed(id, &record, &refreshed, started, &setup)
                    .await
            }
            Call::Answered(Err(error)) if error.needs_reauthorization() => {
                self.refused(id, &record, error).await
            }
            Call::Answered(Err(error)) => Err(self.failed(id, &record, error, flight, state).await),
        }
    }

    /// The refresh request, within the refresh deadline (retries included), renewing the
    /// lease while it waits, and cut short by the end of a shutdown's grace period.
    async fn call_provider(&self, id: &str, config: &ClientConfig, renewal: &Renewal) -> Call {
        let deadline = self.inner.refresh_deadline;
        let http = &self.inner.http;
        let retry = &self.inner.retry;
        let request = async {
            match renewal {
                Renewal::RefreshToken(token) => {
                    protocol::refresh(http, config, token, None::<&[&str]>, retry).await
                }
                Renewal::Exchange(token) => {
                    protocol::exchange_access_token(http, config, token, retry).await
                }
            }
        };
        let bounded = async {
            match tokio::time::timeout(deadline, request).await {
                Ok(result) => result,
                Err(_) => Err(crate::Error::Transient {
                    endpoint: Endpoint::Token,
                    url: config.token_url.to_string(),
                    reason: format!(
                        "no answer within the refresh deadline of {} s, retries included",
                        deadline.as_secs_f64()
                    ),
                    status: None,
                    retry_after: None,
                    details: None,
                }),
            }
        };
        tokio::select! {
            result = self.with_heartbeat(id, bounded) => Call::Answered(result),
            () = self.cancelled() => Call::Cancelled,
        }
    }

    /// Stores a successful refresh: fenced by the lease and the version read. A rotated
    /// refresh token is in this record, so it is stored before anything else happens, and
    /// it is never thrown away while no newer token was stored.
    async fn store_refreshed(
        &self,
        id: &str,
        record: &TokenRecord,
        refreshed: &Refreshed,
        started: granary_store::Timestamp,
        setup: &InstanceSetup,
    ) -> EngineResult<Attempt> {
        let config = &setup.config;
        let tokens = &refreshed.tokens;
        let expires_at = match expiry(started, tokens.expires_in.or(setup.stated_lifetime())) {
            Some(at) => Some(at),
            None => {
                let asked = self.introspected_expiry(id, config, &tokens.access_token, started);
                self.with_heartbeat(id, asked).await
            }
        };
        let keyring = self.keyring();
        let exchanged = matches!(
            config.refresh_strategy,
            RefreshStrategy::AccessTokenExchange(_)
        );
        // An exchange's renewal credential is the new access token (or the refresh token
        // the provider sent): always the one just received.
        let sealed_refresh = match (&record.refresh_token, refreshed.rotated) {
            (Some(kept), false) if !exchanged => kept.clone(),
            _ => keyring.seal_str(id, Field::RefreshToken, &refreshed.refresh_token)?,
        };
        let mut new = TokenRecord {
            access_token: keyring.seal_str(id, Field::AccessToken, &tokens.access_token)?,
            refresh_token: Some(sealed_refresh),
            token_type: tokens
                .token_type
                .clone()
                .unwrap_or_else(|| record.token_type.clone()),
            scope: tokens
                .scope
                .as_ref()
                .map(|s| s.join(" "))
                .or_else(|| record.scope.clone()),
            expires_at,
            obtained_at: started,
            last_refresh: Some(RefreshOutcome {
                at: self.now(),
                result: RefreshResult::Ok,
            }),
            kept: InstanceSetup::kept_after(&record.kept, &tokens.kept),
            version: 0,
        };
        let store = &self.inner.store;
        let holder = &self.inner.holder;
        let mut fenced = true;
        loop {
            let written = if fenced {
                store
                    .put_token_fenced(id, &new, record.version, holder, self.now())
                    .await
            } else {
                store.put_token(id, &new, Some(record.version)).await
            };
            match written {
                Ok(version) => {
                    new.version = version;
                    break;
                }
                Err(granary_store::Error::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            let latest = store.get_token(id).await?;
            if latest.as_ref().map(|l| l.version) != Some(record.version) {
                tracing::warn!(
                    instance = id,
                    "another process stored a newer token while this refresh ran; keeping the newer one"
                );
                let latest = self.authorized_record(id).await?;
                return self.open_and_cache(id, &latest).await.map(Attempt::Token);
            }
            if !fenced {
                continue;
            }
            // The lease lapsed while this process waited, and no token was stored since.
            // Take it again if it is free; if another process holds it, it is refreshing
            // with the refresh token this answer may have rotated: store this answer (the
            // version check still keeps any newer token) rather than lose the grant.
            let now = self.now();
            if !store
                .try_acquire_lease(id, holder, now, self.inner.lease_ttl)
                .await?
            {
                tracing::warn!(
                    instance = id,
                    "the refresh lease is held by another process and no newer token is stored: storing this refresh's answer by version alone, so that a rotated refresh token is not lost"
                );
                fenced = false;
            }
        }
        let token = self
            .cache_record(id, &new, tokens.access_token.expose_secret())
            .await?;
        self.emit(Event::Refreshed {
            instance: id.to_string(),
            expires_at: new.expires_at,
            rotated: refreshed.rotated,
        });
        Ok(Attempt::Token(token))
    }

    /// The provider refused the refresh token. Before the instance is marked as needing
    /// authorization: another process may have refreshed meanwhile (then this refresh token
    /// was rotated away and the newer token is good), and a process that lost its lease
    /// leaves the verdict to the holder.
    async fn refused(
        &self,
        id: &str,
        record: &TokenRecord,
        error: crate::Error,
    ) -> EngineResult<Attempt> {
        let store = &self.inner.store;
        if let Some(latest) = store.get_token(id).await? {
            if latest.version != record.version {
                tracing::info!(
                    instance = id,
                    "the provider refused a refresh token that another process had just rotated; using the token it stored"
                );
                let latest = self.authorized_record(id).await?;
                return self.open_and_cache(id, &latest).await.map(Attempt::Token);
            }
        }
        if !store
            .try_acquire_lease(id, &self.inner.holder, self.now(), self.inner.lease_ttl)
            .await?
        {
            return Ok(Attempt::LostLease);
        }
        let reason = error.to_string();
        self.record_failure(id, record, RefreshErrorKind::InvalidGrant, &reason, None)
            .await;
        Err(self.needs_authorization(id, &reason).await)
    }

    /// A refresh failed otherwise: the failure and when to try again are recorded in the
    /// store for every process; repeated refusals without an OAuth error end in "needs
    /// authorization".
    async fn failed(
        &self,
        id: &str,
        record: &TokenRecord,
        error: crate::Error,
        flight: &Flight,
        state: &mut FlightState,
    ) -> EngineError {
        let failures = previous_failures(record).saturating_add(1);
        let kind = if error.is_transient() {
            RefreshErrorKind::Transient
        } else if matches!(error, crate::Error::InvalidClient { .. }) {
            RefreshErrorKind::InvalidClient
        } else {
            RefreshErrorKind::Other
        };
        let refusal = unexplained_refusal(&error);
        let message = match &refusal {
            Some(answer) => format!(
                "the token endpoint, which issued this token, refused the refresh with {answer} \
                 and no OAuth error (failure {failures} in a row); providers answer a revoked or \
                 already used refresh token this way: after \
                 {DEFINITIVE_FAILURES_BEFORE_REAUTHORIZATION} such failures the instance needs \
                 authorization"
            ),
            None => error.to_string(),
        };
        if refusal.is_some() && failures >= DEFINITIVE_FAILURES_BEFORE_REAUTHORIZATION {
            self.record_failure(id, record, kind, &message, None).await;
            return self.needs_authorization(id, &message).await;
        }
        let retry_at = self
            .now()
            .saturating_add(backoff_after(failures, error.retry_after()));
        self.record_failure(id, record, kind, &message, Some((failures, retry_at)))
            .await;
        state.backoff = Some(Backoff {
            retry_at,
            reason: message.clone(),
            generation: flight.generation(),
        });
        self.emit(Event::RefreshFailed {
            instance: id.to_string(),
            message: message.clone(),
            transient: error.is_transient(),
        });
        // Cache the current token so that callers get it while it is valid.
        if let Err(open) = self.open_and_cache(id, record).await {
            tracing::warn!(instance = id, error = %open, "the current token does not open");
        }
        if refusal.is_some() {
            EngineError::RefreshFailing {
                instance: id.to_string(),
                reason: message,
            }
        } else {
            EngineError::Refresh {
                instance: id.to_string(),
                source: std::sync::Arc::new(error),
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
        give_up_at: Instant,
    ) -> EngineResult<Option<AccessToken>> {
        let waited_since = Instant::now();
        loop {
            if Instant::now() >= give_up_at {
                if want.valid(&record.access_token, record.expires_at, self.now()) {
                    return self.open_and_cache(id, record).await.map(Some);
                }
                return Err(EngineError::RefreshTimedOut {
                    instance: id.to_string(),
                    waited: waited_since.elapsed(),
                });
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 10);
            tokio::select! {
                () = tokio::time::sleep(self.inner.poll_interval + jitter) => {}
                () = self.cancelled() => return Err(EngineError::ShuttingDown { instance: id.to_string() }),
            }
            let Some(latest) = self.inner.store.get_token(id).await? else {
                return Ok(None);
            };
            if latest.version != record.version {
                let lifetime = self.lifetime_for(id, &latest).await?;
                if want.accepts(&latest.access_token, self.refresh_at(&latest, lifetime)) {
                    return self.open_and_cache(id, &latest).await.map(Some);
                }
                return Ok(None);
            }
            match self.inner.store.get_lease(id).await? {
                Some(lease) if !lease.can_be_taken_by(&self.inner.holder, self.now()) => {}
                _ => return Ok(None),
            }
        }
    }

    /// Stores how the refresh failed, and with `Some((failures, retry_at))` the backoff
    /// every process honours; fenced by the lease (best effort: a newer record wins).
    async fn record_failure(
        &self,
        id: &str,
        record: &TokenRecord,
        kind: RefreshErrorKind,
        message: &str,
        backoff: Option<(u32, granary_store::Timestamp)>,
    ) {
        let mut failed = record.clone();
        failed.last_refresh = Some(RefreshOutcome {
            at: self.now(),
            result: RefreshResult::Failed {
                kind,
                message: message.to_string(),
                failures: backoff.map_or(previous_failures(record).saturating_add(1), |b| b.0),
                retry_at: backoff.map(|b| b.1),
            },
        });
        if let Err(error) = self
            .inner
            .store
            .put_token_fenced(id, &failed, record.version, &self.inner.holder, self.now())
            .await
        {
            tracing::warn!(instance = id, %error, "could not record the failed refresh");
        }
    }

    /// The token record of an authorized instance, or the error that says why there is none.
    pub(super) async fn authorized_record(&self, id: &str) -> EngineResult<TokenRecord> {
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
                    Some(record) if record.refresh_token.is_none() => {
                        let cause = self.no_refresh_token_cause(&instance).await;
                        expired_without_refresh_token(&record, self.now(), &cause)
                    }
                    Some(_) => "the provider refused the refresh token".to_string(),
                    None => "it holds no token (its token or authorization URL moved to \
                             another origin, or it was disconnected)"
                        .to_string(),
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

    /// Marks the instance "needs authorization", drops its token from memory, tells the
    /// subscribers, and returns the error for the caller.
    pub(super) async fn needs_authorization(&self, id: &str, reason: &str) -> EngineError {
        if let Err(error) = self
            .set_status(id, InstanceStatus::NeedsAuthorization)
            .await
        {
            tracing::warn!(instance = id, %error, "could not mark the instance as needing authorization");
        }
        self.forget(id);
        let reconnect = match self.inner.reconnect_link_ttl {
            Some(ttl) => match self.create_reconnect_link(id, ttl).await {
                Ok(link) => Some(link),
                Err(error) => {
                    tracing::warn!(instance = id, %error, "no reconnect link for the needs-authorization event");
                    None
                }
            },
            None => None,
        };
        self.emit(Event::NeedsAuthorization {
            instance: id.to_string(),
            reason: reason.to_string(),
            reconnect,
        });
        EngineError::NeedsAuthorization {
            instance: id.to_string(),
            reason: reason.to_string(),
        }
    }
}
