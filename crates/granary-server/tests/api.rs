//! The REST API over HTTP: integrations and instances CRUD, the authorization link, tokens,
//! problem details, server-sent events, /healthz and /metrics.

mod common;

use common::{Server, box_document};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Api<'a> {
    server: &'a Server,
    key: String,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let mut request = self
            .http
            .request(method, self.server.url(path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, content_type)
    }
}

#[tokio::test]
async fn integrations_and_instances_crud_with_problem_details() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let api = Api {
        server: &server,
        key: server.api_key(&admin, &csrf).await,
        http: server.client(),
    };
    use reqwest::Method as M;

    let document = box_document("http://127.0.0.1:9");
    let (status, created, _) = api
        .call(
            M::POST,
            "/api/v1/integrations",
            Some(json!({"name": "box", "document": document})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "Box");
    assert_eq!(created["schemes"][0]["name"], "OAuth2Security");
    let (status, _, _) = api
        .call(
            M::PUT,
            "/api/v1/integrations/box",
            Some(json!({"document": document})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, list, _) = api.call(M::GET, "/api/v1/integrations", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["integrations"].as_array().unwrap().len(), 1);
    let (status, one, _) = api.call(M::GET, "/api/v1/integrations/box", None).await;
    assert_eq!((status, one["name"].as_str()), (200, Some("box")));

    let (status, problem, content_type) = api
        .call(
            M::POST,
            "/api/v1/integrations",
            Some(json!({"name": "broken", "document": "{"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 422);
    assert!(problem["type"].as_str().unwrap().starts_with("/problems/"));
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("could not be imported"),
        "{problem}"
    );

    let (status, instance, _) = api
        .call(
            M::POST,
            "/api/v1/instances",
            Some(json!({
                "id": "box-api", "integration": "box", "client_id": "cid", "client_secret": "never-returned",
                "scopes": ["root_readonly"], "client_auth": "client_secret_post",
                "extra_token_headers": [["X-Secret-Header", "hidden-value"]]
            })),
        )
        .await;
    assert_eq!(status, 201, "{instance}");
    assert_eq!(instance["client_secret_set"], true);
    assert_eq!(instance["client_auth"], "client_secret_post");
    assert_eq!(instance["status"], "new");
    assert_eq!(instance["redirect_uri"], server.url("/admin/oauth/"));
    let text = instance.to_string();
    assert!(
        !text.contains("never-returned") && !text.contains("hidden-value"),
        "{text}"
    );

    let (status, problem, _) = api
        .call(M::POST, "/api/v1/instances", Some(json!({"id": "typo", "integration": "box", "client_id": "c", "scopes": ["root_readonli"]})))
        .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("root_readonly"),
        "{problem}"
    );
    let (status, _, _) = api
        .call(
            M::POST,
            "/api/v1/instances",
            Some(json!({"id": "box-api", "integration": "box", "client_id": "c"})),
        )
        .await;
    assert_eq!(status, 409, "a taken id");

    let (status, patched, _) = api
        .call(M::PATCH, "/api/v1/instances/box-api", Some(json!({"token_url": "http://127.0.0.1:9/other-token", "client_secret": null, "client_auth": "none"})))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["token_url"], "http://127.0.0.1:9/other-token");
    assert_eq!(patched["client_secret_set"], false);
    let (status, patched, _) = api
        .call(
            M::PATCH,
            "/api/v1/instances/box-api",
            Some(json!({"token_url": null})),
        )
        .await;
    assert_eq!((status, patched["token_url"].clone()), (200, Value::Null));

    let (status, link, _) = api
        .call(M::POST, "/api/v1/instances/box-api/authorize", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        link["authorization_url"],
        server.url("/admin/instances/box-api/authorize")
    );
    // The link opens the connect page for a signed-in admin.
    let connect = admin
        .get(link["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status(), 200);
    assert!(connect.text().await.unwrap().contains("Get access token"));

    let (status, problem, content_type) = api
        .call(M::GET, "/api/v1/instances/box-api/token", None)
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (409, "application/problem+json")
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not authorized yet"),
        "{problem}"
    );
    let (status, _, _) = api
        .call(M::GET, "/api/v1/instances/missing/token", None)
        .await;
    assert_eq!(status, 404);

    let (status, list, _) = api.call(M::GET, "/api/v1/instances", None).await;
    assert_eq!(
        (status, list["instances"].as_array().unwrap().len()),
        (200, 1)
    );
    // Disconnect keeps the instance; one that holds no token has nothing to revoke.
    let (status, disconnected, _) = api
        .call(M::POST, "/api/v1/instances/box-api/disconnect", None)
        .await;
    assert_eq!(status, 200, "{disconnected}");
    assert_eq!(disconnected["disconnected"], json!(true));
    assert_eq!(disconnected["status"], json!("new"));
    assert_eq!(disconnected["token_deleted"], json!(false));
    assert_eq!(disconnected["revoked"], json!(false));
    assert!(
        disconnected["revocation_note"].is_string(),
        "{disconnected}"
    );
    let (status, _, _) = api
        .call(M::POST, "/api/v1/instances/missing/disconnect", None)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = api.call(M::DELETE, "/api/v1/integrations/box", None).await;
    assert_eq!(status, 409, "in use");
    let (status, deleted, _) = api.call(M::DELETE, "/api/v1/instances/box-api", None).await;
    assert_eq!(
        (status, deleted["deleted"].clone()),
        (200, Value::Bool(true))
    );
    let (status, _, _) = api.call(M::GET, "/api/v1/instances/box-api", None).await;
    assert_eq!(status, 404);
    let (status, _, _) = api.call(M::DELETE, "/api/v1/integrations/box", None).await;
    assert_eq!(status, 204);
    let (status, problem, _) = api.call(M::GET, "/api/v1/nothing-here", None).await;
    assert_eq!((status, problem["status"].clone()), (404, json!(404)));
    server.stop().await;
}

#[tokio::test]
async fn healthz_metrics_and_events() {
    let server = Server::start().await;
    let client = server.client();
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let metrics = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = metrics.text().await.unwrap();
    // OpenMetrics: a counter family is declared without its `_total` (no failure has been
    // counted yet, so its declaration is all there is), and the exposition ends with `# EOF`.
    for name in [
        "granary_refreshes_total",
        "# TYPE granary_failures counter\n",
        "granary_instances{status=\"new\"} 0",
        "granary_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert!(text.ends_with("\n# EOF\n"), "{text}");

    // An authorization completed through the admin page shows up on the event stream.
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "a", "token_type": "Bearer", "expires_in": 60}),
            ),
        )
        .mount(&provider)
        .await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": provider.uri(),
            "authorization_endpoint": format!("{}/authorize", provider.uri()),
            "token_endpoint": format!("{}/token", provider.uri()),
            "revocation_endpoint": format!("{}/revoke", provider.uri()),
        })))
        .mount(&provider)
        .await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let mut events = client
        .get(server.url("/api/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let api = Api {
        server: &server,
        key: key.clone(),
        http: client.clone(),
    };
    let (status, _, _) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/integrations",
            Some(json!({"name": "box", "document": box_document(&provider.uri())})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, discovered, _) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/integrations/box/discover",
            Some(json!({"issuer": provider.uri()})),
        )
        .await;
    assert_eq!(status, 200, "{discovered}");
    assert_eq!(discovered["issuer"], provider.uri());
    assert_eq!(
        discovered["revocation_url"],
        format!("{}/revoke", provider.uri())
    );
    let (status, _, _) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/instances",
            Some(json!({"id": "ev", "integration": "box", "client_id": "c", "client_secret": "s"})),
        )
        .await;
    assert_eq!(status, 201);
    let started = admin
        .post(server.url("/admin/instances/ev/authorize"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let iss: String = url::form_urlencoded::byte_serialize(provider.uri().as_bytes()).collect();
    let callback = admin
        .get(server.url(&format!("/admin/oauth/?code=c&state={state}&iss={iss}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.headers()["location"], "/admin/instances/ev");
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.chunk())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.contains("event: authorized") && text.contains("\"instance\":\"ev\""),
        "{text}"
    );
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("granary_authorizations_total 1"),
        "{metrics}"
    );
    // Shutdown ends the open event stream instead of waiting for it.
    server.stop().await;
    drop(events);
}

/// `GET /api/v1/instances` pages by id after a cursor: following `next` lists every
/// instance exactly once; a filter by status and integration; a wrong limit, cursor or
/// status is a 400 that names the fix.
#[tokio::test]
async fn the_instance_list_pages_by_cursor_and_names_the_fix_of_a_wrong_page() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let api = Api {
        server: &server,
        key: server.api_key(&admin, &csrf).await,
        http: server.client(),
    };
    use reqwest::Method as M;
    let document = box_document("http://127.0.0.1:9");
    let (status, _, _) = api
        .call(
            M::POST,
            "/api/v1/integrations",
            Some(json!({"name": "box", "document": document})),
        )
        .await;
    assert_eq!(status, 201);
    let mut ids: Vec<String> = (0..23).map(|n| format!("inst-{n:02}")).collect();
    for id in &ids {
        let (status, body, _) = api
            .call(
                M::POST,
                "/api/v1/instances",
                Some(json!({"id": id, "integration": "box", "client_id": "cid"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    ids.sort();

    // Pages of 5: every instance once, in id order, and `next` null on the last page.
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            Some(after) => format!("/api/v1/instances?limit=5&after={after}"),
            None => "/api/v1/instances?limit=5".to_string(),
        };
        let (status, page, _) = api.call(M::GET, &query, None).await;
        assert_eq!(status, 200, "{page}");
        let listed = page["instances"].as_array().unwrap();
        assert!(listed.len() <= 5, "{page}");
        seen.extend(listed.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str), "{page}");
                after = Some(next.to_string());
            }
            None => {
                assert!(page["next"].is_null(), "{page}");
                break;
            }
        }
        assert!(pages < 10, "paging never ended: {seen:?}");
    }
    assert_eq!(seen, ids, "every instance exactly once, by id");
    assert_eq!(pages, 5);

    // Without a limit: the default page (100) holds them all.
    let (status, page, _) = api.call(M::GET, "/api/v1/instances", None).await;
    assert_eq!(
        (status, page["instances"].as_array().unwrap().len()),
        (200, 23)
    );
    assert!(page["next"].is_null(), "{page}");
    // A filter by status and integration.
    let (status, page, _) = api
        .call(
            M::GET,
            "/api/v1/instances?status=new&integration=box&limit=1000",
            None,
        )
        .await;
    assert_eq!(
        (status, page["instances"].as_array().unwrap().len()),
        (200, 23)
    );
    let (_, page, _) = api
        .call(M::GET, "/api/v1/instances?status=authorized", None)
        .await;
    assert_eq!(page["instances"].as_array().unwrap().len(), 0, "{page}");
    let (_, page, _) = api
        .call(M::GET, "/api/v1/instances?integration=other", None)
        .await;
    assert_eq!(page["instances"].as_array().unwrap().len(), 0, "{page}");

    for (query, fix) in [
        ("limit=0", "must be 1 to 1000, not 0"),
        ("limit=1001", "follow `next`"),
        ("limit=many", "is not a number: ask for 1 to 1000"),
        (
            "after=not%20an%20id",
            "pass the `next` of the previous page",
        ),
        (
            "status=sleeping",
            "use new, authorized, needs_authorization or disabled",
        ),
    ] {
        let (status, problem, content_type) = api
            .call(M::GET, &format!("/api/v1/instances?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            problem["detail"].as_str().unwrap().contains(fix),
            "{query}: {problem}"
        );
    }
}

/// The lifetime of a token of unknown expiry (issue 17 item 2): set on an integration at
/// import, and on an instance at creation and by PATCH (`null` clears it), shown in both.
#[tokio::test]
async fn the_token_lifetime_round_trips_on_integrations_and_instances() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let api = Api {
        server: &server,
        key: server.api_key(&admin, &csrf).await,
        http: server.client(),
    };
    use reqwest::Method as M;

    let document = box_document("http://127.0.0.1:9");
    let (status, created, _) = api
        .call(
            M::POST,
            "/api/v1/integrations",
            Some(json!({"name": "box", "document": document, "token_lifetime": 7200})),
        )
        .await;
    assert_eq!(
        (status, &created["token_lifetime"]),
        (201, &json!(7200)),
        "{created}"
    );
    // A re-import without the field keeps it.
    let (status, again, _) = api
        .call(
            M::PUT,
            "/api/v1/integrations/box",
            Some(json!({"document": document})),
        )
        .await;
    assert_eq!(
        (status, &again["token_lifetime"]),
        (200, &json!(7200)),
        "{again}"
    );
    let (_, one, _) = api.call(M::GET, "/api/v1/integrations/box", None).await;
    assert_eq!(one["token_lifetime"], 7200, "{one}");

    let (status, instance, _) = api
        .call(
            M::POST,
            "/api/v1/instances",
            Some(json!({
                "id": "box-api", "integration": "box", "client_id": "cid",
                "scopes": ["root_readonly"], "token_lifetime": 3600
            })),
        )
        .await;
    assert_eq!(
        (status, &instance["token_lifetime"]),
        (201, &json!(3600)),
        "{instance}"
    );
    let (_, got, _) = api.call(M::GET, "/api/v1/instances/box-api", None).await;
    assert_eq!(got["token_lifetime"], 3600, "{got}");

    // A PATCH without the field keeps it; with a value changes it; `null` clears it.
    let (status, kept, _) = api
        .call(
            M::PATCH,
            "/api/v1/instances/box-api",
            Some(json!({"client_id": "cid-2"})),
        )
        .await;
    assert_eq!(
        (status, &kept["token_lifetime"]),
        (200, &json!(3600)),
        "{kept}"
    );
    let (status, changed, _) = api
        .call(
            M::PATCH,
            "/api/v1/instances/box-api",
            Some(json!({"token_lifetime": 60})),
        )
        .await;
    assert_eq!(
        (status, &changed["token_lifetime"]),
        (200, &json!(60)),
        "{changed}"
    );
    let (status, cleared, _) = api
        .call(
            M::PATCH,
            "/api/v1/instances/box-api",
            Some(json!({"token_lifetime": null})),
        )
        .await;
    assert_eq!(
        (status, &cleared["token_lifetime"]),
        (200, &Value::Null),
        "{cleared}"
    );
    let (_, listed, _) = api.call(M::GET, "/api/v1/instances", None).await;
    assert_eq!(
        listed["instances"][0]["token_lifetime"],
        Value::Null,
        "{listed}"
    );

    let (status, problem, _) = api
        .call(
            M::PATCH,
            "/api/v1/instances/box-api",
            Some(json!({"token_lifetime": "an hour"})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
}
