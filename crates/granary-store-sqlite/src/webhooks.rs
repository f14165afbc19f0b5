//! Webhooks and reconnect links in SQLite: endpoints, deliveries (claimed in one `BEGIN
//! IMMEDIATE` transaction, so that no two processes claim the same one) and reconnect links.

use granary_store::{
    DeliveryAttempt, DeliveryOutcome, DeliveryState, Error, ReconnectLink, Result, Sealed,
    Timestamp, WebhookDelivery, WebhookEndpoint,
};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::SqliteStore;
use crate::codec::{Raw, json};
use crate::store::{Done, immediate};

const ENDPOINT_COLUMNS: &str = "id, url, secret, events, enabled, created";
const DELIVERY_COLUMNS: &str = "id, endpoint, event_type, payload, created, state, attempts, \
    next_attempt, claimed_by, claimed_until";
const LINK_COLUMNS: &str = "digest, instance, created, expires";

/// A row of `webhook_endpoints`, before its JSON is decoded.
struct RawEndpoint(String, String, Vec<u8>, String, bool, i64);

fn raw_endpoint(row: &Row<'_>) -> Raw<RawEndpoint> {
    Ok(RawEndpoint(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

impl RawEndpoint {
    fn decode(self) -> Result<WebhookEndpoint> {
        let events = serde_json::from_str(&self.3)
            .map_err(|e| Error::undecodable(format!("webhook endpoint `{}`", self.0), e))?;
        Ok(WebhookEndpoint {
            id: self.0,
            url: self.1,
            secret: Sealed::new(self.2),
            events,
            enabled: self.4,
            created: Timestamp::from_unix_millis(self.5),
        })
    }
}

/// A row of `webhook_deliveries`, before its state and attempts are decoded.
struct RawDelivery {
    id: String,
    endpoint: String,
    event_type: String,
    payload: String,
    created: i64,
    state: String,
    attempts: String,
    next_attempt: i64,
    claimed_by: Option<String>,
    claimed_until: Option<i64>,
}

fn raw_delivery(row: &Row<'_>) -> Raw<RawDelivery> {
    Ok(RawDelivery {
        id: row.get(0)?,
        endpoint: row.get(1)?,
        event_type: row.get(2)?,
        payload: row.get(3)?,
        created: row.get(4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        next_attempt: row.get(7)?,
        claimed_by: row.get(8)?,
        claimed_until: row.get(9)?,
    })
}

impl RawDelivery {
    fn decode(self) -> Result<WebhookDelivery> {
        let attempts: Vec<DeliveryAttempt> = serde_json::from_str(&self.attempts)
            .map_err(|e| Error::undecodable(format!("webhook delivery `{}`", self.id), e))?;
        Ok(WebhookDelivery {
            state: DeliveryState::parse(&self.state)?,
            id: self.id,
            endpoint: self.endpoint,
            event_type: self.event_type,
            payload: self.payload,
            created: Timestamp::from_unix_millis(self.created),
            attempts,
            next_attempt: Timestamp::from_unix_millis(self.next_attempt),
            claimed_by: self.claimed_by,
            claimed_until: self.claimed_until.map(Timestamp::from_unix_millis),
        })
    }
}

fn link(row: &Row<'_>) -> Raw<ReconnectLink> {
    Ok(ReconnectLink {
        digest: row.get(0)?,
        instance: row.get(1)?,
        created: Timestamp::from_unix_millis(row.get(2)?),
        expires: Timestamp::from_unix_millis(row.get(3)?),
    })
}

/// A limit as SQLite's integer (a limit beyond `i64::MAX` is no limit).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// The rows of `statement` with `params`, decoded.
fn deliveries(
    tx: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Done<Vec<WebhookDelivery>> {
    let raws = tx
        .prepare_cached(sql)?
        .query_map(params, raw_delivery)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(raws
        .into_iter()
        .map(RawDelivery::decode)
        .collect::<Result<Vec<_>>>()?)
}

/// Writes what changes on a delivery after a claim or an attempt: state, attempts, due
/// time and claim.
fn write_progress(tx: &Transaction<'_>, delivery: &WebhookDelivery) -> Done<()> {
    tx.prepare_cached(
        "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_attempt = ?4, \
         claimed_by = ?5, claimed_until = ?6 WHERE id = ?1",
    )?
    .execute(params![
        delivery.id,
        delivery.state.as_str(),
        json(&delivery.attempts)?,
        delivery.next_attempt.as_unix_millis(),
        delivery.claimed_by,
        delivery.claimed_until.map(Timestamp::as_unix_millis),
    ])?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn webhook_endpoint_put(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let endpoint = endpoint.clone();
        self.call("keeping a webhook endpoint", move |connection| {
            connection
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ))?
                .execute(params![
                    endpoint.id,
                    endpoint.url,
                    endpoint.secret.as_bytes(),
                    json(&endpoint.events)?,
                    endpoint.enabled,
                    endpoint.created.as_unix_millis(),
                ])?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn webhook_endpoints_list(&self) -> Result<Vec<WebhookEndpoint>> {
        self.call("listing the webhook endpoints", move |connection| {
            let raws = connection
                .prepare_cached(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
                ))?
                .query_map([], raw_endpoint)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(raws
                .into_iter()
                .map(RawEndpoint::decode)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    pub(crate) async fn webhook_endpoint_delete(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.call("removing a webhook endpoint", move |connection| {
            let tx = immediate(connection)?;
            tx.prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint = ?1")?
                .execute([&id])?;
            let removed = tx
                .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")?
                .execute([&id])?;
            tx.commit()?;
            Ok(removed > 0)
        })
        .await
    }

    pub(crate) async fn deliveries_enqueue(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        let deliveries = deliveries.to_vec();
        self.call("queueing webhook deliveries", move |connection| {
            // All or none: an error drops the transaction, which rolls back.
            let tx = immediate(connection)?;
            for delivery in &deliveries {
                let endpoint_exists = tx
                    .prepare_cached("SELECT 1 FROM webhook_endpoints WHERE id = ?1")?
                    .exists([&delivery.endpoint])?;
                if !endpoint_exists {
                    return Err(Error::not_found(format!(
                        "webhook endpoint `{}`",
                        delivery.endpoint
                    ))
                    .into());
                }
                let inserted = tx
                    .prepare_cached(&format!(
                        "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING"
                    ))?
                    .execute(params![
                        delivery.id,
                        delivery.endpoint,
                        delivery.event_type,
                        delivery.payload,
                        delivery.created.as_unix_millis(),
                        delivery.state.as_str(),
                        json(&delivery.attempts)?,
                        delivery.next_attempt.as_unix_millis(),
                        delivery.claimed_by,
                        delivery.claimed_until.map(Timestamp::as_unix_millis),
                    ])?;
                if inserted == 0 {
                    return Err(Error::already_exists(format!(
                        "webhook delivery `{}`",
                        delivery.id
                    ))
                    .into());
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn deliveries_claim(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let holder = holder.to_string();
        self.call("claiming webhook deliveries", move |connection| {
            // The write lock is taken before the read: of concurrent claimers (in any
            // process) each reads the claims the others committed.
            let tx = immediate(connection)?;
            let mut due = deliveries(
                &tx,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE state = 'pending' AND next_attempt <= ?1 \
                     AND (claimed_until IS NULL OR claimed_until <= ?1) \
                     ORDER BY next_attempt, id LIMIT ?2"
                ),
                params![now.as_unix_millis(), sql_limit(limit)],
            )?;
            for delivery in &mut due {
                delivery.claim(&holder, until);
                write_progress(&tx, delivery)?;
            }
            tx.commit()?;
            Ok(due)
        })
        .await
    }

    pub(crate) async fn delivery_finish_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let (id, holder) = (id.to_string(), holder.to_string());
        self.call("recording a webhook attempt", move |connection| {
            let tx = immediate(connection)?;
            let raw = tx
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1"
                ))?
                .query_row([&id], raw_delivery)
                .optional()?;
            let Some(mut delivery) = raw.map(RawDelivery::decode).transpose()? else {
                return Ok(false);
            };
            if !delivery.is_claimed_by(&holder, now) {
                return Ok(false);
            }
            delivery.finish_attempt(now, attempt, outcome);
            write_progress(&tx, &delivery)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn deliveries_list(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let endpoint = endpoint.to_string();
        self.call("listing webhook deliveries", move |connection| {
            deliveries(
                connection,
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint = ?1 \
                     ORDER BY created DESC, id DESC LIMIT ?2"
                ),
                params![endpoint, sql_limit(limit)],
            )
        })
        .await
    }

    pub(crate) async fn deliveries_purge(&self, before: Timestamp) -> Result<u64> {
        self.call("purging finished webhook deliveries", move |connection| {
            let removed = connection
                .prepare_cached(
                    "DELETE FROM webhook_deliveries \
                     WHERE state IN ('delivered', 'failed') AND created < ?1",
                )?
                .execute([before.as_unix_millis()])?;
            Ok(count(removed))
        })
        .await
    }

    pub(crate) async fn reconnect_link_create(&self, link: &ReconnectLink) -> Result<()> {
        let link = link.clone();
        self.call("creating a reconnect link", move |connection| {
            // One statement: a taken digest inserts nothing.
            let inserted = connection
                .prepare_cached(&format!(
                    "INSERT INTO reconnect_links ({LINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING"
                ))?
                .execute(params![
                    link.digest,
                    link.instance,
                    link.created.as_unix_millis(),
                    link.expires.as_unix_millis(),
                ])?;
            if inserted == 0 {
                return Err(Error::already_exists("reconnect link with this digest").into());
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn reconnect_link_find(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let digest = digest.to_string();
        self.call("reading a reconnect link", move |connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {LINK_COLUMNS} FROM reconnect_links WHERE digest = ?1 AND expires > ?2"
                ))?
                .query_row(params![digest, now.as_unix_millis()], link)
                .optional()?)
        })
        .await
    }

    pub(crate) async fn reconnect_link_take(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let digest = digest.to_string();
        self.call("taking a reconnect link", move |connection| {
            // One statement: of concurrent takers (in any process) one deletes the row.
            Ok(connection
                .prepare_cached(&format!(
                    "DELETE FROM reconnect_links WHERE digest = ?1 AND expires > ?2 \
                     RETURNING {LINK_COLUMNS}"
                ))?
                .query_row(params![digest, now.as_unix_millis()], link)
                .optional()?)
        })
        .await
    }

    pub(crate) async fn reconnect_links_purge(&self, now: Timestamp) -> Result<u64> {
        self.call("purging expired reconnect links", move |connection| {
            let removed = connection
                .prepare_cached("DELETE FROM reconnect_links WHERE expires <= ?1")?
                .execute([now.as_unix_millis()])?;
            Ok(count(removed))
        })
        .await
    }
}
