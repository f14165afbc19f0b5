//! The delivery worker, one per node: claims due deliveries in the store, posts each one
//! signed at send time (a timeout, no redirects, the stored body exactly), and records the
//! attempt: `Delivered` on 2xx, a retry with bounded exponential backoff on anything else or
//! no answer, `GaveUp` after the last attempt. It waits for work by events: a local enqueue
//! wakes it at once; otherwise it wakes at its earliest retry or after the poll interval
//! (other nodes enqueue too), whichever comes first. Finished deliveries older than the
//! retention are purged about once an hour.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use granary_flow::engine::Engine;
use granary_store::{
    DeliveryAttempt, DeliveryOutcome, Timestamp, WebhookDelivery, WebhookEndpoint,
};
use rand::Rng as _;
use secrecy::ExposeSecret as _;
use tokio::sync::{Notify, watch};

use super::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign};
use crate::settings::WebhookSettings;

/// How many deliveries one claim takes (posted concurrently).
pub const BATCH: usize = 16;
/// How much of a receiver's answer the log keeps, in bytes.
pub const ANSWER_EXCERPT: usize = 200;
/// How often finished deliveries are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How long a claim lasts: long enough for a batch posted concurrently to finish (the
/// timeout) and be recorded; when the node dies, its claims expire after this and another
/// node (or this one restarted) takes them.
pub fn claim_ttl(settings: &WebhookSettings) -> Duration {
    settings.timeout * 2 + Duration::from_secs(5)
}

/// The wait after the `attempts`-th failed attempt (1 for the first): `backoff` doubled
/// `attempts - 1` times, capped at `backoff_max`, times a jitter of 0.8 to 1.2 (capped
/// again).
pub fn backoff(settings: &WebhookSettings, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let base = settings
        .backoff
        .saturating_mul(1u32 << doublings)
        .min(settings.backoff_max);
    let jitter = rand::rng().random_range(0.8..=1.2);
    base.mul_f64(jitter).min(settings.backoff_max)
}

/// What comes of the `attempts`-th attempt (1 for the first) that was (`ok`) or was not
/// accepted.
pub fn outcome(
    settings: &WebhookSettings,
    ok: bool,
    attempts: u32,
    now: Timestamp,
) -> DeliveryOutcome {
    if ok {
        DeliveryOutcome::Delivered
    } else if attempts >= settings.max_attempts {
        DeliveryOutcome::GaveUp
    } else {
        DeliveryOutcome::RetryAt(now.saturating_add(backoff(settings, attempts)))
    }
}

/// The worker's loop; returns when `stop` turns true (posts in flight finish and are
/// recorded first).
pub(super) async fn run(
    engine: Engine,
    settings: WebhookSettings,
    holder: String,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .user_agent(concat!("granary-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "the webhook worker cannot build its HTTP client: no webhook is delivered");
            return;
        }
    };
    let mut next_purge = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        if tokio::time::Instant::now() >= next_purge {
            purge(&engine, &settings).await;
            next_purge = tokio::time::Instant::now() + PURGE_EVERY;
        }
        let now = engine.now();
        let until = now.saturating_add(claim_ttl(&settings));
        let claimed = match engine
            .store()
            .claim_deliveries(now, &holder, until, BATCH)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "the webhook worker cannot claim deliveries; trying again at the next poll");
                Vec::new()
            }
        };
        let full = claimed.len() == BATCH;
        let mut earliest: Option<Timestamp> = None;
        if !claimed.is_empty() {
            let endpoints = match engine.store().list_webhook_endpoints().await {
                Ok(endpoints) => endpoints,
                Err(error) => {
                    tracing::warn!(%error, "the webhook worker cannot read the endpoints; the claims expire and are taken again");
                    Vec::new()
                }
            };
            let outcomes = join_all(claimed.iter().map(|delivery| {
                deliver(&engine, &settings, &client, &holder, &endpoints, delivery)
            }))
            .await;
            earliest = outcomes
                .into_iter()
                .filter_map(|o| match o {
                    Some(DeliveryOutcome::RetryAt(at)) => Some(at),
                    _ => None,
                })
                .min();
        }
        if full {
            continue;
        }
        let mut wait = settings.poll;
        if let Some(at) = earliest {
            let millis = at
                .as_unix_millis()
                .saturating_sub(engine.now().as_unix_millis());
            wait = wait.min(Duration::from_millis(u64::try_from(millis).unwrap_or(0)));
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Posts one claimed delivery and records the attempt; returns its outcome (`None` when
/// nothing could be recorded).
async fn deliver(
    engine: &Engine,
    settings: &WebhookSettings,
    client: &reqwest::Client,
    holder: &str,
    endpoints: &[WebhookEndpoint],
    delivery: &WebhookDelivery,
) -> Option<DeliveryOutcome> {
    let Some(endpoint) = endpoints.iter().find(|e| e.id == delivery.endpoint) else {
        // Removed meanwhile (its deliveries go with it): nothing to record.
        return None;
    };
    let attempts = u32::try_from(delivery.attempts.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let (status, answer) = match post(engine, client, endpoint, delivery).await {
        Ok((status, excerpt)) => (Some(status), excerpt),
        Err(error) => (None, error),
    };
    let now = engine.now();
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let outcome = outcome(settings, ok, attempts, now);
    let attempt = DeliveryAttempt {
        at: now,
        status,
        answer,
    };
    match engine
        .store()
        .finish_delivery_attempt(&delivery.id, holder, now, attempt, outcome)
        .await
    {
        Ok(true) => {
            tracing::debug!(delivery = %delivery.id, endpoint = %endpoint.id, ?status, ?outcome, "webhook attempt");
            if outcome == DeliveryOutcome::GaveUp {
                tracing::warn!(delivery = %delivery.id, endpoint = %endpoint.id, attempts, "a webhook delivery was given up");
            }
            Some(outcome)
        }
        Ok(false) => {
            tracing::warn!(delivery = %delivery.id, "a webhook delivery's claim expired before its attempt was recorded: it may be sent again (same Granary-Delivery id)");
            None
        }
        Err(error) => {
            tracing::warn!(%error, delivery = %delivery.id, "a webhook attempt could not be recorded: it is sent again when its claim expires");
            None
        }
    }
}

/// Posts the delivery's payload, signed now; the status and an excerpt of the answer, or
/// the error's text when no answer came.
async fn post(
    engine: &Engine,
    client: &reqwest::Client,
    endpoint: &WebhookEndpoint,
    delivery: &WebhookDelivery,
) -> Result<(u16, String), String> {
    let secret = engine
        .open_webhook_secret(&endpoint.id, &endpoint.secret)
        .map_err(|e| format!("not sent: the endpoint's secret does not open: {e}"))?;
    let t = u64::try_from(engine.now().as_unix_millis().div_euclid(1000)).unwrap_or(0);
    let signature = sign(
        secret.expose_secret().as_bytes(),
        t,
        delivery.payload.as_bytes(),
    );
    let mut response = client
        .post(&endpoint.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, &delivery.event_type)
        .header(DELIVERY_HEADER, &delivery.id)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| no_answer(&e))?;
    let status = response.status().as_u16();
    let mut excerpt = Vec::new();
    while excerpt.len() < ANSWER_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    excerpt.truncate(ANSWER_EXCERPT);
    Ok((status, String::from_utf8_lossy(&excerpt).into_owned()))
}

/// The text of a failed post (no URL query, no secret: reqwest names the URL only).
fn no_answer(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "no answer"
    };
    let mut text = format!("{what}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Removes finished deliveries older than the retention.
async fn purge(engine: &Engine, settings: &WebhookSettings) {
    let before = engine.now().saturating_sub(settings.retention);
    match engine.store().purge_finished_deliveries(before).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "finished webhook deliveries purged"),
        Err(error) => tracing::warn!(%error, "finished webhook deliveries could not be purged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let settings = WebhookSettings::default();
        for _ in 0..50 {
            let first = backoff(&settings, 1);
            assert!(
                first >= Duration::from_secs(8) && first <= Duration::from_secs(12),
                "{first:?}"
            );
            let third = backoff(&settings, 3);
            assert!(
                third >= Duration::from_secs(32) && third <= Duration::from_secs(48),
                "{third:?}"
            );
            assert!(backoff(&settings, 40) <= settings.backoff_max);
        }
        let now = Timestamp::from_unix_millis(0);
        assert_eq!(
            outcome(&settings, true, 10, now),
            DeliveryOutcome::Delivered
        );
        assert_eq!(outcome(&settings, false, 10, now), DeliveryOutcome::GaveUp);
        assert!(matches!(
            outcome(&settings, false, 9, now),
            DeliveryOutcome::RetryAt(_)
        ));
    }
}
