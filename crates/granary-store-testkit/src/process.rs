//! The checks that need more than one open store: reopening, child processes racing, and
//! child processes killed with SIGKILL in the middle of a stream of writes.
//!
//! Child processes are the running executable started again (`std::env::current_exe`) with
//! `GRANARY_TESTKIT_CHILD` naming their role; [`crate::main`] sends such a process to
//! [`run_child`] instead of the suite. So these checks run only when the suite was started
//! by [`crate::main`] ([`crate::Options::children`]).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use granary_store::{Error, Store, Timestamp};

use crate::checks::CheckResult;
use crate::fixtures::{T0, at, instance, integration, pending, same_instance, same_token, token};
use crate::violation::{OrBreak, ensure};
use crate::{Backend, Violation};

mod server_state;
mod webhooks;
pub use server_state::{processes_race_banner, reopen_keeps_sessions_and_api_keys};
pub use webhooks::{processes_race_claims, reopen_keeps_webhooks};

/// The variable that names a child's role.
pub(crate) const CHILD_ENV: &str = "GRANARY_TESTKIT_CHILD";
const DIR_ENV: &str = "GRANARY_TESTKIT_DIR";
const ID_ENV: &str = "GRANARY_TESTKIT_CHILD_ID";
const PREFIX: &str = "granary-testkit-child ";
/// How many child processes race.
const RACING_CHILDREN: usize = 8;
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

async fn open(
    backend: &dyn Backend,
    dir: &Path,
    contract: &'static str,
) -> Result<std::sync::Arc<dyn Store>, Violation> {
    backend
        .open(dir)
        .await
        .or_break(contract, "opening the store")
}

/// Everything written before the store was dropped is there after it is opened again.
pub async fn reopen_keeps_everything(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "a durable store keeps every record across a close and reopen";
    let store = open(backend, dir, C).await?;
    store
        .put_integration(&integration("api"))
        .await
        .or_break(C, "put_integration")?;
    store
        .create_instance(&instance("a", "api"))
        .await
        .or_break(C, "create_instance")?;
    let mut updated = instance("b", "api");
    store
        .create_instance(&updated)
        .await
        .or_break(C, "create_instance")?;
    updated.version = 1;
    updated.client_id = "changed".to_string();
    store
        .update_instance(&updated)
        .await
        .or_break(C, "update_instance")?;
    store
        .put_token("a", &token("one"), None)
        .await
        .or_break(C, "put_token")?;
    store
        .put_token("a", &token("two"), Some(1))
        .await
        .or_break(C, "put_token")?;
    store
        .put_pending(&pending("state", "a", at(60_000)))
        .await
        .or_break(C, "put_pending")?;
    store
        .try_acquire_lease("a", "holder", T0, Duration::from_secs(60))
        .await
        .or_break(C, "try_acquire_lease")?;
    let latest_before = store.latest_change().await.or_break(C, "latest_change")?;
    drop(store);

    let store = open(backend, dir, C).await?;
    const FEED: &str = "change numbers survive a reopen: latest_change never goes back and a new change gets a higher number";
    let latest_after = store
        .latest_change()
        .await
        .or_break(FEED, "latest_change")?;
    ensure(latest_after == latest_before, FEED, || {
        format!("latest_change was {latest_before} before the reopen, {latest_after} after")
    })?;
    let got = store
        .get_integration("api")
        .await
        .or_break(C, "get_integration")?;
    ensure(got.as_ref() == Some(&integration("api")), C, || {
        format!("integration after reopen: {got:?}")
    })?;
    let a = store.get_instance("a").await.or_break(C, "get_instance")?;
    ensure(
        a.as_ref()
            .is_some_and(|i| same_instance(i, &instance("a", "api"), 1)),
        C,
        || format!("instance `a` after reopen: {a:?}"),
    )?;
    let b = store.get_instance("b").await.or_break(C, "get_instance")?;
    ensure(
        b.as_ref().is_some_and(|i| same_instance(i, &updated, 2)),
        C,
        || format!("updated instance `b` after reopen: {b:?}"),
    )?;
    let tok = store.get_token("a").await.or_break(C, "get_token")?;
    ensure(
        tok.as_ref()
            .is_some_and(|t| same_token(t, &token("two"), 2)),
        C,
        || format!("token after reopen: {tok:?}"),
    )?;
    let lease_taken = store
        .try_acquire_lease("a", "other", at(1), Duration::from_secs(60))
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(!lease_taken, C, || {
        "the lease was lost on reopen".to_string()
    })?;
    let taken = store
        .take_pending("state", at(1))
        .await
        .or_break(C, "take_pending")?;
    ensure(taken == Some(pending("state", "a", at(60_000))), C, || {
        format!("pending authorization after reopen: {taken:?}")
    })?;
    drop(store);

    const TAKEN: &str = "a pending authorization taken before a reopen stays taken";
    let store = open(backend, dir, TAKEN).await?;
    let again = store
        .take_pending("state", at(2))
        .await
        .or_break(TAKEN, "take_pending")?;
    ensure(again.is_none(), TAKEN, || {
        "it was returned again after reopening".to_string()
    })?;
    store
        .put_token("a", &token("three"), Some(2))
        .await
        .or_break(FEED, "put_token")?;
    let changes = store
        .changes_since(latest_before, 10)
        .await
        .or_break(FEED, "changes_since")?;
    ensure(
        !changes.missed
            && changes.changes.len() == 1
            && changes
                .changes
                .iter()
                .all(|c| c.seq > latest_before && c.instance == "a"),
        FEED,
        || {
            format!(
                "after a reopen and one token write, changes_since({latest_before}) returned {changes:?}"
            )
        },
    )
}

/// A change made by a child process shows in the parent's `changes_since`, numbered between
/// the parent's changes before and after it.
pub async fn processes_see_changes(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "a change made by another process shows in changes_since, and change numbers grow across processes";
    let store = open(backend, dir, C).await?;
    store
        .put_integration(&integration("api"))
        .await
        .or_break(C, "put_integration")?;
    store
        .create_instance(&instance("parent", "api"))
        .await
        .or_break(C, "create_instance")?;
    store
        .create_instance(&instance("seen", "api"))
        .await
        .or_break(C, "create_instance")?;
    let before = store.latest_change().await.or_break(C, "latest_change")?;
    let mut children = Children::default();
    children
        .spawn("change-writer", dir, 0)
        .map_err(|e| Violation::new(C, e))?;
    let child = children
        .list
        .first_mut()
        .ok_or_else(|| Violation::new(C, "the child did not start"))?;
    let line = child
        .line(CHILD_TIMEOUT)
        .map_err(|e| Violation::new(C, e))?;
    ensure(line == "wrote", C, || format!("the child said `{line}`"))?;
    children.finish();
    let theirs = store
        .changes_since(before, 100)
        .await
        .or_break(C, "changes_since")?;
    let child_seq = match theirs.changes.as_slice() {
        [one] if one.instance == "seen" && one.seq > before && !theirs.missed => one.seq,
        _ => {
            return Err(Violation::new(
                C,
                format!(
                    "the child wrote the token of `seen`; after {before} the parent's feed lists {theirs:?}"
                ),
            ));
        }
    };
    let latest = store.latest_change().await.or_break(C, "latest_change")?;
    ensure(latest == child_seq, C, || {
        format!("the child's change is {child_seq}, the parent's latest_change is {latest}")
    })?;
    store
        .put_token("parent", &token("p"), None)
        .await
        .or_break(C, "put_token")?;
    let ours = store
        .changes_since(child_seq, 100)
        .await
        .or_break(C, "changes_since")?;
    ensure(
        matches!(ours.changes.as_slice(), [one] if one.instance == "parent" && one.seq > child_seq),
        C,
        || format!("after the child's change {child_seq}, the parent's own write listed {ours:?}"),
    )
}

/// A child's fenced token write fails while the parent holds the lease; the parent's own
/// fenced write then succeeds.
pub async fn processes_fence_token_put(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "put_token_fenced across processes: a process that does not hold the live lease writes nothing, the holder writes";
    let store = open(backend, dir, C).await?;
    store
        .put_integration(&integration("api"))
        .await
        .or_break(C, "put_integration")?;
    store
        .create_instance(&instance("fenced", "api"))
        .await
        .or_break(C, "create_instance")?;
    store
        .put_token("fenced", &token("base"), None)
        .await
        .or_break(C, "put_token")?;
    let held = store
        .try_acquire_lease("fenced", "parent", T0, Duration::from_secs(60))
        .await
        .or_break(C, "try_acquire_lease")?;
    ensure(held, C, || "a free lease was refused".to_string())?;
    let mut children = Children::default();
    children
        .spawn("fenced-put", dir, 0)
        .map_err(|e| Violation::new(C, e))?;
    let child = children
        .list
        .first_mut()
        .ok_or_else(|| Violation::new(C, "the child did not start"))?;
    let line = child
        .line(CHILD_TIMEOUT)
        .map_err(|e| Violation::new(C, e))?;
    children.finish();
    ensure(line == "refused", C, || {
        format!("the parent holds the lease; the child's fenced write said `{line}`")
    })?;
    let tok = store.get_token("fenced").await.or_break(C, "get_token")?;
    ensure(
        tok.as_ref()
            .is_some_and(|t| same_token(t, &token("base"), 1)),
        C,
        || format!("after the child's refused write the token is {tok:?}"),
    )?;
    let version = store
        .put_token_fenced("fenced", &token("parent"), 1, "parent", at(1))
        .await
        .or_break(C, "put_token_fenced by the holder")?;
    ensure(version == 2, C, || {
        format!("the holder's fenced write returned version {version}")
    })
}

/// Child processes race for one lease: exactly one gets it.
pub async fn processes_race_lease(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "try_acquire_lease is exclusive across processes: of 8 racing processes exactly one gets it";
    race(backend, dir, "lease-race", C).await
}

/// Child processes race for one compare-and-swap: exactly one wins.
pub async fn processes_race_token_cas(backend: &dyn Backend, dir: &Path) -> CheckResult {
    const C: &str = "put_token is atomic across processes: of 8 racing processes over one version exactly one wins";
    race(backend, dir, "cas-race", C).await
}

async fn race(
    backend: &dyn Backend,
    dir: &Path,
    role: &str,
    contract: &'static str,
) -> CheckResult {
    let store = open(backend, dir, contract).await?;
    store
        .put_integration(&integration("api"))
        .await
        .or_break(contract, "put_integration")?;
    store
        .create_instance(&instance("race", "api"))
        .await
        .or_break(contract, "create_instance")?;
    store
        .put_token("race", &token("base"), None)
        .await
        .or_break(contract, "put_token")?;

    let mut children = Children::default();
    for id in 0..RACING_CHILDREN {
        children
            .spawn(role, dir, id)
            .map_err(|e| Violation::new(contract, e))?;
    }
    for child in &mut children.list {
        let line = child
            .line(CHILD_TIMEOUT)
            .map_err(|e| Violation::new(contract, e))?;
        ensure(line == "ready", contract, || {
            format!("a child said `{line}` instead of ready")
        })?;
    }
    for child in &mut children.list {
        child.send("go").map_err(|e| Violation::new(contract, e))?;
    }
    let mut winners = Vec::new();
    for (id, child) in children.list.iter_mut().enumerate() {
        let line = child
            .line(CHILD_TIMEOUT)
            .map_err(|e| Violation::new(contract, e))?;
        match line.as_str() {
            "won" => winners.push(id),
            "lost" => {}
            other => return Err(Violation::new(contract, format!("child {id}: {other}"))),
        }
    }
    children.finish();
    ensure(winners.len() == 1, contract, || {
        format!("children {winners:?} all won")
    })?;
    let winner = winners.first().copied().unwrap_or_default();
    if role == "lease-race" {
        let lease = store
            .get_lease("race")
            .await
            .or_break(contract, "get_lease")?;
        ensure(
            lease
                .as_ref()
                .is_some_and(|l| l.holder == format!("child-{winner}")),
            contract,
            || format!("child {winner} won, but the lease is {lease:?}"),
        )
    } else {
        let tok = store
            .get_token("race")
            .await
            .or_break(contract, "get_token")?;
        ensure(
            tok.as_ref()
                .is_some_and(|t| same_token(t, &token(&format!("child-{winner}")), 2)),
            contract,
            || format!("child {winner} won, but the token is {tok:?}"),
        )
    }
}

/// A child writing a stream of token versions is killed with SIGKILL at random points,
/// `rounds` times; after each kill the store opens and holds the last committed version (or
/// the one being written), every record readable.
pub async fn durable_after_sigkill(
    backend: &dyn Backend,
    dir: &Path,
    rounds: usize,
) -> CheckResult {
    const C: &str =
        "after a SIGKILL the store opens and holds the last committed version of every record";
    let store = open(backend, dir, C).await?;
    store
        .put_integration(&integration("api"))
        .await
        .or_break(C, "put_integration")?;
    store
        .create_instance(&instance("stream", "api"))
        .await
        .or_break(C, "create_instance")?;
    drop(store);

    let mut last_committed = 0u64;
    for round in 0..rounds {
        let mut children = Children::default();
        children
            .spawn("token-stream", dir, round)
            .map_err(|e| Violation::new(C, e))?;
        let wait_for = rand::random_range(1..=20u64);
        let extra = Duration::from_micros(rand::random_range(0..4_000));
        let mut seen = 0;
        let child = children
            .list
            .first_mut()
            .ok_or_else(|| Violation::new(C, "the child did not start"))?;
        while seen < wait_for {
            let line = child
                .line(CHILD_TIMEOUT)
                .map_err(|e| Violation::new(C, format!("round {round}: {e}")))?;
            last_committed = parse_committed(&line, C, round)?;
            seen += 1;
        }
        std::thread::sleep(extra);
        child.kill();
        // Lines printed before the kill may still be in the pipe.
        while let Ok(line) = child.line(Duration::from_secs(5)) {
            last_committed = parse_committed(&line, C, round)?;
        }
        drop(children);

        let store = open(backend, dir, C).await?;
        let tok = store.get_token("stream").await.or_break(C, "get_token")?;
        let tok =
            tok.ok_or_else(|| Violation::new(C, format!("round {round}: the token is gone")))?;
        let v = tok.version;
        ensure(v == last_committed || v == last_committed + 1, C, || {
            format!(
                "round {round}: the last committed version is {last_committed}, the store holds {v}"
            )
        })?;
        ensure(same_token(&tok, &token(&format!("k{v}")), v), C, || {
            format!(
                "round {round}: token version {v} does not hold what was written as version {v}"
            )
        })?;
        let inst = store
            .get_instance("stream")
            .await
            .or_break(C, "get_instance")?;
        let inst =
            inst.ok_or_else(|| Violation::new(C, format!("round {round}: the instance is gone")))?;
        // The child writes token k, then the instance with scopes ["k<k>"], then says
        // "committed k": the instance is at most one write behind the token.
        let marker = match inst.scopes.as_slice() {
            [one] => one.strip_prefix('k').and_then(|n| n.parse::<u64>().ok()),
            _ => None,
        }
        .unwrap_or(0);
        ensure(marker == v || marker + 1 == v, C, || {
            format!(
                "round {round}: token version {v}, but the instance holds scopes {:?}",
                inst.scopes
            )
        })?;
        let listed = store.list_instances().await.or_break(C, "list_instances")?;
        ensure(listed.len() == 1, C, || {
            format!("round {round}: {} instances listed", listed.len())
        })?;
        let integ = store
            .get_integration("api")
            .await
            .or_break(C, "get_integration")?;
        ensure(integ.is_some(), C, || {
            format!("round {round}: the integration is gone")
        })?;
        last_committed = v;
        drop(store);
    }
    Ok(())
}

fn parse_committed(line: &str, contract: &'static str, round: usize) -> Result<u64, Violation> {
    line.strip_prefix("committed ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            Violation::new(
                contract,
                format!("round {round}: the writing child said `{line}`"),
            )
        })
}

/// Child processes, killed and reaped when dropped (also when a check fails half-way).
#[derive(Default)]
struct Children {
    list: Vec<ChildProcess>,
}

struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Children {
    fn spawn(&mut self, role: &str, dir: &Path, id: usize) -> Result<(), String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the running executable: {e}"))?;
        let mut child = Command::new(exe)
            .env(CHILD_ENV, role)
            .env(DIR_ENV, dir)
            .env(ID_ENV, id.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a child process: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("the child has no stdout")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(message) = line.strip_prefix(PREFIX) {
                    if sender.send(message.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        self.list.push(ChildProcess {
            child,
            stdin,
            lines,
        });
        Ok(())
    }

    /// Waits for every child to exit (killing those that take too long).
    fn finish(&mut self) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        for process in &mut self.list {
            process.stdin = None;
            while Instant::now() < deadline {
                match process.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for process in &mut self.list {
            process.kill();
        }
    }
}

impl ChildProcess {
    fn line(&mut self, timeout: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("a child said nothing for {} s", timeout.as_secs()))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "a child exited early ({status}); its stderr is above"
                ))
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("the child's stdin is closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot write to a child: {e}"))
    }

    /// SIGKILL on Unix; then reaps the process.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a child process: opens the store in `GRANARY_TESTKIT_DIR` and plays `role`.
pub(crate) fn run_child(backend: &dyn Backend, role: &str) -> ExitCode {
    let say = |message: &str| println!("{PREFIX}{message}");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            say(&format!("error: cannot start a runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let dir = std::env::var_os(DIR_ENV).unwrap_or_default();
    let id = std::env::var(ID_ENV).unwrap_or_default();
    let result = runtime.block_on(async {
        let store = backend.open(Path::new(&dir)).await?;
        match role {
            "lease-race" | "cas-race" => {
                say("ready");
                let mut go = String::new();
                let _ = std::io::stdin().read_line(&mut go);
                let won = if role == "lease-race" {
                    store
                        .try_acquire_lease(
                            "race",
                            &format!("child-{id}"),
                            T0,
                            Duration::from_secs(60),
                        )
                        .await?
                } else {
                    match store
                        .put_token("race", &token(&format!("child-{id}")), Some(1))
                        .await
                    {
                        Ok(_) => true,
                        Err(Error::Conflict { .. }) => false,
                        Err(e) => return Err(e),
                    }
                };
                say(if won { "won" } else { "lost" });
                Ok(())
            }
            "token-stream" => stream_tokens(store.as_ref(), &say).await,
            "change-writer" => {
                store.put_token("seen", &token("child"), None).await?;
                say("wrote");
                Ok(())
            }
            "fenced-put" => {
                let result = store
                    .put_token_fenced("fenced", &token("child"), 1, &format!("child-{id}"), at(1))
                    .await;
                match result {
                    Ok(_) => say("wrote"),
                    Err(Error::Conflict { .. }) => say("refused"),
                    Err(e) => return Err(e),
                }
                Ok(())
            }
            server_state::BANNER_RACE => server_state::banner_race_child(store, &say).await,
            webhooks::CLAIM_RACE => webhooks::claim_race_child(store, &id, &say).await,
            other => Err(Error::unsupported(format!("unknown child role `{other}`"))),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

async fn stream_tokens(store: &dyn Store, say: &dyn Fn(&str)) -> granary_store::Result<()> {
    let mut current = store.get_token("stream").await?.map(|t| t.version);
    let mut inst = store
        .get_instance("stream")
        .await?
        .ok_or_else(|| Error::not_found("instance `stream`"))?;
    loop {
        let next = current.map_or(1, |v| v + 1);
        let version = store
            .put_token("stream", &token(&format!("k{next}")), current)
            .await?;
        inst.scopes = vec![format!("k{version}")];
        inst.updated = Timestamp::from_unix_millis(i64::try_from(version).unwrap_or(i64::MAX));
        inst.version = store.update_instance(&inst).await?;
        current = Some(version);
        say(&format!("committed {version}"));
    }
}
