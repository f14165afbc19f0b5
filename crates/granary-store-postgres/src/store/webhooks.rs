//! Webhooks and reconnect links in PostgreSQL, each method one statement of [`crate::sql`]
//! (an attempt: a read, then a write conditional on the live claim and the attempts read).

use granary_store::{
    DeliveryAttempt, DeliveryOutcome, DeliveryState, Error, ReconnectLink, Result, Sealed,
    Timestamp, WebhookDelivery, WebhookEndpoint,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::{PostgresStore, from_json, json, undecodable_row};
use crate::sql;

fn endpoint(row: &Row) -> Result<WebhookEndpoint> {
    let id: String = row.try_get(0).map_err(undecodable_row)?;
    let events: String = row.try_get(3).map_err(undecodable_row)?;
    let secret: Vec<u8> = row.try_get(2).map_err(undecodable_row)?;
    Ok(WebhookEndpoint {
        url: row.try_get(1).map_err(undecodable_row)?,
        secret: Sealed::new(secret),
        events: from_json(&events, &format!("webhook endpoint `{id}`"))?,
        enabled: row.try_get(4).map_err(undecodable_row)?,
        created: Timestamp::from_unix_millis(row.try_get(5).map_err(undecodable_row)?),
        id,
    })
}

fn delivery(row: &Row) -> Result<WebhookDelivery> {
    let id: String = row.try_get(0).map_err(undecodable_row)?;
    let state: String = row.try_get(5).map_err(undecodable_row)?;
    let attempts: String = row.try_get(6).map_err(undecodable_row)?;
    let claimed_until: Option<i64> = row.try_get(9).map_err(undecodable_row)?;
    Ok(WebhookDelivery {
        endpoint: row.try_get(1).map_err(undecodable_row)?,
        event_type: row.try_get(2).map_err(undecodable_row)?,
        payload: row.try_get(3).map_err(undecodable_row)?,
        created: Timestamp::from_unix_millis(row.try_get(4).map_err(undecodable_row)?),
        state: DeliveryState::parse(&state)?,
        attempts: from_json(&attempts, &format!("webhook delivery `{id}`"))?,
        next_attempt: Timestamp::from_unix_millis(row.try_get(7).map_err(undecodable_row)?),
        claimed_by: row.try_get(8).map_err(undecodable_row)?,
        claimed_until: claimed_until.map(Timestamp::from_unix_millis),
        id,
    })
}

fn link(row: &Row) -> Result<ReconnectLink> {
    Ok(ReconnectLink {
        digest: row.try_get(0).map_err(undecodable_row)?,
        instance: row.try_get(1).map_err(undecodable_row)?,
        created: Timestamp::from_unix_millis(row.try_get(2).map_err(undecodable_row)?),
        expires: Timestamp::from_unix_millis(row.try_get(3).map_err(undecodable_row)?),
    })
}

/// A limit as PostgreSQL's bigint (a limit beyond `i64::MAX` is no limit).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The count of a `count(*)` row.
fn counted(rows: &[Row]) -> Result<u64> {
    let n: i64 = match rows.first() {
        Some(row) => row.try_get(0).map_err(undecodable_row)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

impl PostgresStore {
    pub(super) async fn webhook_endpoint_put(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.rows(
            "keeping a webhook endpoint",
            sql::PUT_WEBHOOK_ENDPOINT,
            &[
                &endpoint.id,
                &endpoint.url,
                &endpoint.secret.as_bytes(),
                &json(&endpoint.events)?,
                &endpoint.enabled,
                &endpoint.created.as_unix_millis(),
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn webhook_endpoints_list(&self) -> Result<Vec<WebhookEndpoint>> {
        let rows = self
            .rows(
                "listing the webhook endpoints",
                sql::LIST_WEBHOOK_ENDPOINTS,
                &[],
            )
            .await?;
        rows.iter().map(endpoint).collect()
    }

    pub(super) async fn webhook_endpoint_delete(&self, id: &str) -> Result<bool> {
        let rows = self
            .rows(
                "removing a webhook endpoint",
                sql::DELETE_WEBHOOK_ENDPOINT,
                &[&id],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub(super) async fn deliveries_enqueue(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&WebhookDelivery) -> String| -> Vec<String> {
            deliveries.iter().map(f).collect()
        };
        let ids = column(|d| d.id.clone());
        let endpoints = column(|d| d.endpoint.clone());
        let types = column(|d| d.event_type.clone());
        let payloads = column(|d| d.payload.clone());
        let states = column(|d| d.state.as_str().to_string());
        let created: Vec<i64> = deliveries
            .iter()
            .map(|d| d.created.as_unix_millis())
            .collect();
        let attempts = deliveries
            .iter()
            .map(|d| json(&d.attempts))
            .collect::<Result<Vec<String>>>()?;
        let due: Vec<i64> = deliveries
            .iter()
            .map(|d| d.next_attempt.as_unix_millis())
            .collect();
        let claimed_by: Vec<Option<String>> =
            deliveries.iter().map(|d| d.claimed_by.clone()).collect();
        let claimed_until: Vec<Option<i64>> = deliveries
            .iter()
            .map(|d| d.claimed_until.map(Timestamp::as_unix_millis))
            .collect();
        let result = self
            .query(
                sql::ENQUEUE_DELIVERIES,
                &[
                    &ids,
                    &endpoints,
                    &types,
                    &payloads,
                    &created,
                    &states,
                    &attempts,
                    &due,
                    &claimed_by,
                    &claimed_until,
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(fault) if fault.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(Error::already_exists(
                    "a webhook delivery of this batch (its id is taken, or given twice)",
                ))
            }
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Err(
                Error::not_found("the webhook endpoint of a delivery of this batch"),
            ),
            Err(fault) => Err(self.fail("queueing webhook deliveries", fault)),
        }
    }

    pub(super) async fn deliveries_claim(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .rows(
                "claiming webhook deliveries",
                sql::CLAIM_DELIVERIES,
                &[
                    &now.as_unix_millis(),
                    &holder,
                    &until.as_unix_millis(),
                    &sql_limit(limit),
                ],
            )
            .await?;
        let mut claimed = rows.iter().map(delivery).collect::<Result<Vec<_>>>()?;
        // RETURNING gives no order.
        claimed.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
        Ok(claimed)
    }

    pub(super) async fn delivery_finish_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let doing = "recording a webhook attempt";
        let rows = self.rows(doing, sql::GET_DELIVERY, &[&id]).await?;
        let Some(mut read) = rows.first().map(delivery).transpose()? else {
            return Ok(false);
        };
        if !read.is_claimed_by(holder, now) {
            return Ok(false);
        }
        let attempts_read = json(&read.attempts)?;
        read.finish_attempt(now, attempt, outcome);
        // Written only while the claim still lives and nothing changed the attempts.
        let rows = self
            .rows(
                doing,
                sql::FINISH_DELIVERY_ATTEMPT,
                &[
                    &id,
                    &holder,
                    &now.as_unix_millis(),
                    &read.state.as_str(),
                    &json(&read.attempts)?,
                    &read.next_attempt.as_unix_millis(),
                    &attempts_read,
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub(super) async fn deliveries_list(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let rows = self
            .rows(
                "listing webhook deliveries",
                sql::LIST_DELIVERIES,
                &[&endpoint, &sql_limit(limit)],
            )
            .await?;
        rows.iter().map(delivery).collect()
    }

    pub(super) async fn deliveries_purge(&self, before: Timestamp) -> Result<u64> {
        let rows = self
            .rows(
                "purging finished webhook deliveries",
                sql::PURGE_FINISHED_DELIVERIES,
                &[&before.as_unix_millis()],
            )
            .await?;
        counted(&rows)
    }

    pub(super) async fn reconnect_link_create(&self, link: &ReconnectLink) -> Result<()> {
        let rows = self
            .rows(
                "creating a reconnect link",
                sql::CREATE_RECONNECT_LINK,
                &[
                    &link.digest,
                    &link.instance,
                    &link.created.as_unix_millis(),
                    &link.expires.as_unix_millis(),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Err(Error::already_exists("reconnect link with this digest"));
        }
        Ok(())
    }

    pub(super) async fn reconnect_link_find(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let rows = self
            .rows(
                "reading a reconnect link",
                sql::FIND_RECONNECT_LINK,
                &[&digest, &now.as_unix_millis()],
            )
            .await?;
        rows.first().map(link).transpose()
    }

    pub(super) async fn reconnect_link_take(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let rows = self
            .rows(
                "taking a reconnect link",
                sql::TAKE_RECONNECT_LINK,
                &[&digest, &now.as_unix_millis()],
            )
            .await?;
        rows.first().map(link).transpose()
    }

    pub(super) async fn reconnect_links_purge(&self, now: Timestamp) -> Result<u64> {
        let rows = self
            .rows(
                "purging expired reconnect links",
                sql::PURGE_RECONNECT_LINKS,
                &[&now.as_unix_millis()],
            )
            .await?;
        counted(&rows)
    }
}
