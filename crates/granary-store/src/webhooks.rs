//! The records of webhooks (endpoints, deliveries and their attempts) and reconnect links,
//! and the rules every backend applies to them in one place.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Sealed, Timestamp};

/// How many attempts a delivery keeps: the newest ones, older ones are dropped.
pub const DELIVERY_ATTEMPTS_KEPT: usize = 10;

/// A receiver of webhooks, as an admin registered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// A short public id (the key).
    pub id: String,
    /// Where the deliveries are posted.
    pub url: String,
    /// The HMAC key the signatures are made with, sealed by the engine.
    pub secret: Sealed,
    /// The event types it receives (e.g. `authorized`, `refresh_failed`), as the server
    /// names them; the store keeps them as given.
    pub events: Vec<String>,
    /// Whether new events are delivered to it.
    pub enabled: bool,
    /// When it was registered (the caller's clock).
    pub created: Timestamp,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet: due at its `next_attempt`.
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Given up: no further attempt is made.
    Failed,
}

impl DeliveryState {
    /// The name in the store and on the wire (`pending`, `delivered`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The state named `name` (as [`as_str`](Self::as_str) writes it); a stored name that
    /// is none of them is [`Error::Corrupt`].
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(Error::undecodable(
                "a webhook delivery's state",
                format!("unknown state `{other}`"),
            )),
        }
    }
}

/// One attempt to post a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// When it was made (the caller's clock).
    pub at: Timestamp,
    /// The receiver's HTTP status, or `None` when no answer came (connection failed, time
    /// out).
    pub status: Option<u16>,
    /// A short excerpt of the answer, or the error's text; never a secret.
    pub answer: String,
}

/// One event for one endpoint: what is (or was) to be posted, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// A unique id (the key).
    pub id: String,
    /// The id of the [`WebhookEndpoint`] it goes to.
    pub endpoint: String,
    /// The event type (e.g. `needs_authorization`).
    pub event_type: String,
    /// The JSON body exactly as it is signed and posted; the store keeps it as given.
    pub payload: String,
    /// When the event happened (the caller's clock).
    pub created: Timestamp,
    /// Where it stands.
    pub state: DeliveryState,
    /// The attempts so far, oldest first: at most the newest [`DELIVERY_ATTEMPTS_KEPT`].
    pub attempts: Vec<DeliveryAttempt>,
    /// When it is due (for a pending delivery; for a finished one, when it finished).
    pub next_attempt: Timestamp,
    /// The holder of the claim on it, if any (see `Store::claim_deliveries`).
    pub claimed_by: Option<String>,
    /// Until when the claim holds (`claimed_until > now`: live).
    pub claimed_until: Option<Timestamp>,
}

/// What came of an attempt, for `Store::finish_delivery_attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// The receiver accepted it: the delivery is [`DeliveryState::Delivered`].
    Delivered,
    /// Try again at this time: the delivery stays [`DeliveryState::Pending`] with this
    /// `next_attempt`.
    RetryAt(Timestamp),
    /// No further attempt: the delivery is [`DeliveryState::Failed`].
    GaveUp,
}

/// A single-use link that opens "Get access token" for one instance, as stored: never the
/// link's secret, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconnectLink {
    /// The SHA-256 digest (hex) of the link's secret (the key).
    pub digest: String,
    /// The id of the instance it reconnects.
    pub instance: String,
    /// When it was created (the caller's clock).
    pub created: Timestamp,
    /// When it ends: at `expires` and later, it is never found nor taken.
    pub expires: Timestamp,
}

impl ReconnectLink {
    /// Whether it has ended at `now` (`expires <= now`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires <= now
    }
}

impl WebhookDelivery {
    /// Whether `claim_deliveries` may hand it out at `now`: pending, due
    /// (`next_attempt <= now`) and unclaimed or with an expired claim
    /// (`claimed_until <= now`).
    pub fn is_claimable(&self, now: Timestamp) -> bool {
        self.state == DeliveryState::Pending
            && self.next_attempt <= now
            && self.claimed_until.is_none_or(|until| until <= now)
    }

    /// Whether `holder` holds a live claim on it at `now` (`claimed_until > now`), which
    /// `finish_delivery_attempt` requires.
    pub fn is_claimed_by(&self, holder: &str, now: Timestamp) -> bool {
        self.state == DeliveryState::Pending
            && self.claimed_by.as_deref() == Some(holder)
            && self.claimed_until.is_some_and(|until| until > now)
    }

    /// Takes the claim for `holder` until `until`.
    pub fn claim(&mut self, holder: &str, until: Timestamp) {
        self.claimed_by = Some(holder.to_string());
        self.claimed_until = Some(until);
    }

    /// Records `attempt` made at `now` and its `outcome`: appends the attempt (keeping the
    /// newest [`DELIVERY_ATTEMPTS_KEPT`]), sets the state and `next_attempt` (`now` when it
    /// finished), and clears the claim. The caller checks the claim first
    /// ([`is_claimed_by`](Self::is_claimed_by)).
    pub fn finish_attempt(
        &mut self,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) {
        self.attempts.push(attempt);
        keep_newest_attempts(&mut self.attempts);
        let (state, next) = outcome.state_and_next(now);
        self.state = state;
        self.next_attempt = next;
        self.claimed_by = None;
        self.claimed_until = None;
    }

    /// Whether `purge_finished_deliveries(before)` removes it: delivered or failed, and
    /// created before `before`.
    pub fn is_purgeable(&self, before: Timestamp) -> bool {
        self.state != DeliveryState::Pending && self.created < before
    }
}

impl DeliveryOutcome {
    /// The state a delivery has after this outcome, and its `next_attempt`: the retry time,
    /// or `now` for a finished delivery.
    pub fn state_and_next(self, now: Timestamp) -> (DeliveryState, Timestamp) {
        match self {
            Self::Delivered => (DeliveryState::Delivered, now),
            Self::RetryAt(at) => (DeliveryState::Pending, at),
            Self::GaveUp => (DeliveryState::Failed, now),
        }
    }
}

/// Drops the oldest attempts beyond [`DELIVERY_ATTEMPTS_KEPT`].
pub fn keep_newest_attempts(attempts: &mut Vec<DeliveryAttempt>) {
    if attempts.len() > DELIVERY_ATTEMPTS_KEPT {
        let dropped = attempts.len() - DELIVERY_ATTEMPTS_KEPT;
        attempts.drain(..dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> WebhookDelivery {
        WebhookDelivery {
            id: "d1".into(),
            endpoint: "e1".into(),
            event_type: "authorized".into(),
            payload: "{}".into(),
            created: Timestamp::from_unix_millis(1),
            state: DeliveryState::Pending,
            attempts: Vec::new(),
            next_attempt: Timestamp::from_unix_millis(10),
            claimed_by: None,
            claimed_until: None,
        }
    }

    #[test]
    fn states_round_trip_by_name_and_in_serde() {
        for state in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ] {
            assert_eq!(DeliveryState::parse(state.as_str()).ok(), Some(state));
            let json = serde_json::to_string(&state).expect("a state serializes");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert!(matches!(
            DeliveryState::parse("sent"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn a_finished_attempt_keeps_the_newest_ten_and_clears_the_claim() {
        let mut d = delivery();
        d.claim("node-a", Timestamp::from_unix_millis(100));
        assert!(d.is_claimed_by("node-a", Timestamp::from_unix_millis(99)));
        assert!(!d.is_claimed_by("node-a", Timestamp::from_unix_millis(100)));
        assert!(!d.is_claimed_by("node-b", Timestamp::from_unix_millis(50)));
        for i in 0..12 {
            d.finish_attempt(
                Timestamp::from_unix_millis(i),
                DeliveryAttempt {
                    at: Timestamp::from_unix_millis(i),
                    status: Some(500),
                    answer: format!("try {i}"),
                },
                DeliveryOutcome::RetryAt(Timestamp::from_unix_millis(1000 + i)),
            );
        }
        assert_eq!(d.attempts.len(), DELIVERY_ATTEMPTS_KEPT);
        assert_eq!(d.attempts[0].answer, "try 2");
        assert_eq!(d.attempts[9].answer, "try 11");
        assert_eq!(d.next_attempt, Timestamp::from_unix_millis(1011));
        assert_eq!((d.claimed_by, d.claimed_until), (None, None));
    }
}
