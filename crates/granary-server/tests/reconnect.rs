//! Reconnect links: the admin's button, the page a link opens without a session, its
//! "Get access token" (once), the callback that completes for that browser with a plain
//! page, expired and unknown links (one answer), the API and the CLI, locally and remotely.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Server, hidden};
use granary_flow::engine::reconnect_secret_digest;
use granary_store::{InstanceStatus, ReconnectLink};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_granary");
const GONE: &str = "this link was used or has expired: ask your admin for a new one";

fn token_body() -> Value {
    json!({"access_token": "access-1", "token_type": "Bearer", "expires_in": 3600,
           "refresh_token": "refresh-1", "scope": "root_readonly"})
}

/// A server with the integration `box` (its URLs at `provider`) and the instance `box-1`,
/// and the admin's client and CSRF token.
async fn setup(provider: &MockServer) -> (Server, reqwest::Client, String) {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, &provider.uri()).await;
    server
        .create_box_instance(&admin, &csrf, "box-1", &[])
        .await;
    (server, admin, csrf)
}

/// Presses "Create reconnect link" on the instance page: the link shown.
async fn create_link(server: &Server, admin: &reqwest::Client, csrf: &str) -> String {
    let response = admin
        .post(server.url("/admin/instances/box-1/reconnect-link"))
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("It works <strong>once</strong>, until"),
        "{html}"
    );
    let marker = "id=\"reconnect-link\" value=\"";
    let start = html.find(marker).expect("the link is shown") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// Opens a link in `browser`: the status, and the CSRF token of its form when there is one.
async fn open(browser: &reqwest::Client, link: &str) -> (u16, String) {
    let response = browser.get(link).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn press(browser: &reqwest::Client, link: &str, csrf: &str) -> reqwest::Response {
    browser
        .post(link)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap()
}

fn state_of(response: &reqwest::Response) -> String {
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(name, _)| name == "state")
        .expect("the provider URL has a state")
        .1
        .into_owned()
}

#[tokio::test]
async fn a_link_connects_a_browser_without_a_session_once() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body()))
        .expect(1)
        .mount(&provider)
        .await;
    let (server, admin, csrf) = setup(&provider).await;

    // The instance page offers the button; it shows the link, under the public URL and
    // not under /admin/.
    let page = open(&admin, &server.url("/admin/instances/box-1")).await.1;
    assert!(page.contains("Create reconnect link"), "{page}");
    let link = create_link(&server, &admin, &csrf).await;
    assert!(link.starts_with(&server.url("/reconnect/")), "{link}");

    // Two browsers without a session open it: the instance, its integration, one button,
    // and no admin navigation.
    let owner = server.client();
    let other = server.client();
    let first = owner.get(&link).send().await.unwrap();
    assert_eq!(first.headers()["referrer-policy"], "no-referrer");
    let (status, html) = open(&owner, &link).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"instance\">box-1<"), "{html}");
    assert!(html.contains("id=\"integration\">box<"), "{html}");
    assert!(html.contains("Get access token"));
    assert!(!html.contains("/admin/api-keys") && !html.contains("Sign out"));
    let owner_csrf = hidden(&html, "csrf");
    let (status, html) = open(&other, &link).await;
    assert_eq!(status, 200);
    let other_csrf = hidden(&html, "csrf");

    // Without the page's CSRF token nothing happens.
    let forged = press(&owner, &link, "forged").await;
    assert_eq!(forged.status(), 403);

    // The owner presses "Get access token": to the provider, with a state.
    let started = press(&owner, &link, &owner_csrf).await;
    assert_eq!(started.status(), 303);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/authorize?", provider.uri())),
        "{location}"
    );
    assert!(location.contains(&format!(
        "redirect_uri={}",
        url::form_urlencoded::byte_serialize(server.url("/admin/oauth/").as_bytes())
            .collect::<String>()
    )));
    let state = state_of(&started);

    // The same link again, from the other browser that had it open: refused, in the one
    // sentence; and opening it again too.
    let again = press(&other, &link, &other_csrf).await;
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains(GONE));
    let (status, html) = open(&other, &link).await;
    assert_eq!(status, 410);
    assert!(html.contains(GONE));

    // A browser that did not start it, without a session: the callback stays an admin
    // route (the sign-in form), and nothing is completed.
    let stranger = server.client();
    let refused = stranger
        .get(server.url(&format!("/admin/oauth/?code=the-code&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().contains("Sign in"));

    // The owner's browser comes back: a plain page, no redirect into the admin page.
    let callback = owner
        .get(server.url(&format!("/admin/oauth/?code=the-code&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 200);
    let html = callback.text().await.unwrap();
    assert!(
        html.contains("Connected: you can close this page"),
        "{html}"
    );
    assert!(!html.contains("/admin/api-keys"));
    let report = server.state.engine.status("box-1").await.unwrap();
    assert_eq!(report.instance.status, InstanceStatus::Authorized);

    // The same response again (reload): told apart, nothing done twice.
    let replay = owner
        .get(server.url(&format!("/admin/oauth/?code=the-code&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("This authorization response was already used")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failed_authorization_is_told_in_words() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "the code expired"}),
        ))
        .mount(&provider)
        .await;
    let (server, admin, csrf) = setup(&provider).await;
    let link = create_link(&server, &admin, &csrf).await;
    let owner = server.client();
    let csrf = hidden(&open(&owner, &link).await.1, "csrf");
    let state = state_of(&press(&owner, &link, &csrf).await);
    let callback = owner
        .get(server.url(&format!("/admin/oauth/?code=old&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), 400);
    let html = callback.text().await.unwrap();
    assert!(html.contains("The authorization failed"), "{html}");
    assert!(html.contains("the code expired"), "{html}");
    assert!(html.contains("Ask your admin for a new link"), "{html}");
    server.stop().await;
}

#[tokio::test]
async fn expired_and_unknown_links_get_the_same_answer() {
    let provider = MockServer::start().await;
    let (server, admin, csrf) = setup(&provider).await;
    // A link that ended an hour ago, stored as the engine stores one.
    let secret = "E".repeat(43);
    let now = server.state.engine.now();
    server
        .state
        .engine
        .store()
        .create_reconnect_link(&ReconnectLink {
            digest: reconnect_secret_digest(&secret),
            instance: "box-1".to_string(),
            created: now.saturating_sub(Duration::from_secs(7200)),
            expires: now.saturating_sub(Duration::from_secs(3600)),
        })
        .await
        .unwrap();
    let expired = server.url(&format!("/reconnect/{secret}"));
    let unknown = server.url(&format!("/reconnect/{}", "U".repeat(43)));
    let browser = server.client();
    let (status, expired_page) = open(&browser, &expired).await;
    assert_eq!(status, 410);
    assert!(expired_page.contains(GONE), "{expired_page}");
    let (status, unknown_page) = open(&browser, &unknown).await;
    assert_eq!(status, 410);
    assert_eq!(expired_page, unknown_page, "no oracle");
    let (status, _) = open(&browser, &server.url("/reconnect/short")).await;
    assert_eq!(status, 410);

    // Pressing the button of an expired link (with a CSRF token of a valid page).
    let link = create_link(&server, &admin, &csrf).await;
    let csrf = hidden(&open(&browser, &link).await.1, "csrf");
    let pressed = press(&browser, &expired, &csrf).await;
    assert_eq!(pressed.status(), 410);
    assert!(pressed.text().await.unwrap().contains(GONE));
    server.stop().await;
}

#[tokio::test]
async fn an_address_that_opens_many_unusable_links_waits() {
    let provider = MockServer::start().await;
    let (server, admin, csrf) = setup(&provider).await;
    let link = create_link(&server, &admin, &csrf).await;
    let browser = server.client();
    for n in 0..granary_server::throttle::FREE_FAILURES - 1 {
        let unknown = server.url(&format!("/reconnect/{n:0>43}"));
        assert_eq!(open(&browser, &unknown).await.0, 410);
    }
    let unknown = server.url(&format!("/reconnect/{}", "W".repeat(43)));
    assert_eq!(open(&browser, &unknown).await.0, 410, "the last free one");
    // Now this address waits, even for a good link.
    let throttled = browser.get(&link).send().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    server.stop().await;
}

#[tokio::test]
async fn a_disabled_instance_gets_no_button_and_no_link() {
    let provider = MockServer::start().await;
    let (server, admin, csrf) = setup(&provider).await;
    let response = admin
        .post(server.url("/admin/instances/box-1/disable"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let page = open(&admin, &server.url("/admin/instances/box-1")).await.1;
    assert!(!page.contains("Create reconnect link"), "{page}");
    let refused = admin
        .post(server.url("/admin/instances/box-1/reconnect-link"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 303);
    let page = open(&admin, &server.url("/admin/instances/box-1")).await.1;
    assert!(
        page.contains("The reconnect link was not created"),
        "{page}"
    );
    // Without the session's CSRF token, no link.
    let forged = admin
        .post(server.url("/admin/instances/box-1/reconnect-link"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn the_api_creates_links_for_admin_keys() {
    let provider = MockServer::start().await;
    let (server, admin, csrf) = setup(&provider).await;
    let key = server.api_key(&admin, &csrf).await;
    let tokens = server.api_key_with_role(&admin, &csrf, "tokens").await;
    let http = reqwest::Client::new();
    let post = |key: &str, id: &str, body: Option<Value>| {
        let mut request = http
            .post(server.url(&format!("/api/v1/instances/{id}/reconnect-link")))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let created = post(&key, "box-1", None).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let url = created["url"].as_str().unwrap();
    assert!(url.starts_with(&server.url("/reconnect/")), "{created}");
    assert_lives(&server, &created, Duration::from_secs(7 * 24 * 3600)).await;
    assert_eq!(open(&server.client(), url).await.0, 200);

    let short: Value = post(&key, "box-1", Some(json!({"ttl": "1h"})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_lives(&server, &short, Duration::from_secs(3600)).await;

    assert_eq!(post(&tokens, "box-1", None).await.unwrap().status(), 403);
    assert_eq!(post(&key, "nobody", None).await.unwrap().status(), 404);
    let bad = post(&key, "box-1", Some(json!({"ttl": "100d"})))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("90 days"));
    server
        .state
        .engine
        .update_instance(
            "box-1",
            granary_flow::engine::InstanceUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(post(&key, "box-1", None).await.unwrap().status(), 409);
    server.stop().await;
}

/// The link of an API answer is stored (by its digest) to end `ttl` from now, as
/// `expires_at` says.
async fn assert_lives(server: &Server, answer: &Value, ttl: Duration) {
    let url = answer["url"].as_str().unwrap();
    let secret = url.rsplit('/').next().unwrap();
    let now = server.state.engine.now();
    let stored = server
        .state
        .engine
        .store()
        .find_reconnect_link(&reconnect_secret_digest(secret), now)
        .await
        .unwrap()
        .expect("stored by its digest");
    let lives = stored.expires.as_unix_millis() - now.as_unix_millis();
    let want = i64::try_from(ttl.as_millis()).unwrap();
    assert!((lives - want).abs() < 60_000, "{answer}: {lives} ms");
    assert_eq!(
        answer["expires_at"],
        granary_server::views::format_rfc3339(stored.expires),
        "{answer}"
    );
}

fn granary(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRANARY_SERVER")
        .env_remove("GRANARY_API_KEY")
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_MASTER_KEY")
        .env_remove("GRANARY_RECONNECT_LINK_TTL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn the_cli_prints_a_link_from_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let document = data.path().join("box.json");
    std::fs::write(&document, common::box_document("https://box.example")).unwrap();
    ok(&granary(
        data.path(),
        &["import", document.to_str().unwrap(), "--name", "box"],
    ));
    ok(&granary(
        data.path(),
        &[
            "instance",
            "create",
            "box-1",
            "--integration",
            "box",
            "--client-id",
            "c",
        ],
    ));
    let printed = granary(
        data.path(),
        &["instance", "reconnect-link", "box-1", "--ttl", "3d"],
    );
    let url = ok(&printed).trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:8080/reconnect/") && url.len() > 40,
        "{url}"
    );
    let note = String::from_utf8_lossy(&printed.stderr);
    assert!(note.contains("works once, until"), "{note}");
    let bad = granary(
        data.path(),
        &["instance", "reconnect-link", "box-1", "--ttl", "soon"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--ttl"));
    let missing = granary(data.path(), &["instance", "reconnect-link", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nobody"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_prints_a_link_from_a_server() {
    let provider = MockServer::start().await;
    let (server, admin, csrf) = setup(&provider).await;
    let key = server.api_key(&admin, &csrf).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let base = server.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        granary(
            elsewhere.path(),
            &[
                "instance",
                "reconnect-link",
                "box-1",
                "--ttl",
                "2h",
                "--server",
                &base,
                "--api-key",
                &key,
            ],
        )
    })
    .await
    .unwrap();
    let url = ok(&output).trim().to_string();
    assert!(url.starts_with(&server.url("/reconnect/")), "{url}");
    let (status, html) = open(&server.client(), &url).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"instance\">box-1<"));
    server.stop().await;
}

/// Kills the child when dropped (a failed assertion never leaves a server behind).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn logs_never_show_a_links_secret() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let data = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(data.path())
            .env(
                "GRANARY_ADMIN_TOKEN",
                "reconnect-test-admin-token-0123456789",
            )
            .env("GRANARY_LOG", "debug")
            .env_remove("GRANARY_LOG_FORMAT")
            .env_remove("GRANARY_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains("granary listens"))
        .expect("serve listens");
    let port: String = listening
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let secret = "S".repeat(43);
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    write!(
        stream,
        "GET /reconnect/{secret} HTTP/1.1\r\nHost: x\r\nx-request-id: reconnect-log-1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 410"), "{answer}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let logged: Vec<String> = lines.map(Result::unwrap).collect();
    let of_the_request: Vec<&String> = logged
        .iter()
        .filter(|line| line.contains("reconnect-log-1"))
        .collect();
    assert!(!of_the_request.is_empty(), "{logged:#?}");
    assert!(
        of_the_request
            .iter()
            .all(|line| line.contains("\"path\":\"/reconnect/{secret}\"")),
        "{of_the_request:#?}"
    );
    assert!(
        logged.iter().all(|line| !line.contains(&secret)),
        "{logged:#?}"
    );
}
