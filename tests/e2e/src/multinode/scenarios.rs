//! The scenarios: each drives the nodes through the balancer (the public URL) or directly, and
//! the fault proxy in front of the provider's token endpoint, and returns its figures and the
//! checks that failed. The bounds are issue 13's; they are constants here.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use granary_e2e::scenario::{Outcome, describe, secs, secs_or_none};
use granary_e2e::server::Api;
use granary_e2e::token_proxy::{Mode, Release};
use granary_e2e::{Authorization, box_document, hidden, location, sign_in, text};
use reqwest::redirect::Policy;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::cluster::{ADMIN_TOKEN, Cluster};

/// The scenarios, in the order they run (the one that kills a node last).
pub const SCENARIOS: &[&str] = &[
    "admin_page_across_nodes",
    "api_key_on_every_node",
    "expiry_storm",
    "disable_seen_by_other_nodes",
    "kill_lease_holder_mid_refresh",
];

/// After the lease holder is killed, another node completes the refresh within this.
const RECOVERY: Duration = Duration::from_secs(10);
/// A change made on one node is seen by the others within this.
const PROPAGATION: Duration = Duration::from_secs(1);
/// How long to wait for an event (a request at the proxy) before declaring it missing.
const EVENT: Duration = Duration::from_secs(20);
/// How long a call that should be quick may take before the runner gives up on it.
const CALL: Duration = Duration::from_secs(20);
/// The lifetime (seconds) of the access token the storm starts from.
const SHORT_TOKEN: i64 = 3;
/// How often the storm's setup may find a node's background refresher first.
const STORM_ATTEMPTS: usize = 4;

/// Runs one scenario by name; `callers` is the number of callers per node of the storm.
pub async fn run(name: &str, cluster: &mut Cluster, callers: usize) -> Result<Outcome, String> {
    cluster.proxy.reset();
    match name {
        "admin_page_across_nodes" => admin_page_across_nodes(cluster).await,
        "api_key_on_every_node" => api_key_on_every_node(cluster).await,
        "expiry_storm" => expiry_storm(cluster, callers).await,
        "disable_seen_by_other_nodes" => disable_seen_by_other_nodes(cluster).await,
        "kill_lease_holder_mid_refresh" => kill_lease_holder_mid_refresh(cluster).await,
        other => Err(format!("unknown scenario {other}")),
    }
}

/// A browser-like client: keeps cookies, follows no redirect.
fn browser() -> Result<Client, String> {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(CALL)
        .build()
        .map_err(|e| e.to_string())
}

/// `303 -> /path`, or the status alone.
fn redirect_of(response: &reqwest::Response) -> String {
    let to = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if to.is_empty() {
        response.status().as_u16().to_string()
    } else {
        format!("{} -> {to}", response.status().as_u16())
    }
}

/// The text of the banner on an admin page (its class and title), if any.
fn banner(page: &str) -> Option<String> {
    let start = page.find("<div class=\"banner ")?;
    let rest = &page[start + "<div class=\"banner ".len()..];
    let kind = rest.split('"').next()?.to_string();
    let title = rest
        .split("<div class=\"title\">")
        .nth(1)?
        .split("</div>")
        .next()?
        .to_string();
    Some(format!("{kind}: {title}"))
}

/// Sign in through the balancer, import a document, create an instance and "Get access
/// token" through the admin page and the provider's forms, every request on whichever node
/// the balancer picks; the callback lands on another node than the one that started it, and
/// the success banner is shown (by yet another node).
async fn admin_page_across_nodes(c: &Cluster) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let public = c.balancer.url.clone();
    let first = c.balancer.log().len();
    let http = browser()?;
    let err = |e: reqwest::Error| e.to_string();

    let page = text(http.get(format!("{public}/admin/login"))).await?;
    let login = http
        .post(format!("{public}/admin/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")?.as_str()),
            ("token", ADMIN_TOKEN),
        ])
        .send()
        .await
        .map_err(err)?;
    let signed_in_on = c.balancer.landed("POST", "/admin/login").unwrap_or(0);
    o.figure(
        "sign_in",
        format!("node{signed_in_on}:{}", redirect_of(&login)),
    );
    if !o.check(
        login.status() == StatusCode::SEE_OTHER,
        format!("the sign-in answered {}", redirect_of(&login)),
    ) {
        return Ok(o);
    }
    // The admin home once on every node: each must know the session made on one of them.
    let mut csrf = String::new();
    for _ in 0..c.nodes.len() {
        let node = c.balancer.next_node();
        let home = http
            .get(format!("{public}/admin/"))
            .send()
            .await
            .map_err(err)?;
        if !o.check(
            home.status() == StatusCode::OK,
            format!(
                "GET /admin/ on node {node} answered {}: the session made on node \
                 {signed_in_on} is not known there",
                redirect_of(&home)
            ),
        ) {
            return Ok(o);
        }
        csrf = hidden(&home.text().await.map_err(err)?, "csrf")?;
    }

    // Import, and the banner shown on the next request (another node).
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("name", "box-admin")
        .text("document", box_document(&c.config.issuer)?);
    let imported = http
        .post(format!("{public}/admin/integrations"))
        .multipart(form)
        .send()
        .await
        .map_err(err)?;
    let on = c
        .balancer
        .landed("POST", "/admin/integrations")
        .unwrap_or(0);
    o.figure("import", format!("node{on}:{}", redirect_of(&imported)));
    if !o.check(
        imported.status() == StatusCode::SEE_OTHER,
        format!(
            "the import on node {on} answered {}",
            redirect_of(&imported)
        ),
    ) {
        return Ok(o);
    }
    let shown = follow_banner(c, &http, &imported).await?;
    o.check(
        shown.1.contains("success: Imported integration box-admin"),
        format!(
            "after the import on node {on}, node {} showed the banner `{}`",
            shown.0, shown.1
        ),
    );

    // New instance.
    let id = "admin-made";
    let created = http
        .post(format!("{public}/admin/instances"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", id),
            ("integration", "box-admin"),
            ("scheme", ""),
            ("client_id", c.config.client.as_str()),
            ("client_secret", c.config.client_secret.as_str()),
            ("client_auth", "client_secret_basic"),
            ("scope", "root_readonly"),
            ("extra_scopes", "openid offline_access"),
            ("force_scopes", "1"),
            ("authorization_url", ""),
            ("token_url", c.proxy.token_url.as_str()),
            ("extra_authorization_params", "prompt=consent"),
            ("extra_token_params", ""),
            ("extra_token_headers", ""),
        ])
        .send()
        .await
        .map_err(err)?;
    let on = c.balancer.landed("POST", "/admin/instances").unwrap_or(0);
    o.figure("create", format!("node{on}:{}", redirect_of(&created)));
    if !o.check(
        created.status() == StatusCode::SEE_OTHER,
        format!(
            "creating the instance on node {on} answered {}",
            redirect_of(&created)
        ),
    ) {
        return Ok(o);
    }
    let shown = follow_banner(c, &http, &created).await?;
    o.check(
        shown.1.contains(&format!("success: Created instance {id}")),
        format!(
            "after the instance was created on node {on}, node {} showed the banner `{}`",
            shown.0, shown.1
        ),
    );

    // "Get access token": started on one node, the callback on another.
    let started = granary_e2e::start_authorization(&http, &public, id, &csrf).await?;
    let started_on = c
        .balancer
        .landed("POST", &format!("/admin/instances/{id}/authorize"))
        .unwrap_or(0);
    let to_provider = started
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|l| l.starts_with(&c.config.issuer));
    if !o.check(
        to_provider,
        format!(
            "\"Get access token\" on node {started_on} answered {} instead of redirecting to the provider",
            redirect_of(&started)
        ),
    ) {
        return Ok(o);
    }
    let Some(callback) =
        granary_e2e::through_provider(&http, &c.config.issuer, &public, started, "multinode")
            .await?
    else {
        o.check(
            false,
            "the provider did not redirect back to the public URL",
        );
        return Ok(o);
    };
    if c.balancer.next_node() == started_on {
        // One request in between, so that the callback goes to another node.
        http.get(format!("{public}/healthz"))
            .send()
            .await
            .map_err(err)?;
    }
    let ended = granary_e2e::follow_callback(&http, callback, id).await?;
    let callback_on = c.balancer.landed("GET", "/admin/oauth").unwrap_or(0);
    o.figure("started_on", format!("node{started_on}"));
    o.figure("callback_on", format!("node{callback_on}"));
    o.check(
        callback_on != started_on,
        "the callback landed on the node that started the authorization (the balancer did not rotate)",
    );
    match ended {
        Authorization::Connected => {}
        Authorization::Callback(status, body) => {
            o.check(
                false,
                format!(
                    "the callback on node {callback_on} (started on node {started_on}) answered \
                     {status}: {}",
                    body.chars().take(160).collect::<String>()
                ),
            );
            return Ok(o);
        }
        Authorization::NotBack => unreachable!("follow_callback judges one answer"),
    }
    let page = http
        .get(format!("{public}/admin/instances/{id}"))
        .send()
        .await
        .map_err(err)?;
    let shown_on = c
        .balancer
        .landed("GET", &format!("/admin/instances/{id}"))
        .unwrap_or(0);
    let status = page.status();
    let shown = banner(&page.text().await.map_err(err)?).unwrap_or_else(|| "none".into());
    o.figure("banner_on", format!("node{shown_on}"));
    o.check(
        status == StatusCode::OK
            && shown.starts_with("success: Connected: instance admin-made holds an access token"),
        format!(
            "after the callback on node {callback_on}, the instance page on node {shown_on} \
             answered {status} with the banner `{shown}`"
        ),
    );
    let state = c.nodes[0].api.status(id).await?;
    o.figure("status", &state);
    o.check(
        state == "authorized",
        format!("the instance is {state} after the authorization"),
    );
    let seen: BTreeSet<usize> = c.balancer.log()[first..].iter().map(|l| l.node).collect();
    o.figure("requests", c.balancer.log().len() - first);
    o.figure("nodes_seen", seen.len());
    o.check(
        seen.len() == c.nodes.len(),
        format!("the scenario's requests reached {} nodes", seen.len()),
    );
    Ok(o)
}

/// Follows a redirect carrying a one-time banner through the balancer: the node that
/// answered and the banner it showed (`kind: title`, or `none`).
async fn follow_banner(
    c: &Cluster,
    http: &Client,
    redirect: &reqwest::Response,
) -> Result<(usize, String), String> {
    let base = reqwest::Url::parse(&c.balancer.url).map_err(|e| e.to_string())?;
    let to = location(redirect, &base)?;
    let page = text(http.get(to.clone())).await?;
    let on = c.balancer.landed("GET", to.path()).unwrap_or(0);
    Ok((on, banner(&page).unwrap_or_else(|| "none".into())))
}

/// An API key made on the admin page of one node is accepted by every node, called directly
/// and through the balancer.
async fn api_key_on_every_node(c: &Cluster) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let http = browser()?;
    let base = c.nodes[0].base();
    let csrf = sign_in(&http, &base, ADMIN_TOKEN).await?;
    let page = text(http.post(format!("{base}/admin/api-keys")).form(&[
        ("csrf", csrf.as_str()),
        ("name", "made-on-node-0"),
        ("role", "admin"),
    ]))
    .await?;
    let Some(key) = page
        .split("<code id=\"new-key\">")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .map(str::to_string)
    else {
        o.check(
            false,
            format!(
                "node 0 showed no new key after POST /admin/api-keys (banner: {})",
                banner(&page).unwrap_or_else(|| "none".into())
            ),
        );
        return Ok(o);
    };
    o.figure("made_on", "node0");
    let mut refused = Vec::new();
    for (n, node) in c.nodes.iter().enumerate() {
        let answer = Api::new(&node.base(), &key)?
            .call(Method::GET, "/instances", CALL)
            .await;
        o.figure(&format!("node{n}"), answer.code());
        if !answer.ok() {
            refused.push(format!("node {n} directly: {}", describe(&answer)));
        }
    }
    let through = Api::new(&c.balancer.url, &key)?;
    let mut via = Vec::new();
    for _ in 0..c.nodes.len() {
        let n = c.balancer.next_node();
        let answer = through.call(Method::GET, "/instances", CALL).await;
        via.push(format!("node{n}:{}", answer.code()));
        if !answer.ok() {
            refused.push(format!(
                "node {n} through the balancer: {}",
                describe(&answer)
            ));
        }
    }
    o.figure("through_balancer", via.join(","));
    o.check(
        refused.is_empty(),
        format!(
            "the key made on node 0 was refused by {}",
            refused.join(", ")
        ),
    );
    Ok(o)
}

/// Seconds since the epoch, now.
fn now_secs() -> Result<f64, String> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .map_err(|e| e.to_string())
}

/// The instance's `token.expires_at` (unix seconds), as node `n` reports it.
async fn expires_at(c: &Cluster, n: usize, id: &str) -> Result<u64, String> {
    c.nodes[n]
        .api
        .instance(id)
        .await?
        .pointer("/token/expires_at")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("instance {id} has no token.expires_at"))
}

/// Provider-side token requests so far (oidc-provider's counter), if it can be read.
async fn provider_total(c: &Cluster) -> Option<u64> {
    let body = reqwest::get(format!("{}/__granary/stats", c.config.issuer))
        .await
        .ok()?
        .json::<Value>()
        .await
        .ok()?;
    body.get("total").and_then(Value::as_u64)
}

/// The figures of a storm of `callers` callers per node right after the token expired.
struct Storm {
    answered_200: usize,
    distinct_tokens: usize,
    token_requests: usize,
    last_failure: Option<String>,
    took: Duration,
}

/// 3 nodes x `callers` concurrent callers of `GET /token`, right after the access token
/// expired, cause exactly 1 token request (counted at the fault proxy), and every caller gets
/// the one new token.
async fn expiry_storm(c: &Cluster, callers: usize) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let id = "storm";
    c.create_instance(id)?;
    // The code exchange's answer says the token lives SHORT_TOKEN seconds; the refresh's
    // answer is the provider's own (an hour).
    c.proxy.set(Mode::ExpiresIn(SHORT_TOKEN));
    let authorized = c.authorize_on(0, id).await;
    c.proxy.set(Mode::Pass);
    authorized?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        c.proxy.reset();
        let expires = expires_at(c, 0, id).await?;
        // expires_at is in whole seconds, rounded down.
        let wait = (expires as f64 + 1.2 - now_secs()?).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        if c.proxy.counts().received == 0 {
            break;
        }
        // A node's background refresher refreshed the token before it expired: give it a
        // short token again.
        if attempt == STORM_ATTEMPTS {
            return Err(format!(
                "in {STORM_ATTEMPTS} attempts a background refresher always refreshed the \
                 short token before it expired"
            ));
        }
        c.proxy.set(Mode::ExpiresIn(SHORT_TOKEN));
        let again = c.nodes[0].api.refresh(id, CALL).await;
        c.proxy.set(Mode::Pass);
        if !again.ok() {
            return Err(format!(
                "the forced refresh for a short token again: {}",
                describe(&again)
            ));
        }
    }
    let provider_before = provider_total(c).await;
    let storm = storm(c, id, callers).await;
    let provider_after = provider_total(c).await;
    let total = callers * c.nodes.len();
    o.figure("nodes", c.nodes.len());
    o.figure("callers", total);
    o.figure("token_requests", storm.token_requests);
    o.figure("answered_200", storm.answered_200);
    o.figure("distinct_tokens", storm.distinct_tokens);
    if let (Some(before), Some(after)) = (provider_before, provider_after) {
        o.figure("provider_token_requests", after.saturating_sub(before));
    }
    o.figure("storm_s", secs(storm.took));
    o.figure("attempts", attempt);
    o.check(
        storm.token_requests == 1,
        format!(
            "{total} callers on {} nodes right after expiry caused {} token requests",
            c.nodes.len(),
            storm.token_requests
        ),
    );
    o.check(
        storm.answered_200 == total,
        format!(
            "{} of {total} callers got no token (last: {})",
            total - storm.answered_200,
            storm.last_failure.unwrap_or_default()
        ),
    );
    o.check(
        storm.distinct_tokens == 1,
        format!(
            "the callers got {} different tokens (the expired one too?)",
            storm.distinct_tokens
        ),
    );
    let fresh = match expires_at(c, 1, id).await {
        Ok(at) => format!("{:.0}", at as f64 - now_secs()?),
        Err(error) => error,
    };
    o.check(
        fresh.parse::<f64>().is_ok_and(|s| s > 60.0),
        format!("after the storm the stored token expires in {fresh} s"),
    );
    Ok(o)
}

/// `callers` callers per node, released at once; waits for every answer.
async fn storm(c: &Cluster, id: &str, callers: usize) -> Storm {
    let (go, gate) = tokio::sync::watch::channel(false);
    let id: Arc<str> = Arc::from(id);
    let mut calls = Vec::new();
    for node in &c.nodes {
        for _ in 0..callers {
            let api = node.api.clone();
            let mut gate = gate.clone();
            let id = id.clone();
            calls.push(tokio::spawn(async move {
                let _ = gate.wait_for(|go| *go).await;
                api.token(&id, Duration::from_secs(120)).await
            }));
        }
    }
    let started = Instant::now();
    let _ = go.send(true);
    let mut tokens = BTreeSet::new();
    let (mut answered_200, mut last_failure) = (0, None);
    for call in calls {
        match call.await {
            Ok(answer) if answer.ok() => {
                answered_200 += 1;
                tokens.insert(answer.access_token().unwrap_or_default().to_string());
            }
            Ok(answer) => last_failure = Some(describe(&answer)),
            Err(e) => last_failure = Some(e.to_string()),
        }
    }
    Storm {
        answered_200,
        distinct_tokens: tokens.len(),
        token_requests: c.proxy.counts().received,
        last_failure,
        took: started.elapsed(),
    }
}

/// Every node serves the token; the instance is disabled on one node (the REST API), and the
/// other nodes refuse its token within 1 s (polled until refused).
async fn disable_seen_by_other_nodes(c: &Cluster) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let id = "switch";
    c.create_instance(id)?;
    c.authorize_on(1, id).await?;
    for (n, node) in c.nodes.iter().enumerate() {
        let answer = node.api.token(id, CALL).await;
        if !answer.ok() {
            return Err(format!(
                "node {n} serves no token before: {}",
                describe(&answer)
            ));
        }
    }
    let disabler = 0;
    let sent = Instant::now();
    let disabled = c.nodes[disabler]
        .api
        .call_json(
            Method::PATCH,
            &format!("/instances/{id}"),
            &json!({ "enabled": false }),
            CALL,
        )
        .await;
    o.figure("disabled_on", format!("node{disabler}"));
    o.figure("disable", describe(&disabled));
    if !o.check(
        disabled.ok(),
        format!("the disable on node {disabler}: {}", describe(&disabled)),
    ) {
        return Ok(o);
    }
    // Every node, polled at once, until it refuses (or well past the bound, to measure).
    let limit = PROPAGATION * 3;
    let polls: Vec<_> = c
        .nodes
        .iter()
        .map(|node| {
            let api = node.api.clone();
            tokio::spawn(async move {
                loop {
                    let answer = api.token("switch", CALL).await;
                    if !answer.ok() {
                        return (Some(sent.elapsed()), answer.code());
                    }
                    if sent.elapsed() > limit {
                        return (None, answer.code());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    for (n, poll) in polls.into_iter().enumerate() {
        let (refused, code) = poll.await.map_err(|e| e.to_string())?;
        o.figure(&format!("node{n}_refused_after_s"), secs_or_none(refused));
        o.figure(&format!("node{n}_answer"), &code);
        o.check(
            refused.is_some_and(|r| r <= PROPAGATION),
            format!(
                "node {n} still handed out the token {} s after the disable on node {disabler}",
                refused.map_or_else(|| format!("{}+", secs(limit)), secs)
            ),
        );
    }
    Ok(o)
}

/// A forced refresh asked of every node at once; the one that took the lease sends the token
/// request, which the fault proxy holds (not forwarded: the provider has not rotated yet);
/// that node is found (from /proc: which process holds the request's connection) and killed
/// with SIGKILL. Another node completes the refresh within 10 s, the token it serves works at
/// the provider, and the rotated refresh token works (the next refresh succeeds).
async fn kill_lease_holder_mid_refresh(c: &mut Cluster) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let id = "crash";
    c.create_instance(id)?;
    c.authorize_on(0, id).await?;
    c.proxy.reset();
    c.proxy.set(Mode::Hang);
    let calls: Vec<_> = c
        .nodes
        .iter()
        .map(|node| {
            let api = node.api.clone();
            tokio::spawn(async move {
                let answer = api.refresh("crash", Duration::from_secs(60)).await;
                (answer, Instant::now())
            })
        })
        .collect();
    if !o.check(
        c.proxy.wait_refreshes(1, EVENT).await,
        "no node's refresh reached the token endpoint",
    ) {
        c.proxy.release(Release::Drop);
        return Ok(o);
    }
    let peer = c.proxy.refresh_peers()[0];
    let Some(holder) = c.node_of_peer(peer) else {
        o.check(
            false,
            format!("no node process holds the connection of the token request from {peer}"),
        );
        c.proxy.release(Release::Drop);
        return Ok(o);
    };
    o.figure("holder", format!("node{holder}"));
    c.proxy.set(Mode::Pass);
    let killed = Instant::now();
    c.kill(holder).await;
    // The killed node's request: its connection is gone; nothing is forwarded for it.
    c.proxy.release(Release::Drop);
    let survivors: Vec<usize> = (0..c.nodes.len()).filter(|n| *n != holder).collect();

    // The survivors' callers, waiting on the lease, and then forced refreshes until one works.
    let mut recovered = None;
    let mut answers = Vec::new();
    for (n, call) in calls.into_iter().enumerate() {
        if n == holder {
            call.abort();
            continue;
        }
        match tokio::time::timeout(RECOVERY + Duration::from_secs(15), call).await {
            Ok(Ok((answer, at))) => {
                if answer.ok() {
                    let took = at.saturating_duration_since(killed);
                    recovered = Some(recovered.map_or(took, |r: Duration| r.min(took)));
                }
                answers.push(format!("node{n}:{}", answer.code()));
            }
            _ => answers.push(format!("node{n}:none")),
        }
    }
    o.figure("waiting_callers", answers.join(","));
    let mut forced = 0;
    while recovered.is_none() && killed.elapsed() < RECOVERY + Duration::from_secs(5) {
        let n = survivors[forced % survivors.len()];
        forced += 1;
        let answer = c.nodes[n].api.refresh(id, CALL).await;
        if answer.ok() {
            recovered = Some(killed.elapsed());
        }
    }
    o.figure("recovered_after_s", secs_or_none(recovered));
    o.check(
        recovered.is_some_and(|r| r <= RECOVERY),
        format!(
            "no other node completed the refresh within {} s of node {holder}'s death ({})",
            RECOVERY.as_secs(),
            secs_or_none(recovered)
        ),
    );
    // The token every survivor serves now is one, and it works at the provider.
    let mut served = BTreeSet::new();
    for n in &survivors {
        let answer = c.nodes[*n].api.token(id, CALL).await;
        if let Some(token) = answer.access_token() {
            served.insert(token.to_string());
        } else {
            o.check(
                false,
                format!("node {n} serves no token: {}", describe(&answer)),
            );
        }
    }
    o.figure("tokens_served", served.len());
    o.check(
        served.len() == 1,
        format!(
            "the surviving nodes serve {} different tokens",
            served.len()
        ),
    );
    if let Some(token) = served.iter().next() {
        let works = userinfo(c, token).await;
        o.figure("token_at_provider", works);
        o.check(
            works == 200,
            format!("the token served after the recovery is refused by the provider ({works})"),
        );
    }
    // The rotation was not lost: the stored refresh token is the provider's current one.
    let next = c.nodes[survivors[survivors.len() - 1]]
        .api
        .refresh(id, CALL)
        .await;
    o.figure("next_refresh", describe(&next));
    o.check(
        next.ok(),
        format!(
            "the next refresh failed: the refresh token chain is broken ({})",
            describe(&next)
        ),
    );
    if let Some(token) = next.access_token() {
        let works = userinfo(c, token).await;
        o.check(
            works == 200,
            format!("the token of the next refresh is refused by the provider ({works})"),
        );
    }
    let status = c.nodes[survivors[0]].api.status(id).await?;
    o.figure("status", &status);
    o.check(
        status == "authorized",
        format!("the instance is {status} after the recovery"),
    );
    o.figure("proxy", c.proxy.counts());
    Ok(o)
}

/// The provider's userinfo answer to `token` (its HTTP status; 599 when unreachable).
async fn userinfo(c: &Cluster, token: &str) -> u16 {
    Client::new()
        .get(format!("{}/me", c.config.issuer))
        .bearer_auth(token)
        .send()
        .await
        .map_or(599, |r| r.status().as_u16())
}
