//! Every admin and API route refuses anonymous and wrong-key requests; every admin form
//! refuses a request without the session's CSRF token. The routes come from the route table
//! the router is built from, so a new route cannot slip through unguarded.

mod common;

use common::Server;
use granary_server::api_keys::{ApiKeys, Role};
use granary_server::routes::{Access, route_table};
use reqwest::Method;

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push('x');
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_admin_and_api_route_refuses_anonymous_and_wrong_credentials() {
    let server = Server::start().await;
    let table = route_table();
    assert!(
        table.iter().filter(|r| r.access == Access::Admin).count() >= 20,
        "{table:?}"
    );
    assert!(
        table.iter().filter(|r| r.access == Access::Api).count() >= 14,
        "{table:?}"
    );
    let client = server.client();
    let mut checked = 0;
    for route in &table {
        let path = concrete(route.path);
        let url = server.url(&path);
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        match route.access {
            Access::Public => {
                assert!(
                    path == "/"
                        || path == "/healthz"
                        || path == "/metrics"
                        || path == "/admin/login"
                        || path == "/admin/static/admin.js"
                        // A reconnect link's page and form: the link's secret is the
                        // credential (tests/reconnect.rs).
                        || path == "/reconnect/x",
                    "unexpected public route {} {}: make it an admin or API route",
                    route.method,
                    route.path
                );
            }
            Access::Admin => {
                for cookie in [None, Some("granary_session=forged-session-id")] {
                    let mut request = client.request(method.clone(), &url);
                    if let Some(cookie) = cookie {
                        request = request.header("cookie", cookie);
                    }
                    let response = request.send().await.unwrap();
                    assert!(
                        matches!(response.status().as_u16(), 401 | 403),
                        "{} {path} with cookie {cookie:?} answered {}",
                        route.method,
                        response.status()
                    );
                    let body = response.text().await.unwrap();
                    assert!(body.contains("Sign in") || body.contains("CSRF"), "{body}");
                }
                checked += 1;
            }
            Access::Api => {
                for auth in [
                    None,
                    Some("Bearer granary_not-a-key"),
                    Some("Bearer "),
                    Some("Basic YTpi"),
                ] {
                    let mut request = client.request(method.clone(), &url);
                    if let Some(auth) = auth {
                        request = request.header("authorization", auth);
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(
                        response.status(),
                        401,
                        "{} {path} with {auth:?}",
                        route.method
                    );
                    assert_eq!(
                        response.headers()["content-type"],
                        "application/problem+json",
                        "{} {path}",
                        route.method
                    );
                    assert!(response.headers().contains_key("www-authenticate"));
                    let problem: serde_json::Value = response.json().await.unwrap();
                    assert_eq!(problem["status"], 401);
                    assert!(problem["detail"].as_str().unwrap().contains("API key"));
                }
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        table.iter().filter(|r| r.access != Access::Public).count()
    );
    server.stop().await;
}

/// What a `tokens` key may call, written out once more than in the route table: moving a
/// route between roles is a change this test shows.
const TOKENS_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/instances"),
    ("GET", "/api/v1/instances/{id}"),
    ("GET", "/api/v1/instances/{id}/token"),
    ("POST", "/api/v1/instances/{id}/token/rejected"),
    ("POST", "/api/v1/instances/{id}/refresh"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/providers"),
    ("GET", "/api/v1/instances/{id}/proxy/{*path}"),
    ("POST", "/api/v1/instances/{id}/proxy/{*path}"),
    ("PUT", "/api/v1/instances/{id}/proxy/{*path}"),
    ("PATCH", "/api/v1/instances/{id}/proxy/{*path}"),
    ("DELETE", "/api/v1/instances/{id}/proxy/{*path}"),
];

#[tokio::test]
async fn every_api_route_refuses_a_tokens_key_where_it_needs_admin() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let keys = [
        (
            Role::Tokens,
            server.api_key_with_role(&admin, &csrf, "tokens").await,
        ),
        (
            Role::Admin,
            server.api_key_with_role(&admin, &csrf, "admin").await,
        ),
    ];
    let client = server.client();
    let mut refused = 0;
    let mut allowed = 0;
    for route in route_table().iter().filter(|r| r.access == Access::Api) {
        let expected = if TOKENS_ROUTES.contains(&(route.method.as_str(), route.path)) {
            Role::Tokens
        } else {
            Role::Admin
        };
        assert_eq!(
            route.role, expected,
            "{} {}: the route table's role",
            route.method, route.path
        );
        let path = concrete(route.path);
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        for (role, key) in &keys {
            let response = client
                .request(method.clone(), server.url(&path))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if role.permits(route.role) {
                assert!(
                    !matches!(status, 401 | 403),
                    "{} {path} with a {role} key answered {status}",
                    route.method
                );
                allowed += 1;
            } else {
                assert_eq!(status, 403, "{} {path} with a {role} key", route.method);
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json"
                );
                let problem: serde_json::Value = response.json().await.unwrap();
                assert_eq!(problem["status"], 403);
                let detail = problem["detail"].as_str().unwrap();
                assert!(
                    detail.contains("role `admin`") && detail.contains("role `tokens`"),
                    "{detail}"
                );
                refused += 1;
            }
            // An event stream answered: dropping the response closes it.
        }
    }
    assert_eq!(allowed, TOKENS_ROUTES.len() * 2 + refused);
    assert!(refused >= 9, "only {refused} admin-only API routes");
    server.stop().await;
}

/// Reads the stream until it ends (true) or `wait` passes (false).
async fn ends_within(response: &mut reqwest::Response, wait: std::time::Duration) -> bool {
    tokio::time::timeout(wait, async {
        while let Some(_chunk) = response.chunk().await.unwrap_or(None) {}
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn an_event_stream_ends_when_its_key_is_revoked() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key_with_role(&admin, &csrf, "tokens").await;
    let other = server.api_key_with_role(&admin, &csrf, "tokens").await;
    let listed = server.state.api_keys.list().await.unwrap();
    let id_of = |key: &str| {
        let digest = hex_sha256(key);
        listed
            .iter()
            .find(|k| k.sha256 == digest)
            .unwrap()
            .id
            .clone()
    };
    let (key_id, other_id) = (id_of(&key), id_of(&other));
    let client = server.client();
    let open = || {
        client
            .get(server.url("/api/v1/events"))
            .bearer_auth(&key)
            .send()
    };

    // Revoked on the admin page of this server.
    let mut stream = open().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // Another key's revocation leaves it open.
    let revoked = admin
        .post(server.url(&format!("/admin/api-keys/{other_id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert!(
        !ends_within(&mut stream, std::time::Duration::from_millis(1500)).await,
        "the stream ended when another key was revoked"
    );
    let revoked = admin
        .post(server.url(&format!("/admin/api-keys/{key_id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert!(
        ends_within(&mut stream, std::time::Duration::from_secs(5)).await,
        "the stream kept going after its key was revoked"
    );

    // Revoked by another node (or the CLI) on the same store: seen within a second.
    let key = server.api_key_with_role(&admin, &csrf, "tokens").await;
    let mut stream = client
        .get(server.url("/api/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let cli = ApiKeys::open(std::sync::Arc::clone(server.state.engine.store()))
        .await
        .unwrap();
    let digest = hex_sha256(&key);
    let id = cli
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.sha256 == digest)
        .unwrap()
        .id;
    assert!(cli.revoke(&id).await.unwrap());
    assert!(
        ends_within(&mut stream, std::time::Duration::from_secs(5)).await,
        "the stream kept going after another process revoked its key"
    );
    server.stop().await;
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn a_revoked_api_key_is_refused() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let client = server.client();
    let ok = client
        .get(server.url("/api/v1/instances"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let id = server.state.api_keys.list().await.unwrap()[0].id.clone();
    let revoked = admin
        .post(server.url(&format!("/admin/api-keys/{id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    let refused = client
        .get(server.url("/api/v1/instances"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn every_admin_form_refuses_a_missing_or_wrong_csrf_token() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let mut checked = 0;
    for route in route_table() {
        if route.access != Access::Admin || route.method != Method::POST {
            continue;
        }
        let url = server.url(&concrete(route.path));
        // The import reads only multipart uploads: a urlencoded body is no upload (400, and
        // nothing read, nothing changed); its CSRF check is proven by the multipart forms.
        let multipart_only = route.path == "/admin/integrations";
        for form in [vec![], vec![("csrf", "forged")], vec![("csrf", "")]] {
            let response = admin.post(&url).form(&form).send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            if multipart_only {
                assert_eq!(status, 400, "POST {} with {form:?}: {text}", route.path);
                assert!(text.contains("the upload could not be read"), "{text}");
            } else {
                assert_eq!(status, 403, "POST {} with {form:?}: {text}", route.path);
                assert!(text.contains("CSRF"), "{text}");
            }
        }
        // A multipart form without the token, or with a wrong one, is refused too.
        for csrf in [None, Some("forged"), Some("")] {
            let mut multipart = reqwest::multipart::Form::new().text("name", "x");
            if let Some(csrf) = csrf {
                multipart = multipart.text("csrf", csrf);
            }
            let response = admin.post(&url).multipart(multipart).send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(
                status, 403,
                "multipart POST {} csrf {csrf:?}: {text}",
                route.path
            );
            assert!(text.contains("CSRF"), "{text}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} admin forms");
    // The session still works: the refusals changed nothing.
    let home = admin.get(server.url("/admin/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(!csrf.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn sign_in_needs_the_token_and_the_login_csrf_cookie() {
    let server = Server::start().await;
    let client = server.client();
    let page = client.get(server.url("/admin/login")).send().await.unwrap();
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let csrf = common::hidden(&page.text().await.unwrap(), "csrf");

    let wrong = client
        .post(server.url("/admin/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", "wrong-token-wrong-token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("Sign-in refused"));

    // Without the cookie of the form (another site posting), the right token is refused.
    let other = server.client();
    let forged = other
        .post(server.url("/admin/login"))
        .form(&[("csrf", "anything"), ("token", common::ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let page = client.get(server.url("/admin/login")).send().await.unwrap();
    let csrf = common::hidden(&page.text().await.unwrap(), "csrf");
    let ok = client
        .post(server.url("/admin/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", common::ADMIN_TOKEN),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/admin/", "no open redirect");
    let cookies: Vec<String> = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("granary_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && !session.contains("Secure"),
        "{session}"
    );

    // Sign out ends the session.
    let home = client.get(server.url("/admin/")).send().await.unwrap();
    let csrf = common::hidden(&home.text().await.unwrap(), "csrf");
    let out = client
        .post(server.url("/admin/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = client.get(server.url("/admin/")).send().await.unwrap();
    assert_eq!(after.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn sign_in_is_throttled_per_address_after_ten_failures() {
    let server = Server::start().await;
    let client = server.client();
    let attempt = |token: &'static str| {
        let client = client.clone();
        let url = server.url("/admin/login");
        async move {
            let page = client.get(&url).send().await.unwrap();
            let csrf = common::hidden(&page.text().await.unwrap(), "csrf");
            client
                .post(&url)
                .form(&[("csrf", csrf.as_str()), ("token", token)])
                .send()
                .await
                .unwrap()
        }
    };
    for n in 0..granary_server::throttle::FREE_FAILURES {
        let response = attempt("wrong-token-wrong-token").await;
        assert_eq!(response.status(), 401, "attempt {n}");
    }
    // The eleventh attempt waits, even with the right token.
    let refused = attempt(common::ADMIN_TOKEN).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "{wait}");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many sign-ins refused")
    );
    // After the wait, one more wrong token waits longer.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(attempt("wrong-token-wrong-token").await.status(), 401);
    let refused = attempt(common::ADMIN_TOKEN).await;
    assert_eq!(refused.status(), 429);
    let longer: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(longer > wait, "{longer} after {wait}");
    // The right token after the wait signs in.
    tokio::time::sleep(std::time::Duration::from_secs(longer)).await;
    assert_eq!(attempt(common::ADMIN_TOKEN).await.status(), 303);
    server.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let server = Server::start_with_public_url(Some("https://granary.example")).await;
    let client = server.client();
    let page = client.get(server.url("/admin/login")).send().await.unwrap();
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let csrf = common::hidden(&page.text().await.unwrap(), "csrf");
    // The Secure cookie is not sent back over plain http by a conforming client, so post it
    // by hand.
    let ok = server
        .client()
        .post(server.url("/admin/login"))
        .header("cookie", format!("granary_login_csrf={csrf}"))
        .form(&[("csrf", csrf.as_str()), ("token", common::ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("granary_session="))
        .unwrap();
    assert!(session.contains("; Secure"), "{session}");
    server.stop().await;
}
