//! The token lifecycle at the boundaries of a process: shutdown, a caller that goes away, a
//! hanging provider, a dead lease holder, backoff, changes and key rotation seen by another
//! process, a lost race. Each engine over the shared store stands for one process.

mod support;

use std::time::Duration;

use granary_flow::engine::{
    AccessToken, Engine, EngineError, EngineResult, Event, Field, InstanceUpdate, Keyring,
    MasterKey,
};
use granary_store::{InstanceStatus, Store};
use secrecy::{SecretBox, SecretString};
use serde_json::json;
use support::{KEY, World, eventually, keyring, token_json};
use tokio::task::JoinHandle;
use wiremock::ResponseTemplate;

const HOUR: Duration = Duration::from_secs(3600);

/// A world with engine "a" (its builder changed by `tweak`) that authorized `inst` with
/// `access-1`, `refresh-1` and one hour.
async fn authorized(
    tweak: impl FnOnce(granary_flow::engine::EngineBuilder) -> granary_flow::engine::EngineBuilder,
) -> (World, Engine) {
    let world = World::new().await;
    let a = world.engine("a", tweak);
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    (world, a)
}

/// Like [`authorized`], with engine "a" working through a [`support::FeedFault`] wrapper of
/// the shared store (which counts and can hold what "a" reads).
async fn authorized_watched() -> (World, std::sync::Arc<support::FeedFault>, Engine) {
    let world = World::new().await;
    let watched = support::FeedFault::new(world.store.clone(), support::Feed::Normal);
    let a = world.engine_on(watched.clone(), "a", |b| b);
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    (world, watched, a)
}

fn invalid_grant() -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}))
}

/// A caller of `engine.access_token("inst")` in a task of its own.
fn spawn_token(engine: &Engine) -> JoinHandle<EngineResult<AccessToken>> {
    let engine = engine.clone();
    tokio::spawn(async move { engine.access_token("inst").await })
}

/// `from` stalled: `to` takes its lease over (as a process does once it lapsed).
async fn take_over_lease(world: &World, from: &str, to: &str, now: granary_store::Timestamp) {
    assert!(world.store.release_lease("inst", from).await.unwrap());
    let taken = world
        .store
        .try_acquire_lease("inst", to, now, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(taken);
}

fn refreshed(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(token_json(access, Some(refresh), Some(3600)))
}

#[tokio::test]
async fn shutdown_lets_a_refresh_in_flight_store_its_answer() {
    let (world, a) = authorized(|b| b).await;
    let mut arrivals = world
        .on_refresh(refreshed("access-2", "refresh-2").set_delay(Duration::from_millis(300)))
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    let caller = spawn_token(&a);
    arrivals.recv().await.unwrap();
    let report = a.shutdown(Duration::from_secs(10)).await;
    assert!(report.finished_in_grace, "{report:?}");
    assert_eq!(caller.await.unwrap().unwrap().secret(), "access-2");
    let record = world.store.get_token("inst").await.unwrap().unwrap();
    let stored = keyring(&KEY)
        .open_string(
            "inst",
            Field::RefreshToken,
            record.refresh_token.as_ref().unwrap(),
        )
        .unwrap();
    use secrecy::ExposeSecret as _;
    assert_eq!(
        stored.expose_secret(),
        "refresh-2",
        "the rotated refresh token is stored"
    );
    assert!(
        world.store.get_lease("inst").await.unwrap().is_none(),
        "the lease is released"
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_does_not_cut_the_refresh_short() {
    let (world, a) = authorized(|b| b).await;
    let mut events = a.subscribe();
    let mut arrivals = world
        .on_refresh(refreshed("access-2", "refresh-2").set_delay(Duration::from_millis(200)))
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    let caller = spawn_token(&a);
    arrivals.recv().await.unwrap();
    caller.abort();
    let refreshed = async {
        loop {
            if let Event::Refreshed { rotated, .. } = events.recv().await.unwrap() {
                break rotated;
            }
        }
    };
    let rotated = tokio::time::timeout(Duration::from_secs(10), refreshed)
        .await
        .expect("the refresh went on after its caller went away");
    assert!(rotated);
    let b = world.engine("b", |b| b);
    assert_eq!(b.access_token("inst").await.unwrap().secret(), "access-2");
    assert_eq!(world.refreshes().await, 1);
    eventually("the lease is released", || async {
        world.store.get_lease("inst").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn shutdown_cuts_a_hanging_refresh_at_the_end_of_the_grace_period() {
    let (world, a) = authorized(|b| b).await;
    let mut arrivals = world
        .on_refresh(refreshed("access-2", "refresh-2").set_delay(Duration::from_secs(60)))
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    let caller = spawn_token(&a);
    arrivals.recv().await.unwrap();
    let report = a.shutdown(Duration::from_millis(200)).await;
    assert!(!report.finished_in_grace);
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(
        caller.await.unwrap().unwrap().secret(),
        "access-1",
        "the still valid token is served when its refresh is cut short"
    );
    assert!(
        world.store.get_lease("inst").await.unwrap().is_none(),
        "the lease is released"
    );
}

#[tokio::test]
async fn one_deadline_per_refresh_then_a_backoff_without_requests() {
    let (world, a) = authorized(|b| b.refresh_deadline(Duration::from_millis(300))).await;
    world
        .on_refresh(refreshed("access-2", "refresh-2").set_delay(Duration::from_secs(30)))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    let error = a.access_token("inst").await.unwrap_err();
    assert!(error.to_string().contains("refresh deadline"), "{error}");
    for _ in 0..10 {
        let error = a.access_token("inst").await.unwrap_err();
        assert!(matches!(error, EngineError::BackingOff { .. }), "{error}");
    }
    assert_eq!(world.refreshes().await, 1);
}

#[tokio::test]
async fn a_dead_holders_lease_lapses_and_another_process_takes_over() {
    let (world, a) = authorized(|b| b).await;
    world.on_refresh(refreshed("access-2", "refresh-2")).await;
    world.advance(HOUR + Duration::from_secs(1));
    // A process died holding the lease.
    let now = a.now();
    assert!(
        world
            .store
            .try_acquire_lease("inst", "dead", now, granary_flow::engine::DEFAULT_LEASE_TTL)
            .await
            .unwrap()
    );
    let watched = support::FeedFault::new(world.store.clone(), support::Feed::Normal);
    let b = world.engine_on(watched.clone(), "b", |b| b);
    let caller = spawn_token(&b);
    // b is waiting: it polls the dead holder's lease.
    eventually("the caller waits for the dead holder", || async {
        watched.lease_reads() > 0
    })
    .await;
    assert!(!caller.is_finished());
    world.advance(granary_flow::engine::DEFAULT_LEASE_TTL);
    // Taken over at b's next poll, long before b would give up (its deadline is 30 s).
    let served = tokio::time::timeout(Duration::from_secs(10), caller)
        .await
        .expect("the waiter takes the lapsed lease over instead of waiting on");
    assert_eq!(served.unwrap().unwrap().secret(), "access-2");
    assert_eq!(world.refreshes().await, 1);
}

#[tokio::test]
async fn a_backoff_recorded_by_one_process_holds_for_the_others() {
    let (world, a) = authorized(|b| b).await;
    world
        .on_refresh(ResponseTemplate::new(503).insert_header("Retry-After", "3600"))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    let error = a.access_token("inst").await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    let b = world.engine("b", |b| b);
    for _ in 0..10 {
        match b.access_token("inst").await {
            Err(EngineError::BackingOff { retry_after, .. }) => {
                assert!(retry_after > Duration::from_secs(3500), "{retry_after:?}")
            }
            other => panic!("expected a backoff, got {other:?}"),
        }
    }
    let error = b.refresh_now("inst").await.unwrap_err();
    assert!(matches!(error, EngineError::BackingOff { .. }), "{error}");
    assert_eq!(world.refreshes().await, 1, "no request during the backoff");
}

#[tokio::test]
async fn a_lifetime_of_zero_is_an_unknown_expiry_not_a_refresh_per_read() {
    let (world, a) = authorized(|b| b).await;
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "access-2", "token_type": "Bearer", "expires_in": 0
        })))
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    for _ in 0..20 {
        assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-2");
    }
    assert_eq!(world.refreshes().await, 1);
    let record = world.store.get_token("inst").await.unwrap().unwrap();
    assert_eq!(record.expires_at, None);
}

#[tokio::test]
async fn a_disable_or_disconnect_in_one_process_is_seen_by_another() {
    let (world, a) = authorized(|b| b).await;
    let b = world.engine("b", |b| b);
    assert_eq!(b.access_token("inst").await.unwrap().secret(), "access-1");
    let disable = InstanceUpdate {
        enabled: Some(false),
        ..InstanceUpdate::default()
    };
    a.update_instance("inst", disable).await.unwrap();
    eventually("b refuses the disabled instance", || async {
        matches!(
            b.access_token("inst").await,
            Err(EngineError::Disabled { .. })
        )
    })
    .await;
    let enable = InstanceUpdate {
        enabled: Some(true),
        ..InstanceUpdate::default()
    };
    a.update_instance("inst", enable).await.unwrap();
    eventually("b serves the enabled instance", || async {
        b.access_token("inst").await.is_ok()
    })
    .await;
    a.disconnect("inst").await.unwrap();
    eventually("b refuses the disconnected instance", || async {
        matches!(
            b.access_token("inst").await,
            Err(EngineError::NotAuthorized { .. })
        )
    })
    .await;
}

#[tokio::test]
async fn a_process_that_lost_the_race_keeps_the_winners_token() {
    let (world, a) = authorized(|b| b).await;
    let mut gate = world.gated_refresh(invalid_grant()).await;
    world.advance(HOUR + Duration::from_secs(1));
    let caller = spawn_token(&a);
    gate.wait_arrived("the refresh").await;
    // Meanwhile `a` stalled past its lease: "b" took it over, refreshed, and stored.
    let store = &world.store;
    let now = a.now();
    take_over_lease(&world, "a", "b", now).await;
    let mut newer = store.get_token("inst").await.unwrap().unwrap();
    let ring = keyring(&KEY);
    newer.access_token = ring
        .seal_str("inst", Field::AccessToken, &SecretString::from("access-b"))
        .unwrap();
    newer.refresh_token = Some(
        ring.seal_str(
            "inst",
            Field::RefreshToken,
            &SecretString::from("refresh-b"),
        )
        .unwrap(),
    );
    newer.expires_at = Some(now.saturating_add(HOUR));
    newer.obtained_at = now;
    store
        .put_token_fenced("inst", &newer, newer.version, "b", now)
        .await
        .unwrap();
    assert!(store.release_lease("inst", "b").await.unwrap());
    // The provider refuses `a`'s refresh token: `b` rotated it.
    gate.release();
    assert_eq!(caller.await.unwrap().unwrap().secret(), "access-b");
    let status = a.instance("inst").await.unwrap().status;
    assert_eq!(status, InstanceStatus::Authorized, "no needs-authorization");
}

#[tokio::test]
async fn concurrent_forced_refreshes_in_two_processes_send_one_request() {
    let (world, a) = authorized(|b| b).await;
    let mut gate = world
        .gated_refresh(refreshed("access-2", "refresh-2"))
        .await;
    let b = world.engine("b", |b| b);
    let mut callers = Vec::new();
    for engine in [&a, &b, &a, &b, &a, &b] {
        let engine = engine.clone();
        callers.push(tokio::spawn(
            async move { engine.refresh_now("inst").await },
        ));
    }
    gate.wait_arrived("the refresh").await;
    gate.release();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().secret(), "access-2");
    }
    assert_eq!(world.refreshes().await, 1);
}

#[tokio::test]
async fn refusals_without_an_oauth_error_fail_visibly_then_need_authorization() {
    let (world, a) = authorized(|b| b).await;
    world.on_refresh(ResponseTemplate::new(400)).await;
    world.advance(HOUR + Duration::from_secs(1));
    for failures in 1..granary_flow::engine::DEFINITIVE_FAILURES_BEFORE_REAUTHORIZATION {
        let error = a.access_token("inst").await.unwrap_err();
        assert!(
            matches!(error, EngineError::RefreshFailing { .. }),
            "{error}"
        );
        assert!(!error.to_string().contains("check that the URL"), "{error}");
        let report = a.status("inst").await.unwrap();
        assert_eq!(report.instance.status, InstanceStatus::Authorized);
        let failure = report
            .token
            .unwrap()
            .refresh_failure()
            .expect("refresh failing");
        assert_eq!(failure.failures, failures);
        assert!(failure.message.contains("HTTP 400"), "{}", failure.message);
        // The next attempt waits for the backoff.
        world.advance(granary_flow::engine::BACKOFF_CAP);
    }
    let error = a.access_token("inst").await.unwrap_err();
    assert!(
        matches!(error, EngineError::NeedsAuthorization { .. }),
        "{error}"
    );
    assert_eq!(
        a.instance("inst").await.unwrap().status,
        InstanceStatus::NeedsAuthorization
    );
}

#[tokio::test]
async fn a_key_rotated_by_another_process_is_loaded_again() {
    let world = World::new().await;
    const NEW_KEY: [u8; 32] = [9; 32];
    let rotated = || {
        Keyring::new(
            MasterKey::from_bytes(&SecretBox::new(Box::new(NEW_KEY))),
            vec![MasterKey::from_bytes(&SecretBox::new(Box::new(KEY)))],
        )
    };
    let reloads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = reloads.clone();
    let a = world.engine("a", move |b| {
        b.key_reloader(std::sync::Arc::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(rotated()))
        }))
    });
    let stale = world.engine("stale", |b| b);
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-1");
    let rotator = world.engine("rotator", |b| b);
    rotator.replace_keyring(rotated());
    let report = rotator.reseal_all().await.unwrap();
    assert_eq!(report.token_records, 1);
    eventually(
        "a opens the re-sealed token after loading the key again",
        || async {
            let served = a
                .access_token("inst")
                .await
                .is_ok_and(|t| t.secret() == "access-1");
            served && reloads.load(std::sync::atomic::Ordering::SeqCst) > 0
        },
    )
    .await;
    let error = stale.access_token("inst").await.unwrap_err();
    assert!(
        matches!(error, EngineError::Seal(_)),
        "without a reloader: {error}"
    );
}

#[tokio::test]
async fn shutdown_lets_a_background_refresh_store_its_answer() {
    let (world, a) = authorized(|b| b).await;
    let mut arrivals = world
        .on_refresh(refreshed("access-2", "refresh-2").set_delay(Duration::from_millis(300)))
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    let refresher = a.spawn_refresher(granary_flow::engine::RefresherConfig {
        jitter: Duration::ZERO,
        ..Default::default()
    });
    arrivals.recv().await.unwrap();
    let report = refresher.shutdown(Duration::from_secs(10)).await;
    assert!(report.finished_in_grace, "{report:?}");
    let record = world.store.get_token("inst").await.unwrap().unwrap();
    assert_eq!(
        record.version, 2,
        "the background refresh stored its answer"
    );
    assert!(
        world.store.get_lease("inst").await.unwrap().is_none(),
        "the lease is released"
    );
}

#[tokio::test]
async fn the_lease_is_renewed_while_its_refresh_runs() {
    let world = World::new().await;
    let ttl = Duration::from_millis(300);
    let a = world.engine("a", |b| b.lease_ttl(ttl));
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    let mut gate = world
        .gated_refresh(refreshed("access-2", "refresh-2"))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    let caller = spawn_token(&a);
    gate.wait_arrived("the refresh").await;
    // Long past the lease's lifetime on the engine's clock: only a heartbeat keeps it.
    world.advance(ttl * 10);
    eventually("the holder renews its lease", || async {
        let lease = world.store.get_lease("inst").await.unwrap();
        lease.is_some_and(|l| l.holder == "a" && l.expires > a.now())
    })
    .await;
    gate.release();
    assert_eq!(caller.await.unwrap().unwrap().secret(), "access-2");
}

#[tokio::test]
async fn a_refusal_seen_after_losing_the_lease_leaves_the_verdict_to_the_holder() {
    let (world, a) = authorized(|b| {
        b.refresh_deadline(Duration::from_millis(200))
            .lease_ttl(Duration::from_millis(300))
    })
    .await;
    let mut gate = world.gated_refresh(invalid_grant()).await;
    world.advance(HOUR + Duration::from_secs(1));
    let caller = spawn_token(&a);
    gate.wait_arrived("the refresh").await;
    // `a` stalled: "b" holds the lease now and is still refreshing.
    take_over_lease(&world, "a", "b", a.now()).await;
    gate.release();
    let error = caller.await.unwrap().unwrap_err();
    assert!(
        matches!(error, EngineError::RefreshTimedOut { .. }),
        "{error}"
    );
    assert_eq!(
        a.instance("inst").await.unwrap().status,
        InstanceStatus::Authorized,
        "a process without the lease does not declare the grant dead"
    );
}

/// Engine "b" over a feed that hides what "a" does: b serves `access-1` from memory and
/// has not seen a's Disable yet.
async fn disabled_unseen() -> (World, Engine, std::sync::Arc<support::FeedFault>) {
    let (world, a) = authorized(|b| b).await;
    let feed = support::FeedFault::new(world.store.clone(), support::Feed::Hidden);
    let b = world.engine_on(feed.clone(), "b", |b| b);
    assert_eq!(b.access_token("inst").await.unwrap().secret(), "access-1");
    let disable = InstanceUpdate {
        enabled: Some(false),
        ..InstanceUpdate::default()
    };
    a.update_instance("inst", disable).await.unwrap();
    assert_eq!(
        b.access_token("inst").await.unwrap().secret(),
        "access-1",
        "the hidden feed keeps b from seeing the change"
    );
    (world, b, feed)
}

#[tokio::test]
async fn a_stretch_of_the_feed_missed_drops_everything_held() {
    let (_world, b, feed) = disabled_unseen().await;
    feed.set(support::Feed::Missed);
    eventually("b refuses once it knows it missed changes", || async {
        matches!(
            b.access_token("inst").await,
            Err(EngineError::Disabled { .. })
        )
    })
    .await;
}

#[tokio::test]
async fn a_feed_that_cannot_be_read_drops_everything_held() {
    let (_world, b, feed) = disabled_unseen().await;
    feed.set(support::Feed::Failing);
    eventually("b reads the store while its feed fails", || async {
        matches!(
            b.access_token("inst").await,
            Err(EngineError::Disabled { .. })
        )
    })
    .await;
    assert!(!b.is_stopping());
    b.shutdown(Duration::from_secs(1)).await;
    assert!(b.is_stopping());
}

#[tokio::test]
async fn refreshers_of_two_processes_divide_the_due_work_through_the_lease() {
    let (world, a) = authorized(|b| b).await;
    let b = world.engine("b", |b| b);
    let config = granary_flow::engine::RefresherConfig {
        jitter: Duration::ZERO,
        ..Default::default()
    };
    let mut gate = world
        .gated_refresh(refreshed("access-2", "refresh-2"))
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    let round_a = {
        let a = a.clone();
        tokio::spawn(async move { a.run_refresh_round(&config).await })
    };
    gate.wait_arrived("a's refresh").await;
    // While a holds the lease, b's round skips the instance instead of waiting for it.
    let round_b = tokio::time::timeout(Duration::from_secs(10), b.run_refresh_round(&config))
        .await
        .expect("b's round waits for a's refresh instead of leaving it to a");
    assert_eq!(
        round_b,
        granary_flow::engine::RefreshRound {
            due: 1,
            claimed_elsewhere: 1,
            ..Default::default()
        }
    );
    gate.release();
    let round_a = round_a.await.unwrap();
    assert_eq!((round_a.due, round_a.refreshed), (1, 1), "{round_a:?}");
    assert_eq!(world.refreshes().await, 1);
    // Done: nothing is due for either any more.
    assert_eq!(b.run_refresh_round(&config).await.due, 0);
}

/// Records when each refresh arrives, and answers it after `delay`.
struct Arrivals {
    at: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    response: ResponseTemplate,
}

impl wiremock::Respond for Arrivals {
    fn respond(&self, _request: &wiremock::Request) -> ResponseTemplate {
        self.at.lock().unwrap().push(std::time::Instant::now());
        self.response.clone()
    }
}

#[tokio::test]
async fn the_refresher_sends_one_provider_host_one_refresh_at_a_time_when_told_so() {
    let world = World::new().await;
    let a = world.engine("a", |b| b);
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    for id in ["inst-2", "inst-3"] {
        world.add_instance(&a, id).await;
        world
            .authorize_instance(&a, id, "access-1", Some("refresh-1"), Some(3600))
            .await;
    }
    let answer_after = Duration::from_millis(200);
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=refresh_token",
        ))
        .respond_with(Arrivals {
            at: arrivals.clone(),
            response: refreshed("access-2", "refresh-2").set_delay(answer_after),
        })
        .mount(&world.server)
        .await;
    world.advance(HOUR - Duration::from_secs(10));
    let round = a
        .run_refresh_round(&granary_flow::engine::RefresherConfig {
            concurrency: 4,
            concurrency_per_host: 1,
            jitter: Duration::ZERO,
            ..Default::default()
        })
        .await;
    assert_eq!((round.due, round.refreshed), (3, 3), "{round:?}");
    let mut at = arrivals.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 3);
    // One at a time: each refresh reached the provider only after the one before it had its
    // answer, which the provider gave `answer_after` after it arrived.
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= answer_after,
            "two refreshes were at the provider at once: {:?} apart",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn the_lease_is_released_before_the_caller_has_its_token() {
    let (world, a) = authorized(|b| b).await;
    world.on_refresh(refreshed("access-2", "refresh-2")).await;
    world.advance(HOUR + Duration::from_secs(1));
    assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-2");
    assert!(
        world.store.get_lease("inst").await.unwrap().is_none(),
        "the lease is still held when the refreshed token is handed out"
    );
}

#[tokio::test]
async fn a_refresh_that_panics_still_releases_its_lease() {
    let (world, fault, a) = authorized_watched().await;
    world.on_refresh(refreshed("access-2", "refresh-2")).await;
    fault.panic_on_fenced_write();
    world.advance(HOUR + Duration::from_secs(1));
    assert!(a.access_token("inst").await.is_err());
    eventually("the panicked refresh's lease is released", || async {
        world.store.get_lease("inst").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn an_answer_that_arrives_after_the_lease_went_elsewhere_is_kept_when_no_newer_token_was() {
    let (world, a) = authorized(|b| b).await;
    let mut gate = world
        .gated_refresh(refreshed("access-2", "refresh-2"))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    let caller = spawn_token(&a);
    gate.wait_arrived("a's refresh").await;
    // a stalled and "b" took the lease, but b has stored nothing (yet): a's answer may hold
    // the only live (rotated) refresh token, so it is stored by its version alone.
    take_over_lease(&world, "a", "b", a.now()).await;
    gate.release();
    let served = tokio::time::timeout(Duration::from_secs(10), caller)
        .await
        .expect("a's refresh ends")
        .unwrap()
        .unwrap();
    assert_eq!(served.secret(), "access-2");
    let record = world.store.get_token("inst").await.unwrap().unwrap();
    assert_eq!(record.version, 2, "a's answer is stored");
    let c = world.engine("c", |b| b);
    assert_eq!(c.access_token("inst").await.unwrap().secret(), "access-2");
}

#[tokio::test]
async fn a_waiter_gives_the_holder_its_whole_deadline_before_giving_up() {
    let (world, a) = authorized(|b| b).await;
    // The waiter's own deadline and lease lifetime decide when it gives up: after the
    // deadline a holder has, plus one lease lifetime.
    let deadline = Duration::from_millis(600);
    let b = world.engine("b", |b| {
        b.refresh_deadline(deadline)
            .lease_ttl(Duration::from_millis(300))
    });
    let mut gate = world
        .gated_refresh(refreshed("access-2", "refresh-2"))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    let holder = spawn_token(&a);
    gate.wait_arrived("a's refresh").await;
    let started = std::time::Instant::now();
    let waited = b.access_token("inst").await;
    assert!(
        matches!(waited, Err(EngineError::RefreshTimedOut { .. })),
        "{waited:?}"
    );
    assert!(
        started.elapsed() >= deadline,
        "b gave up after {:?}, before the {deadline:?} a holder has",
        started.elapsed()
    );
    gate.release();
    assert_eq!(holder.await.unwrap().unwrap().secret(), "access-2");
}

#[tokio::test]
async fn a_reseal_reports_what_it_sealed_again() {
    let world = World::new().await;
    let a = world.engine("a", |b| b);
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    for id in ["inst-2", "inst-3"] {
        let mut new = granary_flow::engine::NewInstance::new(id, "stub", "client-1");
        new.client_secret = Some(SecretString::from("client-secret-value"));
        new.extra_token_params = vec![("audience".into(), "api".into())];
        new.extra_token_headers = vec![("x-tenant".into(), "t1".into())];
        a.create_instance(new).await.unwrap();
    }
    a.replace_keyring(Keyring::new(
        MasterKey::from_bytes(&SecretBox::new(Box::new([0x5a; 32]))),
        vec![MasterKey::from_bytes(&SecretBox::new(Box::new(KEY)))],
    ));
    let report = a.reseal_all().await.unwrap();
    assert_eq!(
        (
            report.instances,
            report.client_secrets,
            report.extra_values,
            report.token_records
        ),
        (3, 3, 2, 1),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_token_carries_its_type_and_lifetimes_beyond_ten_years_are_unknown() {
    assert_eq!(
        granary_flow::engine::MAX_TOKEN_LIFETIME,
        Duration::from_secs(316_224_000),
        "ten years of 366 days"
    );
    let (_world, a) = authorized(|b| b).await;
    assert_eq!(a.access_token("inst").await.unwrap().token_type(), "Bearer");
}

#[tokio::test]
async fn a_token_handle_says_when_it_expires_and_which_token_it_is() {
    let (world, a) = authorized(|b| b).await;
    let first = a.access_token("inst").await.unwrap();
    let again = a.access_token("inst").await.unwrap();
    assert!(first.same_token(&again));
    assert_eq!(
        first.expires_at(),
        Some(a.now().saturating_add(HOUR)),
        "obtained now (the clock has not moved), for an hour"
    );
    let shown = format!("{first:?}");
    assert!(
        shown.contains("[redacted]") && shown.contains("Bearer") && !shown.contains("access-1"),
        "{shown}"
    );
    world.on_refresh(refreshed("access-2", "refresh-2")).await;
    let refreshed = a.refresh_now("inst").await.unwrap();
    assert!(!refreshed.same_token(&first));
}

#[tokio::test]
async fn a_token_is_refreshed_from_the_very_moment_its_margin_begins() {
    let (world, a) = authorized(|b| b).await;
    world.on_refresh(refreshed("access-2", "refresh-2")).await;
    // Refresh time: expiry minus the default 60 s margin.
    world.advance(HOUR - Duration::from_secs(61));
    assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-1");
    world.advance(Duration::from_secs(1));
    assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-2");
    assert_eq!(world.refreshes().await, 1);
}

#[tokio::test]
async fn a_backoff_seen_here_ends_when_another_process_authorizes_again() {
    let (world, a) = authorized(|b| b).await;
    world
        .on_refresh(ResponseTemplate::new(503).set_body_string("down"))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    assert!(a.access_token("inst").await.is_err());
    let error = a.access_token("inst").await.unwrap_err();
    assert!(
        matches!(error, EngineError::BackingOff { .. }),
        "this process now answers from its own memory of the backoff: {error}"
    );
    let b = world.engine("b", |b| b);
    world
        .authorize(&b, "access-9", Some("refresh-9"), Some(3600))
        .await;
    eventually("a serves the token b's authorization stored", || async {
        a.access_token("inst")
            .await
            .is_ok_and(|t| t.secret() == "access-9")
    })
    .await;
}

#[tokio::test]
async fn the_hot_path_answers_from_memory_without_reading_the_store() {
    let (_world, watched, a) = authorized_watched().await;
    assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-1");
    let reads = watched.token_reads();
    for _ in 0..100 {
        assert_eq!(a.access_token("inst").await.unwrap().secret(), "access-1");
    }
    assert_eq!(watched.token_reads(), reads, "the hot path read the store");
}

#[tokio::test]
async fn a_token_without_a_refresh_token_is_not_served_at_its_expiry() {
    let (world, a) = authorized(|b| b).await;
    let b = world.engine("b", |b| b);
    world.authorize(&b, "access-9", None, Some(3600)).await;
    world.advance(HOUR - Duration::from_secs(1));
    assert_eq!(b.access_token("inst").await.unwrap().secret(), "access-9");
    world.advance(Duration::from_secs(1));
    assert!(
        b.access_token("inst").await.is_err(),
        "served at the very moment it expired"
    );
    drop(a);
}

#[tokio::test]
async fn what_a_slow_path_read_before_another_process_changed_the_instance_is_not_kept() {
    let world = World::new().await;
    let a = world.engine("a", |b| b);
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    let watched = support::FeedFault::new(world.store.clone(), support::Feed::Normal);
    let c = world.engine_on(watched.clone(), "c", |b| b);
    let (mut arrived, release) = watched.hold_next_token_read();
    let reader = spawn_token(&c);
    (&mut arrived).await.unwrap();
    // c has read access-1; now another process authorizes again, and c's watcher sees it.
    world
        .authorize(&a, "access-9", Some("refresh-9"), Some(3600))
        .await;
    let seen_from = watched.feed_reads();
    eventually("c's watcher read the feed after the change", || async {
        watched.feed_reads() >= seen_from + 2
    })
    .await;
    release.send(()).unwrap();
    assert_eq!(
        reader.await.unwrap().unwrap().secret(),
        "access-1",
        "the caller that started before the change gets what it read, once"
    );
    assert_eq!(
        c.access_token("inst").await.unwrap().secret(),
        "access-9",
        "what was read before the change is not kept"
    );
}

#[tokio::test]
async fn during_a_backoff_callers_read_neither_the_store_nor_the_provider_until_it_ends() {
    let (world, watched, a) = authorized_watched().await;
    world
        .on_refresh(ResponseTemplate::new(503).set_body_string("down"))
        .await;
    world.advance(HOUR + Duration::from_secs(1));
    assert!(a.access_token("inst").await.is_err());
    assert_eq!(world.refreshes().await, 1);
    assert_eq!(
        a.flight_entries(),
        1,
        "the refresh left its flight (and backoff)"
    );
    let reads = watched.token_reads();
    for _ in 0..10 {
        let error = a.access_token("inst").await.unwrap_err();
        assert!(matches!(error, EngineError::BackingOff { .. }), "{error}");
    }
    assert_eq!(watched.token_reads(), reads, "a caller read the store");
    assert_eq!(world.refreshes().await, 1, "a caller asked the provider");
    // The first backoff lasts BACKOFF_BASE: at its very end the next caller tries again.
    world.advance(granary_flow::engine::BACKOFF_BASE);
    assert!(a.access_token("inst").await.is_err());
    assert_eq!(
        world.refreshes().await,
        2,
        "no new attempt when the backoff ended"
    );
}

#[tokio::test]
async fn a_lifetime_of_more_than_ten_years_is_an_unknown_expiry() {
    let world = World::new().await;
    let a = world.engine("a", |b| b);
    let max = granary_flow::engine::MAX_TOKEN_LIFETIME.as_secs();
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(max))
        .await;
    assert_eq!(
        a.access_token("inst").await.unwrap().expires_at(),
        Some(
            a.now()
                .saturating_add(granary_flow::engine::MAX_TOKEN_LIFETIME)
        ),
        "ten years is taken as given"
    );
    world
        .authorize(&a, "access-2", Some("refresh-2"), Some(2 * max))
        .await;
    let token = a.access_token("inst").await.unwrap();
    assert_eq!(token.secret(), "access-2");
    assert_eq!(token.expires_at(), None, "twenty years is not");
}

#[tokio::test]
async fn the_token_cache_keeps_what_callers_use_within_its_capacity() {
    let world = World::new().await;
    let a = world.engine("a", |b| b.token_cache_capacity(2));
    world
        .authorize(&a, "access-1", Some("refresh-1"), Some(3600))
        .await;
    for id in ["inst-2", "inst-3", "inst-4"] {
        world.add_instance(&a, id).await;
        world
            .authorize_instance(
                &a,
                id,
                &format!("access-{id}"),
                Some("refresh-1"),
                Some(3600),
            )
            .await;
        assert!(a.cached_tokens() <= 2, "{} tokens held", a.cached_tokens());
    }
    // Every instance is still served (an evicted token is read from the store again), and
    // the cache never holds more than its capacity.
    for round in 0..3 {
        for id in ["inst", "inst-2", "inst-3", "inst-4"] {
            let expected = if id == "inst" {
                "access-1".to_string()
            } else {
                format!("access-{id}")
            };
            assert_eq!(
                a.access_token(id).await.unwrap().secret(),
                expected,
                "{round}"
            );
            assert!(a.cached_tokens() <= 2, "{} tokens held", a.cached_tokens());
        }
    }
    // A token in use stays while others come and go.
    let watched = support::FeedFault::new(world.store.clone(), support::Feed::Normal);
    let b = world.engine_on(watched.clone(), "b", |b| b.token_cache_capacity(2));
    b.access_token("inst").await.unwrap();
    for id in ["inst-2", "inst-3", "inst-4"] {
        b.access_token("inst").await.unwrap();
        b.access_token(id).await.unwrap();
    }
    let reads = watched.token_reads();
    b.access_token("inst").await.unwrap();
    assert_eq!(watched.token_reads(), reads, "the token in use was evicted");
}

/// A round asks the store for the tokens due instead of reading every token: with 20 other
/// authorized instances whose tokens are fresh, it reads the due one's token, not theirs.
#[tokio::test]
async fn a_refresher_round_reads_the_tokens_due_not_every_token() {
    let (world, watched, a) = authorized_watched().await;
    for n in 0..20 {
        let id = format!("fresh-{n}");
        world.add_instance(&a, &id).await;
        world
            .authorize_instance(&a, &id, "access-f", Some("refresh-f"), Some(10 * 3600))
            .await;
    }
    let _arrivals = world.on_refresh(refreshed("access-2", "refresh-2")).await;
    world.advance(HOUR - Duration::from_secs(10));
    let config = granary_flow::engine::RefresherConfig {
        jitter: Duration::ZERO,
        ..Default::default()
    };
    let before = watched.token_reads();
    let round = a.run_refresh_round(&config).await;
    let reads = watched.token_reads() - before;
    assert_eq!((round.due, round.refreshed), (1, 1), "{round:?}");
    assert_eq!(world.refreshes().await, 1);
    assert!(
        reads < 10,
        "the round read {reads} token records for 1 due among 21 authorized instances"
    );
}
