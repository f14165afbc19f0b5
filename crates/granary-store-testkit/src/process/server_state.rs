//! The checks of the server's state with more than one open store: admin sessions and API
//! keys survive a reopen, and child processes racing for one banner get it once.

use std::path::Path;
use std::sync::Arc;

use granary_store::{AdminSession, ApiKeyRecord, Store};

use super::{CHILD_TIMEOUT, Children, RACING_CHILDREN, open};
use crate::checks::CheckResult;
use crate::fixtures::{T0, at};
use crate::violation::{OrBreak, ensure};
use crate::{Backend, Violation};

/// The child role of [`processes_race_banner`].
pub(super) const BANNER_RACE: &str = "banner-race";
const RACED: &str = "the raced banner ✓";

fn session(digest: &str) -> AdminSession {
    AdminSession {
        digest: digest.to_string(),
        csrf: format!("csrf-{digest}"),
        created: T0,
        expires: at(3_600_000),
    }
}

fn api_key() -> ApiKeyRecord {
    ApiKeyRecord {
        id: "kept".to_string(),
        name: "kept across a reopen".to_string(),
        role: "tokens".to_string(),
        digest: "digest-kept".to_string(),
        created: T0,
    }
}

/// Admin sessions, their banners and API keys written before the store was dropped are
/// there after it is opened again; a revocation stays revoked.
pub async fn reopen_keeps_sessions_and_api_keys(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "a durable store keeps admin sessions, their banners and API keys across a close and reopen";
    let store = open(backend, dir, C).await?;
    store
        .create_session(&session("kept"))
        .await
        .or_break(C, "create_session")?;
    store
        .set_session_banner("kept", "a banner", T0)
        .await
        .or_break(C, "set_session_banner")?;
    store
        .create_api_key(&api_key())
        .await
        .or_break(C, "create_api_key")?;
    let mut revoked = api_key();
    revoked.id = "revoked".to_string();
    revoked.digest = "digest-revoked".to_string();
    store
        .create_api_key(&revoked)
        .await
        .or_break(C, "create_api_key")?;
    store
        .revoke_api_key("revoked")
        .await
        .or_break(C, "revoke_api_key")?;
    drop(store);

    let store = open(backend, dir, C).await?;
    let got = store
        .get_session("kept", T0)
        .await
        .or_break(C, "get_session")?;
    ensure(got == Some(session("kept")), C, || {
        format!("session after reopen: {got:?}")
    })?;
    let banner = store
        .take_session_banner("kept", T0)
        .await
        .or_break(C, "take_session_banner")?;
    ensure(banner.as_deref() == Some("a banner"), C, || {
        format!("banner after reopen: {banner:?}")
    })?;
    let keys = store.list_api_keys().await.or_break(C, "list_api_keys")?;
    ensure(keys == [api_key()], C, || {
        format!("API keys after reopen (`revoked` was revoked): {keys:?}")
    })
}

/// Child processes race to take one banner: exactly one gets it, and it is gone after.
pub async fn processes_race_banner(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "take_session_banner is atomic across processes: of 8 racing processes exactly one gets the banner";
    let store = open(backend, dir, C).await?;
    store
        .create_session(&session("race"))
        .await
        .or_break(C, "create_session")?;
    store
        .set_session_banner("race", RACED, T0)
        .await
        .or_break(C, "set_session_banner")?;

    let mut children = Children::default();
    for id in 0..RACING_CHILDREN {
        children
            .spawn(BANNER_RACE, dir, id)
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
    let mut winners = Vec::new();
    for (id, child) in children.list.iter_mut().enumerate() {
        let line = child
            .line(CHILD_TIMEOUT)
            .map_err(|e| Violation::new(C, e))?;
        match line.as_str() {
            "won" => winners.push(id),
            "lost" => {}
            other => return Err(Violation::new(C, format!("child {id}: {other}"))),
        }
    }
    children.finish();
    ensure(winners.len() == 1, C, || {
        format!("children {winners:?} got the banner")
    })?;
    let left = store
        .take_session_banner("race", T0)
        .await
        .or_break(C, "take_session_banner")?;
    ensure(left.is_none(), C, || {
        format!("after the race the banner is still there: {left:?}")
    })
}

/// The child's part of [`processes_race_banner`]: waits for `go`, takes the banner, says
/// whether it got it.
pub(super) async fn banner_race_child(
    store: Arc<dyn Store>,
    say: &dyn Fn(&str),
) -> granary_store::Result<()> {
    say("ready");
    let mut go = String::new();
    let _ = std::io::stdin().read_line(&mut go);
    let taken = store.take_session_banner("race", T0).await?;
    say(if taken.as_deref() == Some(RACED) {
        "won"
    } else {
        "lost"
    });
    Ok(())
}
