//! The checks of the server's state in the store: admin sessions, their one-time banners,
//! and API keys.

use futures::future::join_all;
use granary_store::{AdminSession, ApiKeyRecord, Error, Store};

use super::{CheckResult, RACERS};
use crate::fixtures::{T0, at};
use crate::violation::{OrBreak, ensure};

fn session(digest: &str, expires_offset: i64) -> AdminSession {
    AdminSession {
        digest: digest.to_string(),
        csrf: format!("csrf-{digest}-ünï"),
        created: T0,
        expires: at(expires_offset),
    }
}

fn api_key(id: &str, digest: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_string(),
        name: format!("key {id} — ünï côdé"),
        role: if id.len() % 2 == 0 { "admin" } else { "tokens" }.to_string(),
        digest: digest.to_string(),
        created: at(i64::try_from(id.len()).unwrap_or(0)),
    }
}

/// A session comes back as written; a taken digest is refused; delete removes it.
pub async fn session_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str = "get_session returns the session unchanged until delete_session removes it";
    let written = session("d1", 3_600_000);
    store
        .create_session(&written)
        .await
        .or_break(C, "create_session")?;
    let got = store
        .get_session("d1", T0)
        .await
        .or_break(C, "get_session")?;
    ensure(got.as_ref() == Some(&written), C, || {
        format!("wrote {written:?}, got {got:?}")
    })?;
    let missing = store
        .get_session("d2", T0)
        .await
        .or_break(C, "get_session")?;
    ensure(missing.is_none(), C, || {
        format!("a missing digest gave {missing:?}")
    })?;

    const TAKEN: &str =
        "create_session fails with AlreadyExists on a taken digest and changes nothing";
    let mut other = session("d1", 7_200_000);
    other.csrf = "other".to_string();
    let result = store.create_session(&other).await;
    ensure(
        matches!(result, Err(Error::AlreadyExists { .. })),
        TAKEN,
        || format!("got {result:?}"),
    )?;
    let kept = store
        .get_session("d1", T0)
        .await
        .or_break(TAKEN, "get_session")?;
    ensure(kept.as_ref() == Some(&written), TAKEN, || {
        format!("after the refused create: {kept:?}")
    })?;

    let deleted = store
        .delete_session("d1")
        .await
        .or_break(C, "delete_session")?;
    let again = store
        .delete_session("d1")
        .await
        .or_break(C, "delete_session")?;
    let gone = store
        .get_session("d1", T0)
        .await
        .or_break(C, "get_session")?;
    ensure(deleted && !again && gone.is_none(), C, || {
        format!("delete: {deleted}, again: {again}, then get: {gone:?}")
    })
}

/// An expired session is never returned, keeps no banner, and purge removes exactly the
/// expired ones.
pub async fn session_expiry(store: &dyn Store) -> CheckResult {
    const C: &str = "get_session never returns a session expired at now (expires <= now)";
    store
        .create_session(&session("edge", 1_000))
        .await
        .or_break(C, "create_session")?;
    let before = store
        .get_session("edge", at(999))
        .await
        .or_break(C, "get_session")?;
    ensure(before.is_some(), C, || {
        "refused a session a millisecond before it expires".to_string()
    })?;
    let at_edge = store
        .get_session("edge", at(1_000))
        .await
        .or_break(C, "get_session")?;
    ensure(at_edge.is_none(), C, || {
        "returned a session at now == expires".to_string()
    })?;

    const BANNER: &str = "an expired session keeps no banner and gives none";
    let kept = store
        .set_session_banner("edge", "late", at(1_000))
        .await
        .or_break(BANNER, "set_session_banner")?;
    ensure(!kept, BANNER, || {
        "an expired session took a banner".to_string()
    })?;
    store
        .set_session_banner("edge", "early", at(10))
        .await
        .or_break(BANNER, "set_session_banner")?;
    let taken = store
        .take_session_banner("edge", at(5_000))
        .await
        .or_break(BANNER, "take_session_banner")?;
    ensure(taken.is_none(), BANNER, || {
        format!("the banner of an expired session was taken: {taken:?}")
    })?;

    const PURGE: &str =
        "purge_expired_sessions removes exactly those with expires <= now and counts them";
    for (digest, expires) in [("s1", 500), ("s2", 2_000), ("s3", 2_001), ("s4", 9_000)] {
        store
            .create_session(&session(digest, expires))
            .await
            .or_break(PURGE, "create_session")?;
    }
    // `edge` (1000), s1 and s2 are expired at 2000.
    let purged = store
        .purge_expired_sessions(at(2_000))
        .await
        .or_break(PURGE, "purge_expired_sessions")?;
    ensure(purged == 3, PURGE, || {
        format!("purged {purged}, expected 3")
    })?;
    for (digest, alive) in [("s1", false), ("s2", false), ("s3", true), ("s4", true)] {
        let recreated = store.create_session(&session(digest, 9_000)).await;
        let was_kept = matches!(recreated, Err(Error::AlreadyExists { .. }));
        ensure(was_kept == alive, PURGE, || {
            format!(
                "{digest}: expected {} (create again gave {recreated:?})",
                if alive { "kept" } else { "purged" }
            )
        })?;
    }
    // The banner went with its purged session.
    store
        .create_session(&session("edge", 9_000))
        .await
        .or_break(PURGE, "create_session")?;
    let banner = store
        .take_session_banner("edge", T0)
        .await
        .or_break(PURGE, "take_session_banner")?;
    ensure(banner.is_none(), PURGE, || {
        format!("a purged session's banner came back with a new session: {banner:?}")
    })
}

/// A banner is taken once, unchanged; a new one replaces it; none outlives its session.
pub async fn session_banner_take_once(store: &dyn Store) -> CheckResult {
    const C: &str =
        "take_session_banner returns the banner unchanged, exactly once, and the session stays";
    const TEXT: &str = r#"{"kind":"success","title":"Gespeichert ✓","cause":"a\nb"}"#;
    store
        .create_session(&session("b1", 3_600_000))
        .await
        .or_break(C, "create_session")?;
    let none_yet = store
        .take_session_banner("b1", T0)
        .await
        .or_break(C, "take_session_banner")?;
    ensure(none_yet.is_none(), C, || {
        format!("a session without a banner gave {none_yet:?}")
    })?;
    let kept = store
        .set_session_banner("b1", "first", T0)
        .await
        .or_break(C, "set_session_banner")?;
    let replaced = store
        .set_session_banner("b1", TEXT, T0)
        .await
        .or_break(C, "set_session_banner")?;
    ensure(kept && replaced, C, || {
        "a live session refused a banner".to_string()
    })?;
    let taken = store
        .take_session_banner("b1", at(1))
        .await
        .or_break(C, "take_session_banner")?;
    ensure(taken.as_deref() == Some(TEXT), C, || {
        format!("set {TEXT:?} (replacing \"first\"), took {taken:?}")
    })?;
    let again = store
        .take_session_banner("b1", at(2))
        .await
        .or_break(C, "take_session_banner")?;
    ensure(again.is_none(), C, || {
        format!("a second take returned {again:?}")
    })?;
    let stays = store
        .get_session("b1", at(3))
        .await
        .or_break(C, "get_session")?;
    ensure(stays.is_some(), C, || {
        "taking the banner removed the session".to_string()
    })?;

    const MISSING: &str = "set_session_banner keeps nothing for a missing session";
    let kept = store
        .set_session_banner("nobody", "x", T0)
        .await
        .or_break(MISSING, "set_session_banner")?;
    ensure(!kept, MISSING, || {
        "a missing session took a banner".to_string()
    })?;
    store
        .create_session(&session("nobody", 3_600_000))
        .await
        .or_break(MISSING, "create_session")?;
    let taken = store
        .take_session_banner("nobody", T0)
        .await
        .or_break(MISSING, "take_session_banner")?;
    ensure(taken.is_none(), MISSING, || {
        format!("a banner set before the session existed came back: {taken:?}")
    })?;

    const GONE: &str = "delete_session removes the session's banner with it";
    store
        .set_session_banner("b1", "left behind", T0)
        .await
        .or_break(GONE, "set_session_banner")?;
    store
        .delete_session("b1")
        .await
        .or_break(GONE, "delete_session")?;
    store
        .create_session(&session("b1", 3_600_000))
        .await
        .or_break(GONE, "create_session")?;
    let taken = store
        .take_session_banner("b1", T0)
        .await
        .or_break(GONE, "take_session_banner")?;
    ensure(taken.is_none(), GONE, || {
        format!("a deleted session's banner came back: {taken:?}")
    })
}

/// Of 64 concurrent takers of one banner, exactly one gets it.
pub async fn session_banner_take_concurrent(store: &dyn Store) -> CheckResult {
    const C: &str =
        "take_session_banner is atomic: of 64 concurrent takers exactly one gets the banner";
    store
        .create_session(&session("race", 3_600_000))
        .await
        .or_break(C, "create_session")?;
    for round in 0..4 {
        let banner = format!("banner-{round}");
        store
            .set_session_banner("race", &banner, T0)
            .await
            .or_break(C, "set_session_banner")?;
        let results = join_all((0..RACERS).map(|_| store.take_session_banner("race", T0))).await;
        let mut winners = 0;
        for result in results {
            if let Some(got) = result.or_break(C, "take_session_banner")? {
                ensure(got == banner, C, || format!("set {banner:?}, took {got:?}"))?;
                winners += 1;
            }
        }
        ensure(winners == 1, C, || {
            format!("round {round}: {winners} takers got it")
        })?;
    }
    Ok(())
}

/// API keys come back as written, listed by id, found by digest; a taken id or digest is
/// refused.
pub async fn api_key_round_trip(store: &dyn Store) -> CheckResult {
    const C: &str = "list_api_keys returns every key unchanged, ordered by id, and find_api_key finds each by digest";
    let keys = [
        api_key("kb", "digest-b"),
        api_key("ka", "digest-a"),
        api_key("kcc", "digest-c"),
    ];
    for key in &keys {
        store
            .create_api_key(key)
            .await
            .or_break(C, "create_api_key")?;
    }
    let listed = store.list_api_keys().await.or_break(C, "list_api_keys")?;
    let mut expected = keys.to_vec();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    ensure(listed == expected, C, || {
        format!("wrote {expected:?}, listed {listed:?}")
    })?;
    for key in &keys {
        let found = store
            .find_api_key(&key.digest)
            .await
            .or_break(C, "find_api_key")?;
        ensure(found.as_ref() == Some(key), C, || {
            format!("wrote {key:?}, found {found:?}")
        })?;
    }
    let missing = store
        .find_api_key("digest-z")
        .await
        .or_break(C, "find_api_key")?;
    ensure(missing.is_none(), C, || {
        format!("an unknown digest found {missing:?}")
    })?;

    const TAKEN: &str =
        "create_api_key fails with AlreadyExists on a taken id or digest and changes nothing";
    for duplicate in [api_key("ka", "digest-new"), api_key("kd", "digest-b")] {
        let result = store.create_api_key(&duplicate).await;
        ensure(
            matches!(result, Err(Error::AlreadyExists { .. })),
            TAKEN,
            || format!("creating {duplicate:?} gave {result:?}"),
        )?;
    }
    let after = store
        .list_api_keys()
        .await
        .or_break(TAKEN, "list_api_keys")?;
    ensure(after == expected, TAKEN, || {
        format!("after the refused creates: {after:?}")
    })
}

/// A revoked key is neither found nor listed; the others stay.
pub async fn api_key_revoke(store: &dyn Store) -> CheckResult {
    const C: &str = "revoke_api_key removes the key: find_api_key no longer finds it by digest";
    for key in [api_key("k1", "digest-1"), api_key("k2", "digest-2")] {
        store
            .create_api_key(&key)
            .await
            .or_break(C, "create_api_key")?;
    }
    let revoked = store
        .revoke_api_key("k1")
        .await
        .or_break(C, "revoke_api_key")?;
    let again = store
        .revoke_api_key("k1")
        .await
        .or_break(C, "revoke_api_key")?;
    let missing = store
        .revoke_api_key("never")
        .await
        .or_break(C, "revoke_api_key")?;
    ensure(revoked && !again && !missing, C, || {
        format!("revoke: {revoked}, again: {again}, an unknown id: {missing}")
    })?;
    let found = store
        .find_api_key("digest-1")
        .await
        .or_break(C, "find_api_key")?;
    ensure(found.is_none(), C, || {
        format!("the revoked key was found by its digest: {found:?}")
    })?;
    let listed = store.list_api_keys().await.or_break(C, "list_api_keys")?;
    let ids: Vec<&str> = listed.iter().map(|k| k.id.as_str()).collect();
    ensure(ids == ["k2"], C, || {
        format!("listed {ids:?} after revoking k1")
    })?;
    let other = store
        .find_api_key("digest-2")
        .await
        .or_break(C, "find_api_key")?;
    ensure(other.is_some(), C, || {
        "revoking k1 made k2 unfindable".to_string()
    })
}
