//! The checks over one open store: round trips, compare-and-swap, take-once, expiry, leases,
//! listing and deletion (those of admin sessions and API keys in `server_state`). Each takes
//! `&dyn Store` (a new, empty store) and returns the [`Violation`] of the first contract it
//! saw broken.

use std::time::Duration;

use futures::future::join_all;
use granary_store::{
    CHANGES_KEPT, Change, Changes, Error, InstanceStatus, Sealed, Store, Timestamp,
};

use crate::Violation;
use crate::fixtures::{
    T0, at, bare_token, instance, integration, pending, public_instance, same_instance, same_token,
    sealed, token,
};
use crate::violation::{OrBreak, ensure};

mod queries;
mod server_state;
pub(crate) mod webhooks;
pub use queries::{instances_page_and_counts, tokens_due_by_expiry, tokens_due_follow_writes};
pub use server_state::{
    api_key_revoke, api_key_round_trip, session_banner_take_concurrent, session_banner_take_once,
    session_expiry, session_round_trip,
};
pub use webhooks::{
    delivery_claim_concurrent, delivery_claim_rules, delivery_enqueue_all_or_none,
    delivery_finish_attempt, delivery_log_and_purge, reconnect_link_expiry,
    reconnect_link_round_trip, reconnect_link_take_concurrent, webhook_endpoint_delete_cascades,
    webhook_endpoint_round_trip,
};

/// The result of a check.
pub type CheckResult = Result<(), Violation>;

/// How many concurrent callers the race checks start.
pub const RACERS: usize = 64;

async fn seed(store: &dyn Store, contract: &'static str, instances: &[&str]) -> CheckResult {
    store
        .put_integration(&integration("api"))
        .await
        .or_break(contract, "put_integration")?;
    for id in instances {
        store
            .create_instance(&instance(id, "api"))
            .await
            .or_break(contract, "create_instance")?;
    }
    Ok(())
}

/// Integrations come back as written; a put replaces; a missing name gives `None`.
pub async fn integration_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str =
        "put_integration then get_integration returns the record unchanged; a put replaces";
    let first = integration("api");
    store
        .put_integration(&first)
        .await
        .or_break(C, "put_integration")?;
    let got = store
        .get_integration("api")
        .await
        .or_break(C, "get_integration")?;
    ensure(got.as_ref() == Some(&first), C, || {
        format!("wrote {first:?}, read {got:?}")
    })?;
    let mut second = integration("api");
    second.source_digest = "sha256:changed".to_string();
    second.flows = serde_json::json!({ "other": { "implicit": null }, "list": [1, 2.5, "x"] });
    second.created = at(5);
    store
        .put_integration(&second)
        .await
        .or_break(C, "put_integration (replace)")?;
    let got = store
        .get_integration("api")
        .await
        .or_break(C, "get_integration")?;
    ensure(got.as_ref() == Some(&second), C, || {
        format!("replaced with {second:?}, read {got:?}")
    })?;
    let missing = store
        .get_integration("nope")
        .await
        .or_break(C, "get_integration")?;
    ensure(
        missing.is_none(),
        "get of a missing key returns None",
        || format!("got {missing:?}"),
    )
}

/// Integrations list ordered by name; delete reports whether it removed; an integration
/// with instances cannot be deleted.
pub async fn integration_list_and_delete(store: &dyn Store) -> CheckResult {
    const LIST: &str = "list_integrations returns every integration, ordered by name";
    for name in ["b", "c", "a"] {
        store
            .put_integration(&integration(name))
            .await
            .or_break(LIST, "put_integration")?;
    }
    let names: Vec<String> = store
        .list_integrations()
        .await
        .or_break(LIST, "list_integrations")?
        .into_iter()
        .map(|i| i.name)
        .collect();
    ensure(names == ["a", "b", "c"], LIST, || {
        format!("listed {names:?}")
    })?;

    const IN_USE: &str = "delete_integration fails with Conflict while an instance belongs to it";
    store
        .create_instance(&instance("i", "b"))
        .await
        .or_break(IN_USE, "create_instance")?;
    let refused = store.delete_integration("b").await;
    ensure(
        matches!(refused, Err(Error::Conflict { .. })),
        IN_USE,
        || format!("got {refused:?}"),
    )?;
    let still = store
        .get_integration("b")
        .await
        .or_break(IN_USE, "get_integration")?;
    ensure(still.is_some(), IN_USE, || {
        "the integration was removed anyway".to_string()
    })?;

    const DELETE: &str = "delete_integration removes the record and returns whether it existed";
    let removed = store
        .delete_integration("a")
        .await
        .or_break(DELETE, "delete_integration")?;
    ensure(removed, DELETE, || {
        "returned false for an existing integration".to_string()
    })?;
    let again = store
        .delete_integration("a")
        .await
        .or_break(DELETE, "delete_integration")?;
    ensure(!again, DELETE, || {
        "returned true for a missing integration".to_string()
    })?;
    let got = store
        .get_integration("a")
        .await
        .or_break(DELETE, "get_integration")?;
    ensure(got.is_none(), DELETE, || {
        "still readable after delete".to_string()
    })?;
    store
        .delete_instance("i")
        .await
        .or_break(DELETE, "delete_instance")?;
    let removed = store
        .delete_integration("b")
        .await
        .or_break(DELETE, "delete_integration")?;
    ensure(removed, DELETE, || {
        "returned false once its instances were gone".to_string()
    })
}

/// Instances come back as written, every field, with version 1.
pub async fn instance_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str =
        "create_instance stores every field and version 1; get_instance returns them unchanged";
    seed(store, C, &[]).await?;
    let mut confidential = instance("conf", "api");
    confidential.version = 99;
    let public = public_instance("pub", "api");
    for written in [&confidential, &public] {
        let version = store
            .create_instance(written)
            .await
            .or_break(C, "create_instance")?;
        ensure(version == 1, C, || {
            format!("create_instance returned version {version}")
        })?;
        let got = store
            .get_instance(&written.id)
            .await
            .or_break(C, "get_instance")?;
        ensure(
            got.as_ref().is_some_and(|g| same_instance(g, written, 1)),
            C,
            || format!("wrote {written:?}, read {got:?}"),
        )?;
    }
    let missing = store
        .get_instance("nope")
        .await
        .or_break(C, "get_instance")?;
    ensure(
        missing.is_none(),
        "get of a missing key returns None",
        || format!("got {missing:?}"),
    )
}

/// A taken id gives `AlreadyExists` and leaves the first instance; an unknown integration
/// gives `NotFound`.
pub async fn instance_create_rules(store: &dyn Store) -> CheckResult {
    const TAKEN: &str =
        "create_instance fails with AlreadyExists on a taken id and changes nothing";
    seed(store, TAKEN, &["x"]).await?;
    let mut other = public_instance("x", "api");
    other.client_id = "intruder".to_string();
    let result = store.create_instance(&other).await;
    ensure(
        matches!(result, Err(Error::AlreadyExists { .. })),
        TAKEN,
        || format!("got {result:?}"),
    )?;
    let got = store
        .get_instance("x")
        .await
        .or_break(TAKEN, "get_instance")?;
    ensure(
        got.as_ref()
            .is_some_and(|g| same_instance(g, &instance("x", "api"), 1)),
        TAKEN,
        || format!("the first instance became {got:?}"),
    )?;

    const UNKNOWN: &str = "create_instance fails with NotFound when its integration does not exist";
    let result = store.create_instance(&instance("y", "no-such-api")).await;
    ensure(
        matches!(result, Err(Error::NotFound { .. })),
        UNKNOWN,
        || format!("got {result:?}"),
    )?;
    let got = store
        .get_instance("y")
        .await
        .or_break(UNKNOWN, "get_instance")?;
    ensure(got.is_none(), UNKNOWN, || {
        "the instance was stored anyway".to_string()
    })
}

/// Updates are compare-and-swap on the version.
pub async fn instance_update_cas(store: &dyn Store) -> CheckResult {
    const C: &str =
        "update_instance writes only over the version the caller read, and returns version + 1";
    seed(store, C, &["x"]).await?;
    let mut read = store
        .get_instance("x")
        .await
        .or_break(C, "get_instance")?
        .ok_or_else(|| Violation::new(C, "the created instance is missing"))?;
    let stale = read.clone();
    read.status = InstanceStatus::Authorized;
    read.scopes = vec!["read".to_string()];
    read.token_url = None;
    read.connection
        .insert("hostname".to_string(), "eu.provider.example".to_string());
    read.connection.remove("tenant");
    read.profile = Some(serde_json::json!({ "refresh": "none", "pkce": true }));
    read.updated = at(1_000);
    let version = store
        .update_instance(&read)
        .await
        .or_break(C, "update_instance")?;
    ensure(version == 2, C, || {
        format!("update_instance returned version {version}")
    })?;
    let got = store.get_instance("x").await.or_break(C, "get_instance")?;
    ensure(
        got.as_ref().is_some_and(|g| same_instance(g, &read, 2)),
        C,
        || format!("wrote {read:?}, read {got:?}"),
    )?;

    const STALE: &str =
        "update_instance with a stale version fails with Conflict and writes nothing";
    let mut late = stale;
    late.status = InstanceStatus::Disabled;
    let result = store.update_instance(&late).await;
    ensure(matches!(result, Err(Error::Conflict { .. })), STALE, || {
        format!("got {result:?}")
    })?;
    let got = store
        .get_instance("x")
        .await
        .or_break(STALE, "get_instance")?;
    ensure(
        got.as_ref().is_some_and(|g| same_instance(g, &read, 2)),
        STALE,
        || format!("the stale write changed the record to {got:?}"),
    )?;

    const MISSING: &str = "update_instance of a missing instance fails with NotFound";
    let result = store.update_instance(&instance("ghost", "api")).await;
    ensure(
        matches!(result, Err(Error::NotFound { .. })),
        MISSING,
        || format!("got {result:?}"),
    )?;
    let got = store
        .get_instance("ghost")
        .await
        .or_break(MISSING, "get_instance")?;
    ensure(got.is_none(), MISSING, || {
        "the update created the instance".to_string()
    })
}

/// Instances list ordered by id; delete removes the instance with its token, pendings and
/// lease, and leaves other instances' records alone.
pub async fn instance_list_and_delete(store: &dyn Store) -> CheckResult {
    const LIST: &str = "list_instances returns every instance, ordered by id";
    seed(store, LIST, &["m", "z", "a"]).await?;
    let ids: Vec<String> = store
        .list_instances()
        .await
        .or_break(LIST, "list_instances")?
        .into_iter()
        .map(|i| i.id)
        .collect();
    ensure(ids == ["a", "m", "z"], LIST, || format!("listed {ids:?}"))?;

    const CASCADE: &str =
        "delete_instance also removes its token, pending authorizations and lease";
    for id in ["a", "m"] {
        store
            .put_token(id, &token(id), None)
            .await
            .or_break(CASCADE, "put_token")?;
        for n in 0..3 {
            store
                .put_pending(&pending(&format!("{id}-state-{n}"), id, at(60_000)))
                .await
                .or_break(CASCADE, "put_pending")?;
        }
        let got = store
            .try_acquire_lease(id, "holder", T0, Duration::from_secs(30))
            .await
            .or_break(CASCADE, "try_acquire_lease")?;
        ensure(got, CASCADE, || "a free lease was refused".to_string())?;
    }
    let removed = store
        .delete_instance("a")
        .await
        .or_break(CASCADE, "delete_instance")?;
    ensure(removed, CASCADE, || {
        "delete_instance returned false for an existing instance".to_string()
    })?;
    let instance = store
        .get_instance("a")
        .await
        .or_break(CASCADE, "get_instance")?;
    ensure(instance.is_none(), CASCADE, || {
        "the instance is still there".to_string()
    })?;
    let token_left = store.get_token("a").await.or_break(CASCADE, "get_token")?;
    ensure(token_left.is_none(), CASCADE, || {
        "its token is still there".to_string()
    })?;
    let lease_left = store.get_lease("a").await.or_break(CASCADE, "get_lease")?;
    ensure(lease_left.is_none(), CASCADE, || {
        format!("its lease is still there: {lease_left:?}")
    })?;
    for n in 0..3 {
        let taken = store
            .take_pending(&format!("a-state-{n}"), T0)
            .await
            .or_break(CASCADE, "take_pending")?;
        ensure(taken.is_none(), CASCADE, || {
            "one of its pending authorizations is still there".to_string()
        })?;
    }

    const OTHERS: &str = "delete_instance leaves the records of other instances alone";
    let token_m = store.get_token("m").await.or_break(OTHERS, "get_token")?;
    ensure(token_m.is_some(), OTHERS, || {
        "another instance's token is gone".to_string()
    })?;
    let lease_m = store.get_lease("m").await.or_break(OTHERS, "get_lease")?;
    ensure(lease_m.is_some(), OTHERS, || {
        "another instance's lease is gone".to_string()
    })?;
    let pending_m = store
        .take_pending("m-state-1", T0)
        .await
        .or_break(OTHERS, "take_pending")?;
    ensure(pending_m.is_some(), OTHERS, || {
        "another instance's pending authorization is gone".to_string()
    })?;
    let ids: Vec<String> = store
        .list_instances()
        .await
        .or_break(OTHERS, "list_instances")?
        .into_iter()
        .map(|i| i.id)
        .collect();
    ensure(ids == ["m", "z"], OTHERS, || {
        format!("listed {ids:?} after deleting `a`")
    })?;

    const AGAIN: &str = "delete of a missing key returns false";
    let again = store
        .delete_instance("a")
        .await
        .or_break(AGAIN, "delete_instance")?;
    ensure(!again, AGAIN, || {
        "delete_instance returned true twice".to_string()
    })
}

/// Missing keys: `None` from gets, `false` from deletes, `NotFound` from writes that refer
/// to a missing instance.
pub async fn missing_keys(store: &dyn Store) -> CheckResult {
    const NONE: &str = "get of a missing key returns None, delete returns false";
    let instance = store
        .get_instance("none")
        .await
        .or_break(NONE, "get_instance")?;
    ensure(instance.is_none(), NONE, || {
        format!("get_instance: {instance:?}")
    })?;
    let token_got = store.get_token("none").await.or_break(NONE, "get_token")?;
    ensure(token_got.is_none(), NONE, || {
        format!("get_token: {token_got:?}")
    })?;
    let lease = store.get_lease("none").await.or_break(NONE, "get_lease")?;
    ensure(lease.is_none(), NONE, || format!("get_lease: {lease:?}"))?;
    let taken = store
        .take_pending("none", T0)
        .await
        .or_break(NONE, "take_pending")?;
    ensure(taken.is_none(), NONE, || format!("take_pending: {taken:?}"))?;
    let lists = (
        store
            .list_integrations()
            .await
            .or_break(NONE, "list_integrations")?,
        store
            .list_instances()
            .await
            .or_break(NONE, "list_instances")?,
    );
    ensure(lists.0.is_empty() && lists.1.is_empty(), NONE, || {
        "a new store lists records".to_string()
    })?;
    let deleted = [
        store
            .delete_integration("none")
            .await
            .or_break(NONE, "delete_integration")?,
        store
            .delete_instance("none")
            .await
            .or_break(NONE, "delete_instance")?,
        store
            .delete_token("none", None)
            .await
            .or_break(NONE, "delete_token")?,
        store
            .release_lease("none", "h")
            .await
            .or_break(NONE, "release_lease")?,
    ];
    ensure(deleted == [false; 4], NONE, || {
        format!("deletes of missing keys returned {deleted:?}")
    })?;
    let purged = store
        .purge_expired_pendings(at(1_000_000))
        .await
        .or_break(NONE, "purge_expired_pendings")?;
    ensure(purged == 0, NONE, || {
        format!("purged {purged} from an empty store")
    })?;

    const NOT_FOUND: &str =
        "a write that refers to a missing instance fails with NotFound and stores nothing";
    let result = store.put_token("none", &token("x"), None).await;
    ensure(
        matches!(result, Err(Error::NotFound { .. })),
        NOT_FOUND,
        || format!("put_token: {result:?}"),
    )?;
    let result = store.put_pending(&pending("s", "none", at(60_000))).await;
    ensure(
        matches!(result, Err(Error::NotFound { .. })),
        NOT_FOUND,
        || format!("put_pending: {result:?}"),
    )?;
    let result = store
        .try_acquire_lease("none", "h", T0, Duration::from_secs(1))
        .await;
    ensure(
        matches!(result, Err(Error::NotFound { .. })),
        NOT_FOUND,
        || format!("try_acquire_lease: {result:?}"),
    )?;
    let token_got = store
        .get_token("none")
        .await
        .or_break(NOT_FOUND, "get_token")?;
    let taken = store
        .take_pending("s", T0)
        .await
        .or_break(NOT_FOUND, "take_pending")?;
    let lease = store
        .get_lease("none")
        .await
        .or_break(NOT_FOUND, "get_lease")?;
    ensure(
        token_got.is_none() && taken.is_none() && lease.is_none(),
        NOT_FOUND,
        || "a refused write left a record behind".to_string(),
    )
}

/// A pending authorization is returned once, unchanged; a taken state is refused.
pub async fn pending_take_once(store: &dyn Store) -> CheckResult {
    const C: &str = "take_pending returns the pending authorization unchanged, exactly once";
    seed(store, C, &["x"]).await?;
    let mut written = pending("state-1", "x", at(600_000));
    store
        .put_pending(&written)
        .await
        .or_break(C, "put_pending")?;
    let mut no_issuer = pending("state-2", "x", at(600_000));
    no_issuer.expected_issuer = None;
    store
        .put_pending(&no_issuer)
        .await
        .or_break(C, "put_pending")?;

    const TAKEN: &str = "put_pending fails with AlreadyExists on a taken state and changes nothing";
    let mut other = pending("state-1", "x", at(900_000));
    other.redirect_uri = "http://127.0.0.1:1/other/".to_string();
    let result = store.put_pending(&other).await;
    ensure(
        matches!(result, Err(Error::AlreadyExists { .. })),
        TAKEN,
        || format!("got {result:?}"),
    )?;

    for expected in [&mut written, &mut no_issuer] {
        let taken = store
            .take_pending(&expected.state, at(1))
            .await
            .or_break(C, "take_pending")?;
        ensure(taken.as_ref() == Some(expected), C, || {
            format!("wrote {expected:?}, took {taken:?}")
        })?;
        let again = store
            .take_pending(&expected.state, at(2))
            .await
            .or_break(C, "take_pending")?;
        ensure(again.is_none(), C, || {
            "a second take returned it again".to_string()
        })?;
    }
    Ok(())
}

/// An expired pending authorization is never returned; purge removes exactly the expired.
pub async fn pending_expiry(store: &dyn Store) -> CheckResult {
    const C: &str = "take_pending never returns an expired pending authorization (expires <= now)";
    seed(store, C, &["x"]).await?;
    store
        .put_pending(&pending("edge", "x", at(1_000)))
        .await
        .or_break(C, "put_pending")?;
    store
        .put_pending(&pending("late", "x", at(1_000)))
        .await
        .or_break(C, "put_pending")?;
    let taken = store
        .take_pending("edge", at(1_000))
        .await
        .or_break(C, "take_pending")?;
    ensure(taken.is_none(), C, || {
        "returned one at now == expires".to_string()
    })?;
    let taken = store
        .take_pending("late", at(86_400_000))
        .await
        .or_break(C, "take_pending")?;
    ensure(taken.is_none(), C, || {
        "returned one a day after it expired".to_string()
    })?;
    let taken = store
        .take_pending("edge", at(0))
        .await
        .or_break(C, "take_pending")?;
    ensure(taken.is_none(), C, || {
        "an expired one was kept, and returned to a caller with an earlier clock".to_string()
    })?;
    store
        .put_pending(&pending("fresh", "x", at(1_000)))
        .await
        .or_break(C, "put_pending")?;
    let taken = store
        .take_pending("fresh", at(999))
        .await
        .or_break(C, "take_pending")?;
    ensure(taken.is_some(), C, || {
        "refused one a millisecond before it expires".to_string()
    })?;

    const PURGE: &str =
        "purge_expired_pendings removes exactly those with expires <= now and counts them";
    for (state, expires) in [("p1", 500), ("p2", 1_000), ("p3", 1_001), ("p4", 5_000)] {
        store
            .put_pending(&pending(state, "x", at(expires)))
            .await
            .or_break(PURGE, "put_pending")?;
    }
    let purged = store
        .purge_expired_pendings(at(1_000))
        .await
        .or_break(PURGE, "purge_expired_pendings")?;
    ensure(purged == 2, PURGE, || {
        format!("purged {purged}, expected 2")
    })?;
    for (state, alive) in [("p1", false), ("p2", false), ("p3", true), ("p4", true)] {
        let taken = store
            .take_pending(state, at(0))
            .await
            .or_break(PURGE, "take_pending")?;
        ensure(taken.is_some() == alive, PURGE, || {
            format!(
                "{state}: expected {}",
                if alive { "kept" } else { "purged" }
            )
        })?;
    }
    Ok(())
}

/// Of 64 concurrent takers of one state, exactly one gets it.
pub async fn pending_take_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str = "take_pending is atomic: of 64 concurrent takers exactly one gets the pending authorization";
    seed(store, C, &["x"]).await?;
    for round in 0..4 {
        let state = format!("race-{round}");
        store
            .put_pending(&pending(&state, "x", at(600_000)))
            .await
            .or_break(C, "put_pending")?;
        let results = join_all((0..RACERS).map(|_| store.take_pending(&state, at(1)))).await;
        let mut winners = 0;
        for result in results {
            if result.or_break(C, "take_pending")?.is_some() {
                winners += 1;
            }
        }
        ensure(winners == 1, C, || {
            format!("round {round}: {winners} takers got it")
        })?;
    }
    Ok(())
}

/// Tokens come back as written, every field, with the store's version.
pub async fn token_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str = "put_token then get_token returns the record unchanged, with the new version";
    seed(store, C, &["full", "bare"]).await?;
    for (id, written) in [("full", token("full")), ("bare", bare_token("bare"))] {
        let version = store
            .put_token(id, &written, None)
            .await
            .or_break(C, "put_token")?;
        ensure(version == 1, C, || {
            format!("the first put_token returned version {version}")
        })?;
        let got = store.get_token(id).await.or_break(C, "get_token")?;
        ensure(
            got.as_ref().is_some_and(|g| same_token(g, &written, 1)),
            C,
            || format!("wrote {written:?}, read {got:?}"),
        )?;
    }
    const DELETE: &str = "delete_token removes the record and returns whether it existed";
    let removed = store
        .delete_token("bare", None)
        .await
        .or_break(DELETE, "delete_token")?;
    let again = store
        .delete_token("bare", None)
        .await
        .or_break(DELETE, "delete_token")?;
    let got = store
        .get_token("bare")
        .await
        .or_break(DELETE, "get_token")?;
    ensure(removed && !again && got.is_none(), DELETE, || {
        format!("delete returned {removed} then {again}; afterwards get_token gave {got:?}")
    })
}

/// Token writes are compare-and-swap: a stale writer gets `Conflict` and never overwrites.
pub async fn token_cas(store: &dyn Store) -> CheckResult {
    const C: &str = "put_token writes only over the expected version, stores the record as given (its kept values included), and returns version + 1";
    seed(store, C, &["x", "y"]).await?;
    store
        .put_token("x", &token("v1"), None)
        .await
        .or_break(C, "put_token")?;
    let version = store
        .put_token("x", &token("v2"), Some(1))
        .await
        .or_break(C, "put_token")?;
    ensure(version == 2, C, || {
        format!("returned version {version} after version 1")
    })?;
    let got = store.get_token("x").await.or_break(C, "get_token")?;
    ensure(
        got.as_ref().is_some_and(|g| same_token(g, &token("v2"), 2)),
        C,
        || format!("wrote v2 over v1, read {got:?}"),
    )?;

    const STALE: &str =
        "put_token with a stale version fails with Conflict and never overwrites a newer token";
    for (expected, why) in [
        (None, "None over an existing record"),
        (Some(1), "a stale version"),
        (Some(7), "a future version"),
    ] {
        let result = store.put_token("x", &token("stale"), expected).await;
        ensure(matches!(result, Err(Error::Conflict { .. })), STALE, || {
            format!("{why}: got {result:?}")
        })?;
    }
    let got = store.get_token("x").await.or_break(STALE, "get_token")?;
    ensure(
        got.as_ref().is_some_and(|g| same_token(g, &token("v2"), 2)),
        STALE,
        || format!("the stored token became {got:?}"),
    )?;
    let result = store.put_token("y", &token("y"), Some(1)).await;
    ensure(matches!(result, Err(Error::Conflict { .. })), STALE, || {
        format!("Some(1) over no record: got {result:?}")
    })?;
    let got = store.get_token("y").await.or_break(STALE, "get_token")?;
    ensure(got.is_none(), STALE, || {
        "a refused write stored a token".to_string()
    })
}

/// Token deletion is compare-and-swap too: a stale deleter gets `Conflict` and removes
/// nothing, so a token written since it was read is never dropped unseen.
pub async fn token_delete_is_compare_and_swap(store: &dyn Store) -> CheckResult {
    const STALE: &str =
        "delete_token with a stale version fails with Conflict and never removes a newer token";
    seed(store, STALE, &["x", "y", "z"]).await?;
    store
        .put_token("x", &token("v1"), None)
        .await
        .or_break(STALE, "put_token")?;
    store
        .put_token("x", &token("v2"), Some(1))
        .await
        .or_break(STALE, "put_token")?;
    for (expected, why) in [(Some(1), "a stale version"), (Some(7), "a future version")] {
        let result = store.delete_token("x", expected).await;
        ensure(matches!(result, Err(Error::Conflict { .. })), STALE, || {
            format!("{why}: got {result:?}")
        })?;
    }
    let got = store.get_token("x").await.or_break(STALE, "get_token")?;
    ensure(
        got.as_ref().is_some_and(|g| same_token(g, &token("v2"), 2)),
        STALE,
        || format!("after refused deletes the stored token is {got:?}"),
    )?;

    const RIGHT: &str = "delete_token with the stored version removes the record";
    let removed = store
        .delete_token("x", Some(2))
        .await
        .or_break(RIGHT, "delete_token")?;
    let got = store.get_token("x").await.or_break(RIGHT, "get_token")?;
    ensure(removed && got.is_none(), RIGHT, || {
        format!("delete returned {removed}; afterwards get_token gave {got:?}")
    })?;

    const ANY: &str = "delete_token with None removes the record whatever its version";
    store
        .put_token("y", &token("y1"), None)
        .await
        .or_break(ANY, "put_token")?;
    store
        .put_token("y", &token("y2"), Some(1))
        .await
        .or_break(ANY, "put_token")?;
    let removed = store
        .delete_token("y", None)
        .await
        .or_break(ANY, "delete_token")?;
    let got = store.get_token("y").await.or_break(ANY, "get_token")?;
    ensure(removed && got.is_none(), ANY, || {
        format!("delete returned {removed}; afterwards get_token gave {got:?}")
    })?;

    const MISSING: &str =
        "delete_token of a missing record returns false, with or without a version";
    for expected in [Some(1), None] {
        let removed = store
            .delete_token("z", expected)
            .await
            .or_break(MISSING, "delete_token")?;
        ensure(!removed, MISSING, || {
            format!("{expected:?}: returned true for a record that does not exist")
        })?;
    }
    Ok(())
}

/// Of 64 concurrent writers over one version, exactly one wins.
pub async fn token_cas_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str = "put_token is atomic: of 64 concurrent writers over one version exactly one wins, the rest get Conflict";
    seed(store, C, &["x"]).await?;
    store
        .put_token("x", &token("base"), None)
        .await
        .or_break(C, "put_token")?;
    let writes: Vec<_> = (0..RACERS).map(|n| token(&format!("writer-{n}"))).collect();
    let results = join_all(writes.iter().map(|t| store.put_token("x", t, Some(1)))).await;
    let mut winner = None;
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(version) => {
                ensure(winner.is_none(), C, || "two writers won".to_string())?;
                ensure(version == 2, C, || {
                    format!("the winner got version {version}")
                })?;
                winner = Some(n);
            }
            Err(Error::Conflict { .. }) => {}
            Err(other) => return Err(Violation::new(C, format!("a writer failed: {other}"))),
        }
    }
    let winner = winner.ok_or_else(|| Violation::new(C, "no writer won"))?;
    let got = store.get_token("x").await.or_break(C, "get_token")?;
    ensure(
        got.as_ref()
            .is_some_and(|g| same_token(g, &token(&format!("writer-{winner}")), 2)),
        C,
        || format!("the stored token is not the winner's: {got:?}"),
    )
}

/// Of 64 concurrent acquirers of one lease, exactly one gets it.
pub async fn lease_exclusive_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str =
        "try_acquire_lease is exclusive: of 64 concurrent holders exactly one gets a free lease";
    seed(store, C, &["x"]).await?;
    let holders: Vec<String> = (0..RACERS).map(|n| format!("holder-{n}")).collect();
    let ttl = Duration::from_secs(30);
    let results = join_all(
        holders
            .iter()
            .map(|h| store.try_acquire_lease("x", h, T0, ttl)),
    )
    .await;
    let mut winners = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        if result.or_break(C, "try_acquire_lease")? {
            winners.push(n);
        }
    }
    ensure(winners.len() == 1, C, || {
        format!("holders {winners:?} all got it")
    })?;
    let lease = store.get_lease("x").await.or_break(C, "get_lease")?;
    let expected = winners.first().map(|n| format!("holder-{n}"));
    ensure(
        lease
            .as_ref()
            .is_some_and(|l| Some(&l.holder) == expected.as_ref() && l.expires == at(30_000)),
        C,
        || format!("get_lease shows {lease:?}, the winner is {expected:?}"),
    )
}

/// An expired lease is taken over; a live one is not.
pub async fn lease_expiry_takeover(store: &dyn Store) -> CheckResult {
    const C: &str =
        "try_acquire_lease takes over an expired lease (expires <= now) and never a live one";
    seed(store, C, &["x"]).await?;
    let ttl = Duration::from_secs(10);
    let first = store
        .try_acquire_lease("x", "a", T0, ttl)
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(first, C, || "a free lease was refused".to_string())?;
    let early = store
        .try_acquire_lease("x", "b", at(9_999), ttl)
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(!early, C, || {
        "another holder got a lease 1 ms before it expired".to_string()
    })?;
    let takeover = store
        .try_acquire_lease("x", "b", at(10_000), ttl)
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(takeover, C, || {
        "an expired lease (expires == now) was not taken over".to_string()
    })?;
    let lease = store.get_lease("x").await.or_break(C, "get_lease")?;
    ensure(
        lease
            .as_ref()
            .is_some_and(|l| l.holder == "b" && l.expires == at(20_000)),
        C,
        || format!("after the takeover get_lease shows {lease:?}"),
    )?;
    let back = store
        .try_acquire_lease("x", "a", at(10_001), ttl)
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(!back, C, || {
        "the old holder got the lease back while the new one holds it".to_string()
    })?;

    const RELEASE: &str = "release_lease by a former holder leaves the new holder's lease alone";
    let released = store
        .release_lease("x", "a")
        .await
        .or_break(RELEASE, "release_lease")?;
    let lease = store.get_lease("x").await.or_break(RELEASE, "get_lease")?;
    ensure(
        !released && lease.as_ref().is_some_and(|l| l.holder == "b"),
        RELEASE,
        || format!("release returned {released}; the lease is now {lease:?}"),
    )
}

/// Only the holder releases; the holder renews; a released lease is free.
pub async fn lease_release_and_renew(store: &dyn Store) -> CheckResult {
    const RENEW: &str = "try_acquire_lease by the holder renews its lease until now + ttl";
    seed(store, RENEW, &["x"]).await?;
    let ttl = Duration::from_secs(10);
    store
        .try_acquire_lease("x", "a", T0, ttl)
        .await
        .or_break(RENEW, "try_acquire_lease")?;
    let renewed = store
        .try_acquire_lease("x", "a", at(5_000), ttl)
        .await
        .or_break(RENEW, "try_acquire_lease")?;
    let lease = store.get_lease("x").await.or_break(RENEW, "get_lease")?;
    ensure(
        renewed && lease.as_ref().is_some_and(|l| l.expires == at(15_000)),
        RENEW,
        || format!("renew returned {renewed}; the lease is {lease:?}"),
    )?;
    let other = store
        .try_acquire_lease("x", "b", at(12_000), ttl)
        .await
        .or_break(RENEW, "try_acquire_lease")?;
    ensure(!other, RENEW, || {
        "another holder got a lease that had been renewed".to_string()
    })?;

    const ONLY_HOLDER: &str = "release_lease releases only the holder's lease";
    let stolen = store
        .release_lease("x", "b")
        .await
        .or_break(ONLY_HOLDER, "release_lease")?;
    let lease = store
        .get_lease("x")
        .await
        .or_break(ONLY_HOLDER, "get_lease")?;
    ensure(
        !stolen && lease.as_ref().is_some_and(|l| l.holder == "a"),
        ONLY_HOLDER,
        || format!("release by another holder returned {stolen}; the lease is {lease:?}"),
    )?;
    let released = store
        .release_lease("x", "a")
        .await
        .or_break(ONLY_HOLDER, "release_lease")?;
    let lease = store
        .get_lease("x")
        .await
        .or_break(ONLY_HOLDER, "get_lease")?;
    ensure(released && lease.is_none(), ONLY_HOLDER, || {
        format!("release by the holder returned {released}; the lease is {lease:?}")
    })?;
    let free = store
        .try_acquire_lease("x", "b", at(12_001), ttl)
        .await
        .or_break(ONLY_HOLDER, "try_acquire_lease")?;
    ensure(free, ONLY_HOLDER, || {
        "a released lease could not be acquired".to_string()
    })?;
    let expired_release = store
        .release_lease("x", "b")
        .await
        .or_break(ONLY_HOLDER, "release_lease")?;
    ensure(expired_release, ONLY_HOLDER, || {
        "the holder could not release its lease".to_string()
    })?;
    Ok(())
}

/// Sealed bytes are kept byte for byte, including empty ones.
pub async fn sealed_bytes_exact(store: &dyn Store) -> CheckResult {
    const C: &str =
        "sealed fields are opaque bytes kept unchanged (every byte value, empty, large)";
    seed(store, C, &[]).await?;
    let large: Vec<u8> = (0..70_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (n, bytes) in [Vec::new(), vec![0u8; 3], large].into_iter().enumerate() {
        let id = format!("i{n}");
        let mut inst = instance(&id, "api");
        inst.client_secret = Some(Sealed::new(bytes.clone()));
        store
            .create_instance(&inst)
            .await
            .or_break(C, "create_instance")?;
        let mut tok = token(&id);
        tok.access_token = Sealed::new(bytes.clone());
        tok.refresh_token = Some(sealed(&id));
        store
            .put_token(&id, &tok, None)
            .await
            .or_break(C, "put_token")?;
        let mut pend = pending(&id, &id, at(1_000));
        pend.pkce_verifier = Sealed::new(bytes.clone());
        store.put_pending(&pend).await.or_break(C, "put_pending")?;
        let got_instance = store.get_instance(&id).await.or_break(C, "get_instance")?;
        let got_token = store.get_token(&id).await.or_break(C, "get_token")?;
        let got_pending = store
            .take_pending(&id, T0)
            .await
            .or_break(C, "take_pending")?;
        let ok = got_instance
            .and_then(|i| i.client_secret)
            .is_some_and(|s| s.as_bytes() == bytes)
            && got_token.is_some_and(|t| t.access_token.as_bytes() == bytes)
            && got_pending.is_some_and(|p| p.pkce_verifier.as_bytes() == bytes);
        ensure(ok, C, || {
            format!("{} sealed bytes came back changed", bytes.len())
        })?;
    }
    Ok(())
}

/// `put_token_fenced` writes only for the holder of a live lease, over the version read.
pub async fn token_put_fenced(store: &dyn Store) -> CheckResult {
    const OK: &str =
        "put_token_fenced writes while the holder holds a live lease, and returns version + 1";
    seed(store, OK, &["x", "y", "z"]).await?;
    store
        .put_token("x", &token("v1"), None)
        .await
        .or_break(OK, "put_token")?;
    store
        .put_token("y", &token("y1"), None)
        .await
        .or_break(OK, "put_token")?;
    let ttl = Duration::from_secs(10);
    for id in ["x", "z"] {
        let got = store
            .try_acquire_lease(id, "a", T0, ttl)
            .await
            .or_break(OK, "try_acquire_lease")?;
        ensure(got, OK, || "a free lease was refused".to_string())?;
    }
    let version = store
        .put_token_fenced("x", &token("v2"), 1, "a", at(9_999))
        .await
        .or_break(
            OK,
            "put_token_fenced by the holder, 1 ms before its lease expires",
        )?;
    ensure(version == 2, OK, || {
        format!("returned version {version} after version 1")
    })?;
    let got = store.get_token("x").await.or_break(OK, "get_token")?;
    ensure(
        got.as_ref().is_some_and(|g| same_token(g, &token("v2"), 2)),
        OK,
        || format!("wrote v2, read {got:?}"),
    )?;

    const FENCE: &str = "put_token_fenced fails with Conflict and writes nothing unless the holder holds a live lease (expires > now) and the stored version is the expected one";
    let refused = async |id: &str, version: u64, holder: &str, now: Timestamp, why: &str| {
        let result = store
            .put_token_fenced(id, &token("fenced-out"), version, holder, now)
            .await;
        ensure(matches!(result, Err(Error::Conflict { .. })), FENCE, || {
            format!("{why}: got {result:?}")
        })
    };
    refused(
        "x",
        2,
        "b",
        at(5_000),
        "another holder while the lease is live",
    )
    .await?;
    refused(
        "x",
        2,
        "a",
        at(10_000),
        "the holder once its lease expired (expires == now)",
    )
    .await?;
    refused("x", 1, "a", at(5_000), "the holder with a stale version").await?;
    refused("x", 7, "a", at(5_000), "the holder with a future version").await?;
    refused("y", 1, "a", at(5_000), "a holder of no lease").await?;
    refused("z", 1, "a", at(5_000), "the holder, over no token record").await?;
    let got = store.get_token("x").await.or_break(FENCE, "get_token")?;
    ensure(
        got.as_ref().is_some_and(|g| same_token(g, &token("v2"), 2)),
        FENCE,
        || format!("after refused fenced writes the token is {got:?}"),
    )?;
    let got_y = store.get_token("y").await.or_break(FENCE, "get_token")?;
    let got_z = store.get_token("z").await.or_break(FENCE, "get_token")?;
    ensure(
        got_y
            .as_ref()
            .is_some_and(|g| same_token(g, &token("y1"), 1))
            && got_z.is_none(),
        FENCE,
        || format!("after refused fenced writes: y holds {got_y:?}, z holds {got_z:?}"),
    )?;

    const TAKEOVER: &str = "after a lease is taken over, put_token_fenced writes for the new holder and refuses the old one";
    let taken = store
        .try_acquire_lease("x", "b", at(10_000), ttl)
        .await
        .or_break(TAKEOVER, "try_acquire_lease")?;
    ensure(taken, TAKEOVER, || {
        "an expired lease was not taken over".to_string()
    })?;
    let version = store
        .put_token_fenced("x", &token("v3"), 2, "b", at(10_001))
        .await
        .or_break(TAKEOVER, "put_token_fenced by the new holder")?;
    ensure(version == 3, TAKEOVER, || {
        format!("returned version {version} after version 2")
    })?;
    let late = store
        .put_token_fenced("x", &token("late"), 3, "a", at(10_001))
        .await;
    ensure(
        matches!(late, Err(Error::Conflict { .. })),
        TAKEOVER,
        || format!("the former holder, with the current version: got {late:?}"),
    )?;
    let released = store
        .release_lease("x", "b")
        .await
        .or_break(TAKEOVER, "release_lease")?;
    let after_release = store
        .put_token_fenced("x", &token("late"), 3, "b", at(10_002))
        .await;
    ensure(
        released && matches!(after_release, Err(Error::Conflict { .. })),
        TAKEOVER,
        || format!("after releasing its lease, the holder's fenced write got {after_release:?}"),
    )?;
    let got = store.get_token("x").await.or_break(TAKEOVER, "get_token")?;
    ensure(
        got.as_ref().is_some_and(|g| same_token(g, &token("v3"), 3)),
        TAKEOVER,
        || format!("the token is {got:?}, expected v3"),
    )?;

    const MISSING: &str = "put_token_fenced of a missing instance fails with NotFound";
    let result = store
        .put_token_fenced("ghost", &token("g"), 1, "a", T0)
        .await;
    ensure(
        matches!(result, Err(Error::NotFound { .. })),
        MISSING,
        || format!("got {result:?}"),
    )
}

/// Reads every change after `after`, page by page (`page` at a time), until a page comes
/// back short; returns them and whether a page said `missed`.
async fn read_feed(
    store: &dyn Store,
    after: u64,
    page: usize,
    contract: &'static str,
) -> Result<(Vec<Change>, bool), Violation> {
    let mut all: Vec<Change> = Vec::new();
    let mut cursor = after;
    loop {
        let Changes { changes, missed } = store
            .changes_since(cursor, page)
            .await
            .or_break(contract, "changes_since")?;
        if missed {
            return Ok((all, true));
        }
        let short = changes.len() < page;
        ensure(changes.len() <= page, contract, || {
            format!(
                "changes_since({cursor}, {page}) returned {} changes",
                changes.len()
            )
        })?;
        for change in changes {
            ensure(change.seq > cursor, contract, || {
                format!("after seq {cursor} came seq {}", change.seq)
            })?;
            cursor = change.seq;
            all.push(change);
        }
        if short {
            return Ok((all, false));
        }
    }
}

/// Each write that changes an instance or its token record appends exactly one change that
/// names the instance; numbers increase; `latest_change` is the newest.
pub async fn changes_every_write(store: &dyn Store) -> CheckResult {
    const ONE: &str = "every write that changes an instance or its token record (create_instance, update_instance, delete_instance, put_token, put_token_fenced, delete_token that removed a record) appends exactly one change naming the instance";
    const ORDER: &str = "change numbers strictly increase, latest_change is the newest one, and changes_since(latest_change) is empty";
    let first = store
        .latest_change()
        .await
        .or_break(ORDER, "latest_change")?;
    ensure(first == 0, ORDER, || {
        format!("latest_change of a new store is {first}, not 0")
    })?;
    store
        .put_integration(&integration("api"))
        .await
        .or_break(ONE, "put_integration")?;
    let start = store
        .latest_change()
        .await
        .or_break(ORDER, "latest_change")?;
    let mut cursor = start;
    let mut seen = Vec::new();
    let mut expect = async |what: &str, instance: &str, cursor: &mut u64| -> CheckResult {
        let Changes { changes, missed } = store
            .changes_since(*cursor, 100)
            .await
            .or_break(ONE, "changes_since")?;
        ensure(!missed, ONE, || {
            format!("after {what}, changes_since({cursor}) set `missed` with nothing dropped")
        })?;
        let names: Vec<&str> = changes.iter().map(|c| c.instance.as_str()).collect();
        ensure(names == [instance], ONE, || {
            format!("{what} appended changes naming {names:?}, not exactly one naming `{instance}`")
        })?;
        let seq = changes.first().map_or(0, |c| c.seq);
        ensure(seq > *cursor, ORDER, || {
            format!("{what} got change number {seq}, after {cursor}")
        })?;
        let latest = store
            .latest_change()
            .await
            .or_break(ORDER, "latest_change")?;
        ensure(latest == seq, ORDER, || {
            format!("after {what} (change {seq}) latest_change is {latest}")
        })?;
        *cursor = seq;
        seen.push(seq);
        Ok(())
    };
    store
        .create_instance(&instance("a", "api"))
        .await
        .or_break(ONE, "create_instance")?;
    expect("create_instance(a)", "a", &mut cursor).await?;
    store
        .create_instance(&instance("b", "api"))
        .await
        .or_break(ONE, "create_instance")?;
    expect("create_instance(b)", "b", &mut cursor).await?;
    let mut a = instance("a", "api");
    a.version = 1;
    a.status = InstanceStatus::Disabled;
    store
        .update_instance(&a)
        .await
        .or_break(ONE, "update_instance")?;
    expect("update_instance(a)", "a", &mut cursor).await?;
    store
        .put_token("a", &token("a1"), None)
        .await
        .or_break(ONE, "put_token")?;
    expect("put_token(a, None)", "a", &mut cursor).await?;
    store
        .put_token("a", &token("a2"), Some(1))
        .await
        .or_break(ONE, "put_token")?;
    expect("put_token(a, Some(1))", "a", &mut cursor).await?;
    // Whether taking a lease appends a change is the backend's choice: skip what it did.
    let before_lease = cursor;
    store
        .try_acquire_lease("a", "h", T0, Duration::from_secs(10))
        .await
        .or_break(ONE, "try_acquire_lease")?;
    let after_lease = store.latest_change().await.or_break(ONE, "latest_change")?;
    cursor = cursor.max(after_lease);
    store
        .put_token_fenced("a", &token("a3"), 2, "h", at(1))
        .await
        .or_break(ONE, "put_token_fenced")?;
    expect("put_token_fenced(a)", "a", &mut cursor).await?;
    store
        .delete_token("a", Some(3))
        .await
        .or_break(ONE, "delete_token")?;
    expect("delete_token(a, Some(3))", "a", &mut cursor).await?;
    store
        .put_token("b", &token("b1"), None)
        .await
        .or_break(ONE, "put_token")?;
    expect("put_token(b, None)", "b", &mut cursor).await?;
    store
        .delete_token("b", None)
        .await
        .or_break(ONE, "delete_token")?;
    expect("delete_token(b, None)", "b", &mut cursor).await?;
    store
        .delete_instance("b")
        .await
        .or_break(ONE, "delete_instance")?;
    expect("delete_instance(b)", "b", &mut cursor).await?;

    let latest = store
        .latest_change()
        .await
        .or_break(ORDER, "latest_change")?;
    let tail = store
        .changes_since(latest, 100)
        .await
        .or_break(ORDER, "changes_since")?;
    ensure(tail.changes.is_empty() && !tail.missed, ORDER, || {
        format!("changes_since(latest_change = {latest}) returned {tail:?}")
    })?;
    let (all, missed) = read_feed(store, start, 100, ORDER).await?;
    let all_seqs: Vec<u64> = all
        .iter()
        .map(|c| c.seq)
        .filter(|s| !(before_lease < *s && *s <= after_lease))
        .collect();
    ensure(!missed && all_seqs == seen, ORDER, || {
        format!(
            "read again from {start}, the feed lists {all:?} (missed: {missed}); one at a time it listed {seen:?}"
        )
    })
}

/// A write that fails, and a delete that removes nothing, append no change.
pub async fn changes_not_on_failed_writes(store: &dyn Store) -> CheckResult {
    const NONE: &str = "a write that fails (lost compare-and-swap, NotFound, AlreadyExists), and a delete that removes nothing, appends no change";
    seed(store, NONE, &["x", "z"]).await?;
    store
        .put_token("x", &token("v1"), None)
        .await
        .or_break(NONE, "put_token")?;
    store
        .try_acquire_lease("z", "h", T0, Duration::from_secs(10))
        .await
        .or_break(NONE, "try_acquire_lease")?;
    let mark = store
        .latest_change()
        .await
        .or_break(NONE, "latest_change")?;
    let unchanged = async |what: &str| -> CheckResult {
        let latest = store
            .latest_change()
            .await
            .or_break(NONE, "latest_change")?;
        let after = store
            .changes_since(mark, 100)
            .await
            .or_break(NONE, "changes_since")?;
        ensure(latest == mark && after.changes.is_empty(), NONE, || {
            format!(
                "after {what}, latest_change went from {mark} to {latest} and the feed lists {:?}",
                after.changes
            )
        })
    };
    let mut stale = instance("x", "api");
    stale.version = 7;
    let writes: Vec<(&str, bool)> = vec![
        (
            "create_instance of a taken id",
            store.create_instance(&instance("x", "api")).await.is_err(),
        ),
        (
            "create_instance of an unknown integration",
            store.create_instance(&instance("y", "nope")).await.is_err(),
        ),
        (
            "update_instance with a stale version",
            store.update_instance(&stale).await.is_err(),
        ),
        (
            "update_instance of a missing instance",
            store
                .update_instance(&instance("ghost", "api"))
                .await
                .is_err(),
        ),
        (
            "put_token(None) over a record",
            store.put_token("x", &token("s"), None).await.is_err(),
        ),
        (
            "put_token with a stale version",
            store.put_token("x", &token("s"), Some(5)).await.is_err(),
        ),
        (
            "put_token of a missing instance",
            store.put_token("ghost", &token("s"), None).await.is_err(),
        ),
        (
            "put_token_fenced without a lease",
            store
                .put_token_fenced("x", &token("s"), 1, "h", at(1))
                .await
                .is_err(),
        ),
        (
            "put_token_fenced with a wrong version",
            store
                .put_token_fenced("z", &token("s"), 1, "h", at(1))
                .await
                .is_err(),
        ),
        (
            "put_token_fenced of a missing instance",
            store
                .put_token_fenced("ghost", &token("s"), 1, "h", at(1))
                .await
                .is_err(),
        ),
        (
            "delete_token with a stale version",
            store.delete_token("x", Some(9)).await.is_err(),
        ),
    ];
    for (what, failed) in writes {
        ensure(failed, NONE, || format!("{what} succeeded"))?;
        unchanged(what).await?;
    }
    let deletes = [
        (
            "delete_token(None) of no record",
            store.delete_token("z", None).await,
        ),
        (
            "delete_token(Some) of no record",
            store.delete_token("z", Some(1)).await,
        ),
        (
            "delete_token of a missing instance",
            store.delete_token("ghost", None).await,
        ),
        (
            "delete_instance of a missing instance",
            store.delete_instance("ghost").await,
        ),
    ];
    for (what, removed) in deletes {
        let removed = removed.or_break(NONE, what)?;
        ensure(!removed, NONE, || format!("{what} returned true"))?;
        unchanged(what).await?;
    }
    Ok(())
}

/// `changes_since` honours its limit and its cursor: paging gives every change once, in order.
pub async fn changes_limit_and_paging(store: &dyn Store) -> CheckResult {
    const LIMIT: &str = "changes_since returns at most `limit` changes, oldest first, starting just after the cursor";
    seed(store, LIMIT, &["x"]).await?;
    let mut version = None;
    for n in 0..10 {
        version = Some(
            store
                .put_token("x", &token(&format!("v{n}")), version)
                .await
                .or_break(LIMIT, "put_token")?,
        );
    }
    let all = store
        .changes_since(0, 1_000)
        .await
        .or_break(LIMIT, "changes_since")?;
    ensure(all.changes.len() == 11 && !all.missed, LIMIT, || {
        format!("after 11 changes, changes_since(0, 1000) returned {all:?}")
    })?;
    let all = all.changes;
    let none = store
        .changes_since(0, 0)
        .await
        .or_break(LIMIT, "changes_since")?;
    ensure(none.changes.is_empty(), LIMIT, || {
        format!("changes_since(0, 0) returned {:?}", none.changes)
    })?;
    let first = store
        .changes_since(0, 3)
        .await
        .or_break(LIMIT, "changes_since")?;
    ensure(first.changes == all[..3], LIMIT, || {
        format!(
            "changes_since(0, 3) returned {:?}, the feed starts {:?}",
            first.changes,
            &all[..3]
        )
    })?;
    let cursor = all[2].seq;
    let next = store
        .changes_since(cursor, 3)
        .await
        .or_break(LIMIT, "changes_since")?;
    ensure(next.changes == all[3..6], LIMIT, || {
        format!(
            "changes_since({cursor}, 3) returned {:?}, expected {:?}",
            next.changes,
            &all[3..6]
        )
    })?;
    let (paged, missed) = read_feed(store, 0, 4, LIMIT).await?;
    ensure(!missed && paged == all, LIMIT, || {
        format!("paging by 4 listed {paged:?} (missed: {missed}), in one call {all:?}")
    })
}

/// After more than `CHANGES_KEPT` changes, the newest `CHANGES_KEPT` are all there, and a
/// reader from the start gets every change or `missed`, never a silent gap.
pub async fn changes_kept_or_missed(store: &dyn Store) -> CheckResult {
    const KEPT: &str = "a store keeps at least the newest CHANGES_KEPT changes, and sets `missed` when a change after the cursor was dropped (never a silent gap)";
    const IDS: [&str; 4] = ["w0", "w1", "w2", "w3"];
    seed(store, KEPT, &IDS).await?;
    let kept = usize::try_from(CHANGES_KEPT).unwrap_or(usize::MAX);
    let mut versions = [None; IDS.len()];
    let mut written: Vec<&str> = IDS.to_vec();
    let mut mark = 0;
    let early = 300;
    for n in 0..early + kept {
        if n == early {
            mark = store
                .latest_change()
                .await
                .or_break(KEPT, "latest_change")?;
        }
        let slot = n % IDS.len();
        versions[slot] = Some(
            store
                .put_token(IDS[slot], &token(&format!("n{n}")), versions[slot])
                .await
                .or_break(KEPT, "put_token")?,
        );
        written.push(IDS[slot]);
    }
    let latest = store
        .latest_change()
        .await
        .or_break(KEPT, "latest_change")?;
    let (newest, missed) = read_feed(store, mark, 256, KEPT).await?;
    let names: Vec<&str> = newest.iter().map(|c| c.instance.as_str()).collect();
    ensure(
        !missed && names == written[written.len() - kept..],
        KEPT,
        || {
            format!(
                "of the newest {kept} changes (after {mark}), the feed lists {} (missed: {missed})",
                newest.len()
            )
        },
    )?;
    ensure(newest.last().is_some_and(|c| c.seq == latest), KEPT, || {
        format!(
            "latest_change is {latest}, the newest listed change is {:?}",
            newest.last()
        )
    })?;
    let (from_start, missed) = read_feed(store, 0, 256, KEPT).await?;
    if !missed {
        let names: Vec<&str> = from_start.iter().map(|c| c.instance.as_str()).collect();
        ensure(names == written, KEPT, || {
            format!(
                "{} changes were made; read from 0 without `missed`, the feed lists {} of them",
                written.len(),
                from_start.len()
            )
        })?;
    }
    Ok(())
}

/// Concurrent writes get distinct change numbers, one change each.
pub async fn changes_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str = "concurrent writes each append their own change: 64 concurrent token writes give 64 distinct change numbers, one per instance";
    let ids: Vec<String> = (0..RACERS).map(|n| format!("c{n}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    seed(store, C, &refs).await?;
    let mark = store.latest_change().await.or_break(C, "latest_change")?;
    let tokens: Vec<_> = ids.iter().map(|id| token(id)).collect();
    let results = join_all(
        ids.iter()
            .zip(&tokens)
            .map(|(id, t)| store.put_token(id, t, None)),
    )
    .await;
    for result in results {
        result.or_break(C, "put_token")?;
    }
    let (changes, missed) = read_feed(store, mark, 1_000, C).await?;
    let mut names: Vec<&str> = changes.iter().map(|c| c.instance.as_str()).collect();
    names.sort_unstable();
    let mut expected = refs.clone();
    expected.sort_unstable();
    ensure(!missed && names == expected, C, || {
        format!(
            "64 writes on 64 instances; the feed lists {} changes (missed: {missed}) naming {names:?}",
            changes.len()
        )
    })
}

/// The key check: of 64 concurrent first writers one value is stored and every writer gets
/// it back; a later write without `replace` keeps it; with `replace` it is replaced.
pub async fn key_check_first_wins(store: &dyn Store) -> CheckResult {
    const C: &str = "put_key_check stores a first check atomically (every concurrent first writer gets the one stored value back), keeps it unless `replace`, replaces it with `replace`, and returns the bytes unchanged";
    let values: Vec<Sealed> = (0..RACERS)
        .map(|n| Sealed::new(format!("\0check-{n}\u{ff}").into_bytes()))
        .collect();
    let results = join_all(values.iter().map(|v| store.put_key_check(v, false))).await;
    let mut stored = None;
    for result in results {
        let got = result.or_break(C, "put_key_check")?;
        ensure(values.contains(&got), C, || {
            format!("a first writer got back a value nobody wrote: {got:?}")
        })?;
        match &stored {
            None => stored = Some(got),
            Some(first) => ensure(first == &got, C, || {
                "two first writers got different values back: both were stored".to_string()
            })?,
        }
    }
    let stored = stored.ok_or_else(|| Violation::new(C, "no writer ran"))?;
    let later = sealed("later");
    let kept = store
        .put_key_check(&later, false)
        .await
        .or_break(C, "put_key_check")?;
    ensure(kept == stored, C, || {
        "a write without `replace` replaced the stored check".to_string()
    })?;
    let replaced = store
        .put_key_check(&later, true)
        .await
        .or_break(C, "put_key_check")?;
    ensure(replaced == later, C, || {
        "a write with `replace` returned another value than the one given".to_string()
    })?;
    let now = store
        .put_key_check(&sealed("other"), false)
        .await
        .or_break(C, "put_key_check")?;
    ensure(now == later, C, || {
        "after a replace, the stored check is not the replacing value".to_string()
    })
}
