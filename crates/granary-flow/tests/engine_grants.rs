//! Grants as providers really issue them: without a refresh token (item 1 of issue 17).

use std::time::Duration;

use granary_flow::engine::{EngineError, Event};
use granary_store::{InstanceStatus, Store as _};
use wiremock::ResponseTemplate;

mod support;

use support::{World, token_json};

const STALE_SHA256: &str = "a178631e188ec000f1162e1cfe9fb3433019ccc9be39d75e7f8cbdf3c218c56d";

#[tokio::test]
async fn without_a_refresh_token_a_forced_refresh_changes_nothing_and_expiry_needs_authorization() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    world
        .authorize(&engine, "only-access", None, Some(3600))
        .await;
    // Any refresh request would be answered; none may be sent.
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(token_json(
            "never",
            Some("never"),
            Some(3600),
        )))
        .await;
    let mut events = engine.subscribe();

    let report = engine.status("inst").await.unwrap();
    let summary = report.token.expect("a token");
    assert!(!summary.has_refresh_token);
    let cause = summary.no_refresh_token.expect("the cause is told");
    assert!(cause.contains("offline access was asked for"), "{cause}");

    let before = world.store.get_token("inst").await.unwrap().unwrap();
    for _ in 0..2 {
        let error = engine.refresh_now("inst").await.unwrap_err();
        assert!(
            matches!(error, EngineError::NothingToRefresh { .. }),
            "{error:?}"
        );
        assert_eq!(error.code(), "no_refresh_token");
        let message = error.to_string();
        assert!(
            message.contains("nothing to refresh")
                && message.contains("after 2027-01-15 09:00:00 UTC")
                && message.contains("offline access was asked for"),
            "{message}"
        );
    }
    assert_eq!(world.refreshes().await, 0, "no request was sent");
    assert_eq!(
        world
            .store
            .get_instance("inst")
            .await
            .unwrap()
            .unwrap()
            .status,
        InstanceStatus::Authorized
    );
    let after = world.store.get_token("inst").await.unwrap().unwrap();
    assert_eq!(after, before, "the token record is unchanged");
    assert_eq!(
        engine.access_token("inst").await.unwrap().secret(),
        "only-access"
    );
    // Inside what would be the refresh margin the token is still handed out as it is.
    world.advance(Duration::from_secs(3590));
    assert_eq!(
        engine.access_token("inst").await.unwrap().secret(),
        "only-access"
    );
    assert!(
        events.try_recv().is_err(),
        "no event while nothing happened"
    );

    // Expired: the instance needs authorization, in those words, and the subscribers hear it.
    world.advance(Duration::from_secs(11));
    let error = engine.access_token("inst").await.unwrap_err();
    let EngineError::NeedsAuthorization { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        reason.starts_with("no refresh token: the access token expired at 2027-01-15 09:00:00 UTC"),
        "{reason}"
    );
    match events.recv().await.unwrap() {
        Event::NeedsAuthorization {
            instance,
            reason,
            reconnect,
        } => {
            assert_eq!(instance, "inst");
            assert!(reason.starts_with("no refresh token"), "{reason}");
            // The event carries a reconnect link that opens this instance's authorization.
            let link = reconnect.expect("a reconnect link in the event");
            let secret = link.url.path().rsplit('/').next().unwrap().to_string();
            assert_eq!(
                engine.reconnect_link(&secret).await.unwrap().instance,
                "inst"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        world
            .store
            .get_instance("inst")
            .await
            .unwrap()
            .unwrap()
            .status,
        InstanceStatus::NeedsAuthorization
    );
    // Every later read (another process included) gives the same words, not "refused".
    let other = world.engine("p2", |b| b);
    let error = other.access_token("inst").await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no refresh token: the access token expired"),
        "{error}"
    );
    let error = other.refresh_now("inst").await.unwrap_err();
    assert!(error.to_string().contains("no refresh token"), "{error}");
    assert_eq!(world.refreshes().await, 0);
}

#[tokio::test]
async fn without_a_refresh_token_a_refused_token_needs_authorization_at_once() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    world.authorize(&engine, "only-access", None, None).await;
    let token = engine.access_token("inst").await.unwrap();
    let error = engine.force_refresh("inst", &token).await.unwrap_err();
    let EngineError::NeedsAuthorization { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        reason.starts_with("no refresh token: the provider refused the access token"),
        "{reason}"
    );
    assert_eq!(world.refreshes().await, 0);
}

#[tokio::test]
async fn a_failed_exchange_names_the_data_centre_the_callback_named() {
    use wiremock::Mock;
    use wiremock::matchers::{method, path};
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    let _guard = Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"error": "invalid_code"})),
        )
        .mount_as_scoped(&world.server)
        .await;
    let state_of = |url: &url::Url| {
        url.query_pairs()
            .find(|(name, _)| name == "state")
            .map(|(_, value)| value.into_owned())
            .unwrap()
    };
    let url = engine.begin_authorization("inst").await.unwrap().url;
    let query = format!(
        "code=the-code&state={}&location=eu&accounts-server=https%3A%2F%2Faccounts.zoho.eu",
        state_of(&url)
    );
    let error = engine.complete_authorization(&query).await.unwrap_err();
    assert!(matches!(error, EngineError::Exchange { .. }), "{error:?}");
    assert_eq!(error.code(), "provider_error");
    let message = error.to_string();
    assert!(
        message.contains("invalid_code")
            && message.contains("`location=eu`")
            && message.contains("`accounts-server=https://accounts.zoho.eu`")
            && message.contains("token URL override")
            && !message.contains("the-code"),
        "{message}"
    );
    // Without such parameters the error is the provider's alone.
    let url = engine.begin_authorization("inst").await.unwrap().url;
    let query = format!("code=the-code&state={}&realmId=42", state_of(&url));
    let error = engine.complete_authorization(&query).await.unwrap_err();
    assert!(matches!(error, EngineError::Protocol(_)), "{error:?}");
    assert!(!error.to_string().contains("data centre"), "{error}");
}

#[tokio::test]
async fn a_refused_list_of_scopes_mentions_the_separator() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    let url = engine.begin_authorization("inst").await.unwrap().url;
    let state = url
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let query = format!(
        "error=invalid_scope&error_description=Invalid+permissions+requested%3A+read+offline_access&state={state}"
    );
    let error = engine.complete_authorization(&query).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("separated by spaces") && message.contains("commas"),
        "{message}"
    );
    // One scope: nothing about separators.
    let one = granary_flow::Error::InvalidScope {
        scopes: vec!["read".into()],
        details: granary_flow::OAuthError {
            error: "invalid_scope".into(),
            description: None,
            uri: None,
        },
    };
    assert!(!one.to_string().contains("separat"), "{one}");
}

#[tokio::test]
async fn unknown_expiry_refreshes_after_the_default_lifetime_and_only_then() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| {
        b.default_token_lifetime(Some(Duration::from_secs(3600)))
    });
    world
        .authorize(&engine, "access-1", Some("refresh-1"), None)
        .await;
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(token_json("access-2", None, None)))
        .await;
    assert_eq!(
        engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    world.advance(Duration::from_secs(3599));
    assert_eq!(
        engine.access_token("inst").await.unwrap().secret(),
        "access-1"
    );
    assert_eq!(world.refreshes().await, 0);
    world.advance(Duration::from_secs(2));
    assert_eq!(
        engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    assert_eq!(world.refreshes().await, 1);
    assert_eq!(
        engine.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    assert_eq!(world.refreshes().await, 1);

    // Without the setting, a token of unknown expiry is used until it is refused.
    let other = world.engine("p2", |b| b);
    world.advance(Duration::from_secs(100 * 24 * 3600));
    assert_eq!(
        other.access_token("inst").await.unwrap().secret(),
        "access-2"
    );
    assert_eq!(world.refreshes().await, 1);
}

#[tokio::test]
async fn a_rejected_token_reported_by_100_callers_at_once_causes_one_refresh() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    world
        .authorize(&engine, "stale-access", Some("refresh-1"), None)
        .await;
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(token_json(
            "fresh-access",
            None,
            None,
        )))
        .await;
    let stale = engine.access_token("inst").await.unwrap();
    let digest = stale.sha256_hex();
    // sha256("stale-access"), as `printf %s stale-access | sha256sum` prints it.
    assert_eq!(digest, STALE_SHA256);
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let engine = engine.clone();
            // Either case of hex is accepted.
            let digest = if i % 2 == 0 {
                digest.clone()
            } else {
                digest.to_ascii_uppercase()
            };
            tokio::spawn(async move { engine.token_rejected("inst", &digest).await })
        })
        .collect();
    for call in calls {
        let token = call.await.unwrap().unwrap();
        assert_eq!(token.secret(), "fresh-access");
    }
    assert_eq!(world.refreshes().await, 1, "100 reports, one refresh");

    // A late report of the replaced token changes nothing and gets the current token.
    let token = engine.token_rejected("inst", &digest).await.unwrap();
    assert_eq!(token.secret(), "fresh-access");
    // Another process that still held the stale token does not refresh again either.
    let other = world.engine("p2", |b| b);
    let token = other.token_rejected("inst", &digest).await.unwrap();
    assert_eq!(token.secret(), "fresh-access");
    assert_eq!(world.refreshes().await, 1);

    // The current token reported: one more refresh.
    let current = token.sha256_hex();
    let token = other.token_rejected("inst", &current).await.unwrap();
    assert_eq!(
        token.secret(),
        "fresh-access",
        "the provider answered the same"
    );
    assert_eq!(world.refreshes().await, 2);

    let error = engine
        .token_rejected("inst", "not-a-digest")
        .await
        .unwrap_err();
    assert!(matches!(error, EngineError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("SHA-256"), "{error}");
}

#[tokio::test]
async fn an_unstated_expiry_is_asked_of_the_introspection_endpoint_where_there_is_one() {
    use wiremock::Mock;
    use wiremock::matchers::{body_string_contains, header_exists, method, path};
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    let base = world.server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "introspection_endpoint": format!("{base}/introspect"),
        })))
        .mount(&world.server)
        .await;
    engine
        .discover_integration_endpoints("stub", &base)
        .await
        .unwrap();
    let start_s = support::START / 1000;
    let introspection = Mock::given(method("POST"))
        .and(path("/introspect"))
        .and(body_string_contains("token=first-access"))
        .and(body_string_contains("token_type_hint=access_token"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"active": true, "exp": start_s + 1800, "scope": "read"}),
        ))
        .expect(1)
        .mount_as_scoped(&world.server)
        .await;
    world
        .authorize(&engine, "first-access", Some("refresh-1"), None)
        .await;
    drop(introspection);
    let token = engine.access_token("inst").await.unwrap();
    assert_eq!(
        token.expires_at().map(|t| t.as_unix_millis()),
        Some((start_s + 1800) * 1000),
        "the expiry the introspection endpoint stated"
    );

    // A refresh without expires_in asks again; an endpoint that fails leaves it unknown.
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(token_json(
            "second-access",
            None,
            None,
        )))
        .await;
    let _failing = Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(ResponseTemplate::new(500))
        .mount_as_scoped(&world.server)
        .await;
    world.advance(Duration::from_secs(1790));
    let token = engine.access_token("inst").await.unwrap();
    assert_eq!(token.secret(), "second-access");
    assert_eq!(
        token.expires_at(),
        None,
        "unknown after a failed introspection"
    );
}
