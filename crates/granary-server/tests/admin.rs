//! The admin page over HTTP: import, instance form, "Get access token" through the callback
//! against a stub token endpoint, refresh, disconnect, delete, and the failure banners.

mod common;

use common::{Server, box_document, hidden};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Creates the instance `id` of `box` with a token URL override (none when empty) and the
/// extra parameter and header the tests look for.
async fn create_instance(
    server: &Server,
    admin: &reqwest::Client,
    csrf: &str,
    id: &str,
    token_url: &str,
) {
    let more = [
        ("token_url", token_url),
        ("extra_authorization_params", "prompt=consent"),
        ("extra_token_headers", "X-Trace: granary"),
    ];
    server.create_box_instance(admin, csrf, id, &more).await;
}

/// Clicks "Get access token": returns the state of the provider URL.
async fn start(server: &Server, admin: &reqwest::Client, csrf: &str, id: &str) -> String {
    let response = admin
        .post(server.url(&format!("/admin/instances/{id}/authorize")))
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["prompt"], "consent");
    assert_eq!(pairs["code_challenge_method"], "S256");
    assert_eq!(pairs["redirect_uri"], server.url("/admin/oauth/"));
    pairs["state"].clone()
}

async fn page(admin: &reqwest::Client, url: String) -> String {
    let response = admin.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn token_body(access: &str) -> serde_json::Value {
    serde_json::json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "refresh-1", "scope": "root_readonly manage_groups"
    })
}

#[tokio::test]
async fn import_create_authorize_refresh_disconnect_delete() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("access-1")))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("access-2")))
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;

    let integration = page(&admin, server.url("/admin/integrations/box")).await;
    assert!(
        integration.contains("Imported integration box."),
        "the banner shows once"
    );
    assert!(
        integration.contains("root_readonly")
            && integration.contains("Read all files and folders stored in Box")
    );
    assert!(integration.contains(&format!("{}/token", provider.uri())));

    let form = page(&admin, server.url("/admin/instances/new?integration=box")).await;
    assert!(
        form.contains(&server.url("/admin/oauth/")),
        "the redirect URI is shown"
    );
    assert!(
        form.contains("value=\"manage_webhook\""),
        "scopes are checkboxes"
    );

    create_instance(&server, &admin, &csrf, "box-prod", "").await;
    let instance = page(&admin, server.url("/admin/instances/box-prod")).await;
    assert!(instance.contains("Created instance box-prod"));
    assert!(instance.contains("not connected yet"));
    assert!(
        !instance.contains("s3cret-value-never-shown"),
        "the secret is never shown"
    );
    let edit = page(&admin, server.url("/admin/instances/box-prod/edit")).await;
    assert!(
        !edit.contains("s3cret-value-never-shown"),
        "the secret is never echoed"
    );
    assert!(
        edit.contains("id=\"secret-state\">set<"),
        "the secret shows as set"
    );

    let state = start(&server, &admin, &csrf, "box-prod").await;
    let callback = admin
        .get(server.url(&format!("/admin/oauth/?code=the-code&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 303);
    assert_eq!(callback.headers()["location"], "/admin/instances/box-prod");
    let instance = page(&admin, server.url("/admin/instances/box-prod")).await;
    assert!(
        instance.contains("Connected: instance box-prod holds an access token."),
        "{instance}"
    );
    assert!(instance.contains("The access token expires at"));
    assert!(instance.contains("id=\"granted\">root_readonly manage_groups<"));
    assert!(
        !instance.contains("access-1"),
        "the token is never on the page"
    );

    // Replaying the same callback: the state was used.
    let replay = admin
        .get(server.url(&format!("/admin/oauth/?code=the-code&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert_eq!(replay.headers()["location"], "/admin/instances/box-prod");
    let again = page(&admin, server.url("/admin/instances/box-prod")).await;
    assert!(again.contains("already used"), "{again}");
    assert!(!again.contains("not started in this browser"), "{again}");

    // The token through the API.
    let key = server.api_key(&admin, &csrf).await;
    let token: serde_json::Value = server
        .client()
        .get(server.url("/api/v1/instances/box-prod/token"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["access_token"], "access-1");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_at"].as_i64().unwrap() > 1_700_000_000);

    // Refresh now.
    let refreshed = admin
        .post(server.url("/admin/instances/box-prod/refresh"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 303);
    let instance = page(&admin, server.url("/admin/instances/box-prod")).await;
    assert!(
        instance.contains("Refreshed: the new access token expires at"),
        "{instance}"
    );
    assert!(
        instance.contains("succeeded"),
        "the last refresh outcome is shown"
    );
    let token: serde_json::Value = server
        .client()
        .get(server.url("/api/v1/instances/box-prod/token"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["access_token"], "access-2");

    // Metrics counted the refresh and the authorization.
    let metrics = server
        .client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("granary_instances{status=\"authorized\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/api/v1/instances/{id}/token\""),
        "{metrics}"
    );

    // Disconnect keeps the instance, without tokens.
    let disconnected = admin
        .post(server.url("/admin/instances/box-prod/disconnect"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(disconnected.status(), 303);
    let instance = page(&admin, server.url("/admin/instances/box-prod")).await;
    assert!(
        instance.contains("Disconnected: instance box-prod holds no token now."),
        "{instance}"
    );
    // No revocation endpoint: the tokens were not revoked, which is a warning.
    assert!(
        instance.contains("class=\"banner warning\"")
            && instance.contains("Not revoked at the provider"),
        "{instance}"
    );
    assert!(instance.contains("not connected yet"));
    let refused = server
        .client()
        .get(server.url("/api/v1/instances/box-prod/token"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);

    // The integration cannot go while an instance uses it; delete the instance first.
    let kept = admin
        .post(server.url("/admin/integrations/box/delete"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 303);
    assert!(
        page(&admin, server.url("/admin/integrations/box"))
            .await
            .contains("was not removed")
    );
    let deleted = admin
        .post(server.url("/admin/instances/box-prod/delete"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.headers()["location"], "/admin/");
    assert!(
        page(&admin, server.url("/admin/"))
            .await
            .contains("Deleted instance box-prod.")
    );
    server.stop().await;
}

#[tokio::test]
async fn failure_banners_name_the_cause_and_the_fix() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/bad-client/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic")
                .set_body_json(serde_json::json!({"error": "invalid_client", "error_description": "client authentication failed"})),
        )
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/html/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("<html>sign in</html>"),
        )
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/scope/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": "invalid_scope"})),
        )
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;

    let cases = [
        (
            "wrong-secret",
            format!("{}/bad-client/token", provider.uri()),
            None,
            "client credentials",
        ),
        (
            "wrong-url",
            format!("{}/html/token", provider.uri()),
            None,
            "token url",
        ),
        (
            "bad-scope",
            format!("{}/scope/token", provider.uri()),
            None,
            "scope",
        ),
        (
            "declined",
            format!("{}/token", provider.uri()),
            Some("access_denied"),
            "declined",
        ),
        (
            "scope-at-callback",
            format!("{}/token", provider.uri()),
            Some("invalid_scope"),
            "scope",
        ),
    ];
    for (id, token_url, callback_error, expected) in cases {
        create_instance(&server, &admin, &csrf, id, &token_url).await;
        let state = start(&server, &admin, &csrf, id).await;
        let query = match callback_error {
            Some(error) => format!("error={error}&error_description=nope&state={state}"),
            None => format!("code=c&state={state}"),
        };
        let callback = admin
            .get(server.url(&format!("/admin/oauth/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(callback.status(), 303);
        assert_eq!(
            callback.headers()["location"],
            format!("/admin/instances/{id}")
        );
        let html = page(&admin, server.url(&format!("/admin/instances/{id}"))).await;
        assert!(html.contains("The authorization failed"), "{id}: {html}");
        assert!(
            html.contains("<strong>Cause:</strong>") && html.contains("<strong>Fix:</strong>"),
            "{id}"
        );
        let banner = &html[html.find("id=\"banner\"").unwrap()..html.find("<h1>").unwrap()];
        assert!(banner.to_lowercase().contains(expected), "{id}: {banner}");
    }

    // A state this browser did not start is refused before it reaches the engine.
    create_instance(
        &server,
        &admin,
        &csrf,
        "elsewhere",
        &format!("{}/token", provider.uri()),
    )
    .await;
    let state = start(&server, &admin, &csrf, "elsewhere").await;
    let (other, _) = server.admin().await;
    let callback = other
        .get(server.url(&format!("/admin/oauth/?code=c&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 303);
    let home = page(&other, server.url("/admin/")).await;
    assert!(home.contains("not started in this browser"), "{home}");

    // `/admin/oauth` (no slash) redirects with the query kept.
    let redirect = admin
        .get(server.url("/admin/oauth?code=c&state=s"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(
        redirect.headers()["location"],
        "/admin/oauth/?code=c&state=s"
    );
    server.stop().await;
}

#[tokio::test]
async fn pages_escape_what_documents_and_forms_bring() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let document = box_document("http://127.0.0.1:9")
        .replace(
            "\"title\": \"Box\"",
            "\"title\": \"<script>alert(1)</script>\"",
        )
        .replace(
            "Read all files and folders stored in Box",
            "<img src=x onerror=alert(2)>",
        );
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("name", "evil")
        .text("document", document);
    let response = admin
        .post(server.url("/admin/integrations"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let html = page(&admin, server.url("/admin/integrations/evil")).await;
    assert!(
        !html.contains("<script>alert(1)") && html.contains("script&#62;alert(1)"),
        "{html}"
    );
    assert!(!html.contains("<img src=x"));

    // A broken document is refused with the importer's message, and the form keeps the text.
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("name", "broken")
        .text("document", "{\"openapi\": \"3.0.0\", \"paths\": {}");
    let response = admin
        .post(server.url("/admin/integrations"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let html = response.text().await.unwrap();
    assert!(html.contains("Not imported"), "{html}");

    // A file upload works as well as a paste.
    let file = reqwest::multipart::Part::bytes(box_document("http://127.0.0.1:9").into_bytes())
        .file_name("box.json");
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("name", "uploaded")
        .part("file", file);
    let response = admin
        .post(server.url("/admin/integrations"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let id_form = admin
        .post(server.url("/admin/instances"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", "bad id"),
            ("integration", "uploaded"),
            ("client_id", "x"),
            ("client_auth", "none"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(id_form.status(), 400);
    let near_miss = admin
        .post(server.url("/admin/instances"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", "typo"),
            ("integration", "uploaded"),
            ("client_id", "x"),
            ("client_auth", "none"),
            ("extra_scopes", "root_readonli"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(near_miss.status(), 400);
    let html = near_miss.text().await.unwrap();
    assert!(
        html.contains("root_readonly"),
        "a near miss suggests the declared scope: {html}"
    );
    assert_eq!(hidden(&html, "csrf"), csrf);
    server.stop().await;
}

#[tokio::test]
async fn discovery_sets_the_issuer_and_disconnect_revokes() {
    let provider = MockServer::start().await;
    let issuer = provider.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "authorization_response_iss_parameter_supported": true,
        })))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("access-1")))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &issuer).await;
    let discovered = admin
        .post(server.url("/admin/integrations/box/discover"))
        .form(&[("csrf", csrf.as_str()), ("issuer", issuer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(discovered.status(), 303);
    let page_html = page(&admin, server.url("/admin/integrations/box")).await;
    assert!(page_html.contains("Provider metadata read"), "{page_html}");
    assert!(page_html.contains(&format!("id=\"revocation-url\">{issuer}/revoke<")));

    create_instance(&server, &admin, &csrf, "revocable", "").await;
    let state = start(&server, &admin, &csrf, "revocable").await;
    // With the issuer known, a callback from another issuer is refused (RFC 9207)...
    let mixed = admin
        .get(server.url(&format!(
            "/admin/oauth/?code=c&state={state}&iss=https%3A%2F%2Fevil.example"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), 303);
    let html = page(&admin, server.url("/admin/instances/revocable")).await;
    assert!(
        html.contains("The authorization failed") && html.contains("another authorization server"),
        "{html}"
    );
    // ...and the right one connects.
    let state = start(&server, &admin, &csrf, "revocable").await;
    let iss: String = url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect();
    let callback = admin
        .get(server.url(&format!("/admin/oauth/?code=c&state={state}&iss={iss}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 303);
    assert!(
        page(&admin, server.url("/admin/instances/revocable"))
            .await
            .contains("Connected")
    );

    let disconnected = admin
        .post(server.url("/admin/instances/revocable/disconnect"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(disconnected.status(), 303);
    let html = page(&admin, server.url("/admin/instances/revocable")).await;
    assert!(
        html.contains("Its tokens were revoked at the provider."),
        "{html}"
    );
    assert!(html.contains("not connected yet"));
    assert!(
        html.contains("set · client_secret_basic"),
        "the instance keeps its secret: {html}"
    );
    server.stop().await;
    provider.verify().await;
}

#[tokio::test]
async fn disable_stops_tokens_and_enable_restores_the_status() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("access-1")))
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    create_instance(
        &server,
        &admin,
        &csrf,
        "switchable",
        &format!("{}/token", provider.uri()),
    )
    .await;
    let state = start(&server, &admin, &csrf, "switchable").await;
    let callback = admin
        .get(server.url(&format!("/admin/oauth/?code=c&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 303);
    let token = |expect: u16| {
        let request = server
            .client()
            .get(server.url("/api/v1/instances/switchable/token"))
            .bearer_auth(&key);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), expect);
            response.text().await.unwrap()
        }
    };
    assert!(token(200).await.contains("access-1"));
    let html = page(&admin, server.url("/admin/instances/switchable")).await;
    assert!(html.contains("id=\"disable\"") && !html.contains("id=\"enable\""));

    // Without the CSRF token nothing changes.
    let refused = admin
        .post(server.url("/admin/instances/switchable/disable"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    token(200).await;

    let disabled = admin
        .post(server.url("/admin/instances/switchable/disable"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 303);
    let html = page(&admin, server.url("/admin/instances/switchable")).await;
    assert!(html.contains("Disabled: instance switchable"), "{html}");
    assert!(html.contains("id=\"enable\"") && !html.contains("id=\"disable\""));
    assert!(token(409).await.contains("disabled"));

    let enabled = admin
        .post(server.url("/admin/instances/switchable/enable"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 303);
    let html = page(&admin, server.url("/admin/instances/switchable")).await;
    assert!(
        html.contains("Enabled: instance switchable is connected now."),
        "{html}"
    );
    assert!(token(200).await.contains("access-1"));
    server.stop().await;
}

#[tokio::test]
async fn extra_token_values_are_write_only_scopes_granted_otherwise_warn_and_another_origin_forgets()
 {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "access-1", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "refresh-1", "scope": "root_readonly item_upload"
        })))
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    create_instance(&server, &admin, &csrf, "box", "").await;
    let edit = |extra_headers: &'static str, token_url: String| {
        let admin = admin.clone();
        let csrf = csrf.clone();
        let url = server.url("/admin/instances/box");
        async move {
            admin
                .post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("integration", "box"),
                    ("scheme", "OAuth2Security"),
                    ("client_id", "granary-client"),
                    ("client_auth", "client_secret_basic"),
                    ("scope", "root_readonly"),
                    ("scope", "manage_groups"),
                    ("token_url", token_url.as_str()),
                    ("extra_authorization_params", "prompt=consent"),
                    ("extra_token_params", ""),
                    ("extra_token_headers", extra_headers),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let saved = edit("X-Api-Key: key-value-never-shown", String::new()).await;
    assert_eq!(saved.status(), 303);

    // Write-only: the form says which are set, never their values; so does the API.
    let form = page(&admin, server.url("/admin/instances/box/edit")).await;
    assert!(!form.contains("key-value-never-shown"), "{form}");
    assert!(
        form.contains("id=\"token-headers-state\">set: X-Api-Key<"),
        "{form}"
    );
    assert!(
        form.contains("id=\"origin-warning\""),
        "the move is announced before saving"
    );
    let key = server.api_key(&admin, &csrf).await;
    let json = server
        .client()
        .get(server.url("/api/v1/instances/box"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!json.contains("key-value-never-shown"), "{json}");
    assert!(
        json.contains("\"extra_token_header_names\":[\"X-Api-Key\"]"),
        "{json}"
    );
    // Saved again with the field empty: the value is kept.
    assert_eq!(edit("", String::new()).await.status(), 303);

    // Scopes granted otherwise than requested: a warning that names them.
    let state = start(&server, &admin, &csrf, "box").await;
    admin
        .get(server.url(&format!("/admin/oauth/?code=c&state={state}")))
        .send()
        .await
        .unwrap();
    let instance = page(&admin, server.url("/admin/instances/box")).await;
    assert!(instance.contains("class=\"banner warning\""), "{instance}");
    assert!(
        instance.contains("not granted: manage_groups")
            && instance.contains("granted without being requested: item_upload"),
        "{instance}"
    );
    let exchange = provider.received_requests().await.unwrap().pop().unwrap();
    assert_eq!(exchange.headers["x-api-key"], "key-value-never-shown");

    // Another origin for the token URL: the tokens are forgotten, and the banner says so.
    let elsewhere = MockServer::start().await;
    let moved = edit("", format!("{}/token", elsewhere.uri())).await;
    assert_eq!(moved.status(), 303);
    let instance = page(&admin, server.url("/admin/instances/box")).await;
    assert!(
        instance.contains("class=\"banner warning\"") && instance.contains("tokens were forgotten"),
        "{instance}"
    );
    let refused = server
        .client()
        .get(server.url("/api/v1/instances/box/token"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_upload_is_answered_as_unreadable_not_as_a_csrf_failure() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let url = server.url("/admin/integrations");
    let bodies: [(&str, String); 3] = [
        // A multipart type without a boundary.
        ("multipart/form-data", format!("csrf={csrf}&name=box")),
        // A boundary that the body never closes.
        (
            "multipart/form-data; boundary=XYZ",
            format!(
                "--XYZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--XYZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbox"
            ),
        ),
        // A part without its headers' end.
        (
            "multipart/form-data; boundary=XYZ",
            "--XYZ\r\nContent-Disposition: form-data; name=\"csrf\"".to_string(),
        ),
    ];
    for (content_type, body) in bodies {
        let response = admin
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 400, "{content_type} {body:?}: {text}");
        assert!(
            text.contains("the upload could not be read: ") && !text.contains("CSRF"),
            "{content_type} {body:?}: {text}"
        );
    }
    // Nothing was imported.
    let home = page(&admin, server.url("/admin/")).await;
    assert!(!home.contains("/admin/integrations/box"), "{home}");
    server.stop().await;
}

fn csp(response: &reqwest::Response) -> String {
    response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string()
}

fn directive<'a>(policy: &'a str, name: &str) -> &'a str {
    policy
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name).map(str::trim))
        .unwrap_or_else(|| panic!("no {name} in {policy}"))
}

#[tokio::test]
async fn pages_allow_only_granarys_script_and_forms_to_granary_and_the_provider() {
    let server = Server::start().await;
    // The sign-in page: no inline script; forms post to granary only.
    let login = server
        .client()
        .get(server.url("/admin/login"))
        .send()
        .await
        .unwrap();
    let policy = csp(&login);
    assert_eq!(directive(&policy, "script-src"), "'self'", "{policy}");
    assert_eq!(directive(&policy, "form-action"), "'self'", "{policy}");
    assert_eq!(directive(&policy, "default-src"), "'none'", "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    assert!(
        !directive(&policy, "script-src").contains("unsafe-inline"),
        "{policy}"
    );
    let html = login.text().await.unwrap();
    assert!(!html.contains("<script>"), "an inline script: {html}");
    let src = html
        .split("<script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page loads its script")
        .replace("&#x3f;", "?")
        .replace("&#x3d;", "=");
    assert!(src.starts_with("/admin/static/admin.js?v="), "{src}");

    // The script: public (no session), a JavaScript content type, cached for long.
    let script = server.client().get(server.url(&src)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let cache = script.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cache.contains("public") && cache.contains("max-age=31536000"),
        "{cache}"
    );
    assert_eq!(script.headers()["x-content-type-options"], "nosniff");
    assert!(script.text().await.unwrap().contains("data-copy"));

    // Signed in: the instance page and the connect page may also lead to the provider's
    // authorization endpoint ("Get access token" posts to granary, which redirects there);
    // every other page to granary only.
    let (admin, csrf) = server.admin().await;
    let provider = MockServer::start().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    create_instance(
        &server,
        &admin,
        &csrf,
        "box-1",
        &format!("{}/token", provider.uri()),
    )
    .await;
    let origin = url::Url::parse(&provider.uri())
        .unwrap()
        .origin()
        .ascii_serialization();
    for path in ["/admin/instances/box-1", "/admin/instances/box-1/authorize"] {
        let response = admin.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let policy = csp(&response);
        assert_eq!(
            directive(&policy, "form-action"),
            format!("'self' {origin}"),
            "{path}: {policy}"
        );
        assert_eq!(
            directive(&policy, "script-src"),
            "'self'",
            "{path}: {policy}"
        );
    }
    for path in [
        "/admin/",
        "/admin/integrations/box",
        "/admin/instances/box-1/edit",
        "/admin/api-keys",
    ] {
        let response = admin.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let policy = csp(&response);
        assert_eq!(
            directive(&policy, "form-action"),
            "'self'",
            "{path}: {policy}"
        );
        assert_eq!(
            directive(&policy, "script-src"),
            "'self'",
            "{path}: {policy}"
        );
    }
    server.stop().await;
}

/// The home page counts the instances per status, shows them a page at a time with a
/// "Next" link that keeps the filter, filters by status and integration, and names the fix
/// of a wrong page.
#[tokio::test]
async fn the_home_page_pages_counts_and_filters_the_instances() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, "http://127.0.0.1:9").await;
    let ids: Vec<String> = (0..7).map(|n| format!("box-{n}")).collect();
    for id in &ids {
        create_instance(&server, &admin, &csrf, id, "http://127.0.0.1:9/token").await;
    }
    let row = |id: &str| format!("<a href=\"/admin/instances/{id}\">{id}</a>");

    let home = page(&admin, server.url("/admin/")).await;
    assert!(home.contains("7 instances:"), "{home}");
    assert!(ids.iter().all(|id| home.contains(&row(id))), "{home}");
    assert!(!home.contains(">Next<"), "one page holds 7: {home}");

    // Pages of 3: every instance once, then no "Next".
    let mut seen = Vec::new();
    let mut url = server.url("/admin/?limit=3&integration=box");
    for _ in 0..5 {
        let html = page(&admin, url.clone()).await;
        seen.extend(ids.iter().filter(|id| html.contains(&row(id))).cloned());
        let next = html
            .split("<a class=\"button\" href=\"")
            .nth(1)
            .filter(|rest| rest.contains("\">Next</a>"))
            .map(|rest| rest.split('"').next().unwrap().replace("&amp;", "&"));
        match next {
            Some(next) => {
                assert!(
                    next.contains("integration=box"),
                    "the filter is kept: {next}"
                );
                url = server.url(&next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "every instance exactly once, in id order");

    let none = page(&admin, server.url("/admin/?status=authorized")).await;
    assert!(none.contains("matches the filter"), "{none}");
    assert!(!none.contains(&row("box-0")), "{none}");
    let all_new = page(&admin, server.url("/admin/?status=new&integration=box")).await;
    assert!(ids.iter().all(|id| all_new.contains(&row(id))), "{all_new}");

    // The integration's page lists its instances (its first page).
    let integration = page(&admin, server.url("/admin/integrations/box")).await;
    assert!(
        ids.iter().all(|id| integration.contains(&row(id))),
        "{integration}"
    );
    assert!(!integration.contains("All its instances"), "{integration}");

    let wrong = page(&admin, server.url("/admin/?limit=5000")).await;
    assert!(wrong.contains("must be 1 to 1000, not 5000"), "{wrong}");
}
