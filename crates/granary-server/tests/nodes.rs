//! Two server nodes on one store (as several `granary serve` behind a load balancer): a
//! sign-in, a banner, an API key and its revocation made through one node hold on the other.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Server, hidden};
use granary_store::{MemoryStore, Store};

/// The text of a page of `server`, fetched with `client`; asserts 200.
async fn page(server: &Server, client: &reqwest::Client, path: &str) -> String {
    let response = client.get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path} on {}", server.base);
    response.text().await.unwrap()
}

#[tokio::test]
async fn two_nodes_on_one_store_share_sessions_banners_and_api_keys() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = Server::start_on(Arc::clone(&store)).await;
    let b = Server::start_on(Arc::clone(&store)).await;

    // Signed in on A; the same cookie (both listen on 127.0.0.1) is a session on B.
    let (client, csrf) = a.admin().await;
    let on_b = page(&b, &client, "/admin/").await;
    assert_eq!(
        hidden(&on_b, "csrf"),
        csrf,
        "B knows the session and its CSRF token"
    );

    // A banner set by a form handled on A is shown once, by B.
    let response = client
        .post(a.url("/admin/api-keys/no-such-key/delete"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let shown = page(&b, &client, "/admin/").await;
    assert!(
        shown.contains("API key no-such-key did not exist."),
        "B shows the banner set on A:\n{shown}"
    );
    for node in [&b, &a] {
        let again = page(node, &client, "/admin/").await;
        assert!(
            !again.contains("did not exist"),
            "the banner was shown twice (on {})",
            node.base
        );
    }

    // An API key created on A works on B at once.
    let key = a.api_key_with_role(&client, &csrf, "tokens").await;
    let api = reqwest::Client::new();
    let call = |node: &Server| {
        api.get(node.url("/api/v1/instances"))
            .bearer_auth(&key)
            .send()
    };
    assert_eq!(
        call(&b).await.unwrap().status(),
        200,
        "B accepts A's new key"
    );

    // Revoked on A: B refuses it once its reload (every second) saw the revocation.
    let mut seen_by_b = b.state.api_keys.changes();
    seen_by_b.mark_unchanged();
    let id = a.state.api_keys.list().await.unwrap()[0].id.clone();
    let revoked = client
        .post(a.url(&format!("/admin/api-keys/{id}/delete")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert_eq!(
        call(&a).await.unwrap().status(),
        401,
        "A refuses it at once"
    );
    tokio::time::timeout(Duration::from_secs(5), seen_by_b.changed())
        .await
        .expect("B sees the revocation within its reload interval")
        .unwrap();
    assert_eq!(
        call(&b).await.unwrap().status(),
        401,
        "B refuses the revoked key"
    );

    // Signed out on B: A no longer knows the session.
    let out = client
        .post(b.url("/admin/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let refused = client.get(a.url("/admin/")).send().await.unwrap();
    assert_eq!(refused.status(), 401, "a session ended on B is over on A");

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_session_survives_a_restart_of_its_node() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = Server::start_on(Arc::clone(&store)).await;
    let (client, csrf) = first.admin().await;
    first.stop().await;
    let second = Server::start_on(store).await;
    let home = page(&second, &client, "/admin/").await;
    assert_eq!(hidden(&home, "csrf"), csrf);
    second.stop().await;
}
