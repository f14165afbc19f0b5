//! Grants as providers really issue them, over HTTP (issue 17): without a refresh token.

mod common;

use common::Server;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Clicks "Get access token" and comes back through the callback with `query` (the state
/// is appended); returns the instance page after it.
pub async fn authorize_with(
    server: &Server,
    admin: &reqwest::Client,
    csrf: &str,
    id: &str,
    query: &str,
) -> String {
    let response = admin
        .post(server.url(&format!("/admin/instances/{id}/authorize")))
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let state = location
        .query_pairs()
        .find(|(n, _)| n == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let callback = admin
        .get(server.url(&format!("/admin/oauth/?{query}&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 303);
    page(admin, server.url(&format!("/admin/instances/{id}"))).await
}

async fn page(admin: &reqwest::Client, url: String) -> String {
    let response = admin.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn refresh_requests(provider: &MockServer) -> usize {
    provider
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .count()
}

#[tokio::test]
async fn a_grant_without_a_refresh_token_is_told_and_a_forced_refresh_changes_nothing() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "access-1", "token_type": "Bearer", "expires_in": 3600
        })))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    server.create_box_instance(&admin, &csrf, "gh", &[]).await;

    let instance = authorize_with(&server, &admin, &csrf, "gh", "code=the-code").await;
    assert!(
        instance.contains("Connected without a refresh token: instance gh holds an access token."),
        "{instance}"
    );
    assert!(
        instance.contains("No refresh token: a new authorization will be needed after 20"),
        "{instance}"
    );
    assert!(
        !instance.contains("granary refreshes it before then"),
        "{instance}"
    );
    assert!(
        instance.contains("Usual cause: many providers issue a refresh token only when asked"),
        "{instance}"
    );
    assert!(
        instance.contains("none: a new authorization will be needed when the token expires"),
        "{instance}"
    );

    let key = server.api_key(&admin, &csrf).await;
    let api = server.client();
    let shown: serde_json::Value = api
        .get(server.url("/api/v1/instances/gh"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = &shown["token"];
    assert_eq!(token["has_refresh_token"], false, "{shown}");
    assert!(
        token["no_refresh_token"]
            .as_str()
            .is_some_and(|c| c.contains("offline_access")),
        "{shown}"
    );

    // POST .../refresh: 409, nothing to refresh, nothing sent, nothing changed.
    for _ in 0..2 {
        let refused = api
            .post(server.url("/api/v1/instances/gh/refresh"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 409);
        let problem: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/no-refresh-token", "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("nothing to refresh"),
            "{problem}"
        );
    }
    // "Refresh now" says the same on the page.
    let refreshed = admin
        .post(server.url("/admin/instances/gh/refresh"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 303);
    let instance = page(&admin, server.url("/admin/instances/gh")).await;
    assert!(instance.contains("nothing to refresh"), "{instance}");
    assert!(
        instance.contains("Nothing was sent and nothing changed"),
        "{instance}"
    );
    assert_eq!(refresh_requests(&provider).await, 0, "no refresh request");

    let token: serde_json::Value = api
        .get(server.url("/api/v1/instances/gh/token"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["access_token"], "access-1", "{token}");
    let shown: serde_json::Value = api
        .get(server.url("/api/v1/instances/gh"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "authorized", "{shown}");
    server.stop().await;
}

#[tokio::test]
async fn a_failed_exchange_quotes_the_providers_error_body_and_points_at_the_real_fix() {
    let provider = MockServer::start().await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    server
        .create_box_instance(&admin, &csrf, "notion", &[])
        .await;
    for (body, quoted, client_hint) in [
        (
            serde_json::json!({"object": "error", "status": 400, "code": "invalid_json",
                               "message": "Error parsing JSON body."}),
            "invalid_json: Error parsing JSON body.",
            false,
        ),
        (
            serde_json::json!({"error": {"message": "Error validating client secret.",
                               "type": "OAuthException", "code": 1}}),
            "OAuthException: Error validating client secret. (code 1)",
            true,
        ),
    ] {
        let guard = Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(&body))
            .mount_as_scoped(&provider)
            .await;
        let page = authorize_with(&server, &admin, &csrf, "notion", "code=the-code").await;
        drop(guard);
        assert!(page.contains("The authorization failed"), "{page}");
        assert!(page.contains(quoted), "{body}: {page}");
        assert!(!page.contains("token URL override"), "{body}: {page}");
        assert!(!page.contains("check that the URL"), "{body}: {page}");
        assert_eq!(
            page.contains("rejected the client credentials"),
            client_hint,
            "{body}: {page}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_banner_names_the_data_centre_of_the_callback_and_the_scope_separator() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"error": "invalid_code"})),
        )
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    server.create_box_instance(&admin, &csrf, "zoho", &[]).await;
    let page = authorize_with(
        &server,
        &admin,
        &csrf,
        "zoho",
        "code=the-code&location=eu&accounts-server=https%3A%2F%2Faccounts.zoho.eu",
    )
    .await;
    assert!(page.contains("The authorization failed"), "{page}");
    assert!(
        page.contains("accounts-server=https://accounts.zoho.eu")
            && page.contains("data centre")
            && page.contains("token URL override"),
        "{page}"
    );
    let page = authorize_with(
        &server,
        &admin,
        &csrf,
        "zoho",
        "error=invalid_scope&error_description=Invalid+permissions+requested",
    )
    .await;
    assert!(
        page.contains("separated otherwise than by spaces") && page.contains("commas"),
        "{page}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rejected_token_reported_over_the_api_is_refreshed_once() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "stale-access", "token_type": "Bearer", "refresh_token": "r-1"
        })))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "fresh-access", "token_type": "Bearer"
        })))
        .mount(&provider)
        .await;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    server.create_box_instance(&admin, &csrf, "sf", &[]).await;
    let page = authorize_with(&server, &admin, &csrf, "sf", "code=the-code").await;
    assert!(
        page.contains("unknown (the provider did not say): used until an API refuses it")
            && page.contains("/api/v1/instances/sf/token/rejected"),
        "{page}"
    );
    let key = server.api_key_with_role(&admin, &csrf, "tokens").await;
    let api = server.client();
    // sha256("stale-access")
    let stale = "a178631e188ec000f1162e1cfe9fb3433019ccc9be39d75e7f8cbdf3c218c56d";
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let request = api
                .post(server.url("/api/v1/instances/sf/token/rejected"))
                .bearer_auth(&key)
                .json(&serde_json::json!({ "sha256": stale }));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    for call in calls {
        let answer = call.await.unwrap();
        assert_eq!(answer.status(), 200);
        let token: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(token["access_token"], "fresh-access");
    }
    assert_eq!(refresh_requests(&provider).await, 1);
    let bad = api
        .post(server.url("/api/v1/instances/sf/token/rejected"))
        .bearer_auth(&key)
        .json(&serde_json::json!({ "sha256": "stale-access" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let missing = api
        .post(server.url("/api/v1/instances/sf/token/rejected"))
        .bearer_auth(&key)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    assert!(
        missing.text().await.unwrap().contains("sha256"),
        "the problem names the field"
    );
    assert_eq!(refresh_requests(&provider).await, 1);
    server.stop().await;
}
