//! The proxy (issue 16 item 1): `ANY /api/v1/instances/{id}/proxy/{*path}` sends a request
//! on to the integration's API (its document's `servers`) with the instance's token.
//!
//! A wiremock provider issues the tokens (the instance is authorized through the engine, as
//! the callback would), a wiremock API on 127.0.0.1 is the document's server, and a second
//! one ("elsewhere") is where escape attempts try to send the token.

mod common;

use std::sync::Arc;

use granary_flow::engine::{Engine, Keyring, MasterKey, NewInstance};
use granary_server::api_keys::{ApiKeys, Role};
use granary_server::app::AppState;
use granary_server::settings::{CommonArgs, ServeArgs, Settings};
use granary_store::{MemoryStore, Store};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use url::Url;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A granary server, a provider, the API, and a `tokens` API key; instance `gh` authorized
/// with access token `access-1` (refresh token `refresh-1`; a refresh gives `access-2`).
struct Setup {
    base: String,
    address: String,
    key: String,
    provider: MockServer,
    api: MockServer,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Self {
        Self::start_with(ServeArgs::default()).await
    }

    async fn start_with(serve: ServeArgs) -> Self {
        let provider = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "access-1", "token_type": "bearer", "expires_in": 3600,
                "refresh_token": "refresh-1"
            })))
            .mount(&provider)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=refresh_token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "access-2", "token_type": "Bearer", "expires_in": 3600
            })))
            .mount(&provider)
            .await;
        let api = MockServer::start().await;

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let base = format!("http://{address}");
        let data = tempfile::tempdir().unwrap();
        let common = CommonArgs {
            data_dir: Some(data.path().to_path_buf()),
            listen: Some(address),
            public_url: Some(Url::parse(&base).unwrap()),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &serve).unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let keyring = Keyring::new(MasterKey::generate().0, Vec::new());
        let engine = Engine::builder(Arc::clone(&store), keyring, Url::parse(&base).unwrap())
            .build()
            .unwrap();
        let document = common::box_document(&provider.uri()).replacen(
            "\"paths\": {}",
            &format!(
                "\"servers\": [{{\"url\": \"{}/v2\"}}], \"paths\": {{}}",
                api.uri()
            ),
            1,
        );
        engine
            .import_integration("box", document.as_bytes())
            .await
            .unwrap();
        let mut new = NewInstance::new("gh", "box", "granary-client");
        new.client_secret = Some(SecretString::from("s3cret".to_string()));
        new.scopes = vec!["root_readonly".to_string()];
        engine.create_instance(new).await.unwrap();
        let start = engine.begin_authorization("gh").await.unwrap();
        engine
            .complete_authorization(&format!("code=the-code&state={}", start.state))
            .await
            .unwrap();
        let api_keys = ApiKeys::open(store).await.unwrap();
        let (_, key) = api_keys.create("proxy tests", Role::Tokens).await.unwrap();
        let state = AppState::new(
            engine,
            settings,
            SecretString::from("test-admin-token-0123456789".to_string()),
            api_keys,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            granary_server::serve::serve(listener, serving, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            address: address.to_string(),
            key: key.expose_secret().to_string(),
            provider,
            api,
            state,
            stop: Some(stop),
            task: Some(task),
            _data: data,
        }
    }

    /// The proxy URL of API path `rest` of instance `gh`.
    fn url(&self, rest: &str) -> String {
        format!("{}/api/v1/instances/gh/proxy/{rest}", self.base)
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    async fn refreshes(&self) -> usize {
        self.provider
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
            .count()
    }

    async fn api_requests(&self) -> Vec<wiremock::Request> {
        self.api.received_requests().await.unwrap()
    }

    /// Sends `head` (request line and headers, without the blank line) and `body` over a
    /// plain connection, exactly as written (no client normalizes the path); returns the
    /// status and the rest of the answer.
    async fn raw(&self, head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).await.unwrap();
        let request = format!(
            "{head}\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.address, self.key
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // The server may answer (413) before it has read everything: a failed write is fine.
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        (status, text)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

#[tokio::test]
async fn the_request_arrives_with_the_token_query_and_body_and_the_answer_comes_back() {
    let setup = Setup::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/folders/0/items"))
        .and(query_param("limit", "5"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("x-api", "yes")
                .insert_header("content-type", "text/plain")
                .set_body_string("created by the API"),
        )
        .mount(&setup.api)
        .await;
    let answer = setup
        .client()
        .post(setup.url("folders/0/items?limit=5"))
        .bearer_auth(&setup.key)
        .header("x-custom", "passed")
        .body("the caller's body")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["x-api"], "yes");
    assert_eq!(answer.headers()["content-type"], "text/plain");
    assert_eq!(answer.text().await.unwrap(), "created by the API");
    let received = setup.api_requests().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, b"the caller's body");
    assert_eq!(received[0].headers["x-custom"], "passed");

    // A body larger than the replay limit is streamed, and arrives whole.
    Mock::given(method("PUT"))
        .and(path("/v2/files/1/content"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 300 * 1024]))
        .mount(&setup.api)
        .await;
    let upload: Vec<u8> = (0..400 * 1024).map(|i| (i % 251) as u8).collect();
    let answer = setup
        .client()
        .put(setup.url("files/1/content"))
        .bearer_auth(&setup.key)
        .body(upload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.bytes().await.unwrap().as_ref(),
        vec![7u8; 300 * 1024]
    );
    let received = setup.api_requests().await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].body, upload);
    assert_eq!(setup.refreshes().await, 0);
    setup.stop().await;
}

#[tokio::test]
async fn a_401_refreshes_once_and_the_retry_succeeds() {
    let setup = Setup::start().await;
    Mock::given(path("/v2/users/me"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(401).set_body_string("token revoked"))
        .mount(&setup.api)
        .await;
    Mock::given(path("/v2/users/me"))
        .and(header("authorization", "Bearer access-2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("me"))
        .mount(&setup.api)
        .await;
    let answer = setup
        .client()
        .post(setup.url("users/me"))
        .bearer_auth(&setup.key)
        .body("replayed")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "me");
    assert_eq!(setup.refreshes().await, 1, "exactly one refresh");
    let received = setup.api_requests().await;
    assert_eq!(received.len(), 2, "the first try and one retry");
    assert!(received.iter().all(|r| r.body == b"replayed"));
    // The next call goes out with the new token at once.
    let answer = setup
        .client()
        .get(setup.url("users/me"))
        .bearer_auth(&setup.key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(setup.refreshes().await, 1);
    assert_eq!(setup.api_requests().await.len(), 3);
    setup.stop().await;
}

#[tokio::test]
async fn every_escape_attempt_is_refused_and_nothing_reaches_any_server() {
    let setup = Setup::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&setup.api)
        .await;
    let host = elsewhere.address().to_string();
    let attempts = [
        ("../../admin", "no-dot-segments"),
        ("./users", "no-dot-segments"),
        ("users/%2e%2e/%2E%2E/admin", "no-dot-segments"),
        ("users/.%2e/x", "no-dot-segments"),
        ("users%2f..%2f..%2fadmin", "no-encoded-slash"),
        ("users%5C..%5Cadmin", "no-encoded-slash"),
        (&format!("http://{host}/steal"), "no-absolute-url"),
        (&format!("http:{host}/steal"), "no-absolute-url"),
        (&format!("/{host}/steal"), "no-leading-slash"),
        (&format!("@{host}/steal"), "no-at-sign"),
        (&format!("x%40{host}/steal"), "no-at-sign"),
    ];
    for (rest, rule) in attempts {
        let (status, text) = setup
            .raw(
                &format!("GET /api/v1/instances/gh/proxy/{rest} HTTP/1.1"),
                b"",
            )
            .await;
        assert_eq!(status, 400, "{rest}: {text}");
        assert!(text.contains("application/problem+json"), "{rest}: {text}");
        assert!(
            text.contains("/problems/proxy-path-refused"),
            "{rest}: {text}"
        );
        assert!(text.contains(&format!("`{rule}`")), "{rest}: {text}");
    }
    // A backslash is refused too (by the HTTP parser or by the rule).
    let (status, text) = setup
        .raw(
            "GET /api/v1/instances/gh/proxy/a\\..\\..\\admin HTTP/1.1",
            b"",
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(setup.api_requests().await.is_empty());
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
    // The same connection rules let a plain path through.
    let (status, text) = setup
        .raw("GET /api/v1/instances/gh/proxy/users/me HTTP/1.1", b"")
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(setup.api_requests().await.len(), 1);
    setup.stop().await;
}

#[tokio::test]
async fn hop_by_hop_headers_and_the_callers_credentials_are_not_forwarded() {
    let setup = Setup::start().await;
    Mock::given(path("/v2/users/me"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-api", "yes")
                .insert_header("proxy-authenticate", "Basic realm=api")
                .insert_header("keep-alive", "timeout=99"),
        )
        .mount(&setup.api)
        .await;
    let answer = setup
        .client()
        .get(setup.url("users/me"))
        .bearer_auth(&setup.key)
        .header("cookie", "session=the-callers")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("keep-alive", "timeout=5")
        .header("x-private", "named by connection")
        .header("connection", "x-private")
        .header("x-kept", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-api"], "yes");
    assert!(answer.headers().get("proxy-authenticate").is_none());
    assert!(answer.headers().get("keep-alive").is_none());
    let received = setup.api_requests().await;
    assert_eq!(received.len(), 1);
    let headers = &received[0].headers;
    assert_eq!(headers["x-kept"], "yes");
    assert_eq!(headers["authorization"], "Bearer access-1");
    let all = format!("{headers:?}");
    assert!(!all.contains(&setup.key), "the API key went on: {all}");
    for name in ["cookie", "proxy-authorization", "keep-alive", "x-private"] {
        assert!(headers.get(name).is_none(), "{name} went on: {all}");
    }
    setup.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_a_slow_api_is_504() {
    let setup = Setup::start_with(ServeArgs {
        proxy_body_limit: Some("100KiB".to_string()),
        proxy_timeout: Some(1),
        ..ServeArgs::default()
    })
    .await;
    Mock::given(path("/v2/upload"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&setup.api)
        .await;
    // Said by its length: refused before anything is sent.
    let answer = setup
        .client()
        .post(setup.url("upload"))
        .bearer_auth(&setup.key)
        .body(vec![1u8; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/proxy-body-too-large");
    assert!(
        problem["detail"].as_str().unwrap().contains("100 KiB"),
        "{problem}"
    );
    assert!(setup.api_requests().await.is_empty());
    // Streamed without a length: refused when the stream passes the limit.
    let mut chunked = Vec::new();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 10 * 1024).as_bytes());
        chunked.extend_from_slice(&[2u8; 10 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = setup
        .raw(
            "POST /api/v1/instances/gh/proxy/upload HTTP/1.1\r\nTransfer-Encoding: chunked",
            &chunked,
        )
        .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("/problems/proxy-body-too-large"), "{text}");
    // Under the limit, streamed, it goes through.
    let (status, text) = setup
        .raw(
            "POST /api/v1/instances/gh/proxy/upload HTTP/1.1\r\nTransfer-Encoding: chunked",
            &chunked[chunked.len() - 5 - (10 * 1024 + 8)..],
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let received = setup.api_requests().await;
    assert_eq!(received.last().unwrap().body, vec![2u8; 10 * 1024]);

    Mock::given(path("/v2/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5)))
        .mount(&setup.api)
        .await;
    let answer = setup
        .client()
        .get(setup.url("slow"))
        .bearer_auth(&setup.key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 504);
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/proxy-timeout");
    setup.stop().await;
}

#[tokio::test]
async fn the_proxy_needs_a_known_api_key_and_a_known_instance() {
    let setup = Setup::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&setup.api)
        .await;
    let client = setup.client();
    let none = client.get(setup.url("users/me")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = client
        .get(setup.url("users/me"))
        .bearer_auth("gk_not-a-key-of-this-server")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = client
        .get(format!(
            "{}/api/v1/instances/nobody/proxy/users/me",
            setup.base
        ))
        .bearer_auth(&setup.key)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // An integration whose document names no server (or one imported before granary kept
    // it), and one whose server is plain http to another host: nothing is sent.
    let engine = &setup.state.engine;
    let plain = common::box_document(&setup.provider.uri());
    let insecure = plain.replacen(
        "\"paths\": {}",
        "\"servers\": [{\"url\": \"http://api.example.com/v2\"}], \"paths\": {}",
        1,
    );
    for (name, document, problem) in [
        ("plain", plain.as_str(), "/problems/no-api-base-url"),
        (
            "insecure",
            insecure.as_str(),
            "/problems/insecure-api-base-url",
        ),
    ] {
        engine
            .import_integration(name, document.as_bytes())
            .await
            .unwrap();
        engine
            .create_instance(NewInstance::new(name, name, "granary-client"))
            .await
            .unwrap();
        let answer = client
            .get(format!(
                "{}/api/v1/instances/{name}/proxy/users/me",
                setup.base
            ))
            .bearer_auth(&setup.key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 409, "{name}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["type"], problem, "{body}");
    }
    assert!(setup.api_requests().await.is_empty());
    // The state is the server's: its engine answers the instance.
    assert!(setup.state.engine.instance("gh").await.is_ok());
    setup.stop().await;
}

/// Runs the `granary` binary with `args` (and no `GRANARY_*` from the environment); returns
/// whether it succeeded, its stdout and its stderr.
async fn granary(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_granary"))
        .args(args)
        .env_remove("GRANARY_SERVER")
        .env_remove("GRANARY_API_KEY")
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_MASTER_KEY")
        .env_remove("GRANARY_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn granary_call_through_the_server_prints_the_body_and_fails_on_an_error_status() {
    let setup = Setup::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/items"))
        .and(query_param("a", "1"))
        .and(header("authorization", "Bearer access-1"))
        .and(header("x-trace", "cli"))
        .respond_with(ResponseTemplate::new(201).set_body_string("made"))
        .mount(&setup.api)
        .await;
    Mock::given(path("/v2/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such thing"))
        .mount(&setup.api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, "{\"from\": \"a file\"}").unwrap();
    let data = format!("@{}", file.display());
    let remote = [
        "--server",
        setup.base.as_str(),
        "--api-key",
        setup.key.as_str(),
    ];
    let args: Vec<&str> = remote
        .iter()
        .copied()
        .chain([
            "call",
            "gh",
            "post",
            "/items?a=1",
            "--data",
            &data,
            "-H",
            "X-Trace: cli",
        ])
        .collect();
    let (ok, stdout, stderr) = granary(&args).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(stdout, "made");
    assert!(stderr.contains("201"), "{stderr}");
    let received = setup.api_requests().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, b"{\"from\": \"a file\"}");

    let args: Vec<&str> = remote
        .iter()
        .copied()
        .chain(["call", "gh", "GET", "missing"])
        .collect();
    let (ok, stdout, stderr) = granary(&args).await;
    assert!(!ok, "a 404 is a failure: {stderr}");
    assert_eq!(stdout, "no such thing");
    assert!(stderr.contains("404"), "{stderr}");

    let args: Vec<&str> = remote
        .iter()
        .copied()
        .chain(["call", "gh", "GET", "a/../../admin"])
        .collect();
    let (ok, _, stderr) = granary(&args).await;
    assert!(!ok);
    assert!(stderr.contains("no-dot-segments"), "{stderr}");
    assert_eq!(setup.api_requests().await.len(), 2);
    setup.stop().await;
}

#[tokio::test]
async fn granary_call_on_the_data_directory_uses_the_engine() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "local-1", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "refresh-1"
        })))
        .mount(&provider)
        .await;
    let api = MockServer::start().await;
    Mock::given(path("/v2/users/me"))
        .and(header("authorization", "Bearer local-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("local me"))
        .mount(&api)
        .await;
    let data = tempfile::tempdir().unwrap();
    let common = CommonArgs {
        data_dir: Some(data.path().to_path_buf()),
        ..CommonArgs::default()
    };
    let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
    {
        let engine = granary_server::open::engine(&settings).await.unwrap();
        let document = common::box_document(&provider.uri()).replacen(
            "\"paths\": {}",
            &format!(
                "\"servers\": [{{\"url\": \"{}/v2/\"}}], \"paths\": {{}}",
                api.uri()
            ),
            1,
        );
        engine
            .import_integration("box", document.as_bytes())
            .await
            .unwrap();
        engine
            .create_instance(NewInstance::new("gh", "box", "granary-client"))
            .await
            .unwrap();
        let start = engine.begin_authorization("gh").await.unwrap();
        engine
            .complete_authorization(&format!("code=c&state={}", start.state))
            .await
            .unwrap();
        engine.shutdown(std::time::Duration::from_secs(1)).await;
    }
    let dir = data.path().to_str().unwrap();
    let (ok, stdout, stderr) = granary(&["--data-dir", dir, "call", "gh", "GET", "users/me"]).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(stdout, "local me");
    assert!(stderr.contains("200"), "{stderr}");
    let (ok, _, stderr) = granary(&["--data-dir", dir, "call", "gh", "GET", "nothing"]).await;
    assert!(!ok, "wiremock's 404 is a failure: {stderr}");
    assert_eq!(api.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_instances_api_target_gives_the_base_url_and_the_token_header() {
    let setup = Setup::start().await;
    let engine = &setup.state.engine;
    // The instance's own profile layer: another base URL (the instance-level override) and
    // the header a Shopify-like API takes the token in.
    let mut new = NewInstance::new("shop", "box", "granary-client");
    new.client_secret = Some(SecretString::from("s3cret".to_string()));
    new.scopes = vec!["root_readonly".to_string()];
    new.profile = Some(serde_json::json!({"api": {
        "base_url": format!("{}/admin/api/2024-01", setup.api.uri()),
        "token_header": "X-Shopify-Access-Token"
    }}));
    engine.create_instance(new).await.unwrap();
    let start = engine.begin_authorization("shop").await.unwrap();
    engine
        .complete_authorization(&format!("code=the-code&state={}", start.state))
        .await
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/admin/api/2024-01/products.json"))
        .and(header("x-shopify-access-token", "access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("products"))
        .mount(&setup.api)
        .await;
    let answer = setup
        .client()
        .get(format!(
            "{}/api/v1/instances/shop/proxy/products.json",
            setup.base
        ))
        .bearer_auth(&setup.key)
        .header("x-shopify-access-token", "the-callers-own")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "products");
    let received = setup.api_requests().await;
    assert_eq!(received.len(), 1);
    let values: Vec<&str> = received[0]
        .headers
        .get_all("x-shopify-access-token")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["access-1"],
        "the caller's own token header went on"
    );
    assert!(!received[0].headers.contains_key("authorization"));
    // The document's server is not where this instance's calls go.
    assert!(
        received.iter().all(|r| !r.url.path().starts_with("/v2/")),
        "a call went to the document's server"
    );
    setup.stop().await;
}
