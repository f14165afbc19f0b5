//! Provider profiles as the engine applies them (issue 15): which layer wins, URL templates
//! and connection fields, the authorization request, the callback, the token answer, the
//! refresh strategies, the stated lifetime, the API target, and what a change of connection
//! does to the tokens. Each test asserts what the provider (a wiremock server on
//! 127.0.0.1) received, or what the engine answers.

use std::collections::BTreeMap;
use std::time::Duration;

use granary_flow::engine::{Engine, EngineError, InstanceUpdate, NewInstance, RefresherConfig};
use granary_flow::profile::ProfileSource;
use granary_store::{ClientAuth, InstanceStatus, Store as _, Timestamp};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

mod support;

use support::{START, World, token_json};

/// The integration the tests import: one authorization-code flow at the world's provider.
const INTEGRATION: &str = "prov";

/// A world with the integration `prov` (its scheme carrying `extension` as
/// `x-granary-profile`, when given) and an engine over it.
async fn world_with(extension: Option<Value>) -> (World, Engine) {
    world_tuned(extension, |b| b).await
}

async fn world_tuned(
    extension: Option<Value>,
    tweak: impl FnOnce(granary_flow::engine::EngineBuilder) -> granary_flow::engine::EngineBuilder,
) -> (World, Engine) {
    let world = World::new().await;
    let engine = world.engine("p1", tweak);
    let uri = world.server.uri();
    let flows = json!({"authorizationCode": {
        "authorizationUrl": format!("{uri}/authorize"),
        "tokenUrl": format!("{uri}/token"),
        "scopes": {"read": "Read", "write": "Write", "offline_access": "Stay connected"}
    }});
    import(&engine, flows, extension).await;
    (world, engine)
}

/// Imports `prov` with `flows` and the scheme's `x-granary-profile`.
async fn import(engine: &Engine, flows: Value, extension: Option<Value>) {
    let mut scheme = json!({"type": "oauth2", "flows": flows});
    if let Some(extension) = extension {
        scheme["x-granary-profile"] = extension;
    }
    let document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Profiled API", "version": "1"},
        "servers": [{"url": "https://api.example.test/v1"}],
        "paths": {},
        "components": {"securitySchemes": {"oauth": scheme}}
    });
    engine
        .import_integration(INTEGRATION, document.to_string().as_bytes())
        .await
        .unwrap();
}

/// An instance `id` of `prov` with a secret, the scope `read` and its own profile layer.
fn instance(id: &str, profile: Option<Value>) -> NewInstance {
    let mut new = NewInstance::new(id, INTEGRATION, "client-1");
    new.client_secret = Some(SecretString::from("client-secret-value"));
    new.scopes = vec!["read".into()];
    new.profile = profile;
    new
}

async fn create(engine: &Engine, new: NewInstance) {
    engine.create_instance(new).await.unwrap();
}

/// The value of the query parameter `name` of `url`.
fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// The form body (or, for a GET, the query) of a request, by name.
fn form(request: &Request) -> BTreeMap<String, String> {
    if request.method.as_str() == "GET" {
        return request.url.query_pairs().into_owned().collect();
    }
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// The requests the provider received at `at`.
async fn received_at(server: &MockServer, at: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("the mock server records requests")
        .into_iter()
        .filter(|r| r.url.path() == at)
        .collect()
}

/// Answers every request at `at` (any method) with `body`.
async fn answer(server: &MockServer, at: &str, body: Value) {
    Mock::given(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// Begins the authorization of `id`: the URL the user is sent to.
async fn begin(engine: &Engine, id: &str) -> Url {
    engine.begin_authorization(id).await.unwrap().url
}

/// Completes the authorization begun at `url` with a callback carrying `rest` besides the
/// state.
async fn callback(engine: &Engine, url: &Url, rest: &str) -> Result<String, EngineError> {
    let state = param(url, "state").expect("the URL has a state");
    engine
        .complete_authorization(&format!("state={state}&{rest}"))
        .await
}

/// Begins and completes the authorization of `id` with `code=the-code`.
async fn authorize(engine: &Engine, id: &str) {
    let url = begin(engine, id).await;
    callback(engine, &url, "code=the-code").await.unwrap();
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(START + seconds * 1000)
}

// 1. Precedence.

#[tokio::test]
async fn the_instance_layer_wins_over_the_document_over_the_catalogue_and_use_none_drops_it() {
    let (world, engine) = world_with(Some(json!({
        "use": "google",
        "authorization": {"params": {"prompt": "select_account", "layer": "document", "doc_only": "d"}}
    })))
    .await;
    let mut new = instance(
        "layered",
        Some(json!({"authorization": {"params": {"layer": "instance", "own": "profile"}}})),
    );
    new.extra_authorization_params = vec![("own".into(), "instance-setting".into())];
    create(&engine, new).await;
    let url = begin(&engine, "layered").await;
    // The catalogue's (Google's) parameter, the document's over the catalogue's, the
    // instance layer's over the document's, the instance's own setting over its layer's;
    // every name once.
    assert_eq!(
        param(&url, "access_type").as_deref(),
        Some("offline"),
        "{url}"
    );
    assert_eq!(
        param(&url, "prompt").as_deref(),
        Some("select_account"),
        "{url}"
    );
    assert_eq!(param(&url, "layer").as_deref(), Some("instance"), "{url}");
    assert_eq!(param(&url, "doc_only").as_deref(), Some("d"), "{url}");
    assert_eq!(
        param(&url, "own").as_deref(),
        Some("instance-setting"),
        "{url}"
    );
    for name in ["prompt", "layer", "own"] {
        assert_eq!(
            url.query_pairs().filter(|(n, _)| n == name).count(),
            1,
            "{name} once: {url}"
        );
    }
    let record = engine.instance("layered").await.unwrap();
    let resolved = engine.instance_profile(&record).await.unwrap();
    assert!(
        matches!(resolved.sources.as_slice(), [
            ProfileSource::Catalogue { id, recognised_by: None, .. },
            ProfileSource::Document,
            ProfileSource::Instance,
        ] if id == "google"),
        "{:?}",
        resolved.sources
    );

    // `use: none` on the instance drops the catalogue profile the document named; the
    // document's layer still applies.
    let none = InstanceUpdate {
        profile: Some(Some(json!({"use": "none"}))),
        ..InstanceUpdate::default()
    };
    engine.update_instance("layered", none).await.unwrap();
    let url = begin(&engine, "layered").await;
    assert_eq!(param(&url, "access_type"), None, "{url}");
    assert_eq!(param(&url, "layer").as_deref(), Some("document"), "{url}");
    drop(world);
}

#[tokio::test]
async fn a_catalogue_profile_is_recognised_by_host_and_use_none_drops_it() {
    // Google's hosts: recognised without any `use`. Only the authorization URL is built
    // here (no request is sent).
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    import(
        &engine,
        json!({"authorizationCode": {
            "authorizationUrl": "https://accounts.google.com/o/oauth2/v2/auth",
            "tokenUrl": "https://oauth2.googleapis.com/token",
            "scopes": {"read": "Read"}
        }}),
        None,
    )
    .await;
    create(&engine, instance("recognised", None)).await;
    create(&engine, instance("plain", Some(json!({"use": "none"})))).await;
    let url = begin(&engine, "recognised").await;
    assert_eq!(
        param(&url, "access_type").as_deref(),
        Some("offline"),
        "{url}"
    );
    assert_eq!(param(&url, "prompt").as_deref(), Some("consent"), "{url}");
    let record = engine.instance("recognised").await.unwrap();
    let sources = engine.instance_profile(&record).await.unwrap().sources;
    assert!(
        matches!(sources.as_slice(), [ProfileSource::Catalogue { id, recognised_by: Some(_), .. }]
            if id == "google"),
        "{sources:?}"
    );
    let url = begin(&engine, "plain").await;
    assert_eq!(param(&url, "access_type"), None, "{url}");
    assert_eq!(param(&url, "prompt"), None, "{url}");
    let record = engine.instance("plain").await.unwrap();
    assert!(
        engine
            .instance_profile(&record)
            .await
            .unwrap()
            .sources
            .is_empty()
    );
}

// 2. URL templates.

/// An instance layer whose endpoints are templates naming the label field `shop`.
fn shop_profile(uri: &str) -> Value {
    json!({
        "fields": [{"name": "shop", "label": "Shop", "kind": "label"}],
        "authorization": {"url": format!("{uri}/shops/{{shop}}/authorize")},
        "token": {"url": format!("{uri}/shops/{{shop}}/token")}
    })
}

#[tokio::test]
async fn a_connection_field_fills_the_authorization_and_token_urls() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    let mut new = instance("acme", Some(shop_profile(&uri)));
    new.connection = BTreeMap::from([("shop".to_string(), "acme".to_string())]);
    create(&engine, new).await;
    answer(
        &world.server,
        "/shops/acme/token",
        token_json("shop-token", None, None),
    )
    .await;
    let url = begin(&engine, "acme").await;
    assert_eq!(url.path(), "/shops/acme/authorize", "{url}");
    let url_str = url.to_string();
    assert!(url_str.starts_with(&uri), "{url_str}");
    callback(&engine, &url, "code=the-code").await.unwrap();
    let exchanges = received_at(&world.server, "/shops/acme/token").await;
    assert_eq!(exchanges.len(), 1);
    assert_eq!(form(&exchanges[0])["code"], "the-code");
    assert!(received_at(&world.server, "/token").await.is_empty());
    assert_eq!(
        engine.access_token("acme").await.unwrap().secret(),
        "shop-token"
    );
}

#[tokio::test]
async fn a_required_field_left_out_or_a_url_for_a_label_is_refused() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    let missing = engine
        .create_instance(instance("no-shop", Some(shop_profile(&uri))))
        .await
        .unwrap_err();
    assert!(matches!(missing, EngineError::Invalid(_)), "{missing:?}");
    let message = missing.to_string();
    assert!(message.contains("shop"), "{message}");

    let mut url_value = instance("url-shop", Some(shop_profile(&uri)));
    url_value.connection =
        BTreeMap::from([("shop".to_string(), "https://evil.example/steal".to_string())]);
    let refused = engine.create_instance(url_value).await.unwrap_err();
    assert!(matches!(refused, EngineError::Invalid(_)), "{refused:?}");
    let message = refused.to_string();
    assert!(
        message.contains("shop") && message.contains("not a URL"),
        "{message}"
    );
    for id in ["no-shop", "url-shop"] {
        assert!(
            world.store.get_instance(id).await.unwrap().is_none(),
            "{id}"
        );
    }
}

#[tokio::test]
async fn an_instance_url_override_beats_the_profile_template() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    let mut new = instance("overridden", Some(shop_profile(&uri)));
    new.connection = BTreeMap::from([("shop".to_string(), "acme".to_string())]);
    new.authorization_url = Some(Url::parse(&format!("{uri}/own/authorize")).unwrap());
    new.token_url = Some(Url::parse(&format!("{uri}/own/token")).unwrap());
    create(&engine, new).await;
    answer(&world.server, "/own/token", token_json("own", None, None)).await;
    let url = begin(&engine, "overridden").await;
    assert_eq!(url.path(), "/own/authorize", "{url}");
    callback(&engine, &url, "code=the-code").await.unwrap();
    assert_eq!(received_at(&world.server, "/own/token").await.len(), 1);
    assert!(
        received_at(&world.server, "/shops/acme/token")
            .await
            .is_empty()
    );
}

// 3. The authorization request.

#[tokio::test]
async fn the_authorization_request_follows_the_profile() {
    let (world, engine) = world_with(None).await;
    let mut new = instance(
        "quirky",
        Some(json!({"authorization": {
            "always_scopes": ["offline_access", "extra"],
            "pkce": false,
            "rename": {"client_id": "client_key"},
            "drop": ["response_type"],
            "scope_separator": ","
        }})),
    );
    new.scopes = vec!["read".into(), "offline_access".into()];
    create(&engine, new).await;
    answer(&world.server, "/token", token_json("a", None, None)).await;
    let url = begin(&engine, "quirky").await;
    // Always-requested scopes are added once, joined with commas.
    assert_eq!(
        param(&url, "scope").as_deref(),
        Some("read,offline_access,extra"),
        "{url}"
    );
    assert_eq!(
        param(&url, "client_key").as_deref(),
        Some("client-1"),
        "{url}"
    );
    assert_eq!(param(&url, "client_id"), None, "{url}");
    assert_eq!(param(&url, "response_type"), None, "{url}");
    assert_eq!(param(&url, "code_challenge"), None, "{url}");
    assert_eq!(param(&url, "code_challenge_method"), None, "{url}");
    callback(&engine, &url, "code=the-code").await.unwrap();
    let exchanges = received_at(&world.server, "/token").await;
    assert_eq!(exchanges.len(), 1);
    let body = form(&exchanges[0]);
    assert_eq!(body["code"], "the-code");
    assert!(!body.contains_key("code_verifier"), "{body:?}");
}

// 4. The callback.

#[tokio::test]
async fn the_code_is_read_under_the_profiles_name() {
    let (world, engine) = world_with(None).await;
    create(
        &engine,
        instance(
            "amazon-like",
            Some(json!({"authorization": {"code_param": "spapi_oauth_code"}})),
        ),
    )
    .await;
    answer(&world.server, "/token", token_json("a", None, None)).await;
    let url = begin(&engine, "amazon-like").await;
    callback(&engine, &url, "spapi_oauth_code=renamed-code")
        .await
        .unwrap();
    let exchanges = received_at(&world.server, "/token").await;
    assert_eq!(exchanges.len(), 1);
    assert_eq!(form(&exchanges[0])["code"], "renamed-code");
}

#[tokio::test]
async fn a_kept_callback_parameter_is_stored_and_returned() {
    let (world, engine) = world_with(None).await;
    // QuickBooks keeps realmId; its endpoints here are the document's (the world's).
    create(&engine, instance("books", Some(json!("quickbooks")))).await;
    answer(
        &world.server,
        "/token",
        token_json("books-token", Some("r"), Some(3600)),
    )
    .await;
    let url = begin(&engine, "books").await;
    callback(&engine, &url, "code=the-code&realmId=4620816365")
        .await
        .unwrap();
    let token = engine.access_token("books").await.unwrap();
    assert_eq!(token.secret(), "books-token");
    assert_eq!(
        token.kept().get("realmId").map(String::as_str),
        Some("4620816365")
    );
    let summary = engine.status("books").await.unwrap().token.unwrap();
    assert_eq!(
        summary.kept,
        BTreeMap::from([("realmId".to_string(), "4620816365".to_string())])
    );
    // The catalogue's API base URL names it.
    let target = engine.api_target("books").await.unwrap();
    assert_eq!(
        target.base_url.unwrap().as_str(),
        "https://quickbooks.api.intuit.com/v3/company/4620816365"
    );
}

/// Zoho with the world's server as the only data centre the callback may name.
fn zoho_here(uri: &str) -> Value {
    json!({
        "use": "zoho",
        "fields": [{
            "name": "accounts-server", "kind": "origin", "from_callback": true,
            "hosts": ["127.0.0.1"]
        }],
        "authorization": {"url": format!("{uri}/authorize")}
    })
}

#[tokio::test]
async fn the_callbacks_origin_field_fills_the_token_url() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    create(&engine, instance("zoho", Some(zoho_here(&uri)))).await;
    answer(
        &world.server,
        "/oauth/v2/token",
        json!({"access_token": "zoho-token", "expires_in": 3600, "refresh_token": "r",
               "api_domain": "https://www.zohoapis.eu"}),
    )
    .await;
    let url = begin(&engine, "zoho").await;
    assert_eq!(
        param(&url, "access_type").as_deref(),
        Some("offline"),
        "{url}"
    );
    let server = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>();
    callback(
        &engine,
        &url,
        &format!("code=the-code&location=eu&accounts-server={server}"),
    )
    .await
    .unwrap();
    let exchanges = received_at(&world.server, "/oauth/v2/token").await;
    assert_eq!(
        exchanges.len(),
        1,
        "the exchange went to the callback's server"
    );
    assert_eq!(form(&exchanges[0])["code"], "the-code");
    let kept = engine.status("zoho").await.unwrap().token.unwrap().kept;
    assert_eq!(kept.get("accounts-server"), Some(&uri));
    assert_eq!(
        kept.get("api_domain").map(String::as_str),
        Some("https://www.zohoapis.eu")
    );
}

#[tokio::test]
async fn a_forged_origin_in_the_callback_is_refused_and_nothing_is_sent_there() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    create(&engine, instance("zoho", Some(zoho_here(&uri)))).await;
    // Another server on the loopback, under a host the profile does not allow.
    let forged = MockServer::start().await;
    answer(&forged, "/oauth/v2/token", token_json("stolen", None, None)).await;
    let forged_origin = format!("http://localhost:{}", forged.address().port());
    let url = begin(&engine, "zoho").await;
    let server = url::form_urlencoded::byte_serialize(forged_origin.as_bytes()).collect::<String>();
    let completed = callback(
        &engine,
        &url,
        &format!("code=the-code&accounts-server={server}"),
    )
    .await;
    assert!(
        forged.received_requests().await.unwrap().is_empty(),
        "nothing may reach the forged server"
    );
    let message = completed.unwrap_err().to_string();
    assert!(
        message.contains("accounts-server") && message.contains("127.0.0.1"),
        "{message}"
    );
    assert!(world.store.get_token("zoho").await.unwrap().is_none());
    assert_eq!(
        engine.instance("zoho").await.unwrap().status,
        InstanceStatus::New
    );
}

// 5. The token answer.

#[tokio::test]
async fn the_token_is_read_where_the_profile_says_and_fields_are_kept() {
    let (world, engine) = world_with(None).await;
    create(&engine, instance("slack", Some(json!("slack")))).await;
    answer(
        &world.server,
        "/token",
        json!({
            "ok": true, "access_token": "xoxb-bot", "token_type": "bot",
            "team": {"id": "T0001", "name": "Acme"},
            "authed_user": {"id": "U0001", "access_token": "xoxp-user", "token_type": "user"}
        }),
    )
    .await;
    let url = begin(&engine, "slack").await;
    // Slack's catalogue quirks of the request: scopes as user_scope, no PKCE.
    assert_eq!(param(&url, "user_scope").as_deref(), Some("read"), "{url}");
    assert_eq!(param(&url, "scope"), None, "{url}");
    assert_eq!(param(&url, "code_challenge"), None, "{url}");
    callback(&engine, &url, "code=the-code").await.unwrap();
    let token = engine.access_token("slack").await.unwrap();
    assert_eq!(token.secret(), "xoxp-user");
    assert_eq!(
        token.kept(),
        &BTreeMap::from([
            ("authed_user.id".to_string(), "U0001".to_string()),
            ("team.id".to_string(), "T0001".to_string()),
        ])
    );
}

#[tokio::test]
async fn ok_false_in_a_200_is_an_error_and_no_token_is_stored() {
    let (world, engine) = world_with(None).await;
    create(&engine, instance("slack", Some(json!("slack")))).await;
    // Slack's refusal, and an answer that only its flag makes an error (it even holds a
    // token where Slack puts the user's).
    for (body, expected) in [
        (
            json!({"ok": false, "error": "invalid_code"}),
            "invalid_code",
        ),
        (
            json!({"ok": false, "authed_user": {"access_token": "xoxp-flagged"}}),
            "`ok` is false",
        ),
    ] {
        let guard = Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount_as_scoped(&world.server)
            .await;
        let url = begin(&engine, "slack").await;
        let error = callback(&engine, &url, "code=the-code").await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(world.store.get_token("slack").await.unwrap().is_none());
        assert_eq!(
            engine.instance("slack").await.unwrap().status,
            InstanceStatus::New
        );
        drop(guard);
    }
}

#[tokio::test]
async fn kept_values_survive_a_refresh_that_does_not_repeat_them_and_are_replaced_by_new_ones() {
    let (world, engine) = world_with(None).await;
    create(
        &engine,
        instance(
            "kept",
            Some(json!({"token": {"keep": ["instance_url", "team.id"]}})),
        ),
    )
    .await;
    let mut first = token_json("access-1", Some("refresh-1"), Some(3600));
    first["instance_url"] = json!("https://one.example");
    first["team"] = json!({"id": "T1"});
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=authorization_code",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(first))
        .mount(&world.server)
        .await;
    authorize(&engine, "kept").await;
    let before = engine.access_token("kept").await.unwrap();
    assert_eq!(before.kept()["instance_url"], "https://one.example");

    // A refresh whose answer states neither.
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains(
            "refresh_token=refresh-1",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-2",
            Some("refresh-2"),
            Some(3600),
        )))
        .mount(&world.server)
        .await;
    let second = engine.refresh_now("kept").await.unwrap();
    assert_eq!(second.secret(), "access-2");
    let both = BTreeMap::from([
        (
            "instance_url".to_string(),
            "https://one.example".to_string(),
        ),
        ("team.id".to_string(), "T1".to_string()),
    ]);
    assert_eq!(second.kept(), &both);
    assert_eq!(
        engine.status("kept").await.unwrap().token.unwrap().kept,
        both
    );

    // A refresh that sends a new instance_url: it replaces the kept one.
    let mut third = token_json("access-3", Some("refresh-3"), Some(3600));
    third["instance_url"] = json!("https://two.example");
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains(
            "refresh_token=refresh-2",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(third))
        .mount(&world.server)
        .await;
    let token = engine.refresh_now("kept").await.unwrap();
    assert_eq!(token.secret(), "access-3");
    assert_eq!(token.kept()["instance_url"], "https://two.example");
    assert_eq!(token.kept()["team.id"], "T1");
}

// 6. Refresh strategies.

/// Facebook's strategy, with the exchange at the world's `/exchange`.
fn facebook_here(uri: &str) -> Value {
    json!({
        "use": "facebook",
        "refresh": {"exchange": {
            "url": format!("{uri}/exchange"), "method": "GET",
            "grant_type": "fb_exchange_token", "token_param": "fb_exchange_token",
            "client_credentials": true
        }}
    })
}

#[tokio::test]
async fn an_exchange_provider_is_renewed_by_trading_its_current_access_token() {
    let (world, engine) = world_tuned(None, |b| b.refresh_margin(Duration::from_secs(300))).await;
    let uri = world.server.uri();
    create(&engine, instance("fb", Some(facebook_here(&uri)))).await;
    answer(
        &world.server,
        "/token",
        token_json("short", None, Some(3600)),
    )
    .await;
    for (presented, next) in [("short", "long-1"), ("long-1", "long-2")] {
        Mock::given(method("GET"))
            .and(path("/exchange"))
            .and(query_param("fb_exchange_token", presented))
            .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
                next,
                None,
                Some(3600),
            )))
            .mount(&world.server)
            .await;
    }
    authorize(&engine, "fb").await;
    assert_eq!(engine.access_token("fb").await.unwrap().secret(), "short");
    assert!(received_at(&world.server, "/exchange").await.is_empty());

    // Inside the margin, before expiry: exchanged.
    world.advance(Duration::from_secs(3600 - 200));
    assert_eq!(engine.access_token("fb").await.unwrap().secret(), "long-1");
    world.advance(Duration::from_secs(3600 - 200));
    assert_eq!(engine.access_token("fb").await.unwrap().secret(), "long-2");

    let exchanges = received_at(&world.server, "/exchange").await;
    assert_eq!(exchanges.len(), 2);
    for (request, presented) in exchanges.iter().zip(["short", "long-1"]) {
        assert_eq!(request.method.as_str(), "GET");
        let query = form(request);
        assert_eq!(query["grant_type"], "fb_exchange_token");
        assert_eq!(query["fb_exchange_token"], presented);
        assert_eq!(query["client_id"], "client-1");
        assert_eq!(query["client_secret"], "client-secret-value");
    }
    // Only the code exchange went to the token endpoint.
    assert_eq!(received_at(&world.server, "/token").await.len(), 1);
}

#[tokio::test]
async fn an_expired_exchange_token_needs_authorization_saying_why() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    create(&engine, instance("fb", Some(facebook_here(&uri)))).await;
    answer(
        &world.server,
        "/token",
        token_json("short", None, Some(3600)),
    )
    .await;
    answer(
        &world.server,
        "/exchange",
        token_json("late", None, Some(3600)),
    )
    .await;
    authorize(&engine, "fb").await;
    world.advance(Duration::from_secs(3601));
    let error = engine.access_token("fb").await.unwrap_err();
    let EngineError::NeedsAuthorization { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        reason.contains("renews only an unexpired access token"),
        "{reason}"
    );
    assert!(received_at(&world.server, "/exchange").await.is_empty());
    assert_eq!(
        engine.instance("fb").await.unwrap().status,
        InstanceStatus::NeedsAuthorization
    );
}

#[tokio::test]
async fn a_never_expiring_token_is_served_and_never_refreshed() {
    // The engine's default lifetime would refresh a token of unknown expiry after an hour;
    // GitHub's profile says its tokens never expire.
    let (world, engine) = world_tuned(None, |b| {
        b.default_token_lifetime(Some(Duration::from_secs(3600)))
    })
    .await;
    create(&engine, instance("gh", Some(json!("github")))).await;
    answer(
        &world.server,
        "/token",
        json!({"access_token": "gho_never", "token_type": "bearer", "scope": "read"}),
    )
    .await;
    authorize(&engine, "gh").await;
    // GitHub's catalogue profile: the secret in the body.
    let exchange = &received_at(&world.server, "/token").await[0];
    assert_eq!(form(exchange)["client_secret"], "client-secret-value");

    world.advance(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        engine.access_token("gh").await.unwrap().secret(),
        "gho_never"
    );
    let round = engine
        .run_refresh_round(&RefresherConfig {
            jitter: Duration::ZERO,
            ..RefresherConfig::default()
        })
        .await;
    assert_eq!(round.refreshed, 0, "{round:?}");
    let error = engine.refresh_now("gh").await.unwrap_err();
    assert!(
        matches!(error, EngineError::NothingToRefresh { .. }),
        "{error:?}"
    );
    assert_eq!(
        engine.access_token("gh").await.unwrap().secret(),
        "gho_never"
    );
    assert_eq!(
        engine.instance("gh").await.unwrap().status,
        InstanceStatus::Authorized
    );
    assert_eq!(
        received_at(&world.server, "/token").await.len(),
        1,
        "only the code exchange reached the token endpoint"
    );
}

#[tokio::test]
async fn a_never_renewed_token_with_a_refresh_token_is_still_served_not_refreshed() {
    // A provider that sends a refresh token although the profile says tokens are never
    // renewed: the token is still served as long as it is valid, and nothing is sent.
    let (world, engine) = world_tuned(None, |b| {
        b.default_token_lifetime(Some(Duration::from_secs(3600)))
    })
    .await;
    create(
        &engine,
        instance("never", Some(json!({"refresh": {"strategy": "none"}}))),
    )
    .await;
    answer(
        &world.server,
        "/token",
        token_json("never-expires", Some("unused-refresh"), None),
    )
    .await;
    authorize(&engine, "never").await;
    world.advance(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        engine.access_token("never").await.unwrap().secret(),
        "never-expires"
    );
    let round = engine
        .run_refresh_round(&RefresherConfig {
            jitter: Duration::ZERO,
            ..RefresherConfig::default()
        })
        .await;
    assert_eq!(round.refreshed, 0, "{round:?}");
    assert_eq!(
        engine.instance("never").await.unwrap().status,
        InstanceStatus::Authorized
    );
    assert_eq!(received_at(&world.server, "/token").await.len(), 1);
    // The refresh token it sent is kept, never thrown away: when the API refuses the token,
    // it is what renews it (a GitHub App's expiring user token under GitHub's profile).
    let token = engine.access_token("never").await.unwrap();
    engine.force_refresh("never", &token).await.unwrap();
    let requests = received_at(&world.server, "/token").await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        form(&requests[1]).get("refresh_token").map(String::as_str),
        Some("unused-refresh")
    );
    assert_eq!(
        engine.instance("never").await.unwrap().status,
        InstanceStatus::Authorized
    );
}

// 7. Lifetime.

#[tokio::test]
async fn the_profiles_lifetime_applies_when_the_answer_states_none() {
    let (world, engine) = world_with(None).await;
    create(
        &engine,
        instance("sf", Some(json!({"token": {"lifetime": 7200}}))),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=authorization_code",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_json(
            "access-1",
            Some("refresh-1"),
            None,
        )))
        .mount(&world.server)
        .await;
    world
        .on_refresh(ResponseTemplate::new(200).set_body_json(token_json("access-2", None, None)))
        .await;
    authorize(&engine, "sf").await;
    let token = engine.access_token("sf").await.unwrap();
    assert_eq!(token.expires_at(), Some(at(7200)));
    assert_eq!(
        engine.status("sf").await.unwrap().token.unwrap().expires_at,
        Some(at(7200))
    );
    // A refresh whose answer states none gets it too.
    world.advance(Duration::from_secs(7200 - 30));
    let token = engine.access_token("sf").await.unwrap();
    assert_eq!(token.secret(), "access-2");
    assert_eq!(token.expires_at(), Some(at(7200 - 30 + 7200)));
}

// 8. The API target.

#[tokio::test]
async fn the_api_target_follows_the_profile() {
    let (world, engine) = world_with(None).await;
    let uri = world.server.uri();
    // Salesforce: the base URL names the token answer's instance_url.
    create(
        &engine,
        instance(
            "sf",
            Some(json!({"use": "salesforce",
                "authorization": {"url": format!("{uri}/authorize")},
                "token": {"url": format!("{uri}/token")}})),
        ),
    )
    .await;
    let error = engine.api_target("sf").await.unwrap_err();
    assert!(error.to_string().contains("instance_url"), "{error}");
    let mut body = token_json("sf-token", Some("r"), None);
    body["instance_url"] = json!("https://acme.my.salesforce.com");
    answer(&world.server, "/token", body).await;
    authorize(&engine, "sf").await;
    let target = engine.api_target("sf").await.unwrap();
    assert_eq!(
        target.base_url.as_ref().map(Url::as_str),
        Some("https://acme.my.salesforce.com/services/data")
    );
    assert_eq!(target.token_header, "Authorization");
    assert_eq!(target.header_value("t"), "Bearer t");

    // Shopify: its own header, no prefix, the shop in the base URL.
    let mut shop = instance("shop", Some(json!("shopify")));
    shop.connection = BTreeMap::from([("shop".to_string(), "acme".to_string())]);
    create(&engine, shop).await;
    assert_eq!(
        engine.instance("shop").await.unwrap().client_auth,
        ClientAuth::ClientSecretPost,
        "the profile's client authentication is the default"
    );
    let target = engine.api_target("shop").await.unwrap();
    assert_eq!(
        target.base_url.as_ref().map(Url::as_str),
        Some("https://acme.myshopify.com/admin/api")
    );
    assert_eq!(target.token_header, "X-Shopify-Access-Token");
    assert_eq!(target.token_prefix, "");
    assert_eq!(target.header_value("shpat"), "shpat");

    // No profile: the document's server, `Authorization: Bearer`.
    create(&engine, instance("plain", None)).await;
    let target = engine.api_target("plain").await.unwrap();
    assert_eq!(
        target.base_url.as_ref().map(Url::as_str),
        Some("https://api.example.test/v1")
    );
    assert_eq!(target.token_header, "Authorization");
    assert_eq!(target.token_prefix, "Bearer ");
}

// 9. Updates.

#[tokio::test]
async fn a_connection_change_that_moves_the_token_url_forgets_the_tokens_and_one_that_does_not_keeps_them()
 {
    let (world, engine) = world_with(None).await;
    let port = world.server.address().port();
    let profile = json!({
        "fields": [
            {"name": "server", "kind": "origin", "hosts": ["127.0.0.1", "localhost"]},
            {"name": "tenant", "kind": "label"}
        ],
        "authorization": {"url": "{server}/{tenant}/authorize"},
        "token": {"url": "{server}/{tenant}/token"}
    });
    let connection = |server: &str, tenant: &str| {
        BTreeMap::from([
            ("server".to_string(), server.to_string()),
            ("tenant".to_string(), tenant.to_string()),
        ])
    };
    let here = format!("http://127.0.0.1:{port}");
    let mut new = instance("tenant", Some(profile));
    new.connection = connection(&here, "one");
    create(&engine, new).await;
    answer(
        &world.server,
        "/one/token",
        token_json("access-1", Some("refresh-1"), Some(3600)),
    )
    .await;
    authorize(&engine, "tenant").await;

    // Another tenant on the same origin: the tokens stay.
    let same_origin = InstanceUpdate {
        connection: Some(connection(&here, "two")),
        ..InstanceUpdate::default()
    };
    let updated = engine.update_instance("tenant", same_origin).await.unwrap();
    assert_eq!(updated.status, InstanceStatus::Authorized);
    assert!(world.store.get_token("tenant").await.unwrap().is_some());
    assert_eq!(
        engine.access_token("tenant").await.unwrap().secret(),
        "access-1"
    );

    // Another origin: the tokens are forgotten.
    let elsewhere = InstanceUpdate {
        connection: Some(connection(&format!("http://localhost:{port}"), "two")),
        ..InstanceUpdate::default()
    };
    let updated = engine.update_instance("tenant", elsewhere).await.unwrap();
    assert_eq!(updated.status, InstanceStatus::NeedsAuthorization);
    assert!(world.store.get_token("tenant").await.unwrap().is_none());
    let error = engine.access_token("tenant").await.unwrap_err();
    assert!(
        matches!(error, EngineError::NeedsAuthorization { .. }),
        "{error:?}"
    );
    assert_eq!(
        engine.status("tenant").await.unwrap().instance.status,
        InstanceStatus::NeedsAuthorization
    );
}

/// A document's concrete URL wins over a catalogue template (a document about one shop),
/// unless the admin entered the connection field the template names: then the admin's
/// shop is the host. `Engine::instance_endpoints` gives the URLs the engine uses.
#[tokio::test]
async fn a_documents_url_wins_over_the_catalogue_template_unless_the_admin_entered_the_field() {
    let world = World::new().await;
    let engine = world.engine("p1", |b| b);
    let flows = json!({"authorizationCode": {
        "authorizationUrl": "https://docshop.myshopify.com/admin/oauth/authorize",
        "tokenUrl": "https://docshop.myshopify.com/admin/oauth/access_token",
        "scopes": {"read": "Read"}
    }});
    import(&engine, flows, None).await;
    create(&engine, instance("from-document", None)).await;
    let mut typed = instance("typed", None);
    typed.connection.insert("shop".into(), "acme".into());
    create(&engine, typed).await;

    let from_document = engine.instance("from-document").await.unwrap();
    let endpoints = engine.instance_endpoints(&from_document).await.unwrap();
    assert_eq!(
        endpoints.authorization_url.host_str(),
        Some("docshop.myshopify.com")
    );
    assert_eq!(
        endpoints.token_url.host_str(),
        Some("docshop.myshopify.com")
    );

    let typed = engine.instance("typed").await.unwrap();
    let endpoints = engine.instance_endpoints(&typed).await.unwrap();
    assert_eq!(
        endpoints.authorization_url.host_str(),
        Some("acme.myshopify.com")
    );
    assert_eq!(endpoints.token_url.host_str(), Some("acme.myshopify.com"));
}
