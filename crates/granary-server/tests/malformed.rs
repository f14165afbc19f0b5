//! Malformed paths and unknown methods: every route answers 400, 404 or 405, never 500.

mod common;

use common::Server;
use granary_server::routes::{Access, route_table};
use reqwest::Method;

/// `path` with every `{param}` replaced by `value` (already percent-encoded).
fn with_params(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str(value);
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn encoded_control_characters_and_bad_encodings_in_paths_are_4xx() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let mut checked = 0;
    for value in ["a%0D%0ASet-Cookie:%20x=1", "%0A", "a%00b", "%FF%FE", "a%ZZ"] {
        for route in route_table() {
            let path = with_params(route.path, value);
            if path == route.path {
                continue;
            }
            let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
            let mut request = match route.access {
                Access::Api => server
                    .client()
                    .request(method.clone(), server.url(&path))
                    .bearer_auth(&key),
                _ => admin.request(method.clone(), server.url(&path)),
            };
            if method == Method::POST && route.access != Access::Api {
                request = request.form(&[("csrf", csrf.as_str())]);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            if let Some(location) = response.headers().get("location") {
                let location = location.to_str().unwrap();
                assert!(!location.contains(['\r', '\n']), "{location}");
            }
            let body = response.text().await.unwrap();
            assert!(
                (400..500).contains(&status) || status == 303 || status == 200,
                "{} {path} answered {status}: {body}",
                route.method
            );
            assert!(
                !body.contains("failed to parse header value"),
                "{} {path}: {body}",
                route.method
            );
            if value.contains("%0A") || value.contains("%00") {
                assert_eq!(status, 400, "{} {path}: {body}", route.method);
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    // The CRLF path of the report: a refresh form posted for such an "instance".
    let response = admin
        .post(server.url("/admin/instances/a%0D%0Ab/refresh"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn unknown_methods_are_405() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let mut checked = 0;
    for route in route_table() {
        let path = with_params(route.path, "x");
        for method in ["FOO", "PROPFIND", "TRACE", "OPTIONS"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let response = match route.access {
                Access::Api => server
                    .client()
                    .request(method.clone(), server.url(&path))
                    .bearer_auth(&key),
                _ => admin.request(method.clone(), server.url(&path)),
            }
            .send()
            .await
            .unwrap();
            assert_eq!(
                response.status(),
                405,
                "{method} {path} (a {} route)",
                route.method
            );
            assert!(response.headers().contains_key("allow"), "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    server.stop().await;
}
