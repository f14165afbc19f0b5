//! Webhooks end to end in one process: the signature and its refusals, an event reaching a
//! receiver signed and once, retries with backoff and the delivery log, giving up, two
//! workers over one store, and the admin page and REST API round trips.

mod common;
mod webhook_receiver;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Server;
use granary_flow::engine::{Engine, Event, Keyring, MasterKey};
use granary_server::settings::WebhookSettings;
use granary_server::webhooks::{
    self, DEFAULT_REPLAY_WINDOW, VerifyError, Webhooks, endpoints, enqueue, sign, verify,
};
use granary_store::{DeliveryState, MemoryStore, Store};
use reqwest::Method as M;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use webhook_receiver::{Received, Receiver};

/// Short waits, so that the tests wait for deliveries rather than for time.
fn fast() -> WebhookSettings {
    WebhookSettings {
        timeout: Duration::from_secs(5),
        max_attempts: 10,
        backoff: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        poll: Duration::from_millis(100),
        ..WebhookSettings::default()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: M, path: &str, body: Option<Value>) -> (u16, Value, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
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
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            content_type,
        )
    }

    /// Registers `url` for `events`; returns (id, secret).
    async fn register(&self, url: &str, events: &[&str]) -> (String, String) {
        let (status, created, _) = self
            .call(
                M::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": events})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        (
            created["id"].as_str().unwrap().to_string(),
            created["secret"].as_str().unwrap().to_string(),
        )
    }

    /// The delivery log of `id` once its newest delivery is no longer pending.
    async fn finished_log(&self, id: &str) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (status, log, _) = self
                .call(M::GET, &format!("/api/v1/webhooks/{id}/deliveries"), None)
                .await;
            assert_eq!(status, 200, "{log}");
            let deliveries = log["deliveries"].as_array().unwrap().clone();
            if deliveries.first().is_some_and(|d| d["state"] != "pending") {
                return deliveries;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the delivery did not finish: {log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server with the Box integration and the instance `box-1` (never authorized: a
/// disconnect still emits `disconnected`), and an admin API client.
async fn setup() -> (Server, Api) {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    server.import_box(&admin, &csrf, "http://127.0.0.1:9").await;
    server
        .create_box_instance(&admin, &csrf, "box-1", &[])
        .await;
    let key = server.api_key(&admin, &csrf).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key,
    };
    (server, api)
}

async fn disconnect(api: &Api) {
    let (status, answer, _) = api
        .call(M::POST, "/api/v1/instances/box-1/disconnect", None)
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn checked(secret: &str, received: &Received) -> Value {
    verify(
        secret.as_bytes(),
        &received.signature,
        &received.body,
        now_secs(),
        DEFAULT_REPLAY_WINDOW,
    )
    .unwrap_or_else(|e| panic!("the signature of {received:?} does not verify: {e}"));
    serde_json::from_slice(&received.body).unwrap()
}

#[test]
fn a_signature_verifies_and_a_tampered_body_or_old_time_is_refused() {
    let secret = b"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let body = br#"{"id":"evt_1","type":"refreshed"}"#;
    let now = 1_800_000_000;
    let header = sign(secret, now, body);
    assert!(header.starts_with(&format!("t={now},v1=")), "{header}");
    assert_eq!(
        verify(secret, &header, body, now, DEFAULT_REPLAY_WINDOW),
        Ok(())
    );
    // Within the window on either side.
    assert_eq!(
        verify(secret, &header, body, now + 300, DEFAULT_REPLAY_WINDOW),
        Ok(())
    );
    assert_eq!(
        verify(
            secret,
            &header,
            br#"{"id":"evt_1","type":"refresheD"}"#,
            now,
            DEFAULT_REPLAY_WINDOW
        ),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        verify(b"another secret", &header, body, now, DEFAULT_REPLAY_WINDOW),
        Err(VerifyError::Mismatch)
    );
    // The time is signed: moving t breaks the signature.
    let moved = header.replacen(&now.to_string(), &(now + 1).to_string(), 1);
    assert_eq!(
        verify(secret, &moved, body, now, DEFAULT_REPLAY_WINDOW),
        Err(VerifyError::Mismatch)
    );
    assert!(matches!(
        verify(secret, &header, body, now + 301, DEFAULT_REPLAY_WINDOW),
        Err(VerifyError::OutsideWindow { t, .. }) if t == now
    ));
    assert!(matches!(
        verify(secret, &header, body, now - 301, DEFAULT_REPLAY_WINDOW),
        Err(VerifyError::OutsideWindow { .. })
    ));
    // A header with a second v1 (a rotated secret) verifies when one matches.
    let both = format!(
        "{},v1={}",
        sign(b"old", now, body),
        &header[header.find("v1=").unwrap() + 3..]
    );
    assert_eq!(
        verify(secret, &both, body, now, DEFAULT_REPLAY_WINDOW),
        Ok(())
    );
    assert_eq!(DEFAULT_REPLAY_WINDOW, Duration::from_secs(300));
    // The guide's example, computed with Python's hmac and openssl: code and docs agree.
    let body = br#"{"a":1}"#;
    let secret = "ab".repeat(32);
    assert_eq!(
        sign(secret.as_bytes(), 1_796_165_546, body),
        "t=1796165546,v1=454a63b81b736f18a07fd3432e73ae7c9d223db6196d7dee3b381b9c3f255e01"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_reaches_a_receiver_signed_and_once() {
    let (server, api) = setup().await;
    let mut receiver = Receiver::start(&[], 200).await;
    let mut elsewhere = Receiver::start(&[], 200).await;
    let (id, secret) = api.register(&receiver.url, &["disconnected"]).await;
    let (other, _) = api.register(&elsewhere.url, &["refreshed"]).await;
    let hooks = Webhooks::spawn(&server.state.engine, &fast());

    disconnect(&api).await;
    let got = receiver.next().await;
    let payload = checked(&secret, &got);
    assert_eq!(got.event, "disconnected");
    assert_eq!(got.content_type, "application/json");
    assert!(got.delivery.starts_with("dlv_"), "{got:?}");
    assert!(
        payload["id"].as_str().unwrap().starts_with("evt_"),
        "{payload}"
    );
    assert_eq!(payload["type"], "disconnected");
    assert_eq!(payload["instance"], "box-1");
    assert_eq!(payload["integration"], "box");
    assert_eq!(payload["data"], json!({"revoked": false}));
    assert!(
        payload["created_at"].as_str().unwrap().ends_with('Z'),
        "{payload}"
    );

    let log = api.finished_log(&id).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["state"], "delivered");
    assert_eq!(log[0]["id"], got.delivery.as_str());
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 1);
    // Once: nothing more came, and nothing went to the endpoint of another type.
    assert!(receiver.drain().is_empty(), "delivered twice");
    assert!(elsewhere.drain().is_empty());
    let (_, log, _) = api
        .call(
            M::GET,
            &format!("/api/v1/webhooks/{other}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log["deliveries"], json!([]));

    hooks.shutdown(Duration::from_secs(2)).await;
    receiver.stop();
    elsewhere.stop();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_gets_retries_with_backoff_and_the_log_shows_them() {
    let (server, api) = setup().await;
    let mut receiver = Receiver::start(&[500, 500], 200).await;
    let (id, secret) = api.register(&receiver.url, &["disconnected"]).await;
    let settings = fast();
    let hooks = Webhooks::spawn(&server.state.engine, &settings);

    disconnect(&api).await;
    let tries = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ];
    assert_eq!(
        tries.iter().map(|t| t.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    let bodies: Vec<Value> = tries.iter().map(|t| checked(&secret, t)).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "the payload changed between attempts"
    );
    assert!(
        tries.iter().all(|t| t.delivery == tries[0].delivery),
        "one delivery id"
    );
    // 200 ms, then 400 ms, each with at most 20% jitter.
    let first = tries[1].at - tries[0].at;
    let second = tries[2].at - tries[1].at;
    assert!(first >= settings.backoff.mul_f64(0.8), "{first:?}");
    assert!(second >= settings.backoff.mul_f64(1.6), "{second:?}");

    let log = api.finished_log(&id).await;
    assert_eq!(log[0]["state"], "delivered", "{log:?}");
    let statuses: Vec<Value> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(500), json!(500), json!(200)]);
    assert!(receiver.drain().is_empty());

    // The admin page's delivery log shows the three attempts.
    let (admin, _) = server.admin().await;
    let page = admin
        .get(server.url(&format!("/admin/webhooks/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("class=\"attempt\"").count(), 3, "{page}");
    assert!(
        page.contains(&tries[0].delivery) && page.contains("delivered"),
        "{page}"
    );

    hooks.shutdown(Duration::from_secs(2)).await;
    receiver.stop();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_needs_authorization_payload_carries_a_working_reconnect_link() {
    let (server, api) = setup().await;
    let mut receiver = Receiver::start(&[], 200).await;
    let (_, secret) = api.register(&receiver.url, &["needs_authorization"]).await;
    let settings = fast();
    let hooks = Webhooks::spawn(&server.state.engine, &settings);
    // The engine makes the link when it marks the instance (engine_reconnect shows it);
    // here the event is built with one, as the engine builds it.
    let link = server
        .state
        .engine
        .create_reconnect_link("box-1", Duration::from_secs(3600))
        .await
        .unwrap();
    let event = Event::NeedsAuthorization {
        instance: "box-1".into(),
        reason: "the provider answered invalid_grant".into(),
        reconnect: Some(link),
    };
    let enqueued = enqueue::enqueue(&server.state.engine, &event)
        .await
        .unwrap();
    assert_eq!(enqueued, 1);
    let payload = checked(&secret, &receiver.next().await);
    assert_eq!(payload["type"], "needs_authorization");
    let data = &payload["data"];
    assert_eq!(data["reason"], "the provider answered invalid_grant");
    let link = data["reconnect_url"].as_str().expect("a reconnect link");
    assert!(link.starts_with(&server.url("/reconnect/")), "{link}");
    assert!(
        data["reconnect_expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{data}"
    );
    // The link opens without a session.
    let page = reqwest::Client::new().get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    hooks.shutdown(Duration::from_secs(2)).await;
    receiver.stop();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_is_given_up_after_the_last_attempt() {
    let (server, api) = setup().await;
    let mut receiver = Receiver::start(&[], 503).await;
    let (id, _) = api.register(&receiver.url, &["disconnected"]).await;
    let settings = WebhookSettings {
        max_attempts: 2,
        ..fast()
    };
    let hooks = Webhooks::spawn(&server.state.engine, &settings);
    disconnect(&api).await;
    receiver.next().await;
    receiver.next().await;
    let log = api.finished_log(&id).await;
    assert_eq!(log[0]["state"], "failed", "{log:?}");
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 2);
    assert!(receiver.drain().is_empty(), "an attempt after the last");
    hooks.shutdown(Duration::from_secs(2)).await;
    receiver.stop();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_over_one_store_deliver_each_delivery_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (key, bytes) = MasterKey::generate();
    let public = url::Url::parse("http://127.0.0.1:1").unwrap();
    let node_a = Engine::builder(
        Arc::clone(&store),
        Keyring::new(key, vec![]),
        public.clone(),
    )
    .build()
    .unwrap();
    let node_b = Engine::builder(
        Arc::clone(&store),
        Keyring::new(MasterKey::from_bytes(&bytes), vec![]),
        public,
    )
    .build()
    .unwrap();
    let mut receiver = Receiver::start_slow(&[], 200, Duration::from_millis(30)).await;
    let settings = fast();
    let created = endpoints::create(&node_a, false, &receiver.url, &["disconnected"])
        .await
        .unwrap();
    let a = Webhooks::spawn_as(&node_a, &settings, "node-a".into());
    let b = Webhooks::spawn_as(&node_b, &settings, "node-b".into());
    const EVENTS: usize = 40;
    for n in 0..EVENTS {
        let node = if n % 2 == 0 { &node_a } else { &node_b };
        let event = Event::Disconnected {
            instance: format!("i{n}"),
            revoked: false,
        };
        assert_eq!(enqueue::enqueue(node, &event).await.unwrap(), 1);
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for _ in 0..EVENTS {
        let got = receiver.next().await;
        checked(created.secret.expose_secret(), &got);
        *seen.entry(got.delivery).or_default() += 1;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = store
            .list_deliveries(&created.endpoint.id, 100)
            .await
            .unwrap();
        if log.len() == EVENTS && log.iter().all(|d| d.state == DeliveryState::Delivered) {
            assert!(log.iter().all(|d| d.attempts.len() == 1), "{log:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all delivered: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for late in receiver.drain() {
        *seen.entry(late.delivery).or_default() += 1;
    }
    assert_eq!(seen.len(), EVENTS);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    a.shutdown(Duration::from_secs(2)).await;
    b.shutdown(Duration::from_secs(2)).await;
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_registers_lists_changes_and_removes_endpoints() {
    let (server, api) = setup().await;
    let (status, created, _) = api
        .call(
            M::POST,
            "/api/v1/webhooks",
            Some(json!({"url": "https://hooks.example/granary", "events": ["refreshed", "authorized"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64);
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(created["events"], json!(["authorized", "refreshed"]));
    assert_eq!(created["enabled"], true);

    let (status, list, _) = api.call(M::GET, "/api/v1/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["webhooks"][0]["id"], id.as_str());
    assert_eq!(list["webhooks"][0]["last_delivery"], Value::Null);
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once only"
    );
    // Stored sealed: not in the store's record either.
    let stored = server
        .state
        .engine
        .store()
        .list_webhook_endpoints()
        .await
        .unwrap();
    assert!(
        !stored[0]
            .secret
            .as_bytes()
            .windows(64)
            .any(|w| w == secret.as_bytes())
    );

    let (status, changed, _) = api
        .call(
            M::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (status, &changed["enabled"]),
        (200, &json!(false)),
        "{changed}"
    );
    let (status, changed, _) = api
        .call(
            M::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"events": ["needs_authorization"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(changed["events"], json!(["needs_authorization"]));
    let (status, log, _) = api
        .call(M::GET, &format!("/api/v1/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!((status, log), (200, json!({"deliveries": []})));

    // Refusals, as problems.
    for (body, says) in [
        (
            json!({"url": "https://h.example/x", "events": ["refreshed", "expired"]}),
            "`expired`",
        ),
        (
            json!({"url": "https://h.example/x", "events": []}),
            "at least one",
        ),
        (
            json!({"url": "http://h.example/x", "events": ["refreshed"]}),
            "plain http",
        ),
        (
            json!({"url": "ftp://h.example/x", "events": ["refreshed"]}),
            "scheme",
        ),
    ] {
        let (status, problem, content_type) = api
            .call(M::POST, "/api/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem}"
        );
    }
    let (_, problem, _) = api
        .call(
            M::POST,
            "/api/v1/webhooks",
            Some(json!({"url": "https://h.example/x", "events": ["nope"]})),
        )
        .await;
    for name in webhooks::EVENT_TYPES {
        assert!(
            problem["detail"].as_str().unwrap().contains(name),
            "{problem}"
        );
    }
    let (status, _, content_type) = api
        .call(M::POST, "/api/v1/webhooks", Some(json!({"url": 3})))
        .await;
    assert_eq!(
        (status, content_type.as_str()),
        (400, "application/problem+json")
    );

    // A tokens key may not manage webhooks.
    let (admin, csrf) = server.admin().await;
    let tokens = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        key: server.api_key_with_role(&admin, &csrf, "tokens").await,
    };
    for (method, path) in [
        (M::GET, "/api/v1/webhooks".to_string()),
        (M::POST, "/api/v1/webhooks".to_string()),
        (M::PATCH, format!("/api/v1/webhooks/{id}")),
        (M::DELETE, format!("/api/v1/webhooks/{id}")),
        (M::GET, format!("/api/v1/webhooks/{id}/deliveries")),
    ] {
        let (status, _, _) = tokens.call(method.clone(), &path, Some(json!({}))).await;
        assert_eq!(status, 403, "{method} {path}");
    }

    let (status, _, _) = api
        .call(M::DELETE, &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 204);
    for (method, path) in [
        (M::DELETE, format!("/api/v1/webhooks/{id}")),
        (M::PATCH, format!("/api/v1/webhooks/{id}")),
        (M::GET, format!("/api/v1/webhooks/{id}/deliveries")),
    ] {
        let (status, problem, content_type) = api
            .call(method.clone(), &path, Some(json!({"enabled": true})))
            .await;
        assert_eq!(
            (status, content_type.as_str()),
            (404, "application/problem+json"),
            "{method} {path}: {problem}"
        );
    }
    let (_, list, _) = api.call(M::GET, "/api/v1/webhooks", None).await;
    assert_eq!(list, json!({"webhooks": []}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_adds_shows_the_secret_once_toggles_and_deletes() {
    let server = Server::start().await;
    let (admin, csrf) = server.admin().await;
    let get = |path: &str| {
        let admin = admin.clone();
        let url = server.url(path);
        async move {
            let response = admin.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, page) = get("/admin/webhooks").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<a href=\"/admin/webhooks\">Webhooks</a>"),
        "in the navigation"
    );
    assert!(page.contains("No webhook yet."));
    for kind in webhooks::EVENT_TYPES {
        assert!(
            page.contains(&format!("name=\"event\" value=\"{kind}\"")),
            "{kind}"
        );
    }

    let created = admin
        .post(server.url("/admin/webhooks"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("url", "http://127.0.0.1:9/hook?a=1&b=<2>"),
            ("event", "refreshed"),
            ("event", "needs_authorization"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let page = created.text().await.unwrap();
    let start = page
        .find("id=\"new-secret\">")
        .expect("the secret is shown")
        + "id=\"new-secret\">".len();
    let secret = &page[start..start + 64];
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()), "{secret}");
    assert!(page.contains("refreshed, needs_authorization"), "{page}");
    assert!(page.contains("hook?a=1&#38;b=%3C2%3E"), "escaped: {page}");
    let id = {
        let start = page.find("<a href=\"/admin/webhooks/wh_").unwrap()
            + "<a href=\"/admin/webhooks/".len();
        page[start..start + 19].to_string()
    };
    let (_, again) = get("/admin/webhooks").await;
    assert!(!again.contains(secret), "the secret is shown once");
    assert!(again.contains(&id));

    // Refused: an unknown event (named back, escaped), a plain http URL elsewhere, no CSRF.
    let refused = admin
        .post(server.url("/admin/webhooks"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("url", "https://h.example/x"),
            ("event", "<b>bogus</b>"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refused.contains("No webhook was added"), "{refused}");
    assert!(
        refused.contains("&#60;b&#62;bogus&#60;/b&#62;") && !refused.contains("<b>bogus"),
        "{refused}"
    );
    let refused = admin
        .post(server.url("/admin/webhooks"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("url", "http://h.example/x"),
            ("event", "refreshed"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refused.contains("plain http"), "{refused}");
    let forged = admin
        .post(server.url(&format!("/admin/webhooks/{id}/delete")))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let (status, page) = get(&format!("/admin/webhooks/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("No delivery yet.") && page.contains(">Disable<"),
        "{page}"
    );
    let disabled = admin
        .post(server.url(&format!("/admin/webhooks/{id}/disable")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 303);
    let (_, page) = get(&format!("/admin/webhooks/{id}")).await;
    assert!(
        page.contains("disabled: new events are not delivered") && page.contains(">Enable<"),
        "{page}"
    );
    let stored = server
        .state
        .engine
        .store()
        .list_webhook_endpoints()
        .await
        .unwrap();
    assert!(!stored[0].enabled);
    admin
        .post(server.url(&format!("/admin/webhooks/{id}/enable")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let stored = server
        .state
        .engine
        .store()
        .list_webhook_endpoints()
        .await
        .unwrap();
    assert!(stored[0].enabled);
    let deleted = admin
        .post(server.url(&format!("/admin/webhooks/{id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    let (_, page) = get("/admin/webhooks").await;
    assert!(
        page.contains("and its delivery log removed") && page.contains("No webhook yet."),
        "{page}"
    );
    let (status, _) = get(&format!("/admin/webhooks/{id}")).await;
    assert_eq!(status, 404);
    server.stop().await;
}
