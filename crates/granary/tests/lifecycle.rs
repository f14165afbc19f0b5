//! The whole lifecycle through the facade against the real conformance authorization server
//! (oidc-provider): authorization, refresh in the margin, rotation, invalid_grant after the
//! provider revoked the grant, a restart on the same SQLite file, and secrets at rest.
//!
//! Run by `cargo xtask conformance facade`, which starts the server and sets
//! `GRANARY_FACADE_ISSUER` and `GRANARY_FACADE_CLIENTS`.

mod support;

use std::path::Path;
use std::time::Duration;

use granary::flow::engine::{Field, Keyring, MasterKey};
use granary::flow::protocol::{self, TokenTypeHint};
use granary::{Config, EngineError, Event, Granary, KeySource, StoreConfig};
use granary_store::InstanceStatus;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use support::Provider;

const NEEDS_SERVER: &str =
    "needs the conformance authorization server: run cargo xtask conformance facade";

fn key_bytes(seed: u8) -> [u8; 32] {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(7);
    }
    key
}

fn keyring(key: [u8; 32]) -> Keyring {
    Keyring::new(
        MasterKey::from_bytes(&SecretBox::new(Box::new(key))),
        vec![],
    )
}

async fn open_sqlite(path: &Path, key: [u8; 32]) -> Granary {
    let config = Config::new(
        StoreConfig::Sqlite(path.to_path_buf()),
        support::public_url(),
    )
    .with_key(KeySource::Bytes(SecretBox::new(Box::new(key))));
    Granary::open(config).await.unwrap()
}

/// The plaintext refresh token of `instance`, opened from the store with the known key.
async fn stored_refresh_token(granary: &Granary, key: [u8; 32], instance: &str) -> SecretString {
    let record = granary.store().get_token(instance).await.unwrap().unwrap();
    keyring(key)
        .open_string(
            instance,
            Field::RefreshToken,
            record.refresh_token.as_ref().unwrap(),
        )
        .unwrap()
}

async fn next_event(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the conformance authorization server: run cargo xtask conformance facade"]
async fn whole_lifecycle_with_secrets_sealed_at_rest() {
    let _ = NEEDS_SERVER;
    let provider = Provider::from_env();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("granary.db");
    let key = key_bytes(1);
    let granary = open_sqlite(&db, key).await;
    let mut events = granary.subscribe();

    // facade-short's access tokens live 4 s: the margin is capped at 2 s.
    provider
        .create_instance(&granary, "short", "facade-short")
        .await;
    assert_eq!(
        granary.status("short").await.unwrap().instance.status,
        InstanceStatus::New
    );
    let err = granary.access_token("short").await.unwrap_err();
    assert!(matches!(err, EngineError::NotAuthorized { .. }), "{err}");

    provider.authorize(&granary, "short").await;
    assert!(matches!(
        next_event(&mut events).await,
        Event::Authorized { .. }
    ));
    let first = granary.access_token("short").await.unwrap();
    assert_eq!(provider.userinfo_status(&granary, "short").await, 200);
    let refreshes = provider.refresh_requests().await;
    // Outside the margin: the same token, no request.
    assert!(
        granary
            .access_token("short")
            .await
            .unwrap()
            .same_token(&first)
    );
    assert_eq!(provider.refresh_requests().await, refreshes);

    // Inside the margin: one refresh, a new token that the provider accepts.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let second = granary.access_token("short").await.unwrap();
    assert!(!second.same_token(&first));
    assert_eq!(provider.refresh_requests().await, refreshes + 1);
    assert!(matches!(
        next_event(&mut events).await,
        Event::Refreshed { .. }
    ));
    assert_eq!(provider.userinfo_status(&granary, "short").await, 200);
    let summary = granary.status("short").await.unwrap().token.unwrap();
    assert!(summary.has_refresh_token);

    // Secrets at rest: none of them appears in the database file or its WAL.
    let refresh = stored_refresh_token(&granary, key, "short").await;
    let secret = provider.secret("facade-short").unwrap();
    let files = support::files_under(dir.path());
    assert!(files.iter().any(|f| f.ends_with("granary.db")));
    assert!(
        files.iter().any(|f| f.ends_with("granary.db-wal")),
        "the WAL is searched too: {files:?}"
    );
    for (what, needle) in [
        ("the first access token", first.secret()),
        ("the second access token", second.secret()),
        ("the refresh token", refresh.expose_secret()),
        ("the client secret", secret.as_str()),
    ] {
        let found = support::files_containing(&files, needle.as_bytes());
        assert!(found.is_empty(), "{what} is in plaintext in {found:?}");
    }
    // The search itself works: the client id is stored in plaintext, and is found.
    assert!(!support::files_containing(&files, b"facade-short").is_empty());

    // Deletion revokes at the discovered revocation endpoint.
    let report = granary.delete_instance("short").await.unwrap();
    assert!(report.deleted && report.revoked, "{report:?}");
}

#[tokio::test]
#[ignore = "needs the conformance authorization server: run cargo xtask conformance facade"]
async fn rotated_refresh_tokens_are_persisted_and_keep_working() {
    let provider = Provider::from_env();
    let dir = tempfile::tempdir().unwrap();
    let key = key_bytes(2);
    let granary = open_sqlite(&dir.path().join("granary.db"), key).await;
    // A public client: oidc-provider rotates its refresh token on every refresh, and a
    // replay of an old one revokes the whole grant, so a lost rotation would show.
    provider
        .create_instance(&granary, "public", "facade-public")
        .await;
    provider.authorize(&granary, "public").await;
    let mut events = granary.subscribe();
    let mut token = granary.access_token("public").await.unwrap();
    let mut refresh = stored_refresh_token(&granary, key, "public").await;
    for round in 0..3 {
        let next = granary.force_refresh("public", &token).await.unwrap();
        assert!(!next.same_token(&token), "round {round}");
        match next_event(&mut events).await {
            Event::Refreshed { rotated, .. } => assert!(rotated, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
        let stored = stored_refresh_token(&granary, key, "public").await;
        assert_ne!(
            stored.expose_secret(),
            refresh.expose_secret(),
            "round {round}"
        );
        refresh = stored;
        token = next;
    }
    assert_eq!(provider.userinfo_status(&granary, "public").await, 200);
    assert_eq!(
        granary.status("public").await.unwrap().instance.status,
        InstanceStatus::Authorized
    );
}

#[tokio::test]
#[ignore = "needs the conformance authorization server: run cargo xtask conformance facade"]
async fn revoked_grant_needs_authorization_and_stops_refreshing() {
    let provider = Provider::from_env();
    let dir = tempfile::tempdir().unwrap();
    let key = key_bytes(3);
    let granary = open_sqlite(&dir.path().join("granary.db"), key).await;
    provider
        .create_instance(&granary, "revoked", "facade-basic")
        .await;
    provider.authorize(&granary, "revoked").await;
    let token = granary.access_token("revoked").await.unwrap();

    // The provider revokes the grant (as when a user disconnects the app there).
    let refresh = stored_refresh_token(&granary, key, "revoked").await;
    let issuer = &provider.issuer;
    let config = protocol::ClientConfig::new(
        "facade-basic",
        format!("{issuer}/auth").parse().unwrap(),
        format!("{issuer}/token").parse().unwrap(),
    )
    .with_secret(
        SecretString::from(provider.secret("facade-basic").unwrap()),
        protocol::ClientAuth::ClientSecretBasic,
    )
    .with_revocation_url(format!("{issuer}/token/revocation").parse().unwrap());
    protocol::revoke(
        &reqwest::Client::new(),
        &config,
        &refresh,
        Some(TokenTypeHint::RefreshToken),
    )
    .await
    .unwrap();

    let mut events = granary.subscribe();
    let before = provider.refresh_requests().await;
    let err = granary.force_refresh("revoked", &token).await.unwrap_err();
    assert!(
        matches!(err, EngineError::NeedsAuthorization { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("authorize again"), "{err}");
    assert!(!err.to_string().contains(refresh.expose_secret()));
    assert!(matches!(
        next_event(&mut events).await,
        Event::NeedsAuthorization { .. }
    ));
    assert_eq!(
        granary.status("revoked").await.unwrap().instance.status,
        InstanceStatus::NeedsAuthorization
    );
    for _ in 0..3 {
        let err = granary.access_token("revoked").await.unwrap_err();
        assert!(err.needs_reauthorization(), "{err}");
    }
    assert_eq!(
        provider.refresh_requests().await,
        before + 1,
        "no refresh after invalid_grant"
    );

    // Authorizing again repairs it.
    provider.authorize(&granary, "revoked").await;
    granary.access_token("revoked").await.unwrap();
    assert_eq!(provider.userinfo_status(&granary, "revoked").await, 200);
}

#[tokio::test]
#[ignore = "needs the conformance authorization server: run cargo xtask conformance facade"]
async fn a_restarted_granary_on_the_same_sqlite_file_keeps_working() {
    let provider = Provider::from_env();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("granary.db");
    let config = || {
        Config::new(StoreConfig::Sqlite(db.clone()), support::public_url())
            .with_key(KeySource::File(dir.path().join("granary.key")))
    };
    let granary = Granary::open(config()).await.unwrap();
    provider
        .create_instance(&granary, "restart", "facade-basic")
        .await;
    provider.authorize(&granary, "restart").await;
    let before = granary.access_token("restart").await.unwrap();
    drop(granary);

    let codes = provider.code_requests().await;
    let granary = Granary::open(config()).await.unwrap();
    let after = granary.access_token("restart").await.unwrap();
    assert!(
        after.same_token(&before),
        "the stored token is served after a restart"
    );
    assert_eq!(provider.userinfo_status(&granary, "restart").await, 200);
    let refreshed = granary.force_refresh("restart", &after).await.unwrap();
    assert!(!refreshed.same_token(&after));
    assert_eq!(provider.userinfo_status(&granary, "restart").await, 200);
    assert_eq!(
        provider.code_requests().await,
        codes,
        "no new authorization"
    );

    // A key rotation re-seals everything; a restart with the rotated key file still works.
    let rotation = granary.rotate_key(None).await.unwrap();
    assert_eq!(rotation.report.token_records, 1);
    assert_eq!(rotation.report.client_secrets, 1);
    drop(granary);
    let granary = Granary::open(config()).await.unwrap();
    granary.access_token("restart").await.unwrap();
    assert_eq!(provider.userinfo_status(&granary, "restart").await, 200);
}

#[cfg(feature = "sled")]
#[tokio::test]
#[ignore = "needs the conformance authorization server: run cargo xtask conformance facade"]
async fn secrets_are_sealed_at_rest_in_sled() {
    let provider = Provider::from_env();
    let dir = tempfile::tempdir().unwrap();
    let key = key_bytes(4);
    let folder = dir.path().join("granary.sled");
    let config = Config::new(StoreConfig::Sled(folder.clone()), support::public_url())
        .with_key(KeySource::Bytes(SecretBox::new(Box::new(key))));
    let granary = Granary::open(config).await.unwrap();
    provider
        .create_instance(&granary, "sled", "facade-basic")
        .await;
    provider.authorize(&granary, "sled").await;
    let first = granary.access_token("sled").await.unwrap();
    let second = granary.force_refresh("sled", &first).await.unwrap();
    let refresh = stored_refresh_token(&granary, key, "sled").await;
    drop(granary);
    let files = support::files_under(&folder);
    assert!(!files.is_empty());
    let secret = provider.secret("facade-basic").unwrap();
    for (what, needle) in [
        ("the first access token", first.secret()),
        ("the second access token", second.secret()),
        ("the refresh token", refresh.expose_secret()),
        ("the client secret", secret.as_str()),
    ] {
        let found = support::files_containing(&files, needle.as_bytes());
        assert!(found.is_empty(), "{what} is in plaintext in {found:?}");
    }
    assert!(!support::files_containing(&files, b"facade-basic").is_empty());
}
