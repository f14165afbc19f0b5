//! Webhooks and reconnect links in sled: endpoints in the `webhook_endpoints` tree by id,
//! deliveries in `webhook_deliveries` by id, links in `reconnect_links` by digest; every
//! write under the writer mutex (so a claim's read and its writes are one atomic step), the
//! writes of several records in one batch or transaction.
//!
//! Claims, the delivery log and the purge scan the deliveries tree: sled is the one-process
//! backend, and a node keeps few deliveries between purges.

use granary_store::{
    DeliveryAttempt, DeliveryOutcome, Error, ReconnectLink, Result, Timestamp, WebhookDelivery,
    WebhookEndpoint,
};
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, Transactional};

use super::{Inner, SledStore, encode};

/// The trees of this module (sled hands out an open tree from its own map).
struct Trees {
    endpoints: Tree,
    deliveries: Tree,
    links: Tree,
}

impl Inner {
    fn webhook_trees(&self) -> Result<Trees> {
        let tree = |name: &str| {
            self.db
                .open_tree(name)
                .map_err(self.fail("opening a webhook tree"))
        };
        Ok(Trees {
            endpoints: tree("webhook_endpoints")?,
            deliveries: tree("webhook_deliveries")?,
            links: tree("reconnect_links")?,
        })
    }

    fn every_delivery(&self, trees: &Trees) -> Result<Vec<WebhookDelivery>> {
        self.list(&trees.deliveries, "webhook delivery")
    }

    fn delivery(&self, trees: &Trees, id: &str) -> Result<Option<WebhookDelivery>> {
        self.read(&trees.deliveries, id, || format!("webhook delivery `{id}`"))
    }

    fn link(&self, trees: &Trees, digest: &str) -> Result<Option<ReconnectLink>> {
        self.read(&trees.links, digest, || "a reconnect link".to_string())
    }

    /// Writes `deliveries` in one atomic batch.
    fn put_deliveries(&self, trees: &Trees, deliveries: &[WebhookDelivery]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for delivery in deliveries {
            batch.insert(delivery.id.as_str(), encode(delivery)?);
        }
        trees
            .deliveries
            .apply_batch(batch)
            .map_err(self.fail("writing webhook deliveries"))
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl SledStore {
    pub(super) async fn webhook_endpoint_put(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let endpoint = endpoint.clone();
        self.write("keeping a webhook endpoint", move |inner| {
            let trees = inner.webhook_trees()?;
            inner.put(&trees.endpoints, &endpoint.id, &endpoint)
        })
        .await
    }

    pub(super) async fn webhook_endpoints_list(&self) -> Result<Vec<WebhookEndpoint>> {
        // sled keeps keys in byte order: ordered by id.
        self.run("listing the webhook endpoints", move |inner| {
            let trees = inner.webhook_trees()?;
            inner.list(&trees.endpoints, "webhook endpoint")
        })
        .await
    }

    pub(super) async fn webhook_endpoint_delete(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        let doing = "removing a webhook endpoint";
        self.write(doing, move |inner| {
            let trees = inner.webhook_trees()?;
            let doomed: Vec<String> = inner
                .every_delivery(&trees)?
                .into_iter()
                .filter(|d| d.endpoint == id)
                .map(|d| d.id)
                .collect();
            // One transaction: no reader sees the deliveries without their endpoint.
            let result =
                (&trees.endpoints, &trees.deliveries).transaction(|(endpoints, deliveries)| {
                    for delivery in &doomed {
                        deliveries.remove(delivery.as_str())?;
                    }
                    Ok::<_, ConflictableTransactionError<Error>>(
                        endpoints.remove(id.as_str())?.is_some(),
                    )
                });
            inner.committed(doing, result)
        })
        .await
    }

    pub(super) async fn deliveries_enqueue(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        let deliveries = deliveries.to_vec();
        self.write("queueing webhook deliveries", move |inner| {
            let trees = inner.webhook_trees()?;
            let mut ids = std::collections::BTreeSet::new();
            for delivery in &deliveries {
                let taken = trees
                    .deliveries
                    .contains_key(delivery.id.as_str())
                    .map_err(inner.fail("reading a webhook delivery"))?;
                if taken || !ids.insert(delivery.id.as_str()) {
                    return Err(Error::already_exists(format!(
                        "webhook delivery `{}`",
                        delivery.id
                    )));
                }
                let endpoint = trees
                    .endpoints
                    .contains_key(delivery.endpoint.as_str())
                    .map_err(inner.fail("reading a webhook endpoint"))?;
                if !endpoint {
                    return Err(Error::not_found(format!(
                        "webhook endpoint `{}`",
                        delivery.endpoint
                    )));
                }
            }
            inner.put_deliveries(&trees, &deliveries)
        })
        .await
    }

    pub(super) async fn deliveries_claim(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let holder = holder.to_string();
        // Under the writer mutex: of concurrent claimers each reads the others' claims.
        self.write("claiming webhook deliveries", move |inner| {
            let trees = inner.webhook_trees()?;
            let mut due: Vec<WebhookDelivery> = inner
                .every_delivery(&trees)?
                .into_iter()
                .filter(|d| d.is_claimable(now))
                .collect();
            due.sort_by(|a, b| (a.next_attempt, &a.id).cmp(&(b.next_attempt, &b.id)));
            due.truncate(limit);
            for delivery in &mut due {
                delivery.claim(&holder, until);
            }
            inner.put_deliveries(&trees, &due)?;
            Ok(due)
        })
        .await
    }

    pub(super) async fn delivery_finish_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let (id, holder) = (id.to_string(), holder.to_string());
        self.write("recording a webhook attempt", move |inner| {
            let trees = inner.webhook_trees()?;
            match inner.delivery(&trees, &id)? {
                Some(mut delivery) if delivery.is_claimed_by(&holder, now) => {
                    delivery.finish_attempt(now, attempt, outcome);
                    inner.put(&trees.deliveries, &id, &delivery)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    pub(super) async fn deliveries_list(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        let endpoint = endpoint.to_string();
        self.run("listing webhook deliveries", move |inner| {
            let trees = inner.webhook_trees()?;
            let mut listed: Vec<WebhookDelivery> = inner
                .every_delivery(&trees)?
                .into_iter()
                .filter(|d| d.endpoint == endpoint)
                .collect();
            listed.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
            listed.truncate(limit);
            Ok(listed)
        })
        .await
    }

    pub(super) async fn deliveries_purge(&self, before: Timestamp) -> Result<u64> {
        self.write("purging finished webhook deliveries", move |inner| {
            let trees = inner.webhook_trees()?;
            let mut batch = sled::Batch::default();
            let mut purged = 0;
            for delivery in inner.every_delivery(&trees)? {
                if delivery.is_purgeable(before) {
                    batch.remove(delivery.id.as_str());
                    purged += 1;
                }
            }
            trees
                .deliveries
                .apply_batch(batch)
                .map_err(inner.fail("purging webhook deliveries"))?;
            Ok(count(purged))
        })
        .await
    }

    pub(super) async fn reconnect_link_create(&self, link: &ReconnectLink) -> Result<()> {
        let link = link.clone();
        self.write("creating a reconnect link", move |inner| {
            let trees = inner.webhook_trees()?;
            if inner.link(&trees, &link.digest)?.is_some() {
                return Err(Error::already_exists("reconnect link with this digest"));
            }
            inner.put(&trees.links, &link.digest, &link)
        })
        .await
    }

    pub(super) async fn reconnect_link_find(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let digest = digest.to_string();
        self.run("reading a reconnect link", move |inner| {
            let trees = inner.webhook_trees()?;
            Ok(inner
                .link(&trees, &digest)?
                .filter(|link| !link.is_expired(now)))
        })
        .await
    }

    pub(super) async fn reconnect_link_take(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        let digest = digest.to_string();
        // Under the writer mutex: of concurrent takers one reads the link, the others read
        // it removed.
        self.write("taking a reconnect link", move |inner| {
            let trees = inner.webhook_trees()?;
            match inner.link(&trees, &digest)? {
                Some(link) if !link.is_expired(now) => {
                    trees
                        .links
                        .remove(digest.as_str())
                        .map_err(inner.fail("taking a reconnect link"))?;
                    Ok(Some(link))
                }
                _ => Ok(None),
            }
        })
        .await
    }

    pub(super) async fn reconnect_links_purge(&self, now: Timestamp) -> Result<u64> {
        self.write("purging expired reconnect links", move |inner| {
            let trees = inner.webhook_trees()?;
            let links: Vec<ReconnectLink> = inner.list(&trees.links, "reconnect link")?;
            let mut batch = sled::Batch::default();
            let mut purged = 0;
            for link in links.iter().filter(|link| link.is_expired(now)) {
                batch.remove(link.digest.as_str());
                purged += 1;
            }
            trees
                .links
                .apply_batch(batch)
                .map_err(inner.fail("purging reconnect links"))?;
            Ok(count(purged))
        })
        .await
    }
}
