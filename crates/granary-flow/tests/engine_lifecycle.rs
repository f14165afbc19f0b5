//! The engine over MemoryStore against wiremock stubs: authorization, single flight, the
//! margin, invalid_grant, transient faults, rotation, compare-and-swap, 401 retry, deletion,
//! disconnect.

use std::sync::Arc;
use std::time::Duration;

use granary_flow::engine::{
    Clock, Engine, EngineError, Event, Field, Keyring, ManualClock, MasterKey, NewInstance,
};
use granary_flow::protocol::RetryPolicy;
use granary_store::{ExtraValue, InstanceStatus, MemoryStore, Store, Timestamp};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::json;
use url::Url;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

mod support;

use support::mount_gated_refresh;

const START: i64 = 1_800_000_000_000;

struct Env {
    server: MockServer,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    key: [u8; 32],
    engine: Engine,
}

fn keyring(key: &[u8; 32]) -> Keyring {
    Keyring::new(
        MasterKey::from_bytes(&SecretBox::new(Box::new(*key))),
        vec![],
    )
}

fn document(server: &MockServer) -> Vec<u8> {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Stub API", "version": "1"},
        "paths": {},
        "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
            "authorizationCode": {
                "authorizationUrl": format!("{}/authorize", server.uri()),
                "tokenUrl": format!("{}/token", server.uri()),
                "scopes": {"read": "Read", "write": "Write", "offline_access": "Stay connected"}
            }
        }}}}
    })
    .to_string()
    .into_bytes()
}

fn token_json(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> serde_json::Value {
    let mut body =
        json!({"access_token": access, "token_type": "Bearer", "scope": "read offline_access"});
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    if let Some(expires_in) = expires_in {
        body["expires_in"] = json!(expires_in);
    }
    body
}

fn engine_over(
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    key: &[u8; 32],
    holder: &str,
) -> Engine {
    Engine::builder(
        store,
        keyring(key),
        Url::parse("https://granary.test").unwrap(),
    )
    .clock(clock)
    .holder_id(holder)
    .retry_policy(RetryPolicy::none())
    .poll_interval(Duration::from_millis(10))
    .build()
    .unwrap()
}

async fn env() -> Env {
    let server = MockServer::start().await;
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(START)));
    let key: [u8; 32] = rand_key();
    let engine = engine_over(store.clone(), clock.clone(), &key, "engine-a");
    engine
        .import_integration("stub", &document(&server))
        .await
        .unwrap();
    let mut new = NewInstance::new("inst", "stub", "client-1");
    new.client_secret = Some(SecretString::from("client-secret-value"));
    new.scopes = vec!["read".into(), "offline_access".into()];
    engine.create_instance(new).await.unwrap();
    Env {
        server,
        store,
        clock,
        key,
        engine,
    }
}

fn rand_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = (i as u8)
            .wrapping_mul(37)
            .wrapping_add(std::process::id() as u8);
    }
    key
}

/// Authorizes the instance: the code exchange answers `access`/`refresh`/`expires_in`.
async fn authorize(env: &Env, access: &str, refresh: Option<&str>, expires_in: Option<u64>) {
    let guard = Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(token_json(access, refresh, expires_in)),
        )
        .expect(1)
        .mount_as_scoped(&env.server)
        .await;
    let url = env.engine.begin_authorization("inst").await.unwrap().url;
    assert!(
        url.as_str()
            .starts_with(&format!("{}/authorize?", env.server.uri()))
    );
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("redirect_uri").as_deref(),
        Some("https://granary.test/admin/oauth/")
    );
    assert_eq!(get("code_challenge_method").as_deref(), Some("S256"));
    let state = get("state").unwrap();
    let id = env
        .engine
        .complete_authorization(&format!("code=the-code&state={state}"))
        .await
        .unwrap();
    assert_eq!(id, "inst");
    drop(guard);
}

/// The requests the mock server recorded; a server without recording fails the test
/// instead of reading as "no requests".
async fn recorded(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("the mock server records requests (recording was switched off)")
}

async fn refresh_requests(server: &MockServer) -> usize {
    recorded(server)
        .await
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .count()
}

async fn mount_refresh(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn authorization_stores_sealed_tokens_and_the_hot_path_serves_them() {
    let env = env().await;
    let mut events = env.engine.subscribe();
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    assert!(
        matches!(events.recv().await.unwrap(), Event::Authorized { instance } if instance == "inst")
    );
    let status = env.engine.status("inst").await.unwrap();
    assert_eq!(status.instance.status, InstanceStatus::Authorized);
    let summary = status.token.unwrap();
    assert!(summary.has_refresh_token);
    assert_eq!(
        summary.expires_at,
        Some(Timestamp::from_unix_millis(START + 3_600_000))
    );

    // What the store holds is sealed, bound to the instance and field.
    let record = env.store.get_token("inst").await.unwrap().unwrap();
    let bytes = record.access_token.as_bytes();
    assert!(!bytes.windows(8).any(|w| w == b"access-1"));
    let ring = keyring(&env.key);
    assert_eq!(
        ring.open_string("inst", Field::AccessToken, &record.access_token)
            .unwrap()
            .expose_secret(),
        "access-1"
    );
    assert!(
        ring.open_string("other", Field::AccessToken, &record.access_token)
            .is_err()
    );
    assert!(
        ring.open_string("inst", Field::RefreshToken, &record.access_token)
            .is_err()
    );

    let token = env.engine.access_token("inst").await.unwrap();
    assert_eq!(token.secret(), "access-1");
    assert!(!format!("{token:?}").contains("access-1"));
    assert_eq!(refresh_requests(&env.server).await, 0);

    // A callback is single use.
    let url = env.engine.begin_authorization("inst").await.unwrap().url;
    let state = url
        .query_pairs()
        .find(|(n, _)| n == "state")
        .unwrap()
        .1
        .into_owned();
    env.clock.advance(Duration::from_secs(601));
    let err = env
        .engine
        .complete_authorization(&format!("code=x&state={state}"))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownAuthorization), "{err}");
    assert!(err.to_string().contains("start the authorization again"));
}

#[tokio::test]
async fn many_concurrent_callers_cause_exactly_one_refresh() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    mount_refresh(
        &env.server,
        ResponseTemplate::new(200)
            .set_body_json(token_json("access-2", None, Some(3600)))
            .set_delay(Duration::from_millis(200)),
    )
    .await;
    env.clock.advance(Duration::from_secs(3600 - 30));
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let engine = env.engine.clone();
        tasks.push(tokio::spawn(
            async move { engine.access_token("inst").await },
        ));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().secret(), "access-2");
    }
    assert_eq!(refresh_requests(&env.server).await, 1);
    // No refresh_token in the response: the old one is kept.
    let record = env.store.get_token("inst").await.unwrap().unwrap();
    let ring = keyring(&env.key);
    let refresh = ring
        .open_string(
            "inst",
            Field::RefreshToken,
            record.refresh_token.as_ref().unwrap(),
        )
        .unwrap();
    assert_eq!(refresh.expose_secret(), "refresh-1");
}

#[tokio::test]
async fn two_engines_sharing_a_store_refresh_once() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    mount_refresh(
        &env.server,
        ResponseTemplate::new(200)
            .set_body_json(token_json("access-2", Some("refresh-2"), Some(3600)))
            .set_delay(Duration::from_millis(200)),
    )
    .await;
    let other = engine_over(env.store.clone(), env.clock.clone(), &env.key, "engine-b");
    env.clock.advance(Duration::from_secs(3600 - 10));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let engine = if i % 2 == 0 {
            env.engine.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(
            async move { engine.access_token("inst").await },
        ));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().secret(), "access-2");
    }
    assert_eq!(refresh_requests(&env.server).await, 1);
    assert!(
        env.store.get_lease("inst").await.unwrap().is_none(),
        "the lease was released"
    );
}

#[tokio::test]
async fn margin_is_sixty_seconds_but_at_most_half_the_lifetime() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(60)).await;
    mount_refresh(
        &env.server,
        ResponseTemplate::new(200).set_body_json(token_json("access-2", None, Some(3600))),
    )
    .await;
    // A 60 s token is refreshed after 30 s, not on every call.
    env.clock.advance(Duration::from_secs(29));
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    assert_eq!(refresh_requests(&env.server).await, 0);
    env.clock.advance(Duration::from_secs(2));
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    assert_eq!(refresh_requests(&env.server).await, 1);
    // A 3600 s token: refreshed 60 s before expiry.
    env.clock.advance(Duration::from_secs(3600 - 61));
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    assert_eq!(refresh_requests(&env.server).await, 1);
    env.clock.advance(Duration::from_secs(2));
    env.engine.access_token("inst").await.unwrap();
    assert_eq!(refresh_requests(&env.server).await, 2);
}

#[tokio::test]
async fn invalid_grant_needs_authorization_and_stops_refreshing() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let mut events = env.engine.subscribe();
    mount_refresh(
        &env.server,
        ResponseTemplate::new(400)
            .set_body_json(json!({"error": "invalid_grant", "error_description": "grant revoked"})),
    )
    .await;
    env.clock.advance(Duration::from_secs(3590));
    let err = env.engine.access_token("inst").await.unwrap_err();
    assert!(
        matches!(err, EngineError::NeedsAuthorization { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string().matches("authorize again").count(),
        1,
        "one clear sentence: {err}"
    );
    assert!(err.needs_reauthorization());
    assert!(!err.to_string().contains("refresh-1"));
    assert_eq!(
        env.engine.status("inst").await.unwrap().instance.status,
        InstanceStatus::NeedsAuthorization
    );
    assert!(matches!(
        events.recv().await.unwrap(),
        Event::NeedsAuthorization { .. }
    ));
    for _ in 0..3 {
        assert!(
            env.engine
                .access_token("inst")
                .await
                .unwrap_err()
                .needs_reauthorization()
        );
    }
    assert_eq!(refresh_requests(&env.server).await, 1);
    // Authorizing again repairs it.
    authorize(&env, "access-3", Some("refresh-3"), Some(3600)).await;
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-3"
    );
    assert_eq!(
        env.engine.status("inst").await.unwrap().instance.status,
        InstanceStatus::Authorized
    );
}

#[tokio::test]
async fn transient_failure_serves_the_current_token_until_it_expires() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let mut events = env.engine.subscribe();
    mount_refresh(&env.server, ResponseTemplate::new(503)).await;
    env.clock.advance(Duration::from_secs(3590));
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    assert!(matches!(
        events.recv().await.unwrap(),
        Event::RefreshFailed {
            transient: true,
            ..
        }
    ));
    // Backing off: a call right after does not ask again.
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    assert_eq!(refresh_requests(&env.server).await, 1);
    let record = env.store.get_token("inst").await.unwrap().unwrap();
    assert!(
        record.refresh_token.is_some(),
        "a transient fault never discards the stored token"
    );
    env.clock.advance(Duration::from_secs(11));
    let err = env.engine.access_token("inst").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, EngineError::Refresh { .. }));
    assert_eq!(
        env.engine.status("inst").await.unwrap().instance.status,
        InstanceStatus::Authorized
    );
}

#[tokio::test]
async fn rotated_refresh_token_is_persisted_and_used_next() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=refresh-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-2",
            Some("refresh-2"),
            Some(3600),
        )))
        .expect(1)
        .mount(&env.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=refresh-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-3",
            Some("refresh-3"),
            Some(3600),
        )))
        .expect(1)
        .mount(&env.server)
        .await;
    env.clock.advance(Duration::from_secs(3590));
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    let record = env.store.get_token("inst").await.unwrap().unwrap();
    let ring = keyring(&env.key);
    assert_eq!(
        ring.open_string(
            "inst",
            Field::RefreshToken,
            record.refresh_token.as_ref().unwrap()
        )
        .unwrap()
        .expose_secret(),
        "refresh-2"
    );
    // A new engine (a restart) reads the rotated token from the store.
    let restarted = engine_over(env.store.clone(), env.clock.clone(), &env.key, "engine-c");
    env.clock.advance(Duration::from_secs(3590));
    assert_eq!(
        restarted.access_token("inst").await.unwrap().secret(),
        "access-3"
    );
}

#[tokio::test]
async fn a_newer_record_written_during_a_refresh_wins_the_compare_and_swap() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let mut gate = mount_gated_refresh(
        &env.server,
        ResponseTemplate::new(200).set_body_json(token_json("access-late", None, Some(3600))),
    )
    .await;
    let mut events = env.engine.subscribe();
    env.clock.advance(Duration::from_secs(3590));
    let engine = env.engine.clone();
    let task = tokio::spawn(async move { engine.access_token("inst").await });
    // The refresh request is at the provider, its answer held back.
    gate.wait_arrived("the refresh request").await;
    // Another writer (whose lease had taken over) stores a newer token meanwhile.
    let ring = keyring(&env.key);
    let mut record = env.store.get_token("inst").await.unwrap().unwrap();
    let version = record.version;
    record.access_token = ring
        .seal("inst", Field::AccessToken, b"access-newer")
        .unwrap();
    record.obtained_at = env.clock.now();
    record.expires_at = Some(env.clock.now().saturating_add(Duration::from_secs(3600)));
    env.store
        .put_token("inst", &record, Some(version))
        .await
        .unwrap();
    // Only now does the refresh get its answer: its write compares against `version`.
    gate.release();
    assert_eq!(task.await.unwrap().unwrap().secret(), "access-newer");
    assert_eq!(refresh_requests(&env.server).await, 1);
    let stored = env.store.get_token("inst").await.unwrap().unwrap();
    assert_eq!(
        stored.version,
        version + 1,
        "the late writer did not overwrite the newer token"
    );
    assert_eq!(
        ring.open_string("inst", Field::AccessToken, &stored.access_token)
            .unwrap()
            .expose_secret(),
        "access-newer"
    );
    // The refresh lost its compare-and-swap: it announced no new token.
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, Event::Refreshed { .. }),
            "the late refresh reported success: {event:?}"
        );
    }
}

#[tokio::test]
async fn authorized_client_refreshes_once_on_401_and_tokens_without_expiry_last() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), None).await;
    mount_refresh(
        &env.server,
        ResponseTemplate::new(200).set_body_json(token_json("access-2", None, None)),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/api"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&env.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api"))
        .and(header("authorization", "Bearer access-2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&env.server)
        .await;
    // No expires_in: valid however much time passes.
    env.clock.advance(Duration::from_secs(400 * 24 * 3600));
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    let client = env.engine.authorized_client("inst", reqwest::Client::new());
    let response = client
        .send(client.http().get(format!("{}/api", env.server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(refresh_requests(&env.server).await, 1);
    let response = client
        .send(client.http().get(format!("{}/api", env.server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(refresh_requests(&env.server).await, 1);
}

#[tokio::test]
async fn scopes_are_checked_and_instances_are_editable_and_deleted_with_revocation() {
    let env = env().await;
    let mut new = NewInstance::new("typo", "stub", "client-2");
    new.client_secret = Some(SecretString::from("s"));
    new.scopes = vec!["raed".into()];
    let err = env.engine.create_instance(new.clone()).await.unwrap_err();
    assert!(matches!(err, EngineError::UnknownScopes { .. }));
    assert!(err.to_string().contains("did you mean `read`"), "{err}");
    new.force_scopes = true;
    assert_eq!(
        env.engine.create_instance(new).await.unwrap().scopes,
        vec!["raed".to_string()]
    );

    // The token URL is editable after creation, and used from then on.
    let update = granary_flow::engine::InstanceUpdate {
        token_url: Some(Some(
            Url::parse(&format!("{}/token2", env.server.uri())).unwrap(),
        )),
        ..Default::default()
    };
    let updated = env.engine.update_instance("inst", update).await.unwrap();
    assert_eq!(
        updated.token_url.as_deref(),
        Some(format!("{}/token2", env.server.uri()).as_str())
    );
    Mock::given(method("POST"))
        .and(path("/token2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-9",
            Some("refresh-9"),
            Some(3600),
        )))
        .expect(1)
        .mount(&env.server)
        .await;
    let url = env.engine.begin_authorization("inst").await.unwrap().url;
    let state = url
        .query_pairs()
        .find(|(n, _)| n == "state")
        .unwrap()
        .1
        .into_owned();
    env.engine
        .complete_authorization(&format!("code=c&state={state}"))
        .await
        .unwrap();
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-9"
    );

    // Deletion revokes where the integration knows a revocation endpoint.
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&env.server)
        .await;
    let revoke = Url::parse(&format!("{}/revoke", env.server.uri())).unwrap();
    env.engine
        .set_integration_endpoints("stub", None, Some(revoke))
        .await
        .unwrap();
    let report = env.engine.delete_instance("inst").await.unwrap();
    assert!(report.deleted && report.revoked, "{report:?}");
    assert!(env.store.get_token("inst").await.unwrap().is_none());
    assert!(matches!(
        env.engine.access_token("inst").await.unwrap_err(),
        EngineError::NotFound { .. }
    ));
}

#[tokio::test]
async fn rotating_the_key_reseals_everything() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let old = MasterKey::from_bytes(&SecretBox::new(Box::new(env.key)));
    let (new_key, new_bytes) = MasterKey::generate();
    env.engine.replace_keyring(Keyring::new(new_key, vec![old]));
    let report = env.engine.reseal_all().await.unwrap();
    assert_eq!((report.client_secrets, report.token_records), (1, 1));
    let only_new = Keyring::new(MasterKey::from_bytes(&new_bytes), vec![]);
    let record = env.store.get_token("inst").await.unwrap().unwrap();
    assert_eq!(
        only_new
            .open_string("inst", Field::AccessToken, &record.access_token)
            .unwrap()
            .expose_secret(),
        "access-1"
    );
    let instance = env.store.get_instance("inst").await.unwrap().unwrap();
    assert!(
        only_new
            .open_string(
                "inst",
                Field::ClientSecret,
                instance.client_secret.as_ref().unwrap()
            )
            .is_ok()
    );
    assert_eq!(env.engine.reseal_all().await.unwrap().token_records, 0);
}

#[tokio::test]
async fn background_refresher_refreshes_idle_instances_and_stops_when_dropped() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    mount_refresh(
        &env.server,
        ResponseTemplate::new(200).set_body_json(token_json("access-2", None, Some(3600))),
    )
    .await;
    let config = granary_flow::engine::RefresherConfig {
        interval: Duration::from_millis(20),
        concurrency: 2,
        concurrency_per_host: 2,
        jitter: Duration::from_millis(5),
        max_idle: None,
    };
    // The same store, seen through a wrapper that counts the refresher's rounds (each
    // round starts by listing the instances).
    let watched = Arc::new(RefreshesDuringDelete::over(env.store.clone(), None));
    let engine = Engine::builder(
        watched.clone(),
        keyring(&env.key),
        Url::parse("https://granary.test").unwrap(),
    )
    .clock(env.clock.clone())
    .holder_id("engine-refresher")
    .retry_policy(RetryPolicy::none())
    .build()
    .unwrap();
    let mut events = engine.subscribe();
    let refresher = engine.spawn_refresher(config);
    // Far from expiry: a whole round (the second starts after the first ended) does nothing.
    watched.wait_for_lists(2).await;
    assert_eq!(refresh_requests(&env.server).await, 0);
    // Inside the margin, with nobody asking for the token: the refresher refreshes it.
    env.clock.advance(Duration::from_secs(3600 - 30));
    let before = env.store.get_token("inst").await.unwrap().unwrap().version;
    let refreshed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Event::Refreshed { instance, .. }) if instance == "inst" => break,
                Ok(_) => {}
                Err(error) => panic!("the event stream ended: {error}"),
            }
        }
    })
    .await;
    assert!(
        refreshed.is_ok(),
        "the refresher refreshed no token within 10 s"
    );
    let record = env.store.get_token("inst").await.unwrap().unwrap();
    assert!(record.version > before);
    assert_eq!(refresh_requests(&env.server).await, 1);
    assert_eq!(
        record.expires_at,
        Some(env.clock.now().saturating_add(Duration::from_secs(3600)))
    );
    // Dropped: no more rounds, even when the next token enters its margin. An absence can
    // only be watched for a while: 10 intervals, in which a running refresher would have
    // started about 10 rounds.
    drop(refresher);
    let rounds = watched.lists();
    env.clock.advance(Duration::from_secs(3600 - 30));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(watched.lists(), rounds, "a round started after the drop");
    assert_eq!(refresh_requests(&env.server).await, 1);
}

#[tokio::test]
async fn integrations_import_from_a_path_list_and_remove() {
    let env = env().await;
    let dir = std::env::temp_dir().join(format!("granary-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("api.json");
    std::fs::write(&file, document(&env.server)).unwrap();
    let imported = env
        .engine
        .import_integration_file("second", &file)
        .await
        .unwrap();
    assert!(imported.source_digest.starts_with("sha256:"));
    let names: Vec<String> = env
        .engine
        .list_integrations()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["second".to_string(), "stub".to_string()]);
    assert!(env.engine.remove_integration("second").await.unwrap());
    // An integration with instances is not removed.
    assert!(env.engine.remove_integration("stub").await.is_err());
    let err = env
        .engine
        .import_integration(
            "bad",
            b"{\"openapi\": \"3.0.0\", \"info\": {}, \"paths\": {}}",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Import(_)), "{err}");
    let err = env
        .engine
        .import_integration_file("missing", dir.join("nope.json"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("check the path"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn concurrent_callers_share_one_failed_refresh() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    mount_refresh(
        &env.server,
        ResponseTemplate::new(503).set_delay(Duration::from_millis(200)),
    )
    .await;
    // Inside the margin, still valid: everybody gets the current token, one request made.
    env.clock.advance(Duration::from_secs(3590));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let engine = env.engine.clone();
        tasks.push(tokio::spawn(
            async move { engine.access_token("inst").await },
        ));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().secret(), "access-1");
    }
    assert_eq!(refresh_requests(&env.server).await, 1);
    // Expired: everybody gets the error of one more attempt.
    env.clock.advance(Duration::from_secs(20));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let engine = env.engine.clone();
        tasks.push(tokio::spawn(
            async move { engine.access_token("inst").await },
        ));
    }
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
    assert_eq!(refresh_requests(&env.server).await, 2);
}

/// The bodies of the revocation requests the stub received.
async fn revocation_bodies(server: &MockServer) -> Vec<String> {
    recorded(server)
        .await
        .iter()
        .filter(|r| r.url.path() == "/revoke")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

async fn set_revocation_endpoint(env: &Env) {
    let revoke = Url::parse(&format!("{}/revoke", env.server.uri())).unwrap();
    env.engine
        .set_integration_endpoints("stub", None, Some(revoke))
        .await
        .unwrap();
}

#[tokio::test]
async fn disconnect_revokes_forgets_the_token_and_allows_a_new_authorization() {
    let env = env().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&env.server)
        .await;
    set_revocation_endpoint(&env).await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    // In memory now: the hot path would answer without the store.
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    let mut events = env.engine.subscribe();

    let report = env.engine.disconnect("inst").await.unwrap();

    assert!(report.revoked, "{report:?}");
    assert_eq!(report.revocation_note, None);
    assert!(report.token_deleted);
    assert_eq!(report.status, InstanceStatus::New);
    let bodies = revocation_bodies(&env.server).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies[0].contains("token=refresh-1")
            && bodies[0].contains("token_type_hint=refresh_token"),
        "{bodies:?}"
    );
    assert!(
        bodies[1].contains("token=access-1") && bodies[1].contains("token_type_hint=access_token"),
        "{bodies:?}"
    );
    assert!(env.store.get_token("inst").await.unwrap().is_none());
    let instance = env.store.get_instance("inst").await.unwrap().unwrap();
    assert_eq!(instance.status, InstanceStatus::New);
    assert_eq!(instance.client_id, "client-1", "the configuration stays");
    assert!(matches!(
        env.engine.access_token("inst").await.unwrap_err(),
        EngineError::NotAuthorized { instance } if instance == "inst"
    ));
    assert_eq!(
        events.recv().await.unwrap(),
        Event::Disconnected {
            instance: "inst".into(),
            revoked: true
        }
    );

    // The instance can be authorized again, and hands out the new token.
    authorize(&env, "access-2", Some("refresh-2"), Some(3600)).await;
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    assert_eq!(
        env.store
            .get_instance("inst")
            .await
            .unwrap()
            .unwrap()
            .status,
        InstanceStatus::Authorized
    );
}

#[tokio::test]
async fn disconnect_with_a_failing_revocation_endpoint_still_disconnects_and_says_so() {
    let env = env().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&env.server)
        .await;
    set_revocation_endpoint(&env).await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    env.engine.access_token("inst").await.unwrap();

    let report = env.engine.disconnect("inst").await.unwrap();

    assert!(!report.revoked, "{report:?}");
    let note = report.revocation_note.clone().unwrap();
    assert!(!note.is_empty());
    assert!(
        !note.contains("refresh-1") && !note.contains("access-1"),
        "no secret in the note: {note}"
    );
    assert!(!revocation_bodies(&env.server).await.is_empty());
    assert!(report.token_deleted);
    assert_eq!(report.status, InstanceStatus::New);
    assert!(env.store.get_token("inst").await.unwrap().is_none());
    assert!(matches!(
        env.engine.access_token("inst").await.unwrap_err(),
        EngineError::NotAuthorized { .. }
    ));
    env.engine.begin_authorization("inst").await.unwrap();
}

#[tokio::test]
async fn disconnect_without_a_revocation_endpoint_or_token_and_of_a_disabled_instance() {
    let env = env().await;
    authorize(&env, "access-1", None, None).await;

    let report = env.engine.disconnect("inst").await.unwrap();
    assert!(!report.revoked && report.token_deleted, "{report:?}");
    assert!(
        report
            .revocation_note
            .as_deref()
            .is_some_and(|n| n.contains("no revocation endpoint")),
        "{report:?}"
    );
    assert!(
        recorded(&env.server)
            .await
            .iter()
            .all(|r| r.url.path() != "/revoke")
    );

    // Twice is harmless: nothing left to delete.
    let again = env.engine.disconnect("inst").await.unwrap();
    assert!(
        !again.token_deleted && again.status == InstanceStatus::New,
        "{again:?}"
    );

    // A disabled instance stays disabled.
    env.engine
        .update_instance(
            "inst",
            granary_flow::engine::InstanceUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let disabled = env.engine.disconnect("inst").await.unwrap();
    assert_eq!(disabled.status, InstanceStatus::Disabled);

    assert!(matches!(
        env.engine.disconnect("nope").await.unwrap_err(),
        EngineError::NotFound { .. }
    ));
}

#[tokio::test]
async fn a_disconnect_cut_short_after_the_status_write_leaves_a_usable_instance() {
    let env = env().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&env.server)
        .await;
    set_revocation_endpoint(&env).await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    // The state a crash right after the first write leaves: status New, the token record
    // still stored and not revoked (a fresh engine: nothing in memory).
    let mut instance = env.store.get_instance("inst").await.unwrap().unwrap();
    instance.status = InstanceStatus::New;
    env.store.update_instance(&instance).await.unwrap();
    let restarted = engine_over(env.store.clone(), env.clock.clone(), &env.key, "engine-b");

    // The stale record is never handed out.
    assert!(matches!(
        restarted.access_token("inst").await.unwrap_err(),
        EngineError::NotAuthorized { .. }
    ));
    // Disconnect again finishes the job: the stored tokens are revoked, then deleted.
    let report = restarted.disconnect("inst").await.unwrap();
    assert!(report.revoked && report.token_deleted, "{report:?}");
    let bodies = revocation_bodies(&env.server).await;
    assert!(
        bodies.iter().any(|b| b.contains("token=refresh-1")),
        "{bodies:?}"
    );
    assert!(env.store.get_token("inst").await.unwrap().is_none());
}

#[tokio::test]
async fn a_new_authorization_overwrites_a_stale_record_left_by_a_cut_short_disconnect() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let mut instance = env.store.get_instance("inst").await.unwrap().unwrap();
    instance.status = InstanceStatus::New;
    env.store.update_instance(&instance).await.unwrap();
    env.engine.forget("inst");

    authorize(&env, "access-2", Some("refresh-2"), Some(3600)).await;
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
}

#[tokio::test]
async fn disconnect_waits_for_a_running_refresh_and_revokes_its_new_tokens() {
    let env = env().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&env.server)
        .await;
    set_revocation_endpoint(&env).await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let mut gate = mount_gated_refresh(
        &env.server,
        ResponseTemplate::new(200).set_body_json(token_json(
            "access-2",
            Some("refresh-2"),
            Some(3600),
        )),
    )
    .await;
    env.clock.advance(Duration::from_secs(3600 - 30));
    let engine = env.engine.clone();
    let refreshing = tokio::spawn(async move { engine.access_token("inst").await });
    // The refresh request is at the provider, its answer held back.
    gate.wait_arrived("the refresh request").await;

    // Disconnect starts while the refresh runs: polled once, it waits for it.
    let mut disconnect = Box::pin(env.engine.disconnect("inst"));
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(disconnect.as_mut().poll(cx).is_pending())
    })
    .await;
    assert!(first, "disconnect finished while a refresh was running");
    gate.release();
    let report = disconnect.await.unwrap();

    assert_eq!(refreshing.await.unwrap().unwrap().secret(), "access-2");
    assert!(report.revoked && report.token_deleted, "{report:?}");
    let bodies = revocation_bodies(&env.server).await;
    assert!(
        bodies.iter().any(|b| b.contains("token=refresh-2"))
            && bodies.iter().any(|b| b.contains("token=access-2")),
        "the refreshed tokens are the ones revoked: {bodies:?}"
    );
    assert!(env.store.get_token("inst").await.unwrap().is_none());
    assert!(matches!(
        env.engine.access_token("inst").await.unwrap_err(),
        EngineError::NotAuthorized { .. }
    ));
}

/// A store shared with "another process" that refreshes once: on the first token deletion
/// it first writes a newer token record (`access-2`/`refresh-2`), as a
/// refresh elsewhere would between the revocation and the deletion of a disconnect.
///
/// It also counts `list_instances` calls (the background refresher makes one per round),
/// so that a test can wait for rounds instead of sleeping.
struct RefreshesDuringDelete {
    inner: Arc<MemoryStore>,
    newer: std::sync::Mutex<Option<(granary_store::Sealed, granary_store::Sealed)>>,
    lists: tokio::sync::watch::Sender<usize>,
}

impl RefreshesDuringDelete {
    fn over(
        inner: Arc<MemoryStore>,
        newer: Option<(granary_store::Sealed, granary_store::Sealed)>,
    ) -> Self {
        Self {
            inner,
            newer: std::sync::Mutex::new(newer),
            lists: tokio::sync::watch::Sender::new(0),
        }
    }

    /// How many times the instances were listed so far.
    fn lists(&self) -> usize {
        *self.lists.borrow()
    }

    /// Waits until the instances were listed `n` times.
    async fn wait_for_lists(&self, n: usize) {
        let mut lists = self.lists.subscribe();
        tokio::time::timeout(Duration::from_secs(10), lists.wait_for(|seen| *seen >= n))
            .await
            .unwrap_or_else(|_| panic!("the instances were not listed {n} times within 10 s"))
            .expect("the counter is alive");
    }
}

#[async_trait::async_trait]
impl Store for RefreshesDuringDelete {
    fn capabilities(&self) -> granary_store::Capabilities {
        self.inner.capabilities()
    }
    async fn put_integration(
        &self,
        integration: &granary_store::Integration,
    ) -> granary_store::Result<()> {
        self.inner.put_integration(integration).await
    }
    async fn get_integration(
        &self,
        name: &str,
    ) -> granary_store::Result<Option<granary_store::Integration>> {
        self.inner.get_integration(name).await
    }
    async fn list_integrations(&self) -> granary_store::Result<Vec<granary_store::Integration>> {
        self.inner.list_integrations().await
    }
    async fn delete_integration(&self, name: &str) -> granary_store::Result<bool> {
        self.inner.delete_integration(name).await
    }
    async fn create_instance(
        &self,
        instance: &granary_store::Instance,
    ) -> granary_store::Result<u64> {
        self.inner.create_instance(instance).await
    }
    async fn get_instance(
        &self,
        id: &str,
    ) -> granary_store::Result<Option<granary_store::Instance>> {
        self.inner.get_instance(id).await
    }
    async fn list_instances(&self) -> granary_store::Result<Vec<granary_store::Instance>> {
        let listed = self.inner.list_instances().await;
        self.lists.send_modify(|n| *n += 1);
        listed
    }
    async fn update_instance(
        &self,
        instance: &granary_store::Instance,
    ) -> granary_store::Result<u64> {
        self.inner.update_instance(instance).await
    }
    async fn delete_instance(&self, id: &str) -> granary_store::Result<bool> {
        self.inner.delete_instance(id).await
    }
    async fn put_pending(
        &self,
        pending: &granary_store::PendingAuthorization,
    ) -> granary_store::Result<()> {
        self.inner.put_pending(pending).await
    }
    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> granary_store::Result<Option<granary_store::PendingAuthorization>> {
        self.inner.take_pending(state, now).await
    }
    async fn purge_expired_pendings(&self, now: Timestamp) -> granary_store::Result<u64> {
        self.inner.purge_expired_pendings(now).await
    }
    async fn get_token(
        &self,
        instance: &str,
    ) -> granary_store::Result<Option<granary_store::TokenRecord>> {
        self.inner.get_token(instance).await
    }
    async fn put_token(
        &self,
        instance: &str,
        token: &granary_store::TokenRecord,
        expected_version: Option<u64>,
    ) -> granary_store::Result<u64> {
        self.inner
            .put_token(instance, token, expected_version)
            .await
    }
    async fn delete_token(
        &self,
        instance: &str,
        expected_version: Option<u64>,
    ) -> granary_store::Result<bool> {
        let newer = self.newer.lock().unwrap().take();
        if let Some((access, refresh)) = newer {
            let mut record = self.inner.get_token(instance).await?.unwrap();
            record.access_token = access;
            record.refresh_token = Some(refresh);
            self.inner
                .put_token(instance, &record, Some(record.version))
                .await?;
        }
        self.inner.delete_token(instance, expected_version).await
    }
    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> granary_store::Result<bool> {
        self.inner
            .try_acquire_lease(instance, holder, now, ttl)
            .await
    }
    async fn release_lease(&self, instance: &str, holder: &str) -> granary_store::Result<bool> {
        self.inner.release_lease(instance, holder).await
    }
    async fn get_lease(
        &self,
        instance: &str,
    ) -> granary_store::Result<Option<granary_store::Lease>> {
        self.inner.get_lease(instance).await
    }
    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &granary_store::TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> granary_store::Result<u64> {
        self.inner
            .put_token_fenced(instance, token, expected_version, holder, now)
            .await
    }
    async fn latest_change(&self) -> granary_store::Result<u64> {
        self.inner.latest_change().await
    }
    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> granary_store::Result<granary_store::Changes> {
        self.inner.changes_since(after, limit).await
    }
}

/// An authorized instance whose revocation endpoint expects 4 revocations, and an engine
/// over a store that writes a newer token record (`access-2`, `refresh-2`) at the first
/// token deletion, as a refresh in another process would.
async fn engine_racing_a_refresh(env: &Env) -> (Arc<RefreshesDuringDelete>, Engine) {
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .expect(4)
        .mount(&env.server)
        .await;
    set_revocation_endpoint(env).await;
    authorize(env, "access-1", Some("refresh-1"), Some(3600)).await;
    let keys = keyring(&env.key);
    let newer = (
        keys.seal("inst", Field::AccessToken, b"access-2").unwrap(),
        keys.seal("inst", Field::RefreshToken, b"refresh-2")
            .unwrap(),
    );
    let racing = Arc::new(RefreshesDuringDelete::over(env.store.clone(), Some(newer)));
    let engine = Engine::builder(
        racing.clone(),
        keyring(&env.key),
        Url::parse("https://granary.test").unwrap(),
    )
    .clock(env.clock.clone())
    .holder_id("engine-b")
    .retry_policy(RetryPolicy::none())
    .build()
    .unwrap();
    (racing, engine)
}

/// The newer record was written, and all four tokens were revoked, each once.
async fn assert_both_records_revoked(env: &Env, racing: &RefreshesDuringDelete) {
    assert!(
        racing.newer.lock().unwrap().is_none(),
        "the newer record was written during the operation"
    );
    let bodies = revocation_bodies(&env.server).await;
    for token in ["refresh-1", "access-1", "refresh-2", "access-2"] {
        assert!(
            bodies.iter().any(|b| b.contains(&format!("token={token}&"))
                || b.ends_with(&format!("token={token}"))),
            "{token} was not revoked: {bodies:?}"
        );
    }
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert!(env.store.get_token("inst").await.unwrap().is_none());
}

#[tokio::test]
async fn a_token_refreshed_elsewhere_during_a_disconnect_is_revoked_before_it_is_deleted() {
    let env = env().await;
    let (racing, engine) = engine_racing_a_refresh(&env).await;

    let report = engine.disconnect("inst").await.unwrap();

    assert!(report.revoked && report.token_deleted, "{report:?}");
    assert_eq!(report.revocation_note, None);
    assert_both_records_revoked(&env, &racing).await;
    assert_eq!(
        env.store
            .get_instance("inst")
            .await
            .unwrap()
            .unwrap()
            .status,
        InstanceStatus::New
    );
}

#[tokio::test]
async fn a_token_refreshed_elsewhere_during_a_delete_is_revoked_before_the_instance_goes() {
    let env = env().await;
    let (racing, engine) = engine_racing_a_refresh(&env).await;

    let report = engine.delete_instance("inst").await.unwrap();

    assert!(report.deleted && report.revoked, "{report:?}");
    assert_eq!(report.revocation_note, None);
    assert_both_records_revoked(&env, &racing).await;
    assert!(env.store.get_instance("inst").await.unwrap().is_none());
}

/// The value of the header `name` of `request`, if any.
fn header_of(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn extra_token_values_are_sealed_in_the_store_and_plaintext_ones_of_an_older_version_still_work()
 {
    let env = env().await;
    let update = granary_flow::engine::InstanceUpdate {
        extra_token_params: Some(vec![("audience".into(), "param-secret-1".into())]),
        extra_token_headers: Some(vec![("X-Api-Key".into(), "header-secret-1".into())]),
        ..Default::default()
    };
    env.engine.update_instance("inst", update).await.unwrap();
    let stored = env.store.get_instance("inst").await.unwrap().unwrap();
    let sealed_bytes = |value: &ExtraValue| match value {
        ExtraValue::Sealed { sealed } => sealed.as_bytes().to_vec(),
        ExtraValue::Plain(plain) => panic!("a plaintext value was stored: {plain}"),
    };
    let keyring = keyring(&env.key);
    let header = granary_store::Sealed::new(sealed_bytes(&stored.extra_token_headers[0].1));
    assert_eq!(
        keyring
            .open_string("inst", Field::ExtraTokenHeader, &header)
            .unwrap()
            .expose_secret(),
        "header-secret-1"
    );
    let json = serde_json::to_string(&stored).unwrap();
    assert!(
        !json.contains("param-secret-1") && !json.contains("header-secret-1"),
        "{json}"
    );
    assert!(!format!("{stored:?}").contains("secret-1"));

    // The token request carries the opened values.
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    let exchange = recorded(&env.server).await.pop().unwrap();
    assert_eq!(
        header_of(&exchange, "x-api-key").as_deref(),
        Some("header-secret-1")
    );
    assert!(String::from_utf8_lossy(&exchange.body).contains("audience=param-secret-1"));

    // A record of the previous version holds plaintext values: they are used as they are,
    // and sealed when the engine opens the store.
    let mut old = env.store.get_instance("inst").await.unwrap().unwrap();
    old.extra_token_params = vec![("audience".into(), ExtraValue::Plain("old-param".into()))];
    old.extra_token_headers = vec![("X-Api-Key".into(), ExtraValue::Plain("old-header".into()))];
    env.store.update_instance(&old).await.unwrap();
    mount_refresh(
        &env.server,
        ResponseTemplate::new(200).set_body_json(token_json("access-2", None, Some(3600))),
    )
    .await;
    env.engine.refresh_now("inst").await.unwrap();
    let refresh = recorded(&env.server).await.pop().unwrap();
    assert_eq!(
        header_of(&refresh, "x-api-key").as_deref(),
        Some("old-header")
    );
    assert!(String::from_utf8_lossy(&refresh.body).contains("audience=old-param"));
    assert_eq!(env.engine.seal_plaintext_values().await.unwrap(), 1);
    let sealed = env.store.get_instance("inst").await.unwrap().unwrap();
    assert!(
        !serde_json::to_string(&sealed).unwrap().contains("old-"),
        "{sealed:?}"
    );
    assert_eq!(env.engine.seal_plaintext_values().await.unwrap(), 0);
    // And the sealed values still reach the provider.
    env.engine.refresh_now("inst").await.unwrap();
    let refresh = recorded(&env.server).await.pop().unwrap();
    assert_eq!(
        header_of(&refresh, "x-api-key").as_deref(),
        Some("old-header")
    );
}

#[tokio::test]
async fn a_completed_authorization_of_a_disabled_instance_keeps_it_disabled() {
    let env = env().await;
    let _exchange = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-1",
            Some("r"),
            Some(3600),
        )))
        .mount_as_scoped(&env.server)
        .await;
    let url = env.engine.begin_authorization("inst").await.unwrap().url;
    let state = url
        .query_pairs()
        .find(|(n, _)| n == "state")
        .unwrap()
        .1
        .into_owned();
    let disable = granary_flow::engine::InstanceUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    env.engine.update_instance("inst", disable).await.unwrap();

    env.engine
        .complete_authorization(&format!("code=c&state={state}"))
        .await
        .unwrap();

    let instance = env.store.get_instance("inst").await.unwrap().unwrap();
    assert_eq!(instance.status, InstanceStatus::Disabled);
    assert!(matches!(
        env.engine.access_token("inst").await.unwrap_err(),
        EngineError::Disabled { .. }
    ));
    // Enabled again, it hands out the token it received meanwhile.
    let enable = granary_flow::engine::InstanceUpdate {
        enabled: Some(true),
        ..Default::default()
    };
    let enabled = env.engine.update_instance("inst", enable).await.unwrap();
    assert_eq!(enabled.status, InstanceStatus::Authorized);
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
}

#[tokio::test]
async fn a_token_or_authorization_url_moved_to_another_origin_forgets_the_tokens() {
    let env = env().await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&env.server)
        .await;
    set_revocation_endpoint(&env).await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    assert_eq!(
        env.engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );

    // Another path at the same origin keeps the tokens.
    let same_origin = granary_flow::engine::InstanceUpdate {
        token_url: Some(Some(
            Url::parse(&format!("{}/token", env.server.uri())).unwrap(),
        )),
        ..Default::default()
    };
    let kept = env
        .engine
        .update_instance("inst", same_origin)
        .await
        .unwrap();
    assert_eq!(kept.status, InstanceStatus::Authorized);
    assert!(env.store.get_token("inst").await.unwrap().is_some());

    // Another origin: the tokens are revoked where they came from and forgotten; the new
    // origin receives nothing.
    let elsewhere = MockServer::start().await;
    let mut events = env.engine.subscribe();
    let moved = granary_flow::engine::InstanceUpdate {
        token_url: Some(Some(
            Url::parse(&format!("{}/token", elsewhere.uri())).unwrap(),
        )),
        ..Default::default()
    };
    let updated = env.engine.update_instance("inst", moved).await.unwrap();
    assert_eq!(updated.status, InstanceStatus::NeedsAuthorization);
    assert!(env.store.get_token("inst").await.unwrap().is_none());
    let refused = env.engine.access_token("inst").await.unwrap_err();
    assert!(refused.needs_reauthorization(), "{refused:?}");
    assert!(env.engine.refresh_now("inst").await.is_err());
    assert!(recorded(&elsewhere).await.is_empty());
    assert_eq!(revocation_bodies(&env.server).await.len(), 2);
    assert_eq!(
        events.recv().await.unwrap(),
        Event::Disconnected {
            instance: "inst".into(),
            revoked: true
        }
    );

    // The authorization URL counts as well, and back to the first origin too.
    authorize_at(&env, &elsewhere).await;
    let back = granary_flow::engine::InstanceUpdate {
        authorization_url: Some(Some(
            Url::parse(&format!("{}/authorize", elsewhere.uri())).unwrap(),
        )),
        ..Default::default()
    };
    let updated = env.engine.update_instance("inst", back).await.unwrap();
    assert_eq!(updated.status, InstanceStatus::NeedsAuthorization);
    assert!(env.store.get_token("inst").await.unwrap().is_none());
}

/// Authorizes the instance against a token endpoint at `server`.
async fn authorize_at(env: &Env, server: &MockServer) {
    let _exchange = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-b",
            Some("r"),
            Some(3600),
        )))
        .mount_as_scoped(server)
        .await;
    let url = env.engine.begin_authorization("inst").await.unwrap().url;
    let state = url
        .query_pairs()
        .find(|(n, _)| n == "state")
        .unwrap()
        .1
        .into_owned();
    env.engine
        .complete_authorization(&format!("code=c&state={state}"))
        .await
        .unwrap();
    assert!(env.store.get_token("inst").await.unwrap().is_some());
}

#[tokio::test]
async fn the_redirect_uri_follows_the_current_public_url() {
    let env = env().await;
    authorize(&env, "access-1", Some("refresh-1"), Some(3600)).await;
    // The server moved behind TLS on another host: a new engine over the same store.
    let moved = Engine::builder(
        env.store.clone(),
        keyring(&env.key),
        Url::parse("https://granary.example:8443/").unwrap(),
    )
    .clock(env.clock.clone())
    .build()
    .unwrap();
    assert_eq!(
        moved.instances_registered_elsewhere().await.unwrap(),
        vec![(
            "inst".to_string(),
            "https://granary.test/admin/oauth/".to_string()
        )]
    );
    let url = moved.begin_authorization("inst").await.unwrap().url;
    let redirect = url
        .query_pairs()
        .find(|(n, _)| n == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(redirect, "https://granary.example:8443/admin/oauth/");
    let instance = env.store.get_instance("inst").await.unwrap().unwrap();
    assert_eq!(
        instance.redirect_uri,
        "https://granary.example:8443/admin/oauth/"
    );
    assert!(
        moved
            .instances_registered_elsewhere()
            .await
            .unwrap()
            .is_empty()
    );
}
