//! Webhooks through the `granary` binary: a delivery pending when `granary serve` stops is
//! delivered after a restart on the same SQLite file (same delivery id, signed); and
//! `granary webhook add | list | enable | disable | deliveries | remove` on the data
//! directory and against a server.

mod common;
mod webhook_receiver;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use granary_server::webhooks::{DEFAULT_REPLAY_WINDOW, verify};
use serde_json::{Value, json};
use webhook_receiver::Receiver;

const BIN: &str = env!("CARGO_BIN_EXE_granary");

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// SIGTERM, and waits for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "{exit:?}");
                return;
            }
            assert!(Instant::now() < deadline, "granary did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(data: &Path) -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--webhook-backoff", "1", "--webhook-poll", "1"])
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_ADMIN_TOKEN")
        .env_remove("GRANARY_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "granary serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Running {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn granary(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("GRANARY_SERVER")
        .env_remove("GRANARY_API_KEY")
        .env_remove("GRANARY_PUBLIC_URL")
        .env_remove("GRANARY_CONFIG")
        .env_remove("GRANARY_MASTER_KEY")
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

fn json_of(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

async fn call(base: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The delivery log of `id` (CLI, on the data directory) once its newest delivery is in
/// `state`.
fn log_in_state(data: &Path, id: &str, state: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = json_of(&granary(data, &["webhook", "deliveries", id, "--json"]));
        let log = log.as_array().unwrap().clone();
        if log.first().is_some_and(|d| d["state"] == state) {
            return log;
        }
        assert!(Instant::now() < deadline, "never {state}: {log:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_pending_at_shutdown_is_delivered_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut receiver = Receiver::start(&[], 503).await;
    let added = json_of(&granary(
        data.path(),
        &[
            "webhook",
            "add",
            &receiver.url,
            "--events",
            "disconnected",
            "--json",
        ],
    ));
    let id = added["id"].as_str().unwrap().to_string();
    let secret = added["secret"].as_str().unwrap().to_string();
    let key = ok(&granary(
        data.path(),
        &["api-key", "create", "tests", "--role", "admin"],
    ))
    .trim()
    .to_string();

    let server = serve(data.path());
    let document = common::box_document("http://127.0.0.1:9");
    let (status, answer) = call(
        &server.base,
        &key,
        "/api/v1/integrations",
        json!({"name": "box", "document": document}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = call(
        &server.base,
        &key,
        "/api/v1/instances",
        json!({"id": "box-1", "integration": "box", "client_id": "c", "client_secret": "s",
               "scopes": ["root_readonly"]}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = call(
        &server.base,
        &key,
        "/api/v1/instances/box-1/disconnect",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let refused = receiver.next().await;
    assert_eq!(refused.answered, 503);
    server.stop();

    // Stopped with the delivery pending.
    let log = json_of(&granary(
        data.path(),
        &["webhook", "deliveries", &id, "--json"],
    ));
    assert_eq!(log[0]["state"], "pending", "{log}");
    assert_eq!(log[0]["id"], refused.delivery.as_str());

    receiver.answer(200);
    let server = serve(data.path());
    let delivered = loop {
        let got = receiver.next().await;
        if got.answered == 200 {
            break got;
        }
    };
    assert_eq!(delivered.delivery, refused.delivery, "the same delivery");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    verify(
        secret.as_bytes(),
        &delivered.signature,
        &delivered.body,
        now,
        DEFAULT_REPLAY_WINDOW,
    )
    .unwrap();
    assert_eq!(delivered.body, refused.body, "the stored payload exactly");
    let log = log_in_state(data.path(), &id, "delivered");
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{log:?}");
    assert_eq!(attempts.last().unwrap()["status"], 200);
    server.stop();
    assert!(
        receiver.drain().iter().all(|r| r.answered != 200),
        "delivered twice"
    );
    receiver.stop();
}

/// Runs the webhook commands on `run` (local or remote) and checks what they print.
fn round_trip(run: &dyn Fn(&[&str]) -> Output) {
    let refused = run(&[
        "webhook",
        "add",
        "https://h.example/x",
        "--events",
        "refreshed,expired",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`expired`") && stderr.contains("needs_authorization"),
        "{stderr}"
    );
    let added = ok(&run(&[
        "webhook",
        "add",
        "https://hooks.example/granary",
        "--events",
        "refreshed,needs_authorization",
    ]));
    let id = added
        .lines()
        .find_map(|l| l.strip_prefix("added webhook "))
        .expect("the id is printed")
        .to_string();
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("signing secret (shown once): "))
        .expect("the secret is printed");
    assert_eq!(secret.len(), 64, "{added}");

    let list = ok(&run(&["webhook", "list"]));
    assert!(
        list.contains(&format!(
            "{id}\tenabled\trefreshed,needs_authorization\thttps://hooks.example/granary\tlast: -"
        )),
        "{list}"
    );
    assert!(!list.contains(secret), "the secret is shown once");
    assert_eq!(
        ok(&run(&["webhook", "disable", &id])).trim(),
        format!("disabled webhook {id}")
    );
    assert!(ok(&run(&["webhook", "list"])).contains(&format!("{id}\tdisabled")));
    ok(&run(&["webhook", "enable", &id]));
    let listed: Value = serde_json::from_str(&ok(&run(&["webhook", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["enabled"], true);
    assert_eq!(
        ok(&run(&["webhook", "deliveries", &id])).trim(),
        "no delivery yet"
    );
    let missing = run(&["webhook", "deliveries", "wh_missing"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("wh_missing"));
    assert_eq!(
        ok(&run(&["webhook", "remove", &id])).trim(),
        format!("removed webhook {id} and its delivery log")
    );
    assert!(ok(&run(&["webhook", "list"])).contains("no webhook"));
    assert!(!run(&["webhook", "remove", &id]).status.success());
}

#[test]
fn the_cli_manages_webhooks_on_the_data_directory() {
    let data = tempfile::tempdir().unwrap();
    round_trip(&|args| granary(data.path(), args));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_webhooks_against_a_server() {
    let server = common::Server::start().await;
    let (admin, csrf) = server.admin().await;
    let key = server.api_key(&admin, &csrf).await;
    let elsewhere = tempfile::tempdir().unwrap();
    let unused = elsewhere.path().to_path_buf();
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        round_trip(&|args| {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["--server", base.as_str(), "--api-key", key.as_str()]);
            granary(elsewhere.path(), &all)
        });
    })
    .await
    .unwrap();
    // The commands went to the server: the local data directory holds no store.
    assert!(!unused.join("granary.sqlite").exists());
    // The server's store has them (and none is left).
    assert!(
        server
            .state
            .engine
            .store()
            .list_webhook_endpoints()
            .await
            .unwrap()
            .is_empty()
    );
    server.stop().await;
}
