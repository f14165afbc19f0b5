//! Rules the engine keeps whoever calls it: ids are refused before anything is stored, and
//! a started authorization hands out the state its URL carries.

mod support;

use granary_flow::engine::{EngineError, ErrorKind, IdKind, NewInstance, validate_id};
use secrecy::SecretString;
use serde_json::json;

use support::World;

const REFUSED: [&str; 5] = ["-x", "a/b", "a b", "../etc", "x\u{e9}"];

#[tokio::test]
async fn create_instance_refuses_unusable_ids_with_the_rule() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b);
    let long = "a".repeat(65);
    for id in REFUSED.iter().copied().chain([long.as_str()]) {
        let mut new = NewInstance::new(id, "stub", "client-1");
        new.client_secret = Some(SecretString::from("s"));
        let error = engine.create_instance(new).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid, "{id}: {error}");
        assert_eq!(
            error.to_string(),
            validate_id(IdKind::Instance, id).unwrap_err().to_string()
        );
        assert!(
            error.to_string().contains(&format!("instance id `{id}`")),
            "{error}"
        );
        assert!(matches!(
            engine.instance(id).await,
            Err(EngineError::NotFound { .. })
        ));
    }
    let mut new = NewInstance::new("box-prod_1.2", "stub", "client-1");
    new.client_secret = Some(SecretString::from("s"));
    engine.create_instance(new).await.unwrap();
}

#[tokio::test]
async fn import_integration_refuses_unusable_names_with_the_rule() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b);
    let document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Other", "version": "1"},
        "paths": {},
        "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
            "authorizationCode": {
                "authorizationUrl": format!("{}/authorize", world.server.uri()),
                "tokenUrl": format!("{}/token", world.server.uri()),
                "scopes": {}
            }
        }}}}
    })
    .to_string();
    for name in REFUSED {
        let error = engine
            .import_integration(name, document.as_bytes())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid, "{name}: {error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("the integration name `{name}` is not usable")),
            "{error}"
        );
    }
    assert_eq!(engine.list_integrations().await.unwrap().len(), 1);
    engine
        .import_integration("other.v2", document.as_bytes())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_started_authorization_carries_the_state_of_its_url() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b);
    let first = engine.begin_authorization("inst").await.unwrap();
    let second = engine.begin_authorization("inst").await.unwrap();
    for start in [&first, &second] {
        let in_url: Vec<String> = start
            .url
            .query_pairs()
            .filter(|(name, _)| name == "state")
            .map(|(_, value)| value.into_owned())
            .collect();
        assert_eq!(in_url, vec![start.state.clone()]);
    }
    assert_ne!(first.state, second.state);
}

#[tokio::test]
async fn the_authorization_link_opens_the_instance_on_the_admin_page() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b);
    assert_eq!(
        engine.authorization_link("inst").await.unwrap().as_str(),
        "https://granary.test/admin/instances/inst/authorize"
    );
    assert_eq!(
        engine.redirect_uri().as_str(),
        "https://granary.test/admin/oauth/",
        "the link and the redirect URI share the admin page's base"
    );
    assert!(matches!(
        engine.authorization_link("missing").await,
        Err(EngineError::NotFound { .. })
    ));
    let disable = granary_flow::engine::InstanceUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    engine.update_instance("inst", disable).await.unwrap();
    assert!(matches!(
        engine.authorization_link("inst").await,
        Err(EngineError::Disabled { .. })
    ));
}
