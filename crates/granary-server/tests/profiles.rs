//! Provider profiles through the REST API and the admin page: connection fields and an
//! instance's own profile settings in, the applied profile and the kept values out.

mod common;

use common::{Server, box_document};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A document whose authorization and token URLs are on a shop's host, as Shopify's are
/// (the catalogue's Shopify profile recognises `myshopify.com`).
fn shopify_like_document() -> String {
    box_document("https://shop.myshopify.com/admin/oauth")
}

async fn call(
    server: &Server,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .client()
        .request(method, server.url(path))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let value = response.json().await.unwrap_or(Value::Null);
    (status, value)
}

fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn connection_and_profile_round_trip_through_the_api() {
    use reqwest::Method as M;
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let (status, integration) = call(
        &server,
        &key,
        M::POST,
        "/api/v1/integrations",
        Some(json!({"name": "shop", "document": shopify_like_document()})),
    )
    .await;
    assert_eq!(status, 201, "{integration}");
    let scheme_profile = &integration["schemes"][0]["provider_profile"];
    assert!(
        scheme_profile["headline"]
            .as_str()
            .unwrap()
            .starts_with("Recognised Shopify"),
        "{integration}"
    );
    assert_eq!(scheme_profile["fields"][0]["name"], "shop");
    assert_eq!(scheme_profile["fields"][0]["kind"], "label");
    assert_eq!(scheme_profile["fields"][0]["from_callback"], false);

    // A shop that is not a host label is refused, naming the field and the value.
    let new = |extra: Value| {
        let mut body =
            json!({"id": "acme", "integration": "shop", "client_id": "cid", "client_secret": "s"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, problem) = call(
        &server,
        &key,
        M::POST,
        "/api/v1/instances",
        Some(new(json!({"connection": {"shop": "not a label!"}}))),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        detail(&problem).contains("`shop`") && detail(&problem).contains("not a label!"),
        "{problem}"
    );
    // A profile of the wrong shape is the caller's mistake; one that names no catalogue
    // profile is refused by the engine, with the ids there are.
    let (status, problem) = call(
        &server,
        &key,
        M::POST,
        "/api/v1/instances",
        Some(new(json!({"connection": {"shop": "acme"}, "profile": 42}))),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert!(detail(&problem).contains("`profile`"), "{problem}");
    let (status, problem) = call(
        &server,
        &key,
        M::POST,
        "/api/v1/instances",
        Some(new(
            json!({"connection": {"shop": "acme"}, "profile": "no-such-provider"}),
        )),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(detail(&problem).contains("no-such-provider"), "{problem}");
    assert!(detail(&problem).contains("shopify"), "{problem}");

    let (status, created) = call(
        &server,
        &key,
        M::POST,
        "/api/v1/instances",
        Some(new(json!({"connection": {"shop": "acme"}}))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, shown) = call(&server, &key, M::GET, "/api/v1/instances/acme", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["connection"], json!({"shop": "acme"}));
    assert_eq!(shown["profile"], Value::Null);
    let applied = &shown["provider_profile"];
    assert!(
        applied["headline"]
            .as_str()
            .unwrap()
            .starts_with("Recognised Shopify"),
        "{shown}"
    );
    assert_eq!(applied["sources"][0]["kind"], "catalogue");
    assert_eq!(applied["sources"][0]["id"], "shopify");
    assert!(
        applied["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("acme") || c.as_str().unwrap().contains("{shop}")),
        "{shown}"
    );
    let (_, list) = call(&server, &key, M::GET, "/api/v1/instances", None).await;
    assert_eq!(
        list["instances"][0]["provider_profile"]["headline"],
        applied["headline"]
    );

    // No catalogue profile: the shop is no field then, so it must go too.
    let (status, problem) = call(
        &server,
        &key,
        M::PATCH,
        "/api/v1/instances/acme",
        Some(json!({"profile": {"use": "none"}})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(detail(&problem).contains("`shop`"), "{problem}");
    let (status, patched) = call(
        &server,
        &key,
        M::PATCH,
        "/api/v1/instances/acme",
        Some(json!({"profile": {"use": "none"}, "connection": {}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["profile"], json!({"use": "none"}));
    assert_eq!(patched["provider_profile"]["headline"], Value::Null);
    assert_eq!(patched["provider_profile"]["changes"], json!([]));
    // null removes the instance's own settings: the catalogue's applies again.
    let (status, patched) = call(
        &server,
        &key,
        M::PATCH,
        "/api/v1/instances/acme",
        Some(json!({"profile": null, "connection": {"shop": "acme"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["profile"], Value::Null);
    assert!(
        patched["provider_profile"]["headline"]
            .as_str()
            .unwrap()
            .starts_with("Recognised Shopify")
    );

    // The catalogue, for any key.
    let tokens_key = server.api_key_with_role(&admin, &csrf, "tokens").await;
    let (status, providers) = call(&server, &tokens_key, M::GET, "/api/v1/providers", None).await;
    assert_eq!(status, 200, "{providers}");
    let shopify = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "shopify")
        .expect("shopify is listed");
    assert_eq!(shopify["title"], "Shopify");
    assert_eq!(shopify["hosts"], json!(["myshopify.com"]));
    assert_eq!(shopify["fields"][0]["name"], "shop");
    assert!(!shopify["changes"].as_array().unwrap().is_empty());
    assert!(shopify["why"].is_string());
    server.stop().await;
}

/// Imports the Box document at `provider` and creates instance `kept` keeping the token
/// answer's `instance_url`, then authorizes it through the admin page; the provider's token
/// endpoint answers with an `instance_url`.
async fn authorized_instance_keeping_instance_url(
    server: &Server,
    admin: &reqwest::Client,
    csrf: &str,
    key: &str,
    provider: &MockServer,
) {
    use reqwest::Method as M;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-1", "instance_url": "https://acme.my.example.com",
        })))
        .mount(provider)
        .await;
    let (status, _) = call(
        server,
        key,
        M::POST,
        "/api/v1/integrations",
        Some(json!({"name": "box", "document": box_document(&provider.uri())})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, created) = call(
        server,
        key,
        M::POST,
        "/api/v1/instances",
        Some(json!({
            "id": "kept", "integration": "box", "client_id": "c", "client_secret": "s",
            "profile": {"token": {"keep": ["instance_url"]}},
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["profile"],
        json!({"token": {"keep": ["instance_url"]}})
    );
    assert!(
        created["provider_profile"]["headline"]
            .as_str()
            .unwrap()
            .contains("the instance's own settings"),
        "{created}"
    );
    let started = admin
        .post(server.url("/admin/instances/kept/authorize"))
        .form(&[("csrf", csrf)])
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
    let callback = admin
        .get(server.url(&format!("/admin/oauth/?code=c&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.headers()["location"], "/admin/instances/kept");
}

#[tokio::test]
async fn token_answers_and_the_instance_page_carry_the_kept_values() {
    use reqwest::Method as M;
    let server = Server::start().await;
    let provider = MockServer::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    authorized_instance_keeping_instance_url(&server, &admin, &csrf, &key, &provider).await;
    let kept = json!({"instance_url": "https://acme.my.example.com"});

    let (status, token) = call(&server, &key, M::GET, "/api/v1/instances/kept/token", None).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["access_token"], "at-1");
    assert_eq!(token["kept"], kept);
    let (status, refreshed) = call(
        &server,
        &key,
        M::POST,
        "/api/v1/instances/kept/refresh",
        None,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["kept"], kept);
    let (_, shown) = call(&server, &key, M::GET, "/api/v1/instances/kept", None).await;
    assert_eq!(shown["token"]["kept"], kept);

    let page = admin
        .get(server.url("/admin/instances/kept"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let table = &page[page
        .find("<table id=\"kept\">")
        .expect("a table of kept values")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(
        table.contains("instance_url") && table.contains("https://acme.my.example.com"),
        "{table}"
    );
    assert!(
        page.contains("the instance&#x27;s own settings")
            || page.contains("the instance&#39;s own settings"),
        "{page}"
    );
    assert!(
        page.contains("keeps instance_url from the token answer"),
        "{page}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_admin_pages_show_the_profile_and_ask_for_its_connection_fields() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let (status, _) = call(
        &server,
        &key,
        reqwest::Method::POST,
        "/api/v1/integrations",
        Some(json!({"name": "shop", "document": shopify_like_document()})),
    )
    .await;
    assert_eq!(status, 201);
    let get = |path: &str| {
        let request = admin.get(server.url(path));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };

    // The integration page: which profile applied and what it changes, as a list.
    let page = get("/admin/integrations/shop").await;
    let block = &page[page
        .find("id=\"profile-OAuth2Security\"")
        .expect("the scheme's profile")..];
    assert!(block.contains("Recognised Shopify"), "{block}");
    assert!(
        block.contains("<li>joins scopes with `,`</li>"),
        "the changes as a list: {block}"
    );

    // The new instance's form asks for the shop, labelled by the profile.
    let form = get("/admin/instances/new?integration=shop").await;
    assert!(form.contains("name=\"connection.shop\""), "{form}");
    assert!(form.contains("Shop (acme in acme.myshopify.com)"), "{form}");
    assert!(form.contains("Provider profile settings (JSON)"), "{form}");

    // A bad shop: the form again, with the engine's words and what was typed (escaped).
    let post = |fields: Vec<(&'static str, String)>| {
        let mut all = vec![
            ("csrf", csrf.clone()),
            ("id", "acme".to_string()),
            ("integration", "shop".to_string()),
            ("scheme", "OAuth2Security".to_string()),
            ("client_id", "cid".to_string()),
            ("client_secret", "s".to_string()),
            ("client_auth", "client_secret_post".to_string()),
        ];
        all.extend(fields);
        let request = admin.post(server.url("/admin/instances")).form(&all);
        async move { request.send().await.unwrap() }
    };
    let refused = post(vec![("connection.shop", "<b>no</b>".to_string())]).await;
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    assert!(html.contains("The instance was not created"), "{html}");
    assert!(
        html.contains("the connection field `shop` is `&lt;b&gt;no&lt;/b&gt;`")
            || html.contains("the connection field `shop` is `&#60;b&#62;no&#60;/b&#62;`"),
        "the engine's message: {html}"
    );
    assert!(!html.contains("<b>no</b>"), "escaped: {html}");
    let input = &html[html.find("name=\"connection.shop\"").unwrap()..];
    let input = &input[..input.find('>').unwrap()];
    assert!(
        input.contains("value=\"&lt;b&gt;no&lt;/b&gt;\"")
            || input.contains("value=\"&#60;b&#62;no&#60;/b&#62;\""),
        "kept as typed: {input}"
    );

    // Profile settings that do not read: the form again, keeping them.
    let refused = post(vec![
        ("connection.shop", "acme".to_string()),
        ("profile", "{\"authorization\": ".to_string()),
    ])
    .await;
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    assert!(html.contains("not valid JSON"), "{html}");
    assert!(
        html.contains("{&quot;authorization&quot;:</textarea>")
            || html.contains("{&#34;authorization&#34;:</textarea>"),
        "{html}"
    );

    // Saved, the instance page shows the profile and the connection.
    let created = post(vec![("connection.shop", "acme".to_string())]).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    let page = get("/admin/instances/acme").await;
    assert!(page.contains("Recognised Shopify"), "{page}");
    let connection = &page[page
        .find("<table id=\"connection\">")
        .expect("the connection")..];
    assert!(connection.contains("acme"), "{connection}");
    // The edit form shows what is stored; clearing the shop is refused with the field named.
    let edit = get("/admin/instances/acme/edit").await;
    assert!(edit.contains("value=\"acme\""), "{edit}");
    let cleared = admin
        .post(server.url("/admin/instances/acme"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("scheme", "OAuth2Security"),
            ("client_id", "cid"),
            ("client_auth", "client_secret_post"),
            ("connection.shop", ""),
            ("profile", "none"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 303, "{}", cleared.text().await.unwrap());
    let page = get("/admin/instances/acme").await;
    assert!(page.contains("No provider profile"), "{page}");
    assert!(
        page.contains("<code id=\"own-profile\">none</code>"),
        "{page}"
    );
    server.stop().await;
}
