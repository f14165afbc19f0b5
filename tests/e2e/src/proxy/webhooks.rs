//! The webhook scenarios: a [`Receiver`] of the suite registered through the REST API gets
//! the events caused through the real server, each signed (checked with granary's public
//! [`verify`]) and each delivery once; and a delivery pending when granary stops (the
//! receiver answered 503) arrives once, signed, after granary starts again on the same data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use granary_e2e::scenario::{Outcome, secs};
use granary_e2e::server::Api;
use granary_server::webhooks::{DEFAULT_REPLAY_WINDOW, EVENT_TYPES, verify};
use reqwest::Method;
use serde_json::{Value, json};

use crate::receiver::{Received, Receiver};
use crate::{Env, INSTANCE};

/// How long a delivery may take to arrive (a generous bound: they come in milliseconds).
const ARRIVAL: Duration = Duration::from_secs(60);
/// How long granary may take to exit on SIGTERM.
const EXIT: Duration = Duration::from_secs(30);
/// How long an API call may take.
const CALL: Duration = Duration::from_secs(30);

/// An endpoint registered for one scenario, removed after it.
struct Endpoint {
    id: String,
    secret: String,
}

impl Env {
    /// The REST API with the suite's `admin` key.
    fn admin(&self) -> Result<Api, String> {
        Api::new(&self.base, &self.admin_key)
    }
}

/// Registers `url` for `events` with `POST /api/v1/webhooks`.
async fn register(admin: &Api, url: &str, events: &[&str]) -> Result<Endpoint, String> {
    let answer = admin
        .call_json(
            Method::POST,
            "/webhooks",
            &json!({"url": url, "events": events}),
            CALL,
        )
        .await;
    let field = |name: &str| answer.body[name].as_str().map(str::to_string);
    match (answer.status.as_u16(), field("id"), field("secret")) {
        (201, Some(id), Some(secret)) => Ok(Endpoint { id, secret }),
        _ => Err(format!(
            "POST /api/v1/webhooks answered {}: {}",
            answer.status, answer.body
        )),
    }
}

/// Removes the endpoint (and its deliveries) and stops the receiver; a failure to remove
/// becomes a failed check of `o`.
async fn clean_up(admin: &Api, endpoint: &Endpoint, receiver: Receiver, o: &mut Outcome) {
    let answer = admin
        .call(Method::DELETE, &format!("/webhooks/{}", endpoint.id), CALL)
        .await;
    o.check(
        answer.status == 204,
        format!(
            "DELETE /api/v1/webhooks/{} answered {}: {}",
            endpoint.id, answer.status, answer.body
        ),
    );
    receiver.stop().await;
}

/// The delivery log of the endpoint once no delivery in it is pending (each was accepted or
/// given up: nothing more will be sent).
async fn settled_log(
    admin: &Api,
    endpoint: &Endpoint,
    expected: usize,
) -> Result<Vec<Value>, String> {
    let deadline = std::time::Instant::now() + ARRIVAL;
    loop {
        let answer = admin
            .call(
                Method::GET,
                &format!("/webhooks/{}/deliveries", endpoint.id),
                CALL,
            )
            .await;
        let log = answer.body["deliveries"].as_array().cloned();
        match log {
            Some(log) if log.len() >= expected && log.iter().all(|d| d["state"] != "pending") => {
                return Ok(log);
            }
            _ if std::time::Instant::now() > deadline => {
                return Err(format!(
                    "the delivery log of {} still had pending deliveries (or fewer than \
                     {expected}) after {} s: {} {}",
                    endpoint.id,
                    ARRIVAL.as_secs(),
                    answer.status,
                    answer.body
                ));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Why the signature of `received` does not verify under `secret` at its arrival, if it
/// does not.
fn signature_problem(secret: &str, received: &Received) -> Option<String> {
    verify(
        secret.as_bytes(),
        &received.signature,
        &received.body,
        received.at,
        DEFAULT_REPLAY_WINDOW,
    )
    .err()
    .map(|e| {
        format!(
            "delivery {} ({}) has a bad signature {:?}: {e}",
            received.delivery, received.event, received.signature
        )
    })
}

/// The payload of `received`.
fn payload(received: &Received) -> Value {
    serde_json::from_slice(&received.body).unwrap_or(Value::Null)
}

/// Whether one post of type `kind` arrived.
fn has(kind: &'static str) -> impl Fn(&[Received]) -> bool {
    move |received| received.iter().any(|r| r.event == kind)
}

/// Signature and duplicate checks over everything received: every post's signature
/// verifies, and each delivery id is accepted (answered 200) once; a refused attempt sent
/// again is not a duplicate. The figures `deliveries` (accepted), `duplicates`,
/// `bad_signatures`.
fn signed_once(o: &mut Outcome, secret: &str, received: &[Received]) {
    let bad: Vec<String> = received
        .iter()
        .filter_map(|r| signature_problem(secret, r))
        .collect();
    let accepted: Vec<&Received> = received.iter().filter(|r| r.answered == 200).collect();
    let ids: BTreeSet<&str> = accepted.iter().map(|r| r.delivery.as_str()).collect();
    let duplicates = accepted.len() - ids.len();
    o.figure("deliveries", accepted.len());
    o.figure("duplicates", duplicates);
    o.figure("bad_signatures", bad.len());
    for problem in bad {
        o.check(false, problem);
    }
    o.check(
        duplicates == 0,
        format!("{duplicates} deliveries were accepted more than once (same Granary-Delivery id)"),
    );
}

/// A forced refresh, a disconnect and a new authorization reach a receiver registered for
/// every event type: one delivery each (`refreshed`, `disconnected`, `authorized`), every
/// signature verified, no delivery id twice, nothing else, and the delivery log settled with
/// one attempt each.
pub async fn signed_once_scenario(env: &Env) -> Result<Outcome, String> {
    let admin = env.admin()?;
    let receiver = Receiver::start(200).await?;
    let endpoint = register(&admin, &receiver.url, &EVENT_TYPES).await?;
    let mut o = Outcome::default();
    if let Err(error) = signed_once_checks(env, &admin, &endpoint, &receiver, &mut o).await {
        o.check(false, error);
    }
    clean_up(&admin, &endpoint, receiver, &mut o).await;
    Ok(o)
}

async fn signed_once_checks(
    env: &Env,
    admin: &Api,
    endpoint: &Endpoint,
    receiver: &Receiver,
    o: &mut Outcome,
) -> Result<(), String> {
    let refreshed = env.serve.api.refresh(INSTANCE, CALL).await;
    if !refreshed.ok() {
        return Err(format!(
            "the forced refresh answered {}: {}",
            refreshed.status, refreshed.body
        ));
    }
    receiver
        .wait_for(ARRIVAL, "refreshed", has("refreshed"))
        .await?;
    let disconnected = admin
        .call(
            Method::POST,
            &format!("/instances/{INSTANCE}/disconnect"),
            CALL,
        )
        .await;
    if !disconnected.ok() {
        return Err(format!(
            "the disconnect answered {}: {}",
            disconnected.status, disconnected.body
        ));
    }
    receiver
        .wait_for(ARRIVAL, "disconnected", has("disconnected"))
        .await?;
    crate::authorize(&env.base, &env.issuer).await?;
    receiver
        .wait_for(ARRIVAL, "authorized", has("authorized"))
        .await?;
    let status = env.serve.api.status(INSTANCE).await?;
    o.check(
        status == "authorized",
        format!("{INSTANCE} is {status} after its new authorization"),
    );

    let caused = ["refreshed", "disconnected", "authorized"];
    let log = settled_log(admin, endpoint, caused.len()).await?;
    let received = receiver.received();
    signed_once(o, &endpoint.secret, &received);
    let mut by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut events = BTreeSet::new();
    for r in &received {
        by_type
            .entry(r.event.clone())
            .or_default()
            .insert(r.delivery.clone());
        let body = payload(r);
        events.insert(body["id"].as_str().unwrap_or_default().to_string());
        o.check(
            body["type"] == r.event.as_str() && body["instance"] == INSTANCE,
            format!(
                "delivery {} (Granary-Event {}) carries {body}",
                r.delivery, r.event
            ),
        );
    }
    o.figure(
        "by_type",
        by_type
            .iter()
            .map(|(kind, ids)| format!("{kind}:{}", ids.len()))
            .collect::<Vec<_>>()
            .join(","),
    );
    for kind in caused {
        let count = by_type.get(kind).map_or(0, BTreeSet::len);
        o.check(
            count == 1,
            format!("{count} deliveries of {kind} arrived (one event was caused)"),
        );
    }
    let extra: Vec<&String> = by_type
        .keys()
        .filter(|k| !caused.contains(&k.as_str()))
        .collect();
    o.check(
        extra.is_empty(),
        format!("deliveries of events not caused arrived: {extra:?}"),
    );
    o.check(
        events.len() == received.len(),
        format!(
            "{} posts carried {} distinct event ids",
            received.len(),
            events.len()
        ),
    );
    let logged: BTreeSet<String> = log
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    let arrived: BTreeSet<String> = received.iter().map(|r| r.delivery.clone()).collect();
    o.check(
        logged == arrived,
        format!("the delivery log holds {logged:?}, the receiver got {arrived:?}"),
    );
    o.check(
        log.iter().all(|d| {
            d["state"] == "delivered" && d["attempts"].as_array().is_some_and(|a| a.len() == 1)
        }),
        format!("not every logged delivery was delivered at its first attempt: {log:?}"),
    );
    Ok(())
}

/// A delivery the receiver refused (503) is pending when granary stops with SIGTERM; the
/// receiver turns healthy while granary is down; after granary starts again on the same
/// data the same delivery (same id, same event, same body) arrives once, signed.
pub async fn pending_survive_restart_scenario(env: &Env) -> Result<Outcome, String> {
    let admin = env.admin()?;
    let receiver = Receiver::start(503).await?;
    let endpoint = register(&admin, &receiver.url, &["refreshed"]).await?;
    let mut o = Outcome::default();
    if let Err(error) = restart_checks(env, &admin, &endpoint, &receiver, &mut o).await {
        o.check(false, error);
    }
    clean_up(&admin, &endpoint, receiver, &mut o).await;
    Ok(o)
}

async fn restart_checks(
    env: &Env,
    admin: &Api,
    endpoint: &Endpoint,
    receiver: &Receiver,
    o: &mut Outcome,
) -> Result<(), String> {
    let refreshed = env.serve.api.refresh(INSTANCE, CALL).await;
    if !refreshed.ok() {
        return Err(format!(
            "the forced refresh answered {}: {}",
            refreshed.status, refreshed.body
        ));
    }
    let refused = receiver
        .wait_for(ARRIVAL, "a first attempt (answered 503)", has("refreshed"))
        .await?
        .remove(0);
    let answer = admin
        .call(
            Method::GET,
            &format!("/webhooks/{}/deliveries", endpoint.id),
            CALL,
        )
        .await;
    let newest = &answer.body["deliveries"][0];
    o.check(
        newest["id"] == refused.delivery.as_str() && newest["state"] == "pending",
        format!(
            "before the stop the log's newest delivery is not {} pending: {}",
            refused.delivery, answer.body
        ),
    );

    let exit = env.serve.stop(EXIT).await?;
    o.figure("exit_s", secs(exit));
    let refusals = receiver.received().len();
    o.figure("refused_before_restart", refusals);
    receiver.answer(200);
    env.serve.start_again().await?;

    let accepted = receiver
        .wait_for(ARRIVAL, "the pending delivery after the restart", |r| {
            r.iter().any(|r| r.answered == 200)
        })
        .await?;
    settled_log(admin, endpoint, 1).await?;
    let received = receiver.received();
    signed_once(o, &endpoint.secret, &received);
    let delivered: Vec<&Received> = received.iter().filter(|r| r.answered == 200).collect();
    o.check(
        delivered.len() == 1,
        format!(
            "the delivery was accepted {} times (once expected)",
            delivered.len()
        ),
    );
    if let Some(first) = accepted.iter().find(|r| r.answered == 200) {
        o.check(
            first.delivery == refused.delivery,
            format!(
                "delivery {} arrived after the restart, not the pending {}",
                first.delivery, refused.delivery
            ),
        );
        o.check(
            payload(first)["id"] == payload(&refused)["id"] && first.body == refused.body,
            "the delivery after the restart carries another event or body than the pending one",
        );
    }
    o.check(
        received.iter().all(|r| r.delivery == refused.delivery),
        "the receiver got other deliveries than the one pending",
    );
    Ok(())
}
