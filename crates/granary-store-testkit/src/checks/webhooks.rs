//! The checks of webhooks (endpoints, the delivery queue with its claims, attempts, log and
//! purge) and reconnect links.

use std::collections::BTreeMap;

use futures::future::join_all;
use granary_store::{
    DELIVERY_ATTEMPTS_KEPT, DeliveryAttempt, DeliveryOutcome, DeliveryState, Error, ReconnectLink,
    Store, WebhookDelivery, WebhookEndpoint,
};

use super::{CheckResult, RACERS};
use crate::fixtures::{T0, at, sealed};
use crate::violation::{OrBreak, ensure};

/// A claim that outlives every check's clock.
pub(crate) const LONG: i64 = 3_600_000;

pub(crate) fn endpoint(id: &str) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.to_string(),
        url: format!("https://receiver.example/hooks/{id}?q=ünï"),
        secret: sealed(&format!("webhook-{id}")),
        events: vec![
            "authorized".to_string(),
            "needs_authorization".to_string(),
            format!("custom-{id}"),
        ],
        enabled: id.len() % 2 == 0,
        created: at(i64::try_from(id.len()).unwrap_or(0)),
    }
}

/// A pending delivery of `id` to `endpoint`, created at `created` and due at `due`
/// (offsets from `T0`).
pub(crate) fn delivery(id: &str, endpoint: &str, created: i64, due: i64) -> WebhookDelivery {
    WebhookDelivery {
        id: id.to_string(),
        endpoint: endpoint.to_string(),
        event_type: "needs_authorization".to_string(),
        payload: format!(
            r#"{{"id":"{id}","type":"needs_authorization","data":{{"instance":"ünï ✓","n":1.50}}}}"#
        ),
        created: at(created),
        state: DeliveryState::Pending,
        attempts: Vec::new(),
        next_attempt: at(due),
        claimed_by: None,
        claimed_until: None,
    }
}

pub(crate) fn attempt(n: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        at: at(n),
        status: if n % 2 == 0 { Some(503) } else { None },
        answer: format!("attempt {n}: connection refused ✗"),
    }
}

pub(crate) fn link(digest: &str, expires: i64) -> ReconnectLink {
    ReconnectLink {
        digest: digest.to_string(),
        instance: format!("instance-{digest}"),
        created: T0,
        expires: at(expires),
    }
}

fn ids(deliveries: &[WebhookDelivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.id.as_str()).collect()
}

/// Every delivery of `endpoint`, by id.
async fn log(
    store: &dyn Store,
    endpoint: &str,
    contract: &'static str,
) -> Result<BTreeMap<String, WebhookDelivery>, crate::Violation> {
    let listed = store
        .list_deliveries(endpoint, usize::MAX)
        .await
        .or_break(contract, "list_deliveries")?;
    Ok(listed.into_iter().map(|d| (d.id.clone(), d)).collect())
}

/// Endpoints come back as written, listed by id; a put replaces; delete removes.
pub async fn webhook_endpoint_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str = "list_webhook_endpoints returns every endpoint unchanged, ordered by id; a put with a stored id replaces it";
    let written = [endpoint("eb"), endpoint("ea"), endpoint("ecc")];
    for e in &written {
        store
            .put_webhook_endpoint(e)
            .await
            .or_break(C, "put_webhook_endpoint")?;
    }
    let mut expected = written.to_vec();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let listed = store
        .list_webhook_endpoints()
        .await
        .or_break(C, "list_webhook_endpoints")?;
    ensure(listed == expected, C, || {
        format!("wrote {expected:?}, listed {listed:?}")
    })?;
    let mut changed = endpoint("eb");
    changed.url = "https://other.example/".to_string();
    changed.secret = sealed("rotated");
    changed.events = vec!["disconnected".to_string()];
    changed.enabled = !changed.enabled;
    store
        .put_webhook_endpoint(&changed)
        .await
        .or_break(C, "put_webhook_endpoint")?;
    expected[1] = changed;
    let listed = store
        .list_webhook_endpoints()
        .await
        .or_break(C, "list_webhook_endpoints")?;
    ensure(listed == expected, C, || {
        format!("after replacing `eb`: expected {expected:?}, listed {listed:?}")
    })?;

    const DELETE: &str = "delete_webhook_endpoint removes the endpoint and says whether it existed";
    let deleted = store
        .delete_webhook_endpoint("ea")
        .await
        .or_break(DELETE, "delete_webhook_endpoint")?;
    let again = store
        .delete_webhook_endpoint("ea")
        .await
        .or_break(DELETE, "delete_webhook_endpoint")?;
    let listed = store
        .list_webhook_endpoints()
        .await
        .or_break(DELETE, "list_webhook_endpoints")?;
    let listed: Vec<&str> = listed.iter().map(|e| e.id.as_str()).collect();
    ensure(deleted && !again && listed == ["eb", "ecc"], DELETE, || {
        format!("delete: {deleted}, again: {again}, then listed {listed:?}")
    })
}

/// Deleting an endpoint deletes its deliveries, and only those.
pub async fn webhook_endpoint_delete_cascades(store: &dyn Store) -> CheckResult {
    const C: &str =
        "delete_webhook_endpoint deletes the endpoint's deliveries with it, and no other";
    for id in ["gone", "kept"] {
        store
            .put_webhook_endpoint(&endpoint(id))
            .await
            .or_break(C, "put_webhook_endpoint")?;
    }
    store
        .enqueue_deliveries(&[
            delivery("g1", "gone", 0, 0),
            delivery("g2", "gone", 1, 1),
            delivery("k1", "kept", 2, 2),
        ])
        .await
        .or_break(C, "enqueue_deliveries")?;
    store
        .delete_webhook_endpoint("gone")
        .await
        .or_break(C, "delete_webhook_endpoint")?;
    store
        .put_webhook_endpoint(&endpoint("gone"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    let left = store
        .list_deliveries("gone", 10)
        .await
        .or_break(C, "list_deliveries")?;
    ensure(left.is_empty(), C, || {
        format!(
            "after deleting and registering `gone` again it has deliveries {:?}",
            ids(&left)
        )
    })?;
    let claimed = store
        .claim_deliveries(at(10), "node", at(LONG), 10)
        .await
        .or_break(C, "claim_deliveries")?;
    ensure(ids(&claimed) == ["k1"], C, || {
        format!(
            "after the delete, claim handed out {:?} (only `k1` is left)",
            ids(&claimed)
        )
    })
}

/// Deliveries are stored as given, all or none.
pub async fn delivery_enqueue_all_or_none(store: &dyn Store) -> CheckResult {
    const C: &str = "enqueue_deliveries stores every delivery as given, and list_deliveries returns it unchanged";
    store
        .put_webhook_endpoint(&endpoint("e"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    let mut with_history = delivery("d3", "e", 3, 30);
    with_history.attempts = vec![attempt(1), attempt(2)];
    let written = vec![
        delivery("d1", "e", 1, 10),
        delivery("d2", "e", 2, 20),
        with_history,
    ];
    store
        .enqueue_deliveries(&written)
        .await
        .or_break(C, "enqueue_deliveries")?;
    let stored = log(store, "e", C).await?;
    let expected: BTreeMap<String, WebhookDelivery> =
        written.iter().map(|d| (d.id.clone(), d.clone())).collect();
    ensure(stored == expected, C, || {
        format!("wrote {expected:?}, listed {stored:?}")
    })?;
    let nothing = store.enqueue_deliveries(&[]).await;
    ensure(nothing.is_ok(), C, || {
        format!("an empty batch gave {nothing:?}")
    })?;

    const ALL: &str = "enqueue_deliveries stores all or none: a taken id is AlreadyExists, an unknown endpoint NotFound, and nothing of the batch is stored";
    let batches: [(&str, Vec<WebhookDelivery>, bool); 3] = [
        (
            "a taken id",
            vec![delivery("n1", "e", 4, 40), delivery("d2", "e", 5, 50)],
            true,
        ),
        (
            "an id twice in the batch",
            vec![delivery("n2", "e", 4, 40), delivery("n2", "e", 5, 50)],
            true,
        ),
        (
            "an unknown endpoint",
            vec![delivery("n3", "e", 4, 40), delivery("n4", "nowhere", 5, 50)],
            false,
        ),
    ];
    for (why, batch, taken) in batches {
        let result = store.enqueue_deliveries(&batch).await;
        let right = if taken {
            matches!(result, Err(Error::AlreadyExists { .. }))
        } else {
            matches!(result, Err(Error::NotFound { .. }))
        };
        ensure(right, ALL, || format!("a batch with {why} gave {result:?}"))?;
        let after = log(store, "e", ALL).await?;
        ensure(after == expected, ALL, || {
            format!(
                "after the refused batch with {why}, endpoint `e` has {:?}",
                after.keys().collect::<Vec<_>>()
            )
        })?;
    }
    let nowhere = store
        .list_deliveries("nowhere", 10)
        .await
        .or_break(ALL, "list_deliveries")?;
    ensure(nowhere.is_empty(), ALL, || {
        format!("a refused batch stored {:?}", ids(&nowhere))
    })
}

/// Claims hand out exactly the due, pending, unclaimed deliveries, oldest due first, and
/// never one under a live claim.
pub async fn delivery_claim_rules(store: &dyn Store) -> CheckResult {
    const C: &str = "claim_deliveries hands out the Pending deliveries due at now whose claim is none or expired, oldest next_attempt first, at most limit, each claimed by holder until until";
    store
        .put_webhook_endpoint(&endpoint("e"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    let mut delivered = delivery("done", "e", 0, 0);
    delivered.state = DeliveryState::Delivered;
    let mut failed = delivery("failed", "e", 0, 0);
    failed.state = DeliveryState::Failed;
    let mut held = delivery("held", "e", 0, 0);
    held.claimed_by = Some("other".to_string());
    held.claimed_until = Some(at(101));
    let mut lapsed = delivery("lapsed", "e", 0, 40);
    lapsed.claimed_by = Some("dead".to_string());
    lapsed.claimed_until = Some(at(100));
    store
        .enqueue_deliveries(&[
            delivery("late", "e", 0, 101),
            delivery("b", "e", 0, 30),
            delivery("a", "e", 5, 30),
            delivery("first", "e", 9, 10),
            delivery("edge", "e", 0, 100),
            delivered,
            failed,
            held,
            lapsed,
        ])
        .await
        .or_break(C, "enqueue_deliveries")?;
    let none = store
        .claim_deliveries(at(100), "node-1", at(LONG), 0)
        .await
        .or_break(C, "claim_deliveries")?;
    ensure(none.is_empty(), C, || {
        format!("limit 0 claimed {:?}", ids(&none))
    })?;
    let first = store
        .claim_deliveries(at(100), "node-1", at(LONG), 3)
        .await
        .or_break(C, "claim_deliveries")?;
    ensure(ids(&first) == ["first", "a", "b"], C, || {
        format!(
            "claimed {:?}; expected [first, a, b] (due at 10, 30, 30)",
            ids(&first)
        )
    })?;
    for d in &first {
        ensure(
            d.claimed_by.as_deref() == Some("node-1") && d.claimed_until == Some(at(LONG)),
            C,
            || format!("a claimed delivery came back as {d:?}"),
        )?;
    }
    let second = store
        .claim_deliveries(at(100), "node-2", at(LONG), 10)
        .await
        .or_break(C, "claim_deliveries")?;
    ensure(ids(&second) == ["lapsed", "edge"], C, || {
        format!(
            "the second claim got {:?}; expected [lapsed, edge] (an expired claim and one due at now; \
             not those claimed by node-1, `held` (claimed until later), `late` (not due), \
             delivered or failed ones)",
            ids(&second)
        )
    })?;
    let stored = log(store, "e", C).await?;
    for (id, holder) in [
        ("first", "node-1"),
        ("a", "node-1"),
        ("lapsed", "node-2"),
        ("held", "other"),
    ] {
        let kept = stored.get(id).and_then(|d| d.claimed_by.as_deref());
        ensure(kept == Some(holder), C, || {
            format!("`{id}` is listed as claimed by {kept:?}, expected {holder}")
        })?;
    }

    const LIVE: &str = "claim_deliveries never hands out a delivery while its claim lives, and hands it out again once it expired";
    let again = store
        .claim_deliveries(at(100), "node-3", at(LONG), 10)
        .await
        .or_break(LIVE, "claim_deliveries")?;
    ensure(again.is_empty(), LIVE, || {
        format!("claimed again under live claims: {:?}", ids(&again))
    })?;
    let later = store
        .claim_deliveries(at(LONG), "node-4", at(2 * LONG), 10)
        .await
        .or_break(LIVE, "claim_deliveries")?;
    ensure(
        ids(&later) == ["held", "first", "a", "b", "lapsed", "edge", "late"],
        LIVE,
        || {
            format!(
                "once every claim expired, claimed {:?}; expected every pending one by due time",
                ids(&later)
            )
        },
    )
}

/// Of many concurrent claimers, each delivery goes to exactly one.
pub async fn delivery_claim_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str = "claim_deliveries is atomic: of 64 concurrent claimers, every delivery is claimed by exactly one";
    const DELIVERIES: usize = 200;
    store
        .put_webhook_endpoint(&endpoint("e"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    let batch: Vec<WebhookDelivery> = (0..DELIVERIES)
        .map(|n| {
            let due = i64::try_from(n % 7).unwrap_or(0);
            delivery(&format!("d{n:03}"), "e", 0, due)
        })
        .collect();
    store
        .enqueue_deliveries(&batch)
        .await
        .or_break(C, "enqueue_deliveries")?;
    let holders: Vec<String> = (0..RACERS).map(|n| format!("node-{n}")).collect();
    let results = join_all(
        holders
            .iter()
            .map(|holder| store.claim_deliveries(at(10), holder, at(LONG), 4)),
    )
    .await;
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for (holder, result) in holders.iter().zip(results) {
        for d in result.or_break(C, "claim_deliveries")? {
            ensure(d.claimed_by.as_deref() == Some(holder.as_str()), C, || {
                format!("{holder} got `{}` claimed by {:?}", d.id, d.claimed_by)
            })?;
            if let Some(first) = owner.insert(d.id.clone(), holder) {
                return Err(crate::Violation::new(
                    C,
                    format!("`{}` was claimed by both {first} and {holder}", d.id),
                ));
            }
        }
    }
    ensure(owner.len() == DELIVERIES, C, || {
        format!(
            "{} of {DELIVERIES} deliveries were claimed by 64 claimers of 4 each",
            owner.len()
        )
    })?;
    let stored = log(store, "e", C).await?;
    for (id, holder) in &owner {
        let kept = stored.get(id).and_then(|d| d.claimed_by.as_deref());
        ensure(kept == Some(*holder), C, || {
            format!("`{id}` went to {holder} but is listed as claimed by {kept:?}")
        })?;
    }
    Ok(())
}

/// An attempt is recorded only under the holder's live claim; the outcome sets the state.
pub async fn delivery_finish_attempt(store: &dyn Store) -> CheckResult {
    const C: &str = "finish_delivery_attempt changes nothing and answers false unless holder holds a live claim (claimed_until > now)";
    store
        .put_webhook_endpoint(&endpoint("e"))
        .await
        .or_break(C, "put_webhook_endpoint")?;
    store
        .enqueue_deliveries(&[
            delivery("retry", "e", 0, 0),
            delivery("ok", "e", 1, 0),
            delivery("bad", "e", 2, 0),
        ])
        .await
        .or_break(C, "enqueue_deliveries")?;
    let claimed = store
        .claim_deliveries(at(0), "node-1", at(100), 10)
        .await
        .or_break(C, "claim_deliveries")?;
    ensure(claimed.len() == 3, C, || {
        format!("claimed {:?}", ids(&claimed))
    })?;
    let before = log(store, "e", C).await?;
    let refused = [
        ("retry", "node-2", 50, "another holder"),
        (
            "retry",
            "node-1",
            100,
            "its claim expired (now == claimed_until)",
        ),
        ("nowhere", "node-1", 50, "a missing delivery"),
    ];
    for (id, holder, now, why) in refused {
        let done = store
            .finish_delivery_attempt(
                id,
                holder,
                at(now),
                attempt(now),
                DeliveryOutcome::Delivered,
            )
            .await
            .or_break(C, "finish_delivery_attempt")?;
        ensure(!done, C, || format!("recorded an attempt by {why}"))?;
    }
    let after = log(store, "e", C).await?;
    ensure(after == before, C, || {
        format!("refused attempts changed the deliveries: {before:?} became {after:?}")
    })?;

    const OUTCOME: &str = "finish_delivery_attempt appends the attempt, sets state and next_attempt from the outcome (finished: now) and clears the claim";
    for (id, outcome) in [
        ("retry", DeliveryOutcome::RetryAt(at(500))),
        ("ok", DeliveryOutcome::Delivered),
        ("bad", DeliveryOutcome::GaveUp),
    ] {
        let done = store
            .finish_delivery_attempt(id, "node-1", at(99), attempt(99), outcome)
            .await
            .or_break(OUTCOME, "finish_delivery_attempt")?;
        ensure(done, OUTCOME, || {
            format!("the holder's attempt on `{id}` was refused")
        })?;
    }
    let stored = log(store, "e", OUTCOME).await?;
    for (id, state, next) in [
        ("retry", DeliveryState::Pending, at(500)),
        ("ok", DeliveryState::Delivered, at(99)),
        ("bad", DeliveryState::Failed, at(99)),
    ] {
        let d = stored.get(id);
        ensure(
            d.is_some_and(|d| {
                d.state == state
                    && d.next_attempt == next
                    && d.attempts == [attempt(99)]
                    && d.claimed_by.is_none()
                    && d.claimed_until.is_none()
            }),
            OUTCOME,
            || format!("expected `{id}` {state:?} due {next:?} with one attempt, got {d:?}"),
        )?;
    }
    let twice = store
        .finish_delivery_attempt("ok", "node-1", at(99), attempt(99), DeliveryOutcome::GaveUp)
        .await
        .or_break(C, "finish_delivery_attempt")?;
    ensure(!twice, C, || {
        "a second attempt under a cleared claim was recorded".to_string()
    })?;
    let early = store
        .claim_deliveries(at(499), "node-1", at(LONG), 10)
        .await
        .or_break(OUTCOME, "claim_deliveries")?;
    ensure(early.is_empty(), OUTCOME, || {
        format!(
            "claimed {:?} before the retry is due (and finished ones never)",
            ids(&early)
        )
    })?;

    const KEPT: &str = "finish_delivery_attempt keeps the newest 10 attempts, oldest first";
    for n in 0..12 {
        let now = 500 + n;
        let claimed = store
            .claim_deliveries(at(now), "node-1", at(now + 10), 1)
            .await
            .or_break(KEPT, "claim_deliveries")?;
        ensure(ids(&claimed) == ["retry"], KEPT, || {
            format!("round {n}: claimed {:?}", ids(&claimed))
        })?;
        store
            .finish_delivery_attempt(
                "retry",
                "node-1",
                at(now),
                attempt(now),
                DeliveryOutcome::RetryAt(at(now + 1)),
            )
            .await
            .or_break(KEPT, "finish_delivery_attempt")?;
    }
    let stored = log(store, "e", KEPT).await?;
    let kept = stored.get("retry").map(|d| d.attempts.clone());
    let expected: Vec<DeliveryAttempt> = (502..512).map(attempt).collect();
    ensure(expected.len() == DELIVERY_ATTEMPTS_KEPT, KEPT, || {
        "the testkit expects 10 kept attempts".to_string()
    })?;
    ensure(kept.as_ref() == Some(&expected), KEPT, || {
        format!("after 13 attempts: {kept:?}")
    })
}

/// The log lists an endpoint's deliveries newest first; purge removes old finished ones.
pub async fn delivery_log_and_purge(store: &dyn Store) -> CheckResult {
    const C: &str =
        "list_deliveries lists the endpoint's deliveries, newest created first, at most limit";
    for id in ["e", "f"] {
        store
            .put_webhook_endpoint(&endpoint(id))
            .await
            .or_break(C, "put_webhook_endpoint")?;
    }
    store
        .enqueue_deliveries(&[
            delivery("d2", "e", 20, 0),
            delivery("d1", "e", 10, 0),
            delivery("d4", "e", 40, 0),
            delivery("d3", "e", 30, 0),
            delivery("x9", "f", 90, 0),
        ])
        .await
        .or_break(C, "enqueue_deliveries")?;
    let all = store
        .list_deliveries("e", 10)
        .await
        .or_break(C, "list_deliveries")?;
    ensure(ids(&all) == ["d4", "d3", "d2", "d1"], C, || {
        format!("listed {:?}", ids(&all))
    })?;
    let two = store
        .list_deliveries("e", 2)
        .await
        .or_break(C, "list_deliveries")?;
    ensure(ids(&two) == ["d4", "d3"], C, || {
        format!("limit 2 listed {:?}", ids(&two))
    })?;
    let none = store
        .list_deliveries("nowhere", 10)
        .await
        .or_break(C, "list_deliveries")?;
    ensure(none.is_empty(), C, || {
        format!("an unknown endpoint listed {:?}", ids(&none))
    })?;

    const PURGE: &str = "purge_finished_deliveries removes exactly the Delivered and Failed deliveries created before `before`, never a Pending one, and counts them";
    let claimed = store
        .claim_deliveries(at(0), "node", at(LONG), 10)
        .await
        .or_break(PURGE, "claim_deliveries")?;
    ensure(claimed.len() == 5, PURGE, || {
        format!("claimed {:?}", ids(&claimed))
    })?;
    // d1 delivered, d2 failed, d3 delivered (created at 30: not before 30), d4 and x9
    // retried (pending).
    for (id, outcome) in [
        ("d1", DeliveryOutcome::Delivered),
        ("d2", DeliveryOutcome::GaveUp),
        ("d3", DeliveryOutcome::Delivered),
        ("d4", DeliveryOutcome::RetryAt(at(LONG))),
        ("x9", DeliveryOutcome::RetryAt(at(LONG))),
    ] {
        store
            .finish_delivery_attempt(id, "node", at(1), attempt(1), outcome)
            .await
            .or_break(PURGE, "finish_delivery_attempt")?;
    }
    let purged = store
        .purge_finished_deliveries(at(30))
        .await
        .or_break(PURGE, "purge_finished_deliveries")?;
    let left = store
        .list_deliveries("e", 10)
        .await
        .or_break(PURGE, "list_deliveries")?;
    ensure(purged == 2 && ids(&left) == ["d4", "d3"], PURGE, || {
        format!(
            "purged {purged} (expected 2: d1 and d2), left {:?}",
            ids(&left)
        )
    })?;
    let purged = store
        .purge_finished_deliveries(at(1_000))
        .await
        .or_break(PURGE, "purge_finished_deliveries")?;
    let left = store
        .list_deliveries("e", 10)
        .await
        .or_break(PURGE, "list_deliveries")?;
    let other = store
        .list_deliveries("f", 10)
        .await
        .or_break(PURGE, "list_deliveries")?;
    ensure(
        purged == 1 && ids(&left) == ["d4"] && ids(&other) == ["x9"],
        PURGE,
        || {
            format!(
                "purged {purged} (expected 1: d3), left {:?} and {:?}",
                ids(&left),
                ids(&other)
            )
        },
    )
}

/// A link comes back as written; find does not take it; take does, once.
pub async fn reconnect_link_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str = "find_reconnect_link returns the link unchanged and does not take it; take_reconnect_link returns it once";
    let written = link("digest-1", LONG);
    store
        .create_reconnect_link(&written)
        .await
        .or_break(C, "create_reconnect_link")?;
    for _ in 0..2 {
        let found = store
            .find_reconnect_link("digest-1", T0)
            .await
            .or_break(C, "find_reconnect_link")?;
        ensure(found.as_ref() == Some(&written), C, || {
            format!("wrote {written:?}, found {found:?}")
        })?;
    }
    let missing = store
        .find_reconnect_link("digest-2", T0)
        .await
        .or_break(C, "find_reconnect_link")?;
    ensure(missing.is_none(), C, || {
        format!("an unknown digest found {missing:?}")
    })?;

    const TAKEN: &str =
        "create_reconnect_link fails with AlreadyExists on a taken digest and changes nothing";
    let mut other = link("digest-1", 2 * LONG);
    other.instance = "another".to_string();
    let result = store.create_reconnect_link(&other).await;
    ensure(
        matches!(result, Err(Error::AlreadyExists { .. })),
        TAKEN,
        || format!("got {result:?}"),
    )?;
    let kept = store
        .find_reconnect_link("digest-1", T0)
        .await
        .or_break(TAKEN, "find_reconnect_link")?;
    ensure(kept.as_ref() == Some(&written), TAKEN, || {
        format!("after the refused create: {kept:?}")
    })?;

    let taken = store
        .take_reconnect_link("digest-1", at(1))
        .await
        .or_break(C, "take_reconnect_link")?;
    let again = store
        .take_reconnect_link("digest-1", at(2))
        .await
        .or_break(C, "take_reconnect_link")?;
    let found = store
        .find_reconnect_link("digest-1", at(3))
        .await
        .or_break(C, "find_reconnect_link")?;
    ensure(
        taken.as_ref() == Some(&written) && again.is_none() && found.is_none(),
        C,
        || format!("take: {taken:?}, again: {again:?}, then find: {found:?}"),
    )
}

/// An expired link is neither found nor taken; purge removes exactly the expired ones.
pub async fn reconnect_link_expiry(store: &dyn Store) -> CheckResult {
    const C: &str = "an expired reconnect link (expires <= now) is never found nor taken";
    store
        .create_reconnect_link(&link("edge", 1_000))
        .await
        .or_break(C, "create_reconnect_link")?;
    let before = store
        .find_reconnect_link("edge", at(999))
        .await
        .or_break(C, "find_reconnect_link")?;
    let at_edge = store
        .find_reconnect_link("edge", at(1_000))
        .await
        .or_break(C, "find_reconnect_link")?;
    let taken = store
        .take_reconnect_link("edge", at(1_000))
        .await
        .or_break(C, "take_reconnect_link")?;
    ensure(
        before.is_some() && at_edge.is_none() && taken.is_none(),
        C,
        || {
            format!(
                "a millisecond before: {before:?}; at expires: found {at_edge:?}, took {taken:?}"
            )
        },
    )?;

    const PURGE: &str =
        "purge_expired_reconnect_links removes exactly those with expires <= now and counts them";
    for (digest, expires) in [("l1", 500), ("l2", 2_000), ("l3", 2_001), ("l4", 9_000)] {
        store
            .create_reconnect_link(&link(digest, expires))
            .await
            .or_break(PURGE, "create_reconnect_link")?;
    }
    // `edge` (1000), l1 and l2 are expired at 2000.
    let purged = store
        .purge_expired_reconnect_links(at(2_000))
        .await
        .or_break(PURGE, "purge_expired_reconnect_links")?;
    ensure(purged == 3, PURGE, || {
        format!("purged {purged}, expected 3")
    })?;
    for (digest, alive) in [("l1", false), ("l2", false), ("l3", true), ("l4", true)] {
        let recreated = store.create_reconnect_link(&link(digest, 9_000)).await;
        let was_kept = matches!(recreated, Err(Error::AlreadyExists { .. }));
        ensure(was_kept == alive, PURGE, || {
            format!(
                "{digest}: expected {} (create again gave {recreated:?})",
                if alive { "kept" } else { "purged" }
            )
        })?;
    }
    Ok(())
}

/// Of 64 concurrent takers of one link, exactly one gets it.
pub async fn reconnect_link_take_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str =
        "take_reconnect_link is atomic: of 64 concurrent takers exactly one gets the link";
    for round in 0..4 {
        let digest = format!("race-{round}");
        store
            .create_reconnect_link(&link(&digest, LONG))
            .await
            .or_break(C, "create_reconnect_link")?;
        let results = join_all((0..RACERS).map(|_| store.take_reconnect_link(&digest, T0))).await;
        let mut winners = 0;
        for result in results {
            if let Some(got) = result.or_break(C, "take_reconnect_link")? {
                ensure(got == link(&digest, LONG), C, || format!("took {got:?}"))?;
                winners += 1;
            }
        }
        ensure(winners == 1, C, || {
            format!("round {round}: {winners} takers got it")
        })?;
    }
    Ok(())
}
