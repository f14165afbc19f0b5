//! Reconnect links over MemoryStore: single use under concurrency, expiry, a disabled
//! instance refused, one error for unknown, used and expired links, only the digest stored.

use std::sync::Arc;
use std::time::Duration;

use granary_flow::engine::{
    Engine, EngineError, ErrorKind, InstanceUpdate, Keyring, ManualClock, MasterKey, NewInstance,
    reconnect_secret_digest,
};
use granary_store::{MemoryStore, Store, Timestamp};
use secrecy::SecretBox;
use serde_json::json;
use url::Url;

const START: i64 = 1_800_000_000_000;
const DAY: Duration = Duration::from_secs(24 * 3600);
const GONE: &str = "this link was used or has expired: ask your admin for a new one";

struct Env {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    engine: Engine,
}

fn document() -> Vec<u8> {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Stub API", "version": "1"},
        "paths": {},
        "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
            "authorizationCode": {
                "authorizationUrl": "https://provider.test/authorize",
                "tokenUrl": "https://provider.test/token",
                "scopes": {"read": "Read"}
            }
        }}}}
    })
    .to_string()
    .into_bytes()
}

async fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(START)));
    let key = MasterKey::from_bytes(&SecretBox::new(Box::new([9u8; 32])));
    let engine = Engine::builder(
        store.clone(),
        Keyring::new(key, vec![]),
        Url::parse("https://granary.test/base").unwrap(),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    engine
        .import_integration("stub", &document())
        .await
        .unwrap();
    engine
        .create_instance(NewInstance::new("inst", "stub", "client-1"))
        .await
        .unwrap();
    Env {
        store,
        clock,
        engine,
    }
}

/// The secret: the last path segment of the link.
fn secret_of(url: &Url) -> String {
    url.path_segments()
        .unwrap()
        .next_back()
        .unwrap()
        .to_string()
}

fn assert_gone(error: EngineError) {
    assert!(matches!(error, EngineError::LinkGone), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::LinkGone);
    assert_eq!(error.to_string(), GONE);
}

#[tokio::test]
async fn a_link_is_under_the_public_url_outside_admin_and_opens_its_instance() {
    let env = env().await;
    let created = env
        .engine
        .create_reconnect_link("inst", 7 * DAY)
        .await
        .unwrap();
    let secret = secret_of(&created.url);
    assert_eq!(
        created.url.as_str(),
        format!("https://granary.test/base/reconnect/{secret}")
    );
    assert_eq!(secret.len(), 43, "256 bits, base64url without padding");
    assert_eq!(
        created.expires,
        Timestamp::from_unix_millis(START).saturating_add(7 * DAY)
    );

    let target = env.engine.reconnect_link(&secret).await.unwrap();
    assert_eq!(target.instance, "inst");
    assert_eq!(target.integration, "stub");
    assert_eq!(target.expires, created.expires);
    // Looking does not use it: it can be looked at again, then used.
    env.engine.reconnect_link(&secret).await.unwrap();
    let start = env.engine.begin_reconnect(&secret).await.unwrap();
    assert_eq!(start.url.host_str(), Some("provider.test"));
    assert!(start.url.query().unwrap().contains(&start.state));
    // Used: looking and using again are the one error.
    assert_gone(env.engine.reconnect_link(&secret).await.unwrap_err());
    assert_gone(env.engine.begin_reconnect(&secret).await.unwrap_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn of_sixteen_concurrent_uses_one_wins() {
    let env = env().await;
    let created = env.engine.create_reconnect_link("inst", DAY).await.unwrap();
    let secret = secret_of(&created.url);
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let engine = env.engine.clone();
            let secret = secret.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                engine.begin_reconnect(&secret).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(error) => assert_gone(error),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn a_link_ends_at_its_expiry() {
    let env = env().await;
    let created = env
        .engine
        .create_reconnect_link("inst", Duration::from_secs(3600))
        .await
        .unwrap();
    let secret = secret_of(&created.url);
    env.clock.advance(Duration::from_secs(3599));
    env.engine.reconnect_link(&secret).await.unwrap();
    env.clock.advance(Duration::from_secs(1));
    assert_gone(env.engine.reconnect_link(&secret).await.unwrap_err());
    assert_gone(env.engine.begin_reconnect(&secret).await.unwrap_err());
}

#[tokio::test]
async fn unknown_and_malformed_links_are_the_same_error() {
    let env = env().await;
    for secret in [
        "A".repeat(43),
        String::new(),
        "../../admin".to_string(),
        "x".repeat(10_000),
    ] {
        assert_gone(env.engine.reconnect_link(&secret).await.unwrap_err());
        assert_gone(env.engine.begin_reconnect(&secret).await.unwrap_err());
    }
}

#[tokio::test]
async fn a_disabled_or_unknown_instance_gets_no_link() {
    let env = env().await;
    let created = env.engine.create_reconnect_link("inst", DAY).await.unwrap();
    let secret = secret_of(&created.url);
    let disable = InstanceUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    env.engine.update_instance("inst", disable).await.unwrap();
    let refused = env
        .engine
        .create_reconnect_link("inst", DAY)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EngineError::Disabled { .. }),
        "{refused:?}"
    );
    // A link made before the instance was disabled does not start an authorization, and
    // is not used up by trying: it works once the instance is enabled again.
    assert!(matches!(
        env.engine.reconnect_link(&secret).await.unwrap_err(),
        EngineError::Disabled { .. }
    ));
    assert!(matches!(
        env.engine.begin_reconnect(&secret).await.unwrap_err(),
        EngineError::Disabled { .. }
    ));
    let enable = InstanceUpdate {
        enabled: Some(true),
        ..Default::default()
    };
    env.engine.update_instance("inst", enable).await.unwrap();
    env.engine.begin_reconnect(&secret).await.unwrap();

    let unknown = env
        .engine
        .create_reconnect_link("nobody", DAY)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, EngineError::NotFound { .. }),
        "{unknown:?}"
    );
    for ttl in [Duration::ZERO, 91 * DAY] {
        let invalid = env
            .engine
            .create_reconnect_link("inst", ttl)
            .await
            .unwrap_err();
        assert!(matches!(invalid, EngineError::Invalid(_)), "{invalid:?}");
    }
}

#[tokio::test]
async fn the_store_holds_the_digest_never_the_secret() {
    let env = env().await;
    let created = env.engine.create_reconnect_link("inst", DAY).await.unwrap();
    let secret = secret_of(&created.url);
    let now = env.engine.now();
    let digest = reconnect_secret_digest(&secret);
    assert_eq!(digest.len(), 64);
    let stored = env
        .store
        .find_reconnect_link(&digest, now)
        .await
        .unwrap()
        .expect("stored under the digest");
    assert_eq!(stored.digest, digest);
    assert_eq!(stored.instance, "inst");
    assert!(
        env.store
            .find_reconnect_link(&secret, now)
            .await
            .unwrap()
            .is_none(),
        "not under the secret"
    );
    // Nothing the store holds carries the secret.
    let everything = format!("{:?}", env.store);
    assert!(everything.contains(&digest));
    assert!(!everything.contains(&secret));
}
