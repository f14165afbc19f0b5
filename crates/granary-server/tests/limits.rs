//! Limits of the server's import paths: documents up to the import limit (64 MiB by default)
//! import through the REST API and the admin form; over a configured limit the answer is a
//! 413 problem (API) or banner (admin form) that names it; parsing never holds the async
//! workers, so /healthz answers while an import is parsed; a deep document is refused with
//! the depth limit.

mod common;

use common::{Server, box_document};
use serde_json::{Value, json};

/// The Box document with a `x-padding` member that makes it about `size` bytes.
fn padded(base: &str, size: usize) -> String {
    let doc = box_document(base);
    let open = doc.find('{').unwrap() + 1;
    format!(
        "{}\"x-padding\": \"{}\",{}",
        &doc[..open],
        "p".repeat(size),
        &doc[open..]
    )
}

async fn api_import(server: &Server, key: &str, name: &str, document: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/integrations"))
        .bearer_auth(key)
        .json(&json!({"name": name, "document": document}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn form_import(
    server: &Server,
    admin: &reqwest::Client,
    csrf: &str,
    name: &str,
    document: String,
) -> (u16, String) {
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.to_string())
        .text("name", name.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(document.into_bytes()).file_name("openapi.json"),
        );
    let response = admin
        .post(server.url("/admin/integrations"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_3_mb_document_imports_through_the_api_and_the_admin_form() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let document = padded(&server.base, 3 * 1024 * 1024);
    let (status, body) = api_import(&server, &key, "big", &document).await;
    assert_eq!(status, 201, "{body}");
    let (status, page) = form_import(&server, &admin, &csrf, "big2", document).await;
    assert_eq!(status, 303, "{page:.400}");
    // Every other body keeps the small limit.
    let response = admin
        .post(server.url("/admin/instances"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", &"x".repeat(2 * 1024 * 1024)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    server.stop().await;
}

#[tokio::test]
async fn over_a_configured_import_limit_the_answer_is_413_naming_it() {
    let server = Server::start_with(None, Some("100KiB")).await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    // Over the limit but within the body allowance: the engine refuses the document.
    let (status, body) = api_import(&server, &key, "a", &padded(&server.base, 150 * 1024)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["type"].as_str().map(|t| t.ends_with("too-large")),
        Some(true),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("100 KiB"),
        "{body}"
    );
    // Far over it: the body itself is cut short.
    let (status, body) = api_import(&server, &key, "a", &padded(&server.base, 400 * 1024)).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("import limit of 100 KiB"),
        "{body}"
    );
    let (status, page) = form_import(
        &server,
        &admin,
        &csrf,
        "b",
        padded(&server.base, 400 * 1024),
    )
    .await;
    assert_eq!(status, 413, "{page:.400}");
    assert!(page.contains("import limit of 100 KiB"), "{page:.2000}");
    // Within it: imported.
    let (status, body) = api_import(&server, &key, "c", &padded(&server.base, 50 * 1024)).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_deep_document_is_refused_with_the_depth_limit() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let n = 100_000;
    for document in [
        format!(
            "openapi: 3.0.0\npaths: {}{}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
        format!(
            "{{\"openapi\": \"3.0.0\", \"paths\": {}{}}}",
            "[".repeat(n),
            "]".repeat(n)
        ),
    ] {
        let (status, body) = api_import(&server, &key, "deep", &document).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("limit of 128 levels"),
            "{body}"
        );
    }
    server.stop().await;
}

/// A large document takes the blocking pool a while to parse; /healthz answers meanwhile
/// (the test runtime has one thread: parsing on it would hold /healthz until the end).
#[tokio::test]
async fn healthz_answers_while_imports_are_parsed() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    // A YAML document of many small paths: slow to parse, valid.
    let mut document = String::from("openapi: 3.0.0\ninfo:\n  title: Big\npaths:\n");
    for i in 0..200_000 {
        document.push_str(&format!(
            "  /p{i}:\n    get: {{responses: {{'200': {{description: ok}}}}}}\n"
        ));
    }
    document.push_str(&format!(
        "components:\n  securitySchemes:\n    o:\n      type: oauth2\n      flows:\n        authorizationCode:\n          authorizationUrl: {0}/authorize\n          tokenUrl: {0}/token\n          scopes: {{read: r}}\n",
        server.base
    ));
    let imports: Vec<_> = (0..2)
        .map(|i| {
            let (server_url, key, document) = (
                server.url("/api/v1/integrations"),
                key.clone(),
                document.clone(),
            );
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(server_url)
                    .bearer_auth(key)
                    .json(&json!({"name": format!("big{i}"), "document": document}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // Wait until the server holds both imports (the documents are being parsed), then ask.
    common_wait_for_parsing(&imports).await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        imports.iter().any(|i| !i.is_finished()),
        "/healthz answered only after the imports"
    );
    for import in imports {
        assert_eq!(import.await.unwrap(), 201);
    }
    server.stop().await;
}

/// Yields until the import requests are sent (they are then read and parsed by the server).
async fn common_wait_for_parsing(imports: &[tokio::task::JoinHandle<reqwest::StatusCode>]) {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(imports.iter().all(|i| !i.is_finished()));
}
