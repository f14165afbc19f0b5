//! Provider quirks of the protocol layer, stubbed with wiremock: the request each provider sees (renamed, dropped and raw authorization parameters, JSON bodies, per-call parameters, a separate refresh URL, access-token exchanges by GET) and the answers read (nested tokens, kept fields, errors inside a 200, the code under another name, kept callback values).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use granary_flow::Error;
use granary_flow::protocol::{
    self, AccessTokenExchange, AuthorizationCode, ClientAuth, ClientConfig, ExchangeMethod,
    ExposeSecret, IssuerParameter, PendingAuthorization, RefreshStrategy, RetryPolicy,
    ScopeEncoding, SecretString, Timeouts, TokenBody, TokenTypeHint,
};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "client-secret-value-1234";
const CODE: &str = "authorization-code-5678";
const REFRESH: &str = "refresh-token-value-9012";
const ACCESS: &str = "access-token-value-3456";

fn http() -> reqwest::Client {
    protocol::http_client(&Timeouts::default()).unwrap()
}

fn config(server: &MockServer, auth: ClientAuth) -> ClientConfig {
    let base = Url::parse(&server.uri()).unwrap();
    let config = ClientConfig::new(
        "client-1",
        base.join("/authorize").unwrap(),
        base.join("/token").unwrap(),
    )
    .with_revocation_url(base.join("/revoke").unwrap());
    match auth {
        ClientAuth::None => config,
        method => config.with_secret(SecretString::from(SECRET), method),
    }
}

/// A configuration with no server behind it, for the authorization URL and the callback.
fn offline_config() -> ClientConfig {
    ClientConfig::new(
        "client-1",
        Url::parse("https://as.example/authorize").unwrap(),
        Url::parse("https://as.example/token").unwrap(),
    )
}

fn redirect() -> Url {
    Url::parse("http://127.0.0.1:8080/admin/oauth/").unwrap()
}

fn authorize(config: &ClientConfig, scopes: &[&str]) -> (Url, PendingAuthorization) {
    protocol::authorization_request(config, &redirect(), scopes, None).unwrap()
}

fn query_of(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn code() -> AuthorizationCode {
    AuthorizationCode {
        code: SecretString::from(CODE),
        issuer: None,
        kept: Default::default(),
    }
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(3),
        jitter: false,
    }
}

async fn stub(server: &MockServer, verb: &str, at: &str, response: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(at))
        .respond_with(response)
        .mount(server)
        .await;
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

async fn exchange(config: &ClientConfig) -> Result<protocol::TokenResponse, Error> {
    let (_, pending) = authorize(config, &["read"]);
    protocol::exchange_code(&http(), config, &code(), &pending).await
}

async fn refresh(config: &ClientConfig) -> Result<protocol::Refreshed, Error> {
    protocol::refresh(
        &http(),
        config,
        &SecretString::from(REFRESH),
        None::<&[&str]>,
        &fast_retries(3),
    )
    .await
}

fn token_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": "AT-new", "token_type": "Bearer", "expires_in": 3600
    }))
}

// ---- The authorization request ------------------------------------------------------------

#[test]
fn standard_parameters_are_sent_under_the_provider_names_or_left_out() {
    let standard = query_of(&authorize(&offline_config(), &["read"]).0);
    assert_eq!(standard["response_type"], "code");
    assert_eq!(standard["client_id"], "client-1");
    assert!(standard.contains_key("redirect_uri"));

    // TikTok and Printful rename, Monday drops.
    let config = offline_config()
        .with_authorization_param_rename("client_id", "client_key")
        .with_authorization_param_rename("redirect_uri", "redirect_url")
        .with_dropped_authorization_param("response_type");
    let (url, pending) = authorize(&config, &["read"]);
    let q = query_of(&url);
    assert_eq!(q["client_key"], "client-1");
    assert_eq!(q["redirect_url"], "http://127.0.0.1:8080/admin/oauth/");
    for gone in ["client_id", "redirect_uri", "response_type"] {
        assert!(!q.contains_key(gone), "`{gone}` still sent: {url}");
    }
    assert_eq!(q["state"], pending.state, "the state is never shaped");
    assert!(q.contains_key("code_challenge"));
}

#[test]
fn shaping_that_cannot_work_is_refused_before_the_user_is_sent() {
    let refused = |config: ClientConfig, needle: &str| {
        let err = protocol::authorization_request(&config, &redirect(), &["read"], None)
            .expect_err(needle);
        assert!(
            matches!(err, Error::Config(ref m) if m.contains(needle)),
            "{needle}: {err}"
        );
    };
    refused(
        offline_config().with_dropped_authorization_param("state"),
        "`state` cannot be dropped",
    );
    refused(
        offline_config().with_authorization_param_rename("code_challenge", "challenge"),
        "`code_challenge` cannot be renamed",
    );
    refused(
        offline_config()
            .with_authorization_param_rename("client_id", "app_id")
            .with_authorization_param("app_id", "other"),
        "`app_id` would be sent twice",
    );
    refused(
        offline_config()
            .with_authorization_param_rename("scope", "scopes")
            .with_dropped_authorization_param("scope"),
        "both renamed and dropped",
    );
    refused(
        offline_config().with_code_param("state"),
        "cannot carry the code",
    );
    refused(
        offline_config().with_kept_callback_param("id_token"),
        "looks like a secret",
    );
}

#[test]
fn raw_scopes_keep_a_literal_plus_and_encoded_ones_do_not() {
    let scopes = ["customer_invoices:all", "supplier_invoices:readonly"];
    let encoded = offline_config().with_scope_separator("+");
    let (url, _) = authorize(&encoded, &scopes);
    assert!(
        url.as_str()
            .contains("scope=customer_invoices%3Aall%2Bsupplier_invoices%3Areadonly"),
        "{url}"
    );

    // Pennylane: the `+` stays a `+`.
    let raw = encoded.with_scope_encoding(ScopeEncoding::Raw);
    let (url, pending) = authorize(&raw, &scopes);
    assert!(
        url.as_str()
            .contains("scope=customer_invoices:all+supplier_invoices:readonly&"),
        "{url}"
    );
    assert_eq!(
        query_of(&url)["state"],
        pending.state,
        "the other parameters are still read back"
    );

    for bad in ["a&b", "a#b", "a b", "a%20b", "a\tb"] {
        let err =
            protocol::authorization_request(&raw, &redirect(), &["ok", bad], None).expect_err(bad);
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("would break the authorization URL")),
            "{bad}: {err}"
        );
    }
    let err = protocol::authorization_request(
        &raw.clone().with_scope_separator("&"),
        &redirect(),
        &["a", "b"],
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("separator")),
        "{err}"
    );
}

// ---- The callback --------------------------------------------------------------------------

#[test]
fn the_code_under_another_name_and_kept_callback_values() {
    let config = offline_config()
        .with_code_param("spapi_oauth_code")
        .with_kept_callback_param("selling_partner_id")
        .with_kept_callback_param("realmId")
        .with_kept_callback_param("accounts-server");
    let (_, pending) = authorize(&config, &["read"]);
    let query = format!(
        "spapi_oauth_code=the-code&state={}&selling_partner_id=A3SP&accounts-server=https%3A%2F%2Faccounts.zoho.eu&realmId=",
        pending.state
    );
    let code = protocol::parse_callback_with(&config, &query, &pending, IssuerParameter::IfPresent)
        .unwrap();
    assert_eq!(code.code.expose_secret(), "the-code");
    assert_eq!(code.kept["selling_partner_id"], "A3SP");
    assert_eq!(code.kept["accounts-server"], "https://accounts.zoho.eu");
    assert!(
        !code.kept.contains_key("realmId"),
        "an empty kept value is absent, not an error"
    );
    assert_eq!(code.kept.len(), 2);

    // The standard reading finds no code there, and keeps nothing.
    let err = protocol::parse_callback(&query, &pending, IssuerParameter::IfPresent).unwrap_err();
    assert!(matches!(err, Error::MissingCode), "{err}");
    let plain = format!("code=the-code&state={}&realmId=123", pending.state);
    let code = protocol::parse_callback(&plain, &pending, IssuerParameter::IfPresent).unwrap();
    assert!(code.kept.is_empty());
    // With the quirk, `code` is not the code any more.
    let err = protocol::parse_callback_with(&config, &plain, &pending, IssuerParameter::IfPresent)
        .unwrap_err();
    assert!(matches!(err, Error::MissingCode), "{err}");
    // The state is still checked first.
    let forged = "spapi_oauth_code=x&state=forged&selling_partner_id=A3SP";
    let err = protocol::parse_callback_with(&config, forged, &pending, IssuerParameter::IfPresent)
        .unwrap_err();
    assert!(matches!(err, Error::StateMismatch), "{err}");
}

// ---- Token requests ------------------------------------------------------------------------

#[tokio::test]
async fn a_json_token_body_with_basic_or_post_credentials() {
    let server = MockServer::start().await;
    stub(&server, "POST", "/token", token_answer()).await;
    stub(&server, "POST", "/revoke", ResponseTemplate::new(200)).await;
    // Notion: Basic, JSON.
    let notion = config(&server, ClientAuth::ClientSecretBasic)
        .with_token_body(TokenBody::Json)
        .with_token_param("owner", "user");
    exchange(&notion).await.unwrap();
    refresh(&notion).await.unwrap();
    protocol::revoke(
        &http(),
        &notion,
        &SecretString::from(ACCESS),
        Some(TokenTypeHint::AccessToken),
    )
    .await
    .unwrap();
    // The same with the credentials in the body.
    let post = config(&server, ClientAuth::ClientSecretPost).with_token_body(TokenBody::Json);
    exchange(&post).await.unwrap();

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 4);
    for request in &sent {
        assert_eq!(
            header(request, "content-type").as_deref(),
            Some("application/json"),
            "{}",
            request.url
        );
    }
    let body = |request: &Request| -> serde_json::Map<String, Value> {
        serde_json::from_slice(&request.body).expect("a JSON object")
    };
    let exchanged = body(&sent[0]);
    assert_eq!(exchanged["grant_type"], "authorization_code");
    assert_eq!(exchanged["code"], CODE);
    assert_eq!(
        exchanged["redirect_uri"],
        "http://127.0.0.1:8080/admin/oauth/"
    );
    assert_eq!(exchanged["owner"], "user");
    assert!(exchanged["code_verifier"].is_string());
    assert!(!exchanged.contains_key("client_secret"));
    assert!(
        header(&sent[0], "authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    let refreshed = body(&sent[1]);
    assert_eq!(refreshed["grant_type"], "refresh_token");
    assert_eq!(refreshed["refresh_token"], REFRESH);
    assert_eq!(
        body(&sent[2])["token"],
        ACCESS,
        "revocation honours the body format"
    );
    let posted = body(&sent[3]);
    assert_eq!(posted["client_id"], "client-1");
    assert_eq!(posted["client_secret"], SECRET);
    assert!(header(&sent[3], "authorization").is_none());

    // A JSON object cannot hold a member twice; a form body can (RFC 8707 `resource`).
    let twice = post
        .clone()
        .with_token_param("resource", "https://a.example/")
        .with_token_param("resource", "https://b.example/");
    let err = exchange(&twice).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("`resource` would be sent twice")),
        "{err}"
    );
    assert_eq!(requests(&server).await.len(), 4, "refused before sending");

    // A form body stays the default.
    let server = MockServer::start().await;
    stub(&server, "POST", "/token", token_answer()).await;
    exchange(&config(&server, ClientAuth::ClientSecretBasic))
        .await
        .unwrap();
    let sent = requests(&server).await;
    assert_eq!(
        header(&sent[0], "content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(form(&sent[0])["code"], CODE);
}

#[tokio::test]
async fn exchange_only_and_refresh_only_parameters_and_a_refresh_url() {
    let server = MockServer::start().await;
    stub(&server, "POST", "/token", token_answer()).await;
    stub(&server, "POST", "/v1/oauth/refresh", token_answer()).await;
    let base = Url::parse(&server.uri()).unwrap();
    // Basecamp's parameters, Figma's refresh URL, Zendesk's parameter on both calls.
    let config = config(&server, ClientAuth::ClientSecretPost)
        .with_exchange_param("type", "web_server")
        .with_refresh_param("type", "refresh")
        .with_token_param("expires_in", "1800")
        .with_refresh_url(base.join("/v1/oauth/refresh").unwrap());
    exchange(&config).await.unwrap();
    refresh(&config).await.unwrap();
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].url.path(), "/token");
    let exchanged = form(&sent[0]);
    assert_eq!(exchanged["type"], "web_server");
    assert_eq!(exchanged["expires_in"], "1800");
    assert_eq!(
        sent[1].url.path(),
        "/v1/oauth/refresh",
        "refresh has its own URL"
    );
    let refreshed = form(&sent[1]);
    assert_eq!(refreshed["type"], "refresh");
    assert_eq!(refreshed["expires_in"], "1800");
    assert_eq!(refreshed["refresh_token"], REFRESH);

    // A per-call parameter may not override the protocol's.
    let overriding = config.clone().with_refresh_param("grant_type", "password");
    let err = exchange(&overriding).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("`grant_type`")),
        "{err}"
    );
    assert_eq!(requests(&server).await.len(), 2, "refused before sending");
}

#[tokio::test]
async fn refresh_refuses_strategies_without_a_refresh_token() {
    let server = MockServer::start().await;
    stub(&server, "POST", "/token", token_answer()).await;
    let never =
        config(&server, ClientAuth::ClientSecretPost).with_refresh_strategy(RefreshStrategy::None);
    let err = refresh(&never).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("not refreshed")),
        "{err}"
    );
    let exchanging = never.with_refresh_strategy(facebook(None));
    let err = refresh(&exchanging).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("exchange_access_token")),
        "{err}"
    );
    assert!(requests(&server).await.is_empty());
}

// ---- Access-token exchange -----------------------------------------------------------------

fn facebook(url: Option<Url>) -> RefreshStrategy {
    RefreshStrategy::AccessTokenExchange(AccessTokenExchange {
        url,
        method: ExchangeMethod::Get,
        grant_type: Some("fb_exchange_token".to_string()),
        token_param: "fb_exchange_token".to_string(),
        send_client_credentials: true,
    })
}

async fn exchange_access(config: &ClientConfig) -> Result<protocol::Refreshed, Error> {
    protocol::exchange_access_token(
        &http(),
        config,
        &SecretString::from(ACCESS),
        &fast_retries(3),
    )
    .await
}

#[tokio::test]
async fn facebook_exchanges_the_access_token_by_get_with_the_client_credentials() {
    let server = MockServer::start().await;
    stub(
        &server,
        "GET",
        "/oauth/access_token",
        ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "AT-long", "token_type": "bearer", "expires_in": 5183944}),
        ),
    )
    .await;
    let base = Url::parse(&server.uri()).unwrap();
    let config = config(&server, ClientAuth::ClientSecretPost)
        .with_refresh_strategy(facebook(Some(base.join("/oauth/access_token").unwrap())));
    let refreshed = exchange_access(&config).await.unwrap();
    assert_eq!(refreshed.tokens.access_token.expose_secret(), "AT-long");
    assert_eq!(
        refreshed.tokens.expires_in,
        Some(Duration::from_secs(5_183_944))
    );
    assert!(!refreshed.rotated, "no refresh token was issued");
    assert_eq!(refreshed.refresh_token.expose_secret(), "AT-long");

    let sent = requests(&server).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method.as_str(), "GET");
    assert!(sent[0].body.is_empty());
    let q = query_of(&sent[0].url);
    assert_eq!(q["grant_type"], "fb_exchange_token");
    assert_eq!(q["client_id"], "client-1");
    assert_eq!(q["client_secret"], SECRET);
    assert_eq!(q["fb_exchange_token"], ACCESS);
    assert_eq!(q.len(), 4);
    assert!(header(&sent[0], "authorization").is_none());
}

#[tokio::test]
async fn instagram_refreshes_with_the_access_token_at_another_host_and_no_credentials() {
    let api = MockServer::start().await;
    let graph = MockServer::start().await;
    stub(
        &graph,
        "GET",
        "/refresh_access_token",
        ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "IG-new", "token_type": "bearer", "expires_in": 5183944}),
        ),
    )
    .await;
    let graph_url = Url::parse(&graph.uri())
        .unwrap()
        .join("/refresh_access_token")
        .unwrap();
    let config = config(&api, ClientAuth::ClientSecretPost).with_refresh_strategy(
        RefreshStrategy::AccessTokenExchange(AccessTokenExchange {
            url: Some(graph_url),
            method: ExchangeMethod::Get,
            grant_type: Some("ig_refresh_token".to_string()),
            token_param: "access_token".to_string(),
            send_client_credentials: false,
        }),
    );
    let refreshed = exchange_access(&config).await.unwrap();
    assert_eq!(refreshed.tokens.access_token.expose_secret(), "IG-new");
    assert!(requests(&api).await.is_empty());
    let sent = requests(&graph).await;
    let q = query_of(&sent[0].url);
    assert_eq!(q["grant_type"], "ig_refresh_token");
    assert_eq!(q["access_token"], ACCESS);
    assert_eq!(q.len(), 2, "no client credentials: {q:?}");
}

#[tokio::test]
async fn a_post_exchange_goes_to_the_token_endpoint_with_the_configured_authentication() {
    let server = MockServer::start().await;
    stub(&server, "POST", "/token", token_answer()).await;
    let config = config(&server, ClientAuth::ClientSecretBasic)
        .with_refresh_param("type", "renewal")
        .with_refresh_strategy(RefreshStrategy::AccessTokenExchange(AccessTokenExchange {
            url: None,
            method: ExchangeMethod::Post,
            grant_type: None,
            token_param: "access_token".to_string(),
            send_client_credentials: true,
        }));
    exchange_access(&config).await.unwrap();
    let sent = requests(&server).await;
    let body = form(&sent[0]);
    assert_eq!(body["access_token"], ACCESS);
    assert_eq!(body["type"], "renewal");
    assert!(!body.contains_key("grant_type"));
    assert!(!body.contains_key("client_secret"));
    assert!(
        header(&sent[0], "authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    // Without the strategy there is nothing to exchange.
    let plain = config.with_refresh_strategy(RefreshStrategy::RefreshToken);
    let err = exchange_access(&plain).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

/// Everything logged while a future runs on this thread, as text.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for LogLines {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        span.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_get_exchange_is_retried_and_never_shows_its_query() {
    let server = MockServer::start().await;
    let failing = json!({"error": {"message": format!("bad token {ACCESS}"), "type": "OAuthException", "code": 190}});
    Mock::given(method("GET"))
        .and(path("/oauth/access_token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    stub(
        &server,
        "GET",
        "/oauth/access_token",
        ResponseTemplate::new(400).set_body_json(failing),
    )
    .await;
    let base = Url::parse(&server.uri()).unwrap();
    let config = config(&server, ClientAuth::ClientSecretPost)
        .with_refresh_strategy(facebook(Some(base.join("/oauth/access_token").unwrap())));
    let logs = LogLines::default();
    let guard = tracing::dispatcher::set_default(&tracing::Dispatch::new(logs.clone()));
    let err = exchange_access(&config).await.unwrap_err();
    drop(guard);
    assert_eq!(requests(&server).await.len(), 2, "the 503 was retried");
    assert!(
        matches!(err, Error::Provider { status: 400, .. }),
        "{err:?}"
    );
    let logged = logs.0.lock().unwrap().clone();
    assert!(logged.contains("/oauth/access_token"), "{logged}");
    for text in [err.to_string(), format!("{err:?}"), logged] {
        for secret in [SECRET, ACCESS, "fb_exchange_token=", "client_secret="] {
            assert!(!text.contains(secret), "`{secret}` shown in: {text}");
        }
    }

    // A closed port: the transport error names the endpoint, not the query.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Url::parse(&format!("http://127.0.0.1:{port}/oauth/access_token")).unwrap()
    };
    let config = config.with_refresh_strategy(facebook(Some(closed)));
    let err = protocol::exchange_access_token(
        &http(),
        &config,
        &SecretString::from(ACCESS),
        &RetryPolicy::none(),
    )
    .await
    .unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(ACCESS) && !text.contains(SECRET), "{text}");
    }
}

// ---- Answers -------------------------------------------------------------------------------

fn slack_answer() -> Value {
    json!({
        "ok": true,
        "app_id": "A1",
        "access_token": "xoxb-bot-token",
        "token_type": "bot",
        "authed_user": {
            "id": "U1", "scope": "chat:write,users:read", "access_token": "xoxp-user-token",
            "refresh_token": "xoxe-1-refresh", "expires_in": 43200
        },
        "team": {"id": "T1", "name": "Team"},
        "is_enterprise_install": false,
        "app_num": 7,
        "enterprise": null
    })
}

#[tokio::test]
async fn the_token_at_a_location_and_kept_fields_of_the_whole_answer() {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/token",
        ResponseTemplate::new(200).set_body_json(slack_answer()),
    )
    .await;
    let slack = config(&server, ClientAuth::ClientSecretPost)
        .with_scope_separator(",")
        .with_token_location("authed_user")
        .with_kept_token_field("team.id")
        .with_kept_token_field("authed_user.id")
        .with_kept_token_field("is_enterprise_install")
        .with_kept_token_field("app_num")
        .with_kept_token_field("enterprise.id")
        .with_kept_token_field("team")
        .with_kept_token_field("missing.path")
        .with_error_flag("ok");
    let tokens = exchange(&slack).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "xoxp-user-token");
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose_secret(),
        "xoxe-1-refresh"
    );
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(43200)));
    assert_eq!(
        tokens.scope,
        Some(vec!["chat:write".to_string(), "users:read".to_string()])
    );
    assert_eq!(
        tokens.token_type, None,
        "the user object has no token_type, and that is tolerated as at the top level"
    );
    assert!(tokens.is_bearer());
    let kept: Vec<(&str, &str)> = tokens
        .kept
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("app_num", "7"),
            ("authed_user.id", "U1"),
            ("is_enterprise_install", "false"),
            ("team.id", "T1"),
        ],
        "objects, nulls and absent paths are not kept"
    );
    assert_eq!(tokens.raw["authed_user"]["id"], "U1");
    assert!(tokens.raw["authed_user"].get("access_token").is_none());
    assert_eq!(tokens.raw["app_id"], "A1");

    // The same answer read at the top level gives the bot token; Salesforce's kept field.
    let top = config(&server, ClientAuth::ClientSecretPost).with_kept_token_field("app_id");
    let tokens = exchange(&top).await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "xoxb-bot-token");
    assert_eq!(tokens.kept["app_id"], "A1");
    assert!(tokens.refresh_token.is_none());

    // Refresh reads the same way.
    let refreshed = refresh(&slack).await.unwrap();
    assert_eq!(
        refreshed.tokens.access_token.expose_secret(),
        "xoxp-user-token"
    );
    assert_eq!(refreshed.tokens.kept["team.id"], "T1");
    assert!(refreshed.rotated);
}

#[tokio::test]
async fn a_missing_location_or_a_secret_kept_field_is_an_error() {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/token",
        ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "access_token": "xoxb-bot-token", "team": {"id": "T1"}}),
        ),
    )
    .await;
    let nested = config(&server, ClientAuth::ClientSecretPost).with_token_location("authed_user");
    let err = exchange(&nested).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidResponse { ref problem, .. } if problem.contains("no object at `authed_user`")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("xoxb-bot-token"), "{err}");
    let at_team = config(&server, ClientAuth::ClientSecretPost).with_token_location("team");
    let err = exchange(&at_team).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidResponse { ref problem, .. } if problem.contains("at `team`")),
        "{err:?}"
    );
    let before = requests(&server).await.len();
    let secret = config(&server, ClientAuth::ClientSecretPost)
        .with_kept_token_field("authed_user.access_token");
    let err = exchange(&secret).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("looks like a secret")),
        "{err}"
    );
    let bad_path = config(&server, ClientAuth::ClientSecretPost).with_kept_token_field("team..id");
    assert!(matches!(exchange(&bad_path).await, Err(Error::Config(_))));
    assert_eq!(
        requests(&server).await.len(),
        before,
        "refused before the code is spent"
    );
}

/// The error a token endpoint's answer means, at code exchange and at refresh.
async fn errors_of(
    status: u16,
    body: Value,
    flag: Option<&str>,
) -> (
    Result<protocol::TokenResponse, Error>,
    Result<protocol::Refreshed, Error>,
) {
    let server = MockServer::start().await;
    stub(
        &server,
        "POST",
        "/token",
        ResponseTemplate::new(status).set_body_json(body),
    )
    .await;
    let mut config = config(&server, ClientAuth::ClientSecretPost);
    if let Some(flag) = flag {
        config = config.with_error_flag(flag);
    }
    (exchange(&config).await, refresh(&config).await)
}

#[tokio::test]
async fn ok_false_in_a_200_is_read_like_the_same_error_in_a_400() {
    for error in [
        "invalid_grant",
        "invalid_refresh_token",
        "token_revoked",
        "invalid_code",
        "bad_client_secret",
        "ratelimited",
    ] {
        let body = json!({"ok": false, "error": error});
        let (exchanged_200, refreshed_200) = errors_of(200, body.clone(), Some("ok")).await;
        let (exchanged_400, refreshed_400) = errors_of(400, body, None).await;
        for (in_200, in_400) in [
            (exchanged_200.unwrap_err(), exchanged_400.unwrap_err()),
            (refreshed_200.unwrap_err(), refreshed_400.unwrap_err()),
        ] {
            assert_eq!(
                std::mem::discriminant(&in_200),
                std::mem::discriminant(&in_400),
                "{error}: {in_200:?} / {in_400:?}"
            );
            assert_eq!(in_200.oauth_error().unwrap().error, error);
        }
    }
    // Slack's words for a dead refresh token mean what invalid_grant means: authorize again.
    for error in ["invalid_grant", "invalid_refresh_token", "token_revoked"] {
        let (_, refreshed) = errors_of(200, json!({"ok": false, "error": error}), Some("ok")).await;
        let err = refreshed.unwrap_err();
        assert!(
            matches!(err, Error::AuthorizationGone { .. }) && err.needs_reauthorization(),
            "{error}: {err:?}"
        );
    }
    // Only at refresh: at a code exchange they are the provider's own words (Zoho answers
    // invalid_code from the wrong data centre).
    let (exchanged, _) = errors_of(
        200,
        json!({"ok": false, "error": "invalid_refresh_token"}),
        Some("ok"),
    )
    .await;
    assert!(
        matches!(exchanged, Err(Error::Provider { .. })),
        "{exchanged:?}"
    );
    let (exchanged, refreshed) = errors_of(
        200,
        json!({"ok": false, "error": "bad_client_secret"}),
        Some("ok"),
    )
    .await;
    for err in [exchanged.unwrap_err(), refreshed.unwrap_err()] {
        assert!(
            matches!(err, Error::InvalidClient { status: 200, .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn the_error_flag_makes_a_200_with_a_token_an_error() {
    // `ok: false` without an `error` field, and a token beside it: only the flag says it failed.
    let body = json!({"ok": false, "access_token": "xoxb-bot-token", "warning": "missing_scope"});
    let (exchanged, refreshed) = errors_of(200, body.clone(), None).await;
    assert!(exchanged.is_ok() && refreshed.is_ok(), "no flag, no error");
    let (exchanged, refreshed) = errors_of(200, body, Some("ok")).await;
    for err in [exchanged.unwrap_err(), refreshed.unwrap_err()] {
        assert!(
            matches!(err, Error::Provider { status: 200, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("`ok` is false"), "{err}");
        assert!(!err.to_string().contains("xoxb-bot-token"), "{err}");
    }
    // A flag that is true, absent or not a boolean says nothing.
    for body in [
        json!({"ok": true, "access_token": "a"}),
        json!({"access_token": "a"}),
        json!({"ok": "yes", "access_token": "a"}),
        json!({"ok": 0, "access_token": "a"}),
        json!({"ok": null, "access_token": "a"}),
    ] {
        let (exchanged, _) = errors_of(200, body.clone(), Some("ok")).await;
        assert!(exchanged.is_ok(), "{body}");
    }
}

#[test]
fn debug_shows_the_quirks_but_not_the_values_of_token_parameters() {
    let config = offline_config()
        .with_authorization_param_rename("client_id", "client_key")
        .with_dropped_authorization_param("response_type")
        .with_scope_encoding(ScopeEncoding::Raw)
        .with_code_param("spapi_oauth_code")
        .with_kept_callback_param("realmId")
        .with_token_body(TokenBody::Json)
        .with_exchange_param("type", "exchange-value-secretish")
        .with_refresh_param("type", "refresh-value-secretish")
        .with_refresh_url(Url::parse("https://as.example/refresh").unwrap())
        .with_token_location("authed_user")
        .with_kept_token_field("team.id")
        .with_error_flag("ok")
        .with_refresh_strategy(facebook(None));
    let shown = format!("{config:?}");
    for expected in [
        "client_key",
        "response_type",
        "Raw",
        "spapi_oauth_code",
        "realmId",
        "Json",
        "exchange_params: [\"type=[redacted]\"]",
        "refresh_params: [\"type=[redacted]\"]",
        "https://as.example/refresh",
        "authed_user",
        "team.id",
        "error_flag: Some(\"ok\")",
        "fb_exchange_token",
    ] {
        assert!(shown.contains(expected), "`{expected}` not in {shown}");
    }
    assert!(!shown.contains("secretish"), "{shown}");
}
