//! The checks of the queries that answer from an index: the token records due by expiry and
//! by age, a page of instances with their tokens, the counts per status.

use granary_store::{
    InstanceCounts, InstanceFilter, InstanceStatus, InstanceToken, Store, Timestamp, TokenRecord,
};

use super::{CheckResult, seed};
use crate::fixtures::{at, instance, integration, token};
use crate::violation::{OrBreak, ensure};

/// A token of `tag` expiring at `expires` (`None`: unknown) and obtained at `obtained`.
fn timed_token(tag: &str, expires: Option<i64>, obtained: i64) -> TokenRecord {
    TokenRecord {
        expires_at: expires.map(at),
        obtained_at: at(obtained),
        ..token(tag)
    }
}

/// The (instance, key) pairs of a due list, to compare and show.
fn keys(
    listed: &[InstanceToken],
    key: fn(&TokenRecord) -> Option<Timestamp>,
) -> Vec<(String, Option<i64>)> {
    listed
        .iter()
        .map(|t| {
            (
                t.instance.clone(),
                key(&t.token).map(|k| k.as_unix_millis() - at(0).as_unix_millis()),
            )
        })
        .collect()
}

fn expiry(token: &TokenRecord) -> Option<Timestamp> {
    token.expires_at
}

fn obtained(token: &TokenRecord) -> Option<Timestamp> {
    Some(token.obtained_at)
}

fn expected(pairs: &[(&str, i64)]) -> Vec<(String, Option<i64>)> {
    pairs
        .iter()
        .map(|(id, key)| (id.to_string(), Some(*key)))
        .collect()
}

/// Reads every record due before `before`, `batch` at a time, moving the cursor past the
/// last one of each batch.
async fn page_due(
    store: &dyn Store,
    by_expiry: bool,
    before: Timestamp,
    batch: usize,
    contract: &'static str,
) -> Result<Vec<InstanceToken>, crate::Violation> {
    let mut all: Vec<InstanceToken> = Vec::new();
    for _ in 0..100 {
        let after = all.last().map(|last| {
            let key = if by_expiry {
                last.token.expires_at.unwrap_or(Timestamp::EPOCH)
            } else {
                last.token.obtained_at
            };
            (key, last.instance.as_str())
        });
        let next = if by_expiry {
            store
                .tokens_expiring_before(before, after, batch)
                .await
                .or_break(contract, "tokens_expiring_before")?
        } else {
            store
                .tokens_obtained_before(before, after, batch)
                .await
                .or_break(contract, "tokens_obtained_before")?
        };
        ensure(next.len() <= batch, contract, || {
            format!("asked for at most {batch}, got {}", next.len())
        })?;
        let done = next.len() < batch;
        all.extend(next);
        if done {
            return Ok(all);
        }
    }
    ensure(false, contract, || {
        format!(
            "paging by {batch} never ended; listed so far: {:?}",
            keys(&all, expiry)
        )
    })?;
    Ok(all)
}

/// `tokens_expiring_before` lists the records expiring strictly before the time, by
/// (expiry, instance id), never one of unknown expiry, at most `limit`, after the cursor;
/// `tokens_obtained_before` likewise by the time a token was obtained.
pub async fn tokens_due_by_expiry(store: &dyn Store) -> CheckResult {
    const C: &str = "tokens_expiring_before lists the token records with expires_at before the time, ordered by (expires_at, instance), at most limit, after the cursor; tokens_obtained_before likewise by obtained_at";
    let ids = ["a", "b", "c", "d", "e", "f"];
    seed(store, C, &ids).await?;
    let records = [
        ("a", Some(5_000), 40),
        ("b", Some(1_000), 60),
        ("c", Some(3_000), 10),
        ("d", None, 20),
        ("e", Some(3_000), 10),
        ("f", Some(9_000), 50),
    ];
    for (id, expires, obtained) in records {
        store
            .put_token(id, &timed_token(id, expires, obtained), None)
            .await
            .or_break(C, "put_token")?;
    }

    let due = store
        .tokens_expiring_before(at(5_000), None, 100)
        .await
        .or_break(C, "tokens_expiring_before")?;
    let want = expected(&[("b", 1_000), ("c", 3_000), ("e", 3_000)]);
    ensure(keys(&due, expiry) == want, C, || {
        format!(
            "tokens expire at a 5000, b 1000, c 3000, d unknown, e 3000, f 9000 (ms after T0); \
             before 5000 listed {:?}, expected {want:?}",
            keys(&due, expiry)
        )
    })?;
    let stored = store.get_token("c").await.or_break(C, "get_token")?;
    ensure(due.get(1).map(|t| &t.token) == stored.as_ref(), C, || {
        format!(
            "listed c's record as {:?}, get_token reads {stored:?}",
            due.get(1)
        )
    })?;

    let limited = store
        .tokens_expiring_before(at(5_000), None, 2)
        .await
        .or_break(C, "tokens_expiring_before")?;
    let want = expected(&[("b", 1_000), ("c", 3_000)]);
    ensure(keys(&limited, expiry) == want, C, || {
        format!(
            "with limit 2 listed {:?}, expected {want:?}",
            keys(&limited, expiry)
        )
    })?;
    let resumed = store
        .tokens_expiring_before(at(5_000), Some((at(3_000), "c")), 2)
        .await
        .or_break(C, "tokens_expiring_before")?;
    let want = expected(&[("e", 3_000)]);
    ensure(keys(&resumed, expiry) == want, C, || {
        format!(
            "after the cursor (3000, c) listed {:?}, expected {want:?}",
            keys(&resumed, expiry)
        )
    })?;

    let every = page_due(store, true, at(1_000_000), 1, C).await?;
    let want = expected(&[
        ("b", 1_000),
        ("c", 3_000),
        ("e", 3_000),
        ("a", 5_000),
        ("f", 9_000),
    ]);
    ensure(keys(&every, expiry) == want, C, || {
        format!(
            "paging one at a time listed {:?}, expected {want:?} (each once, unknown expiry never)",
            keys(&every, expiry)
        )
    })?;

    let old = store
        .tokens_obtained_before(at(50), None, 100)
        .await
        .or_break(C, "tokens_obtained_before")?;
    let want = expected(&[("c", 10), ("e", 10), ("d", 20), ("a", 40)]);
    ensure(keys(&old, obtained) == want, C, || {
        format!(
            "tokens obtained at a 40, b 60, c 10, d 20, e 10, f 50; before 50 listed {:?}, \
             expected {want:?}",
            keys(&old, obtained)
        )
    })?;
    let every = page_due(store, false, at(1_000_000), 2, C).await?;
    let want = expected(&[
        ("c", 10),
        ("e", 10),
        ("d", 20),
        ("a", 40),
        ("f", 50),
        ("b", 60),
    ]);
    ensure(keys(&every, obtained) == want, C, || {
        format!(
            "paging by obtained_at two at a time listed {:?}, expected {want:?}",
            keys(&every, obtained)
        )
    })
}

/// The due queries follow every write at once: a rewritten expiry moves the record, a
/// deleted token or instance is gone.
pub async fn tokens_due_follow_writes(store: &dyn Store) -> CheckResult {
    const C: &str = "tokens_expiring_before and tokens_obtained_before reflect every token write and delete at once (the expiry held now; deleted tokens and instances not at all)";
    let ids = ["a", "b", "c", "d", "e"];
    seed(store, C, &ids).await?;
    let mut versions = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let n = i64::try_from(n).unwrap_or(0);
        versions.push(
            store
                .put_token(id, &timed_token(id, Some(1_000 + n), n), None)
                .await
                .or_break(C, "put_token")?,
        );
    }
    // a: later, out of the window; b: deleted; c: its instance deleted; d: earlier (fenced
    // write); e: unknown expiry.
    store
        .put_token("a", &timed_token("a", Some(50_000), 70), Some(versions[0]))
        .await
        .or_break(C, "put_token")?;
    store
        .delete_token("b", Some(versions[1]))
        .await
        .or_break(C, "delete_token")?;
    store
        .delete_instance("c")
        .await
        .or_break(C, "delete_instance")?;
    let held = store
        .try_acquire_lease("d", "me", at(0), std::time::Duration::from_secs(60))
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(held, C, || "the first lease of d was refused".to_string())?;
    store
        .put_token_fenced(
            "d",
            &timed_token("d", Some(10), 80),
            versions[3],
            "me",
            at(1),
        )
        .await
        .or_break(C, "put_token_fenced")?;
    store
        .put_token("e", &timed_token("e", None, 90), Some(versions[4]))
        .await
        .or_break(C, "put_token")?;

    let due = store
        .tokens_expiring_before(at(10_000), None, 100)
        .await
        .or_break(C, "tokens_expiring_before")?;
    let want = expected(&[("d", 10)]);
    ensure(keys(&due, expiry) == want, C, || {
        format!(
            "after a moved to 50000, b's token and c deleted, d moved to 10 and e to unknown, \
             before 10000 listed {:?}, expected {want:?}",
            keys(&due, expiry)
        )
    })?;
    let later = store
        .tokens_expiring_before(at(100_000), None, 100)
        .await
        .or_break(C, "tokens_expiring_before")?;
    let want = expected(&[("d", 10), ("a", 50_000)]);
    ensure(keys(&later, expiry) == want, C, || {
        format!(
            "before 100000 listed {:?}, expected {want:?}",
            keys(&later, expiry)
        )
    })?;
    let old = store
        .tokens_obtained_before(at(1_000), None, 100)
        .await
        .or_break(C, "tokens_obtained_before")?;
    let want = expected(&[("a", 70), ("d", 80), ("e", 90)]);
    ensure(keys(&old, obtained) == want, C, || {
        format!(
            "by obtained_at listed {:?}, expected {want:?}",
            keys(&old, obtained)
        )
    })
}

/// `list_instances_page` pages through every instance once, by id, each with its token
/// record, filtered by status and integration; `count_instances_by_status` counts them.
pub async fn instances_page_and_counts(store: &dyn Store) -> CheckResult {
    const C: &str = "list_instances_page lists each instance once, by id after the cursor, at most limit, with its token record and only those passing the filter; count_instances_by_status counts every status";
    store
        .put_integration(&integration("api"))
        .await
        .or_break(C, "put_integration")?;
    store
        .put_integration(&integration("crm"))
        .await
        .or_break(C, "put_integration")?;
    let specs = [
        ("i1", "api", InstanceStatus::Authorized),
        ("i2", "crm", InstanceStatus::New),
        ("i3", "api", InstanceStatus::NeedsAuthorization),
        ("i4", "api", InstanceStatus::Authorized),
        ("i5", "crm", InstanceStatus::Authorized),
        ("i6", "api", InstanceStatus::Disabled),
        ("i7", "api", InstanceStatus::New),
    ];
    let mut counts = InstanceCounts::default();
    for (id, of, status) in specs {
        let mut created = instance(id, of);
        created.status = status;
        store
            .create_instance(&created)
            .await
            .or_break(C, "create_instance")?;
        counts.add(status, 1);
        if status == InstanceStatus::Authorized {
            store
                .put_token(id, &token(id), None)
                .await
                .or_break(C, "put_token")?;
        }
    }

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = store
            .list_instances_page(after.as_deref(), 3, &InstanceFilter::all())
            .await
            .or_break(C, "list_instances_page")?;
        ensure(page.len() <= 3, C, || {
            format!("asked for 3, got {}", page.len())
        })?;
        for entry in &page {
            let stored = store
                .get_token(&entry.instance.id)
                .await
                .or_break(C, "get_token")?;
            ensure(entry.token == stored, C, || {
                format!(
                    "listed {} with token {:?}, get_token reads {stored:?}",
                    entry.instance.id, entry.token
                )
            })?;
            let instance = store
                .get_instance(&entry.instance.id)
                .await
                .or_break(C, "get_instance")?;
            ensure(instance.as_ref() == Some(&entry.instance), C, || {
                format!(
                    "listed {:?}, get_instance reads {instance:?}",
                    entry.instance
                )
            })?;
            seen.push(entry.instance.id.clone());
        }
        after = page.last().map(|entry| entry.instance.id.clone());
        if page.len() < 3 {
            break;
        }
    }
    let all: Vec<String> = specs.iter().map(|(id, _, _)| id.to_string()).collect();
    ensure(seen == all, C, || {
        format!("paging by 3 listed {seen:?}, expected each of {all:?} once, in order")
    })?;

    let filtered = |status: Option<InstanceStatus>, of: Option<&str>| {
        specs
            .iter()
            .filter(|(_, i, s)| status.is_none_or(|st| st == *s) && of.is_none_or(|o| o == *i))
            .map(|(id, _, _)| id.to_string())
            .collect::<Vec<_>>()
    };
    for (filter, want) in [
        (
            InstanceFilter::all().with_status(InstanceStatus::Authorized),
            filtered(Some(InstanceStatus::Authorized), None),
        ),
        (
            InstanceFilter::all().with_integration("crm"),
            filtered(None, Some("crm")),
        ),
        (
            InstanceFilter::all()
                .with_status(InstanceStatus::Authorized)
                .with_integration("api"),
            filtered(Some(InstanceStatus::Authorized), Some("api")),
        ),
    ] {
        let page = store
            .list_instances_page(Some("i1"), 100, &filter)
            .await
            .or_break(C, "list_instances_page")?;
        let got: Vec<String> = page.iter().map(|e| e.instance.id.clone()).collect();
        let want: Vec<String> = want.into_iter().filter(|id| id.as_str() > "i1").collect();
        ensure(got == want, C, || {
            format!("with {filter:?} after i1 listed {got:?}, expected {want:?}")
        })?;
    }

    let counted = store
        .count_instances_by_status()
        .await
        .or_break(C, "count_instances_by_status")?;
    ensure(counted == counts, C, || {
        format!("counted {counted:?}, the store holds {counts:?}")
    })
}
