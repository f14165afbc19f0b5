//! The scenarios: each sets up its own data directory, drives real granary processes and the
//! fault proxy, and returns its figures and the checks that failed.
//!
//! The bounds checked are the ones issue 9 names; they are constants here, easy to adjust.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use granary_e2e::scenario::{Outcome, describe, secs, secs_or_none};
use granary_e2e::server::Serve;
use granary_e2e::token_proxy::{Mode, Release};

use crate::granary::{Env, Lifetime, REFRESH_DEADLINE, SHUTDOWN_GRACE, Setup};

/// A process exits within the grace period plus this.
const EXIT_SLACK: Duration = Duration::from_secs(1);
/// After a crash (or a frozen holder), a forced refresh is answered within this.
const RECOVERY: Duration = Duration::from_secs(10);
/// A change made by one process is seen by the others within this.
const PROPAGATION: Duration = Duration::from_secs(1);
/// "At once": a token served from the store, or a 503 from a recorded backoff.
const AT_ONCE: Duration = Duration::from_secs(1);
/// A caller of a refresh is answered within the refresh deadline plus this.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);
/// How long a call that should be quick may take before the runner gives up on it.
const CALL: Duration = Duration::from_secs(15);
/// How long to wait for an event (a request at the proxy) before declaring it missing.
const EVENT: Duration = Duration::from_secs(20);
/// Concurrent forced refreshes in `concurrent_forced_refreshes`.
const CONCURRENT: usize = 8;
/// Callers reporting the same refused token at once in
/// `unknown_expiry_rejected_by_100_callers`.
const REPORTERS: usize = 100;
/// Token reads in `expires_in_zero`.
const READS: usize = 20;
/// How long `empty_400_refresh_failing` keeps forcing refreshes (through the engine's
/// backoff) before it gives up on needs-authorization.
const FAILING_WINDOW: Duration = Duration::from_secs(30);

/// The scenarios, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "sigterm_during_background_refresh",
    "sigkill_during_refresh_then_restart",
    "disable_in_cli_seen_by_server",
    "disconnect_in_cli_seen_by_server",
    "lease_lost_to_another_process",
    "hanging_provider",
    "retry_after_across_processes",
    "expires_in_zero",
    "concurrent_forced_refreshes",
    "empty_400_refresh_failing",
    "key_rotate_while_serving",
    "no_refresh_token",
    "unknown_expiry_rejected_by_100_callers",
];

/// Runs one scenario by name.
pub async fn run(name: &str, env: &Env) -> Result<Outcome, String> {
    env.proxy.reset();
    match name {
        "sigterm_during_background_refresh" => sigterm_during_background_refresh(env).await,
        "sigkill_during_refresh_then_restart" => sigkill_during_refresh_then_restart(env).await,
        "disable_in_cli_seen_by_server" => change_in_cli_seen_by_server(env, name, "disable").await,
        "disconnect_in_cli_seen_by_server" => {
            change_in_cli_seen_by_server(env, name, "disconnect").await
        }
        "lease_lost_to_another_process" => lease_lost_to_another_process(env).await,
        "hanging_provider" => hanging_provider(env).await,
        "retry_after_across_processes" => retry_after_across_processes(env).await,
        "expires_in_zero" => expires_in_zero(env).await,
        "concurrent_forced_refreshes" => concurrent_forced_refreshes(env).await,
        "empty_400_refresh_failing" => empty_400_refresh_failing(env).await,
        "key_rotate_while_serving" => key_rotate_while_serving(env).await,
        "no_refresh_token" => no_refresh_token(env).await,
        "unknown_expiry_rejected_by_100_callers" => {
            unknown_expiry_rejected_by_100_callers(env).await
        }
        other => Err(format!("unknown scenario {other}")),
    }
}

/// A server with one authorized instance `i`.
async fn one_server<'a>(
    env: &'a Env,
    name: &str,
    lifetime: Lifetime,
) -> Result<(Setup<'a>, Serve), String> {
    let mut setup = Setup::new(env, name, &[("i", lifetime)])?;
    let serve = setup.serve(0).await?;
    setup.authorize(&serve, "i").await?;
    Ok((setup, serve))
}

/// SIGTERM while the background refresher's refresh is in flight (the provider has rotated
/// the refresh token; its answer comes 2 s later): `serve` exits within grace + 1 s, and
/// after a restart a forced refresh works with no new authorization.
async fn sigterm_during_background_refresh(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (mut setup, mut serve) =
        one_server(env, "sigterm_during_background_refresh", Lifetime::Short).await?;
    // Stop while idle; the next start finds a token due and refreshes it in the background.
    serve.terminate(Duration::from_secs(10)).await;
    env.proxy.reset();
    env.proxy.set(Mode::HoldAnswer(2000));
    let mut serve = setup.serve(0).await?;
    let started = Instant::now();
    let arrived = env.proxy.wait_refreshes(1, EVENT).await;
    o.figure("background_refresh_after_s", secs(started.elapsed()));
    if !o.check(
        arrived,
        format!(
            "the background refresher sent no refresh within {} s of the start",
            EVENT.as_secs()
        ),
    ) {
        return Ok(o);
    }
    let exit = serve
        .terminate(SHUTDOWN_GRACE + Duration::from_secs(5))
        .await;
    o.figure("exit_s", secs_or_none(exit));
    o.check(
        exit.is_some_and(|e| e <= SHUTDOWN_GRACE + EXIT_SLACK),
        format!(
            "serve did not exit within grace + 1 s = {} s",
            (SHUTDOWN_GRACE + EXIT_SLACK).as_secs()
        ),
    );
    env.proxy.set(Mode::Pass);
    let serve = setup.serve(0).await?;
    let refreshed = serve.api.refresh("i", CALL).await;
    o.figure("next_refresh", describe(&refreshed));
    o.check(
        refreshed.ok() && refreshed.elapsed <= RECOVERY,
        format!(
            "after the restart a forced refresh was not answered 200 within {} s: {}",
            RECOVERY.as_secs(),
            describe(&refreshed)
        ),
    );
    let status = serve.api.status("i").await?;
    o.figure("status", &status);
    o.check(
        status == "authorized",
        format!("the instance is {status}, not authorized"),
    );
    o.figure("proxy", env.proxy.counts());
    Ok(o)
}

/// SIGKILL while a forced refresh hangs at the proxy, then a restart: the token is served at
/// once, and a forced refresh is answered within 10 s (the dead holder's lease lapses).
async fn sigkill_during_refresh_then_restart(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (mut setup, mut serve) =
        one_server(env, "sigkill_during_refresh_then_restart", Lifetime::Long).await?;
    env.proxy.reset();
    env.proxy.set(Mode::Hang);
    let api = serve.api.clone();
    let pending = tokio::spawn(async move { api.refresh("i", Duration::from_secs(60)).await });
    let arrived = env.proxy.wait_refreshes(1, EVENT).await;
    serve.kill().await;
    pending.abort();
    env.proxy.release(Release::Drop);
    if !o.check(arrived, "the forced refresh never reached the proxy") {
        return Ok(o);
    }
    env.proxy.set(Mode::Pass);
    let serve = setup.serve(0).await?;
    let token = serve.api.token("i", CALL).await;
    o.figure("token_after_restart", describe(&token));
    o.check(
        token.ok() && token.elapsed <= AT_ONCE,
        format!(
            "the stored token was not served at once after the restart: {}",
            describe(&token)
        ),
    );
    let refreshed = serve.api.refresh("i", CALL).await;
    o.figure("forced_refresh", describe(&refreshed));
    o.check(
        refreshed.ok() && refreshed.elapsed <= RECOVERY,
        format!(
            "a forced refresh after the restart was not answered 200 within {} s: {}",
            RECOVERY.as_secs(),
            describe(&refreshed)
        ),
    );
    o.figure("proxy", env.proxy.counts());
    Ok(o)
}

/// Polls the server's token endpoint until it refuses; the time it took, or `None`.
async fn refused_within(serve: &Serve, id: &str, limit: Duration) -> (Option<Duration>, String) {
    let started = Instant::now();
    loop {
        let answer = serve.api.token(id, Duration::from_secs(2)).await;
        if !answer.ok() {
            return (Some(started.elapsed()), answer.code());
        }
        if started.elapsed() > limit {
            return (None, answer.code());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `granary instance disable` / `disconnect` on the data directory while a server runs: the
/// server refuses the token within 1 s.
async fn change_in_cli_seen_by_server(
    env: &Env,
    name: &str,
    change: &str,
) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (mut setup, serve) = one_server(env, name, Lifetime::Long).await?;
    let before = serve.api.token("i", CALL).await;
    if !o.check(
        before.ok(),
        format!("no token before the change: {}", describe(&before)),
    ) {
        return Ok(o);
    }
    let output = setup.cli(&["instance", change, "i"])?;
    let done = Instant::now();
    let mut via = "cli";
    if !output.status.success() {
        o.check(
            false,
            format!(
                "`granary instance {change} i` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ),
        );
        // Measure the cross-process bound anyway, with the change made by a second server.
        let other = setup.serve(1).await?;
        let (method, path, body) = match change {
            "disable" => (
                reqwest::Method::PATCH,
                "/instances/i",
                json!({"enabled": false}),
            ),
            _ => (reqwest::Method::POST, "/instances/i/disconnect", json!({})),
        };
        let answer = other.api.call_json(method, path, &body, CALL).await;
        if !o.check(
            answer.ok(),
            format!(
                "the second server refused the change: {}",
                describe(&answer)
            ),
        ) {
            return Ok(o);
        }
        via = "second_server";
        drop(other);
    }
    let changed_at = if via == "cli" { done } else { Instant::now() };
    let limit = PROPAGATION + Duration::from_secs(2);
    let (refused, code) = refused_within(&serve, "i", limit).await;
    let refused = refused.map(|_| changed_at.elapsed());
    o.figure("changed_by", via);
    o.figure("refused_after_s", secs_or_none(refused));
    o.figure("answer", code);
    o.check(
        refused.is_some_and(|r| r <= PROPAGATION),
        format!(
            "the server still handed out the token {} s after `{change}` in another process",
            refused.map_or_else(|| format!("{}+", limit.as_secs()), secs)
        ),
    );
    Ok(o)
}

/// A process frozen (SIGSTOP) past its lease while its refresh is held at the proxy; a
/// second process refreshes; the frozen one, continued, gets invalid_grant for its stale
/// refresh token. It must not mark the instance needs-authorization nor overwrite the winner.
async fn lease_lost_to_another_process(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let mut setup = Setup::new(
        env,
        "lease_lost_to_another_process",
        &[("i", Lifetime::Long)],
    )?;
    let a = setup.serve(0).await?;
    let b = setup.serve(1).await?;
    setup.authorize(&a, "i").await?;
    env.proxy.reset();
    env.proxy.set(Mode::Hang);
    let api = a.api.clone();
    let pending = tokio::spawn(async move { api.refresh("i", Duration::from_secs(60)).await });
    if !o.check(
        env.proxy.wait_refreshes(1, EVENT).await,
        "the first process's forced refresh never reached the proxy",
    ) {
        return Ok(o);
    }
    a.signal("STOP");
    let frozen = Instant::now();
    env.proxy.set(Mode::Pass);
    let winner = b.api.refresh("i", CALL).await;
    o.figure("second_refresh", describe(&winner));
    o.check(
        winner.ok() && winner.elapsed <= RECOVERY,
        format!(
            "the second process did not refresh within {} s of the first one freezing: {}",
            RECOVERY.as_secs(),
            describe(&winner)
        ),
    );
    o.figure("frozen_s", secs(frozen.elapsed()));
    env.proxy.release(Release::InvalidGrant);
    a.signal("CONT");
    let loser = pending
        .await
        .map_err(|e| format!("the first process's call: {e}"))?;
    o.figure("first_answer", loser.code());
    // The first process's last word may take the propagation bound to reach the store.
    tokio::time::sleep(PROPAGATION + Duration::from_millis(200)).await;
    for (who, serve) in [("first", &a), ("second", &b)] {
        let status = serve.api.status("i").await?;
        o.figure(&format!("status_{who}"), &status);
        o.check(
            status == "authorized",
            format!("the {who} process shows the instance {status}"),
        );
    }
    if let Some(winner) = winner.access_token() {
        let stored = setup.cli(&["token", "i"])?;
        let stored = String::from_utf8_lossy(&stored.stdout).trim().to_string();
        let kept = stored == winner;
        o.figure("winner_kept", kept);
        o.check(
            kept,
            "the stored token is not the one the second process refreshed",
        );
        let again = b.api.refresh("i", CALL).await;
        o.figure("refresh_after", describe(&again));
        o.check(
            again.ok(),
            format!(
                "the winner's refresh token no longer works: {}",
                describe(&again)
            ),
        );
    }
    o.figure("proxy", env.proxy.counts());
    Ok(o)
}

/// A provider that never answers: a caller of the forced refresh is answered within the
/// refresh deadline; SIGTERM while a refresh hangs exits within grace + 1 s.
async fn hanging_provider(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let mut setup = Setup::new(
        env,
        "hanging_provider",
        &[("h1", Lifetime::Long), ("h2", Lifetime::Long)],
    )?;
    let mut serve = setup.serve(0).await?;
    setup.authorize(&serve, "h1").await?;
    setup.authorize(&serve, "h2").await?;
    env.proxy.reset();
    env.proxy.set(Mode::Hang);
    let bound = REFRESH_DEADLINE + DEADLINE_SLACK;
    let answer = serve
        .api
        .refresh("h1", REFRESH_DEADLINE + Duration::from_secs(8))
        .await;
    o.figure("caller_answered", describe(&answer));
    o.check(
        answer.code() != "599" && answer.elapsed <= bound,
        format!(
            "the caller was not answered within the refresh deadline ({} s): {}",
            secs(bound),
            describe(&answer)
        ),
    );
    let seen = env.proxy.counts().refreshes;
    let api = serve.api.clone();
    let pending = tokio::spawn(async move { api.refresh("h2", Duration::from_secs(60)).await });
    let arrived = env.proxy.wait_refreshes(seen + 1, EVENT).await;
    if o.check(arrived, "the second forced refresh never reached the proxy") {
        let exit = serve
            .terminate(SHUTDOWN_GRACE + Duration::from_secs(5))
            .await;
        o.figure("exit_s", secs_or_none(exit));
        o.check(
            exit.is_some_and(|e| e <= SHUTDOWN_GRACE + EXIT_SLACK),
            format!(
                "SIGTERM during a hanging refresh: serve did not exit within grace + 1 s = {} s",
                (SHUTDOWN_GRACE + EXIT_SLACK).as_secs()
            ),
        );
    }
    pending.abort();
    env.proxy.release(Release::Drop);
    o.figure("proxy", env.proxy.counts());
    Ok(o)
}

/// Waits until the instance's access token has expired (by its `token.expires_at`).
async fn until_expired(serve: &Serve, id: &str) -> Result<(), String> {
    let instance = serve.api.instance(id).await?;
    let expires = instance
        .pointer("/token/expires_at")
        .and_then(Value::as_u64)
        .ok_or("the instance's token has no expires_at")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    // expires_at is in whole seconds, rounded down.
    let at = Duration::from_secs(expires + 1) + Duration::from_millis(200);
    if at > now {
        tokio::time::sleep(at - now).await;
    }
    Ok(())
}

/// `503 Retry-After: 3600` seen by one process; another process with the expired token
/// answers 503 at once with a Retry-After header and sends no token request.
async fn retry_after_across_processes(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let mut setup = Setup::new(
        env,
        "retry_after_across_processes",
        &[("i", Lifetime::Short)],
    )?;
    let a = setup.serve(0).await?;
    let b = setup.serve(1).await?;
    setup.authorize(&a, "i").await?;
    env.proxy.reset();
    env.proxy.set(Mode::Unavailable(3600));
    until_expired(&a, "i").await?;
    let first = a.api.token("i", CALL).await;
    o.figure("first_process", describe(&first));
    let seen = env.proxy.counts().refreshes;
    o.figure("first_process_requests", seen);
    if !o.check(seen >= 1, "the first process sent no token request") {
        return Ok(o);
    }
    let second = b.api.token("i", CALL).await;
    o.figure("second_process", describe(&second));
    o.figure(
        "retry_after",
        second.retry_after.clone().unwrap_or_else(|| "none".into()),
    );
    o.check(
        second.status.as_u16() == 503 && second.retry_after.is_some(),
        "the second process did not answer 503 with a Retry-After header",
    );
    o.check(
        second.elapsed <= AT_ONCE,
        format!("the second process took {} s", secs(second.elapsed)),
    );
    for _ in 0..4 {
        b.api.token("i", CALL).await;
        a.api.token("i", CALL).await;
    }
    let sent = env.proxy.counts().refreshes - seen;
    o.figure("token_requests_after", sent);
    o.check(
        sent == 0,
        format!("{sent} token requests were sent during the provider's Retry-After"),
    );
    Ok(o)
}

/// A provider that answers `expires_in: 0`: 20 token reads cause at most 1 refresh.
async fn expires_in_zero(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    env.proxy.set(Mode::ExpiresIn(0));
    let (_setup, serve) = one_server(env, "expires_in_zero", Lifetime::Long).await?;
    let before = env.proxy.counts().refreshes;
    let mut served = 0;
    let mut last = None;
    for _ in 0..READS {
        let answer = serve.api.token("i", CALL).await;
        if answer.ok() {
            served += 1;
        } else {
            last = Some(describe(&answer));
        }
    }
    let refreshes = env.proxy.counts().refreshes - before;
    o.figure("reads", READS);
    o.figure("served", served);
    o.figure("refreshes", refreshes);
    o.check(
        refreshes <= 1,
        format!("{READS} token reads caused {refreshes} refreshes"),
    );
    o.check(
        served == READS,
        format!(
            "{} of {READS} reads were refused (last: {})",
            READS - served,
            last.unwrap_or_default()
        ),
    );
    Ok(o)
}

/// A forced refresh while the token is inside the refresh margin sends one token request;
/// 8 concurrent forced refreshes send one more.
async fn concurrent_forced_refreshes(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (_setup, serve) = one_server(env, "concurrent_forced_refreshes", Lifetime::Short).await?;
    // The short token (a few seconds) enters the margin (half its lifetime) before it expires.
    let instance = serve.api.instance("i").await?;
    let lifetime = instance
        .pointer("/token/expires_at")
        .and_then(Value::as_u64)
        .zip(
            instance
                .pointer("/token/obtained_at")
                .and_then(Value::as_u64),
        )
        .map_or(4, |(e, b)| e.saturating_sub(b));
    tokio::time::sleep(Duration::from_millis(lifetime * 1000 * 6 / 10)).await;
    env.proxy.reset();
    let single = serve.api.refresh("i", CALL).await;
    let margin_requests = env.proxy.counts().refreshes;
    o.figure("in_margin_refresh", describe(&single));
    o.figure("in_margin_requests", margin_requests);
    o.check(
        single.ok() && margin_requests == 1,
        format!(
            "a forced refresh inside the margin sent {margin_requests} token requests ({})",
            describe(&single)
        ),
    );
    env.proxy.set(Mode::HoldAnswer(300));
    let calls: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let api = serve.api.clone();
            tokio::spawn(async move { api.refresh("i", CALL).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        if call.await.is_ok_and(|answer| answer.ok()) {
            ok += 1;
        }
    }
    let requests = env.proxy.counts().refreshes - margin_requests;
    o.figure("concurrent", CONCURRENT);
    o.figure("answered_200", ok);
    o.figure("token_requests", requests);
    o.check(
        requests == 1 && ok == CONCURRENT,
        format!("{CONCURRENT} concurrent forced refreshes sent {requests} token requests, {ok} answered 200"),
    );
    Ok(o)
}

/// Whether the instance's JSON shows the state "refresh failing" (`state`, where the API
/// says where an instance stands; `status` stays "authorized") with the provider's answer
/// (its HTTP status, 400) in `refresh_failing.message`.
fn shows_refresh_failing(instance: &Value) -> bool {
    let state = instance
        .get("state")
        .or_else(|| instance.get("status"))
        .and_then(Value::as_str);
    let message = instance
        .pointer("/refresh_failing/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    state == Some("refresh_failing") && message.contains("400")
}

/// A refresh answered by a 400 with an empty body, from an endpoint that answered before: the
/// API shows "refresh failing" with the provider's answer, and after repeated failures the
/// instance needs authorization.
async fn empty_400_refresh_failing(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (_setup, serve) = one_server(env, "empty_400_refresh_failing", Lifetime::Long).await?;
    env.proxy.reset();
    env.proxy.set(Mode::EmptyBadRequest);
    let first = serve
        .api
        .refresh("i", REFRESH_DEADLINE + Duration::from_secs(8))
        .await;
    o.figure("first_refresh", first.code());
    let instance = serve.api.instance("i").await?;
    let field = |name: &str| {
        instance
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    };
    let (status, state) = (field("status"), field("state"));
    o.figure("status_after_first", &status);
    o.figure("state_after_first", &state);
    o.check(
        !first.ok() && shows_refresh_failing(&instance),
        format!(
            "after a 400 with an empty body the instance is {status} (state {state}) and its \
             JSON shows no refresh-failing state with the provider's answer: refresh_failing={}",
            instance.get("refresh_failing").unwrap_or(&Value::Null)
        ),
    );
    // Forced refreshes keep coming; the engine's backoff decides how many reach the provider.
    let started = Instant::now();
    let mut attempts = 1;
    let mut reached = status == "needs_authorization";
    while !reached && started.elapsed() < FAILING_WINDOW {
        tokio::time::sleep(Duration::from_millis(250)).await;
        serve
            .api
            .refresh("i", REFRESH_DEADLINE + Duration::from_secs(8))
            .await;
        attempts += 1;
        reached = serve.api.status("i").await? == "needs_authorization";
    }
    let failures = env.proxy.counts().refreshes;
    o.figure("forced_refreshes", attempts);
    o.figure("token_requests", failures);
    o.figure("needs_authorization_after_s", secs(started.elapsed()));
    o.check(
        reached,
        format!(
            "still not needs_authorization after {failures} definitive failures in {} s",
            FAILING_WINDOW.as_secs()
        ),
    );
    Ok(o)
}

/// `granary key rotate` while a server runs: the server still serves and refreshes.
async fn key_rotate_while_serving(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (setup, serve) = one_server(env, "key_rotate_while_serving", Lifetime::Long).await?;
    let before = serve.api.token("i", CALL).await;
    if !o.check(
        before.ok(),
        format!("no token before: {}", describe(&before)),
    ) {
        return Ok(o);
    }
    let output = setup.cli(&["key", "rotate"])?;
    o.figure(
        "rotate",
        if output.status.success() {
            "done".to_string()
        } else {
            format!("refused({})", output.status.code().unwrap_or(-1))
        },
    );
    tokio::time::sleep(PROPAGATION + Duration::from_millis(200)).await;
    let token = serve.api.token("i", CALL).await;
    o.figure("token", describe(&token));
    o.check(
        token.ok(),
        format!("the server stopped serving: {}", describe(&token)),
    );
    let refreshed = serve.api.refresh("i", CALL).await;
    o.figure("refresh", describe(&refreshed));
    o.check(
        refreshed.ok(),
        format!(
            "the server cannot refresh after the rotation: {}",
            describe(&refreshed)
        ),
    );
    Ok(o)
}

/// A grant without a refresh token (issue 17): the instance asks for no `offline_access`,
/// so oidc-provider issues none. A forced refresh answers 409 "no-refresh-token" and sends
/// nothing; the token is served until it expires; then the instance needs authorization,
/// saying "no refresh token", still without a token request.
async fn no_refresh_token(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let mut setup = Setup::new(env, "no_refresh_token", &[("i", Lifetime::Short)])?;
    setup.cli_ok(&[
        "instance",
        "update",
        "i",
        "--scope",
        "root_readonly",
        "--scope",
        "openid",
        "--force-scopes",
    ])?;
    let serve = setup.serve(0).await?;
    setup.authorize(&serve, "i").await?;
    let instance = serve.api.instance("i").await?;
    let has_refresh = instance.pointer("/token/has_refresh_token").cloned();
    o.figure("has_refresh_token", format!("{has_refresh:?}"));
    o.check(
        has_refresh == Some(Value::Bool(false)),
        format!("the grant without offline_access holds a refresh token: {instance}"),
    );
    o.check(
        instance
            .pointer("/token/no_refresh_token")
            .and_then(Value::as_str)
            .is_some(),
        format!("the instance does not say why there is no refresh token: {instance}"),
    );
    env.proxy.reset();
    let forced = serve.api.refresh("i", CALL).await;
    o.figure("forced_refresh", describe(&forced));
    o.check(
        forced.status.as_u16() == 409
            && forced.body.get("type").and_then(Value::as_str)
                == Some("/problems/no-refresh-token"),
        format!("a forced refresh answered {}", describe(&forced)),
    );
    let read = serve.api.token("i", CALL).await;
    o.check(
        read.ok(),
        format!(
            "after the forced refresh the token read answered {}",
            describe(&read)
        ),
    );
    o.check(
        serve.api.status("i").await? == "authorized",
        "the forced refresh changed the instance's status",
    );
    until_expired(&serve, "i").await?;
    let expired = serve.api.token("i", CALL).await;
    let detail = expired
        .body
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    o.figure("after_expiry", describe(&expired));
    o.check(
        expired.status.as_u16() == 409 && detail.contains("no refresh token"),
        format!(
            "after expiry the token read answered {}",
            describe(&expired)
        ),
    );
    let status = serve.api.status("i").await?;
    o.check(
        status == "needs_authorization",
        format!("after expiry the instance is {status}"),
    );
    let requests = env.proxy.counts().refreshes;
    o.figure("token_requests", requests);
    o.check(
        requests == 0,
        format!("{requests} refresh requests were sent for a grant without a refresh token"),
    );
    Ok(o)
}

/// The hex SHA-256 of `text`, by `sha256sum` (the e2e crate keeps few dependencies).
fn sha256_hex(text: &str) -> Result<String, String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("sha256sum has no stdin")?
        .write_all(text.as_bytes())
        .map_err(|e| format!("sha256sum: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| "sha256sum printed nothing".to_string())
}

/// A provider that states no expiry (the proxy answers `expires_in: 0`, which granary
/// reads as unknown): the token is served as is; 100 callers report it refused at once
/// (`POST .../token/rejected` with its SHA-256): 1 refresh, all get the new token; a
/// late report of the old token sends nothing.
async fn unknown_expiry_rejected_by_100_callers(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    env.proxy.set(Mode::ExpiresIn(0));
    let (_setup, serve) = one_server(
        env,
        "unknown_expiry_rejected_by_100_callers",
        Lifetime::Long,
    )
    .await?;
    let first = serve.api.token("i", CALL).await;
    let stale = first
        .access_token()
        .ok_or_else(|| format!("the first token read answered {}", describe(&first)))?
        .to_string();
    o.check(
        first.body.get("expires_at").is_some_and(Value::is_null),
        format!("the expiry is not unknown: {}", first.body),
    );
    let digest = sha256_hex(&stale)?;
    let before = env.proxy.counts().refreshes;
    let path = "/instances/i/token/rejected".to_string();
    let body = json!({ "sha256": digest });
    let calls: Vec<_> = (0..REPORTERS)
        .map(|_| {
            let api = serve.api.clone();
            let path = path.clone();
            let body = body.clone();
            tokio::spawn(async move {
                api.call_json(reqwest::Method::POST, &path, &body, CALL)
                    .await
            })
        })
        .collect();
    let mut fresh = 0;
    let mut last = None;
    for call in calls {
        match call.await {
            Ok(answer) if answer.ok() && answer.access_token().is_some_and(|t| t != stale) => {
                fresh += 1;
            }
            Ok(answer) => last = Some(describe(&answer)),
            Err(error) => last = Some(error.to_string()),
        }
    }
    let refreshes = env.proxy.counts().refreshes - before;
    o.figure("reporters", REPORTERS);
    o.figure("answered_new_token", fresh);
    o.figure("refreshes", refreshes);
    o.check(
        refreshes == 1,
        format!("{REPORTERS} reports of one refused token caused {refreshes} refreshes"),
    );
    o.check(
        fresh == REPORTERS,
        format!(
            "{} of {REPORTERS} reporters did not get a new token (last: {})",
            REPORTERS - fresh,
            last.unwrap_or_default()
        ),
    );
    let late = serve
        .api
        .call_json(reqwest::Method::POST, &path, &body, CALL)
        .await;
    let after = env.proxy.counts().refreshes - before;
    o.check(
        late.ok() && after == 1,
        format!(
            "a late report of the replaced token answered {} and made {} refreshes in all",
            describe(&late),
            after
        ),
    );
    Ok(o)
}
