//! Quirks and errors of real token endpoints, stubbed with wiremock: every request and answer shape the protocol must handle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use granary_flow::protocol::{
    self, AuthorizationCode, ClientAuth, ClientConfig, ExposeSecret, PendingAuthorization,
    RetryPolicy, SecretString, Timeouts, TokenTypeHint,
};
use granary_flow::{Endpoint, EndpointProblem, Error};
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SECRET: &str = "client-secret-value-1234";
const CODE: &str = "authorization-code-5678";
const REFRESH: &str = "refresh-token-value-9012";

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

fn pending(config: &ClientConfig) -> PendingAuthorization {
    let redirect = Url::parse("http://127.0.0.1:8080/admin/oauth/").unwrap();
    protocol::authorization_request(config, &redirect, &["read", "write"], None)
        .unwrap()
        .1
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
        jitter: true,
    }
}

async fn stub(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
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

async fn exchange(server: &MockServer, auth: ClientAuth) -> Result<protocol::TokenResponse, Error> {
    let config = config(server, auth);
    protocol::exchange_code(&http(), &config, &code(), &pending(&config)).await
}

async fn refresh_with(
    server: &MockServer,
    retry: RetryPolicy,
) -> Result<protocol::Refreshed, Error> {
    let config = config(server, ClientAuth::ClientSecretBasic);
    protocol::refresh(
        &http(),
        &config,
        &SecretString::from(REFRESH),
        None::<&[&str]>,
        &retry,
    )
    .await
}

/// No error message or Debug output may contain a secret that the request carried.
fn assert_no_secret(error: &Error) {
    for text in [error.to_string(), format!("{error:?}")] {
        for secret in [SECRET, CODE, REFRESH, "AT-secret", "RT-secret"] {
            assert!(!text.contains(secret), "`{secret}` leaked into: {text}");
        }
    }
}

// ---- Requests ------------------------------------------------------------------------------

#[tokio::test]
async fn code_exchange_sends_the_grant_with_basic_auth_and_accept_json() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "AT-secret", "token_type": "Bearer"})),
    )
    .await;
    let config = config(&server, ClientAuth::ClientSecretBasic);
    let pending = pending(&config);
    protocol::exchange_code(&http(), &config, &code(), &pending)
        .await
        .unwrap();
    let sent = &requests(&server).await[0];
    let body = form(sent);
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], CODE);
    assert_eq!(body["redirect_uri"], "http://127.0.0.1:8080/admin/oauth/");
    assert_eq!(
        body["code_verifier"],
        pending.code_verifier.as_ref().unwrap().expose_secret()
    );
    assert!(!body.contains_key("client_secret") && !body.contains_key("client_id"));
    assert_eq!(header(sent, "accept").as_deref(), Some("application/json"));
    assert_eq!(
        header(sent, "content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(header(sent, "authorization").unwrap().starts_with("Basic "));
}

#[tokio::test]
async fn basic_auth_form_encodes_reserved_characters_before_base64() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    let mut config = config(&server, ClientAuth::ClientSecretBasic);
    config.client_id = "my client:1".to_string();
    config.client_secret = Some(SecretString::from("a:b/c+d%e&f=g h"));
    protocol::exchange_code(&http(), &config, &code(), &pending(&config))
        .await
        .unwrap();
    let value = header(&requests(&server).await[0], "authorization").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim_start_matches("Basic "))
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "my+client%3A1:a%3Ab%2Fc%2Bd%25e%26f%3Dg+h"
    );
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_body() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    exchange(&server, ClientAuth::ClientSecretPost)
        .await
        .unwrap();
    let sent = &requests(&server).await[0];
    let body = form(sent);
    assert_eq!(body["client_id"], "client-1");
    assert_eq!(body["client_secret"], SECRET);
    assert!(header(sent, "authorization").is_none());
}

#[tokio::test]
async fn a_public_client_sends_its_id_and_no_secret() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    exchange(&server, ClientAuth::None).await.unwrap();
    let sent = &requests(&server).await[0];
    let body = form(sent);
    assert_eq!(body["client_id"], "client-1");
    assert!(!body.contains_key("client_secret"));
    assert!(header(sent, "authorization").is_none());
}

#[tokio::test]
async fn a_secret_method_without_a_secret_is_a_configuration_error() {
    let server = MockServer::start().await;
    let config = config(&server, ClientAuth::None).with_auth_method(ClientAuth::ClientSecretBasic);
    let err = protocol::exchange_code(&http(), &config, &code(), &pending(&config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("needs a client secret")),
        "{err}"
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn extra_token_parameters_and_headers_are_sent() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    let config = config(&server, ClientAuth::ClientSecretPost)
        .with_token_param("resource", "https://api.example/")
        .with_token_header("X-Api-Version", "2024-01");
    protocol::exchange_code(&http(), &config, &code(), &pending(&config))
        .await
        .unwrap();
    protocol::refresh(
        &http(),
        &config,
        &SecretString::from(REFRESH),
        None::<&[&str]>,
        &RetryPolicy::none(),
    )
    .await
    .unwrap();
    for sent in requests(&server).await {
        assert_eq!(form(&sent)["resource"], "https://api.example/");
        assert_eq!(header(&sent, "x-api-version").as_deref(), Some("2024-01"));
    }
}

#[tokio::test]
async fn extra_token_parameters_cannot_override_the_grant_and_headers_must_be_valid() {
    let server = MockServer::start().await;
    let overriding = config(&server, ClientAuth::None).with_token_param("grant_type", "password");
    let err = protocol::exchange_code(&http(), &overriding, &code(), &pending(&overriding))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("`grant_type`")),
        "{err}"
    );
    let bad_header = config(&server, ClientAuth::None).with_token_header("Bad Header", "x");
    let err = protocol::exchange_code(&http(), &bad_header, &code(), &pending(&bad_header))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("`Bad Header`")),
        "{err}"
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn refresh_sends_the_token_and_a_narrower_scope() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    let config = config(&server, ClientAuth::ClientSecretBasic).with_scope_separator(",");
    protocol::refresh(
        &http(),
        &config,
        &SecretString::from(REFRESH),
        Some(&["read", "profile"][..]),
        &RetryPolicy::none(),
    )
    .await
    .unwrap();
    let body = form(&requests(&server).await[0]);
    assert_eq!(body["grant_type"], "refresh_token");
    assert_eq!(body["refresh_token"], REFRESH);
    assert_eq!(body["scope"], "read,profile");
}

// ---- Token responses as providers send them ------------------------------------------------

#[tokio::test]
async fn a_json_response_with_every_field_and_unknown_ones_kept() {
    let server = MockServer::start().await;
    let body = json!({
        "access_token": "AT-secret", "token_type": "BEARER", "expires_in": 3600,
        "refresh_token": "RT-secret", "scope": "read write", "id_token": "eyJ.x.y",
        "instance_url": "https://eu1.example.my", "authed_user": {"id": "U1", "access_token": "xoxp-user"}
    });
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(body),
    )
    .await;
    let tokens = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "AT-secret");
    assert!(tokens.is_bearer());
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(3600)));
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose_secret(),
        "RT-secret"
    );
    assert_eq!(
        tokens.scope,
        Some(vec!["read".to_string(), "write".to_string()])
    );
    assert!(tokens.id_token.is_some());
    assert_eq!(tokens.raw["instance_url"], "https://eu1.example.my");
    assert_eq!(tokens.raw["authed_user"]["id"], "U1");
    assert!(
        !tokens.raw.contains_key("access_token"),
        "known fields are not repeated in raw"
    );
    let shown = format!("{tokens:?}");
    for secret in ["AT-secret", "RT-secret", "eyJ.x.y", "xoxp-user"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("[redacted]") && shown.contains("instance_url"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_form_urlencoded_response_with_a_comma_separated_scope() {
    let server = MockServer::start().await;
    let body = "access_token=AT-secret&scope=repo%2Cgist&token_type=bearer";
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200)
            .set_body_raw(body, "application/x-www-form-urlencoded; charset=utf-8"),
    )
    .await;
    let config = config(&server, ClientAuth::ClientSecretPost).with_scope_separator(",");
    let tokens = protocol::exchange_code(&http(), &config, &code(), &pending(&config))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "AT-secret");
    assert!(tokens.is_bearer());
    assert_eq!(
        tokens.scope,
        Some(vec!["repo".to_string(), "gist".to_string()])
    );
    assert_eq!(tokens.expires_in, None, "no expires_in: expiry unknown");
}

#[tokio::test]
async fn a_form_body_sent_as_text_plain_is_read_too() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200)
            .set_body_raw("access_token=AT-secret&expires_in=60", "text/plain"),
    )
    .await;
    let tokens = exchange(&server, ClientAuth::ClientSecretPost)
        .await
        .unwrap();
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn expires_in_as_a_number_a_string_a_fraction_or_nonsense() {
    for (value, expected) in [
        (json!(3600), Some(Duration::from_secs(3600))),
        (json!("7200"), Some(Duration::from_secs(7200))),
        (json!(59.5), Some(Duration::from_millis(59_500))),
        (json!(" 30 "), Some(Duration::from_secs(30))),
        (json!("soon"), None),
        (json!(-5), None),
        (json!(null), None),
    ] {
        let server = MockServer::start().await;
        let body =
            json!({"access_token": "AT-secret", "token_type": "bearer", "expires_in": value});
        stub(
            &server,
            "/token",
            ResponseTemplate::new(200).set_body_json(body),
        )
        .await;
        let tokens = exchange(&server, ClientAuth::ClientSecretBasic)
            .await
            .unwrap();
        assert_eq!(tokens.expires_in, expected, "expires_in {value}");
    }
}

#[tokio::test]
async fn token_type_in_any_case_and_scope_as_an_array() {
    let server = MockServer::start().await;
    let body = json!({"access_token": "AT-secret", "token_type": "bEaReR", "scope": ["a", "b c"]});
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(body),
    )
    .await;
    let tokens = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap();
    assert!(tokens.is_bearer());
    assert_eq!(tokens.token_type.as_deref(), Some("bEaReR"));
    assert_eq!(tokens.scope, Some(vec!["a".to_string(), "b c".to_string()]));

    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "x", "token_type": "mac"})),
    )
    .await;
    assert!(
        !exchange(&server, ClientAuth::ClientSecretBasic)
            .await
            .unwrap()
            .is_bearer()
    );
}

#[tokio::test]
async fn an_error_inside_a_200_is_an_error() {
    let server = MockServer::start().await;
    let body = "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.example%2Ferr";
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_raw(body, "application/x-www-form-urlencoded"),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretPost)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Provider { status: 200, .. }),
        "{err:?}"
    );
    let details = err.oauth_error().unwrap();
    assert_eq!(details.error, "bad_verification_code");
    assert_eq!(
        details.description.as_deref(),
        Some("The code passed is incorrect or expired.")
    );
    assert_eq!(details.uri.as_deref(), Some("https://docs.example/err"));

    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"error": "invalid_grant"})),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretPost)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CodeRejected { .. }), "{err:?}");
}

#[tokio::test]
async fn a_body_over_one_mib_is_refused_with_a_short_excerpt() {
    let server = MockServer::start().await;
    let huge = format!(
        "{{\"access_token\":\"AT-secret\",\"pad\":\"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_raw(huge, "application/json"),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidResponse { ref problem, .. } if problem.contains("over 1048576 bytes")),
        "{err}"
    );
    assert!(
        err.to_string().len() < 600,
        "the message is long: {}",
        err.to_string().len()
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn an_html_page_is_not_a_token_endpoint() {
    let server = MockServer::start().await;
    let page = "<!DOCTYPE html><html><body><h1>Sign in</h1><input name=\"client_secret\" value=\"client-secret-value-1234\"></body></html>";
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_raw(page, "text/html; charset=utf-8"),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAnEndpoint {
                endpoint: Endpoint::Token,
                problem: EndpointProblem::Html { status: 200, .. },
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "{}/token does not look like a token endpoint",
            server.uri()
        )),
        "{message}"
    );
    assert!(
        message.contains("(text/html; charset=utf-8) with an HTML page that reads: Sign in"),
        "{message}"
    );
    assert!(err.is_configuration_problem() && !err.is_transient());
    assert_no_secret(&err);
}

#[tokio::test]
async fn json_that_is_no_token_response_shows_status_type_and_a_redacted_excerpt() {
    let server = MockServer::start().await;
    let body = json!({"refresh_token": "RT-secret", "message": "welcome"});
    stub(
        &server,
        "/token",
        ResponseTemplate::new(201).set_body_json(body),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::InvalidResponse { status: 201, .. }),
        "{err:?}"
    );
    assert!(message.contains("no `access_token`"), "{message}");
    assert!(message.contains("application/json"), "{message}");
    assert!(message.contains("welcome"), "{message}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn an_error_page_that_echoes_the_request_has_the_secrets_cut_out() {
    let server = MockServer::start().await;
    let echo = format!("bad request: client_secret={SECRET}&code={CODE} rejected");
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_raw(echo, "text/plain"),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretPost)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidResponse { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("bad request"), "{err}");
    assert_no_secret(&err);
}

// ---- Errors a user can act on -------------------------------------------------------------

#[tokio::test]
async fn invalid_client_says_what_to_check() {
    let server = MockServer::start().await;
    let body =
        json!({"error": "invalid_client", "error_description": "client authentication failed"});
    stub(
        &server,
        "/token",
        ResponseTemplate::new(401)
            .set_body_json(body)
            .insert_header("WWW-Authenticate", "Basic"),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidClient {
                status: 401,
                auth_method: ClientAuth::ClientSecretBasic,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(
            "check client_id, client_secret and the authentication method (now client_secret_basic)"
        ),
        "{message}"
    );
    assert!(
        message.contains("client authentication failed"),
        "{message}"
    );
    assert!(err.is_configuration_problem() && !err.is_transient() && !err.needs_reauthorization());
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_bare_401_is_invalid_client_too() {
    let server = MockServer::start().await;
    stub(&server, "/token", ResponseTemplate::new(401)).await;
    let err = exchange(&server, ClientAuth::ClientSecretPost)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidClient { details: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_scope_names_the_scopes() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_scope"})),
    )
    .await;
    let config = config(&server, ClientAuth::ClientSecretBasic);
    let err = protocol::refresh(
        &http(),
        &config,
        &SecretString::from(REFRESH),
        Some(&["admin", "root"][..]),
        &RetryPolicy::none(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidScope { ref scopes, .. } if scopes == &["admin", "root"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("[admin root]"), "{err}");
}

#[tokio::test]
async fn invalid_grant_means_start_again_at_exchange_and_authorize_again_at_refresh() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "grant request is invalid"}),
        ),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CodeRejected { .. }), "{err:?}");
    assert!(
        err.to_string().contains("start the authorization again"),
        "{err}"
    );
    assert!(err.needs_reauthorization());

    let err = refresh_with(&server, fast_retries(3)).await.unwrap_err();
    assert!(matches!(err, Error::AuthorizationGone { .. }), "{err:?}");
    assert!(
        err.to_string().contains("the authorization is gone")
            && err.to_string().contains("authorize again"),
        "{err}"
    );
    assert!(err.needs_reauthorization() && !err.is_transient());
    assert_eq!(
        requests(&server).await.len(),
        2,
        "invalid_grant at refresh is not retried"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn other_oauth_errors_carry_the_rfc_fields() {
    let server = MockServer::start().await;
    let body = json!({"error": "unauthorized_client", "error_description": "refresh_token grant not allowed", "error_uri": "https://as.example/doc"});
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_json(body),
    )
    .await;
    let err = refresh_with(&server, RetryPolicy::none())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Provider { status: 400, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(
            "unauthorized_client: refresh_token grant not allowed (see https://as.example/doc)"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_404_is_not_a_token_endpoint() {
    let server = MockServer::start().await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAnEndpoint {
                problem: EndpointProblem::Status(404),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("does not look like a token endpoint: it answered HTTP 404; check the URL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_port_is_not_a_token_endpoint_and_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let config = ClientConfig::new("c", base.join("/a").unwrap(), base.join("/token").unwrap());
    let err = protocol::exchange_code(&http(), &config, &code(), &pending(&config))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAnEndpoint {
                problem: EndpointProblem::Unreachable(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(&format!(
            "http://127.0.0.1:{port}/token does not look like a token endpoint: could not connect"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(307).insert_header("Location", "/elsewhere"),
    )
    .await;
    stub(
        &server,
        "/elsewhere",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotAnEndpoint { problem: EndpointProblem::Redirect { status: 307, ref location }, .. } if location.as_deref() == Some("/elsewhere")),
        "{err:?}"
    );
    let paths: Vec<String> = requests(&server)
        .await
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(paths, ["/token"]);
}

// ---- Timeouts and retries -----------------------------------------------------------------

#[tokio::test]
async fn a_slow_endpoint_times_out_as_a_transient_error() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "x"}))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let client = protocol::http_client(&Timeouts {
        connect: Duration::from_secs(1),
        total: Duration::from_millis(300),
    })
    .unwrap();
    let config = config(&server, ClientAuth::ClientSecretBasic);
    let err = protocol::exchange_code(&client, &config, &code(), &pending(&config))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transient { status: None, .. }),
        "{err:?}"
    );
    assert!(
        err.is_transient() && err.to_string().contains("no answer in time"),
        "{err}"
    );
}

#[tokio::test]
async fn a_code_exchange_is_never_retried() {
    let server = MockServer::start().await;
    stub(&server, "/token", ResponseTemplate::new(503)).await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn refresh_retries_5xx_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    let refreshed = refresh_with(&server, fast_retries(3)).await.unwrap();
    assert_eq!(refreshed.tokens.access_token.expose_secret(), "AT-secret");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn refresh_gives_up_after_max_attempts() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(500).set_body_json(json!({"error": "server_error"})),
    )
    .await;
    let err = refresh_with(&server, fast_retries(4)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transient {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.oauth_error().unwrap().error, "server_error");
    assert_eq!(requests(&server).await.len(), 4);
}

#[tokio::test]
async fn refresh_honours_retry_after_on_429() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200).set_body_json(json!({"access_token": "AT-secret"})),
    )
    .await;
    let started = Instant::now();
    refresh_with(&server, fast_retries(3)).await.unwrap();
    // The backoff alone would be 10 ms: waiting at least the asked second shows it was honoured.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_policy_ends_the_retries_and_is_reported() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(429).insert_header("Retry-After", "120"),
    )
    .await;
    let err = refresh_with(&server, fast_retries(3)).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(
        err.to_string().contains("the provider asks to wait 120s"),
        "{err}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn temporarily_unavailable_in_a_400_is_transient() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_json(json!({"error": "temporarily_unavailable"})),
    )
    .await;
    let err = refresh_with(&server, fast_retries(2)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn refresh_retries_a_connect_failure() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let config = ClientConfig::new("c", base.join("/a").unwrap(), base.join("/token").unwrap());
    let started = Instant::now();
    let retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        jitter: false,
    };
    let err = protocol::refresh(
        &http(),
        &config,
        &SecretString::from(REFRESH),
        None::<&[&str]>,
        &retry,
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    // Two waits without jitter: 200 ms then 400 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "gave up after {:?}",
        started.elapsed()
    );
}

// ---- Refresh-token handling ---------------------------------------------------------------

#[tokio::test]
async fn a_refresh_without_a_refresh_token_keeps_the_old_one() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "AT-secret", "expires_in": 60})),
    )
    .await;
    let refreshed = refresh_with(&server, RetryPolicy::none()).await.unwrap();
    assert!(refreshed.tokens.refresh_token.is_none());
    assert_eq!(refreshed.refresh_token.expose_secret(), REFRESH);
    assert!(!refreshed.rotated);
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_old_one() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "AT-secret", "refresh_token": "RT-secret"})),
    )
    .await;
    let refreshed = refresh_with(&server, RetryPolicy::none()).await.unwrap();
    assert_eq!(refreshed.refresh_token.expose_secret(), "RT-secret");
    assert!(refreshed.rotated);
    assert!(!format!("{refreshed:?}").contains("RT-secret"));
}

// ---- Revocation and discovery -------------------------------------------------------------

#[tokio::test]
async fn revocation_sends_the_token_with_its_hint_and_client_auth() {
    let server = MockServer::start().await;
    stub(&server, "/revoke", ResponseTemplate::new(200)).await;
    let config = config(&server, ClientAuth::ClientSecretPost);
    protocol::revoke(
        &http(),
        &config,
        &SecretString::from(REFRESH),
        Some(TokenTypeHint::RefreshToken),
    )
    .await
    .unwrap();
    let body = form(&requests(&server).await[0]);
    assert_eq!(body["token"], REFRESH);
    assert_eq!(body["token_type_hint"], "refresh_token");
    assert_eq!(body["client_secret"], SECRET);
}

#[tokio::test]
async fn revocation_errors_and_a_missing_url() {
    let server = MockServer::start().await;
    stub(
        &server,
        "/revoke",
        ResponseTemplate::new(503).insert_header("Retry-After", "5"),
    )
    .await;
    let config = config(&server, ClientAuth::ClientSecretBasic);
    let err = protocol::revoke(&http(), &config, &SecretString::from(REFRESH), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transient {
                endpoint: Endpoint::Revocation,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));

    let mut no_url = config.clone();
    no_url.revocation_url = None;
    let err = protocol::revoke(&http(), &no_url, &SecretString::from(REFRESH), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("revocation_url")),
        "{err}"
    );
}

fn metadata(issuer: &str) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true
    })
}

#[tokio::test]
async fn discovery_reads_rfc_8414_metadata_first() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata(&server.uri())))
        .mount(&server)
        .await;
    let found = protocol::discover(&http(), &server.uri()).await.unwrap();
    assert_eq!(found.issuer, server.uri());
    assert_eq!(
        found.token_endpoint.as_str(),
        format!("{}/token", server.uri())
    );
    assert_eq!(
        found.issuer_parameter(),
        protocol::IssuerParameter::Required
    );
    let config = found.client_config("me");
    assert!(config.pkce);
    assert_eq!(
        config.revocation_url.unwrap().as_str(),
        format!("{}/revoke", server.uri())
    );
}

#[tokio::test]
async fn discovery_falls_back_to_openid_configuration_and_checks_the_issuer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata(&server.uri())))
        .mount(&server)
        .await;
    let found = protocol::discover(&http(), &server.uri()).await.unwrap();
    assert_eq!(found.source.path(), "/.well-known/openid-configuration");

    let err = protocol::discover(&http(), &format!("{}/tenant", server.uri()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Discovery { .. }), "{err:?}");

    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata("https://evil.example")))
        .mount(&other)
        .await;
    let err = protocol::discover(&http(), &other.uri()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("names the issuer `https://evil.example`"),
        "{err}"
    );
}

#[tokio::test]
async fn discovery_summarises_a_body_that_is_no_metadata_and_never_echoes_it() {
    const INTERNAL: &str = "internal-page-secret-4711";
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(format!("<html><body>{INTERNAL}</body></html>"), "text/html"),
        )
        .mount(&server)
        .await;
    let err = protocol::discover(&http(), &server.uri())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Discovery { .. }), "{err:?}");
    assert!(!text.contains(INTERNAL), "{text}");
    assert!(
        text.contains("answered HTTP 200 with text/html (")
            && text.contains("bytes), not a JSON metadata document"),
        "{text}"
    );
    // JSON that is no object, and an object that is no metadata: summarised too.
    for (body, expected) in [
        (json!([INTERNAL]), "not a JSON metadata document"),
        (json!({"secret": INTERNAL}), "has no `issuer`"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        let text = protocol::discover(&http(), &server.uri())
            .await
            .unwrap_err()
            .to_string();
        assert!(!text.contains(INTERNAL), "{text}");
        assert!(text.contains(expected), "{text}");
    }
    // An error status: its body is not shown either.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_string(INTERNAL))
        .mount(&server)
        .await;
    let text = protocol::discover(&http(), &server.uri())
        .await
        .unwrap_err()
        .to_string();
    assert!(!text.contains(INTERNAL) && text.contains("403"), "{text}");
}

// ---- Secrets in Debug -------------------------------------------------------------------

#[test]
fn debug_of_every_secret_bearing_type_is_redacted() {
    let config = ClientConfig::new(
        "id",
        Url::parse("https://as.example/a").unwrap(),
        Url::parse("https://as.example/t").unwrap(),
    )
    .with_secret(SecretString::from(SECRET), ClientAuth::ClientSecretBasic)
    .with_token_param("client_assertion", "assertion-value-77")
    .with_token_header("X-Api-Key", "api-key-value-88");
    let shown = format!("{config:?}");
    for secret in [SECRET, "assertion-value-77", "api-key-value-88"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("[redacted]") && shown.contains("X-Api-Key"),
        "{shown}"
    );
    let shown = format!("{:?}", code());
    assert!(
        !shown.contains(CODE) && shown.contains("[redacted]"),
        "{shown}"
    );
    let shown = format!("{:?}", pending(&config));
    assert!(
        shown.contains("code_verifier: Some(\"[redacted]\")"),
        "{shown}"
    );
}

#[tokio::test]
async fn discovery_of_an_overloaded_provider_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = protocol::discover(&http(), &server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transient {
                endpoint: Endpoint::Discovery,
                status: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
}

/// Issue 17: an error body is read by what it says, whatever its shape, and quoted; only
/// an answer that is no token endpoint's (HTML, 404, redirect) blames the URL.
#[tokio::test]
async fn error_bodies_in_common_shapes_are_read_and_quoted() {
    let cases = [
        (
            400,
            json!({"object": "error", "status": 400, "code": "invalid_json",
                   "message": "Error parsing JSON body."}),
            "invalid_json",
            "Error parsing JSON body.",
        ),
        (
            400,
            json!({"error": {"message": "Error validating application. Invalid application ID.",
                   "type": "OAuthException", "code": 101, "fbtrace_id": "AbC"}}),
            "OAuthException",
            "Error validating application. Invalid application ID. (code 101)",
        ),
        (
            403,
            json!({"errors": [{"code": "bad_verification_code", "message": "The code is wrong"},
                              {"message": "and stale"}]}),
            "bad_verification_code",
            "The code is wrong; and stale",
        ),
        (
            400,
            json!({"errors": ["Missing redirect_uri"]}),
            "error",
            "Missing redirect_uri",
        ),
        (
            400,
            json!({"message": "Bad request: grant_type"}),
            "error",
            "Bad request: grant_type",
        ),
        (
            400,
            json!({"error": "invalid_request", "message": "no description field"}),
            "invalid_request",
            "no description field",
        ),
    ];
    for (status, body, code, description) in cases {
        let server = MockServer::start().await;
        stub(
            &server,
            "/token",
            ResponseTemplate::new(status).set_body_json(&body),
        )
        .await;
        let err = exchange(&server, ClientAuth::ClientSecretBasic)
            .await
            .unwrap_err();
        let details = err
            .oauth_error()
            .unwrap_or_else(|| panic!("{body}: no error read: {err:?}"));
        assert_eq!(details.error, code, "{body}");
        assert_eq!(details.description.as_deref(), Some(description), "{body}");
        let message = err.to_string();
        assert!(
            message.contains(description) && !message.contains("check the URL"),
            "{message}"
        );
        assert_no_secret(&err);
    }
    // A successful answer with a `message` and no token is still no error the provider
    // stated: it is an unreadable answer, and it does not blame the URL either.
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_json(json!({"unrelated": true})),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    assert!(!err.to_string().contains("check that the URL"), "{err}");
    // The provider's words decide the client-authentication hint, not the shape.
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": "Error validating client secret.", "type": "OAuthException"}}),
        ),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(err.points_at_client_authentication(), "{err}");
    let server = MockServer::start().await;
    stub(
        &server,
        "/token",
        ResponseTemplate::new(400)
            .set_body_json(json!({"code": "invalid_json", "message": "Error parsing JSON body."})),
    )
    .await;
    let err = exchange(&server, ClientAuth::ClientSecretBasic)
        .await
        .unwrap_err();
    assert!(!err.points_at_client_authentication(), "{err}");
}
