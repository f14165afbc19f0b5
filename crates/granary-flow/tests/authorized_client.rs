//! The library's authorized client calls an instance's API where its target says: under the
//! base URL (the document's server, or a provider profile's template filled with a value
//! kept from the token answer), with the token in the profile's header, and never sends a
//! path that would leave the base URL.

mod support;

use std::sync::Arc;

use granary_flow::engine::{Engine, EngineError, InstanceUpdate, NewInstance};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{Feed, FeedFault, World, eventually, token_json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

/// Imports `served` (the stub flow with a server at `{mock}/v1`) and creates `id` of it
/// with the instance profile layer `profile`.
async fn instance(world: &World, engine: &Engine, id: &str, profile: Option<Value>) {
    let uri = world.server.uri();
    let document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Served API", "version": "1"},
        "servers": [{"url": format!("{uri}/v1")}],
        "paths": {},
        "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
            "authorizationCode": {
                "authorizationUrl": format!("{uri}/authorize"),
                "tokenUrl": format!("{uri}/token"),
                "scopes": {"read": "Read"}
            }
        }}}}
    });
    if engine.integration("served").await.is_err() {
        engine
            .import_integration("served", document.to_string().as_bytes())
            .await
            .unwrap();
    }
    let mut new = NewInstance::new(id, "served", "client-1");
    new.client_secret = Some(SecretString::from("client-secret-value"));
    new.scopes = vec!["read".into()];
    new.profile = profile;
    engine.create_instance(new).await.unwrap();
}

/// Authorizes `id`; the code exchange answers `answer`.
async fn authorize(world: &World, engine: &Engine, id: &str, answer: Value) {
    let guard = Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount_as_scoped(&world.server)
        .await;
    let url = engine.begin_authorization(id).await.unwrap().url;
    let state = url
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    engine
        .complete_authorization(&format!("code=the-code&state={state}"))
        .await
        .unwrap();
    drop(guard);
}

async fn requests_to(world: &World, prefix: &str) -> usize {
    world
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .count()
}

#[tokio::test]
async fn the_token_goes_in_the_header_of_the_profile_under_the_documents_server() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b.allow_insecure_http(true));
    instance(&world, &engine, "plain", None).await;
    instance(
        &world,
        &engine,
        "shop",
        Some(json!({"api": {"token_header": "X-Shopify-Access-Token"}})),
    )
    .await;
    authorize(&world, &engine, "plain", token_json("plain-1", None, None)).await;
    authorize(&world, &engine, "shop", token_json("shop-1", None, None)).await;
    Mock::given(method("GET"))
        .and(path("/v1/products.json"))
        .and(header("authorization", "Bearer plain-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("plain"))
        .mount(&world.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/products.json"))
        .and(header("x-shopify-access-token", "shop-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("shop"))
        .mount(&world.server)
        .await;

    for (id, body) in [("plain", "plain"), ("shop", "shop")] {
        let client = engine.authorized_client(id, reqwest::Client::new());
        let request = client.get("products.json?page=2").await.unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), 200, "{id}");
        assert_eq!(response.text().await.unwrap(), body);
    }
    let received = world.server.received_requests().await.unwrap();
    let shop = received
        .iter()
        .find(|r| r.headers.contains_key("x-shopify-access-token"))
        .unwrap();
    assert_eq!(shop.url.query(), Some("page=2"));
    assert!(
        !shop.headers.contains_key("authorization"),
        "a profile header replaces Authorization"
    );
}

#[tokio::test]
async fn the_base_url_comes_from_a_field_kept_from_the_token_answer() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b.allow_insecure_http(true));
    instance(
        &world,
        &engine,
        "sf",
        Some(json!({
            "token": {"keep": ["instance_url"]},
            "api": {"base_url": "{instance_url}/services/data"}
        })),
    )
    .await;
    let mut answer = token_json("sf-1", Some("sf-refresh"), Some(3600));
    answer["instance_url"] = json!(format!("{}/org-42", world.server.uri()));
    authorize(&world, &engine, "sf", answer).await;
    Mock::given(method("POST"))
        .and(path("/org-42/services/data/v60.0/query"))
        .and(header("authorization", "Bearer sf-1"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&world.server)
        .await;
    let client = engine.authorized_client("sf", reqwest::Client::new());
    let request = client.post("v60.0/query").await.unwrap().body("q");
    assert_eq!(client.send(request).await.unwrap().status(), 201);
    assert_eq!(requests_to(&world, "/v1").await, 0);
}

#[tokio::test]
async fn a_path_that_leaves_the_base_url_is_refused_and_nothing_is_sent() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b.allow_insecure_http(true));
    instance(&world, &engine, "plain", None).await;
    authorize(&world, &engine, "plain", token_json("plain-1", None, None)).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&world.server)
        .await;
    let before = world.server.received_requests().await.unwrap().len();
    let client = engine.authorized_client("plain", reqwest::Client::new());
    for (bad, rule) in [
        ("../token", "no-dot-segments"),
        ("a/%2e%2e/%2E%2e/token", "no-dot-segments"),
        ("//evil.example/x", "no-leading-slash"),
        ("user@evil.example/x", "no-at-sign"),
        ("http://evil.example/x", "no-absolute-url"),
    ] {
        let error = client.get(bad).await.unwrap_err();
        assert!(
            matches!(&error, EngineError::Invalid(text) if text.contains(rule)),
            "{bad}: {error}"
        );
    }
    assert_eq!(
        world.server.received_requests().await.unwrap().len(),
        before,
        "a refused path sent something"
    );
    // The same client still sends what stays under the base URL.
    let request = client.get("ok").await.unwrap();
    assert_eq!(client.send(request).await.unwrap().status(), 200);
    assert_eq!(requests_to(&world, "/v1/ok").await, 1);
}

#[tokio::test]
async fn an_instance_without_a_base_url_is_told_so() {
    let world = World::new().await;
    let engine = world.engine("a", |b| b.allow_insecure_http(true));
    // The stub integration's document names no server.
    world
        .authorize(&engine, "access-1", Some("refresh-1"), None)
        .await;
    let client = engine.authorized_client("inst", reqwest::Client::new());
    let error = client.get("x").await.unwrap_err();
    assert!(error.to_string().contains("no base URL"), "{error}");
}

#[tokio::test]
async fn calls_with_one_token_read_no_record_and_a_changed_profile_is_used() {
    let world = World::new().await;
    let store = FeedFault::new(Arc::clone(&world.store), Feed::Normal);
    let engine = world.engine_on(store.clone(), "a", |b| b.allow_insecure_http(true));
    instance(&world, &engine, "plain", None).await;
    authorize(&world, &engine, "plain", token_json("plain-1", None, None)).await;
    Mock::given(method("GET"))
        .and(path("/v1/x"))
        .and(header("authorization", "Bearer plain-1"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&world.server)
        .await;
    let client = engine.authorized_client("plain", reqwest::Client::new());
    let call = |path: &'static str| {
        let client = client.clone();
        async move {
            let request = client.get(path).await.unwrap();
            client.send(request).await.unwrap().status().as_u16()
        }
    };
    assert_eq!(call("x").await, 200);
    let reads = store.token_reads();
    for _ in 0..20 {
        assert_eq!(call("x").await, 200);
    }
    // Without the target cache each call reads the token record (20 reads); with it none,
    // but for one invalidation when the change feed brings this engine the authorization's
    // own write (then the token and the target are read once more: 2 reads).
    let extra = store.token_reads() - reads;
    assert!(
        extra <= 2,
        "20 calls with one token read {extra} token records: the API target is read from the \
         store on every call"
    );
    // A change of the instance's profile reaches the engine through the change feed, and
    // the next calls use it.
    engine
        .update_instance(
            "plain",
            InstanceUpdate {
                profile: Some(Some(json!({"api": {"token_header": "X-Token"}}))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/v1/y"))
        .and(header("x-token", "plain-1"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&world.server)
        .await;
    eventually("the changed profile's header is used", || {
        let answer = call("y");
        async move { answer.await == 200 }
    })
    .await;
}
