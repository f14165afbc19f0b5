//! The checks of webhooks and reconnect links with more than one open store: they survive a
//! reopen, and child processes claiming deliveries at once never get the same one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use granary_store::{DeliveryOutcome, Store, WebhookDelivery};

use super::{CHILD_TIMEOUT, Children, RACING_CHILDREN, open};
use crate::checks::CheckResult;
use crate::checks::webhooks::{LONG, attempt, delivery, endpoint, link};
use crate::fixtures::{T0, at};
use crate::violation::{OrBreak, ensure};
use crate::{Backend, Violation};

/// The child role of [`processes_race_claims`].
pub(super) const CLAIM_RACE: &str = "claim-race";
/// How many deliveries the children race for.
const RACED_DELIVERIES: usize = 48;

/// Every delivery of `endpoint`, by id.
async fn all_deliveries(
    store: &dyn Store,
    endpoint: &str,
    contract: &'static str,
) -> Result<BTreeMap<String, WebhookDelivery>, Violation> {
    let listed = store
        .list_deliveries(endpoint, usize::MAX)
        .await
        .or_break(contract, "list_deliveries")?;
    Ok(listed.into_iter().map(|d| (d.id.clone(), d)).collect())
}

/// Endpoints, deliveries (with their claims and attempts) and reconnect links written
/// before the store was dropped are there after it is opened again; a taken link stays
/// taken.
pub async fn reopen_keeps_webhooks(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "a durable store keeps webhook endpoints, deliveries (claims and attempts included) and reconnect links across a close and reopen";
    let store = open(backend, dir, C).await?;
    store
        .put_webhook_endpoint(&endpoint("kept"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    store
        .enqueue_deliveries(&[
            delivery("tried", "kept", 0, 0),
            delivery("claimed", "kept", 1, 0),
            delivery("waiting", "kept", 2, LONG),
        ])
        .await
        .or_break(C, "enqueue_deliveries")?;
    store
        .claim_deliveries(at(0), "node", at(LONG), 2)
        .await
        .or_break(C, "claim_deliveries")?;
    store
        .finish_delivery_attempt(
            "tried",
            "node",
            at(5),
            attempt(5),
            DeliveryOutcome::RetryAt(at(60_000)),
        )
        .await
        .or_break(C, "finish_delivery_attempt")?;
    store
        .create_reconnect_link(&link("kept", LONG))
        .await
        .or_break(C, "create_reconnect_link")?;
    store
        .create_reconnect_link(&link("taken", LONG))
        .await
        .or_break(C, "create_reconnect_link")?;
    store
        .take_reconnect_link("taken", T0)
        .await
        .or_break(C, "take_reconnect_link")?;
    let endpoints_before = store
        .list_webhook_endpoints()
        .await
        .or_break(C, "list_webhook_endpoints")?;
    let deliveries_before = all_deliveries(store.as_ref(), "kept", C).await?;
    drop(store);

    let store = open(backend, dir, C).await?;
    let endpoints = store
        .list_webhook_endpoints()
        .await
        .or_break(C, "list_webhook_endpoints")?;
    ensure(
        endpoints == endpoints_before && endpoints == [endpoint("kept")],
        C,
        || format!("endpoints after reopen: {endpoints:?}"),
    )?;
    let deliveries = all_deliveries(store.as_ref(), "kept", C).await?;
    ensure(deliveries == deliveries_before, C, || {
        format!("before the reopen: {deliveries_before:?}; after: {deliveries:?}")
    })?;
    let tried = deliveries.get("tried");
    ensure(
        tried.is_some_and(|d| d.attempts == [attempt(5)] && d.next_attempt == at(60_000)),
        C,
        || format!("the tried delivery after reopen: {tried:?}"),
    )?;
    let claimed = deliveries.get("claimed");
    ensure(
        claimed.is_some_and(|d| d.claimed_by.as_deref() == Some("node")),
        C,
        || format!("the claimed delivery after reopen: {claimed:?}"),
    )?;
    let found = store
        .find_reconnect_link("kept", T0)
        .await
        .or_break(C, "find_reconnect_link")?;
    let taken = store
        .find_reconnect_link("taken", T0)
        .await
        .or_break(C, "find_reconnect_link")?;
    ensure(
        found == Some(link("kept", LONG)) && taken.is_none(),
        C,
        || format!("links after reopen: kept {found:?}, taken (must be gone) {taken:?}"),
    )
}

/// Child processes claim deliveries at once: each delivery goes to exactly one of them.
pub async fn processes_race_claims(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "claim_deliveries is atomic across processes: of 8 processes claiming at once, every delivery is claimed by exactly one";
    let store = open(backend, dir, C).await?;
    store
        .put_webhook_endpoint(&endpoint("race"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    let batch: Vec<WebhookDelivery> = (0..RACED_DELIVERIES)
        .map(|n| delivery(&format!("r{n:02}"), "race", 0, 0))
        .collect();
    store
        .enqueue_deliveries(&batch)
        .await
        .or_break(C, "enqueue_deliveries")?;

    let mut children = Children::default();
    for id in 0..RACING_CHILDREN {
        children
            .spawn(CLAIM_RACE, dir, id)
            .map_err(|e| Violation::new(C, e))?;
    }
    for child in &mut children.list {
        let line = child
            .line(CHILD_TIMEOUT)
            .map_err(|e| Violation::new(C, e))?;
        ensure(line == "ready", C, || {
            format!("a child said `{line}` instead of ready")
        })?;
    }
    for child in &mut children.list {
        child.send("go").map_err(|e| Violation::new(C, e))?;
    }
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (id, child) in children.list.iter_mut().enumerate() {
        let line = child
            .line(CHILD_TIMEOUT)
            .map_err(|e| Violation::new(C, e))?;
        let claimed = line
            .strip_prefix("claimed")
            .ok_or_else(|| Violation::new(C, format!("child {id}: {line}")))?;
        for delivery in claimed.split_whitespace() {
            if let Some(first) = owner.insert(delivery.to_string(), id) {
                return Err(Violation::new(
                    C,
                    format!("`{delivery}` was claimed by children {first} and {id}"),
                ));
            }
        }
    }
    children.finish();
    ensure(owner.len() == RACED_DELIVERIES, C, || {
        format!(
            "the children claimed {} of {RACED_DELIVERIES} deliveries: {:?}",
            owner.len(),
            owner.keys().collect::<Vec<_>>()
        )
    })?;
    let stored = all_deliveries(store.as_ref(), "race", C).await?;
    for (delivery, child) in &owner {
        let holder = format!("child-{child}");
        let kept = stored.get(delivery).and_then(|d| d.claimed_by.clone());
        ensure(kept.as_deref() == Some(holder.as_str()), C, || {
            format!("`{delivery}` went to {holder} but is stored as claimed by {kept:?}")
        })?;
    }
    Ok(())
}

/// The child's part of [`processes_race_claims`]: waits for `go`, claims two at a time
/// until none is left, and says which it got.
pub(super) async fn claim_race_child(
    store: Arc<dyn Store>,
    id: &str,
    say: &dyn Fn(&str),
) -> granary_store::Result<()> {
    say("ready");
    let mut go = String::new();
    let _ = std::io::stdin().read_line(&mut go);
    let holder = format!("child-{id}");
    let mut got = Vec::new();
    loop {
        let claimed = store.claim_deliveries(at(10), &holder, at(LONG), 2).await?;
        if claimed.is_empty() {
            break;
        }
        got.extend(claimed.into_iter().map(|d| d.id));
    }
    say(&format!("claimed {}", got.join(" ")));
    Ok(())
}
