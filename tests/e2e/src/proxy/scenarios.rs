//! The proxy scenarios: each is one function of [`SCENARIOS`] that calls the API through
//! granary's proxy and returns its figures and the checks that failed. A scenario of another
//! kind (webhooks) is added as one more entry.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use granary_e2e::scenario::Outcome;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::api::{upload_chunk, upload_digest};
use crate::{Env, INSTANCE};

/// A scenario: what it found, or why it could not run.
pub type Run = for<'a> fn(&'a Env) -> Pin<Box<dyn Future<Output = Result<Outcome, String>> + 'a>>;

/// The scenarios, in the order they run.
pub const SCENARIOS: &[(&str, Run)] = &[
    ("get", |env| Box::pin(get(env))),
    ("post_streamed_50mb", |env| Box::pin(post_streamed(env))),
    ("revoked_token_refreshed_once", |env| {
        Box::pin(revoked_token(env))
    }),
    ("escape_refused_nothing_sent", |env| {
        Box::pin(escape_refused(env))
    }),
    ("webhooks_signed_once", |env| {
        Box::pin(crate::webhooks::signed_once_scenario(env))
    }),
    ("webhooks_pending_survive_restart", |env| {
        Box::pin(crate::webhooks::pending_survive_restart_scenario(env))
    }),
];

/// The names of the scenarios.
pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|(name, _)| *name).collect()
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Run> {
    SCENARIOS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, run)| *run)
}

/// The upload: this many chunks of [`CHUNK`] bytes (50 MiB).
const CHUNKS: usize = 50;
const CHUNK: usize = 1024 * 1024;
/// Before sending chunk number `WAIT_AT`, the caller waits until the API has received some
/// of the body: a proxy that held the body whole would never let it.
const WAIT_AT: usize = 8;
/// How long the caller waits for that.
const STREAM_WAIT: Duration = Duration::from_secs(30);

fn error(e: reqwest::Error) -> String {
    e.to_string()
}

impl Env {
    /// The proxy URL of API path `rest` (relative to the API's base URL) of the instance.
    pub fn proxy_url(&self, rest: &str) -> String {
        format!("{}/api/v1/instances/{INSTANCE}/proxy/{rest}", self.base)
    }

    /// The provider's token-request counters.
    async fn provider_stats(&self) -> Result<Value, String> {
        self.http
            .get(format!("{}/__granary/stats", self.issuer))
            .send()
            .await
            .map_err(error)?
            .json()
            .await
            .map_err(error)
    }

    async fn reset_provider_stats(&self) -> Result<(), String> {
        let answer = self
            .http
            .post(format!("{}/__granary/stats/reset", self.issuer))
            .send()
            .await
            .map_err(error)?;
        if answer.status() == 204 {
            Ok(())
        } else {
            Err(format!(
                "the provider's stats reset answered {}",
                answer.status()
            ))
        }
    }

    /// The access token granary hands out now.
    async fn current_token(&self) -> Result<String, String> {
        let answer = self
            .serve
            .api
            .token(INSTANCE, Duration::from_secs(20))
            .await;
        answer
            .access_token()
            .map(str::to_string)
            .ok_or_else(|| format!("no token from granary: {} {}", answer.status, answer.body))
    }

    /// Sends `GET {target}` over a plain connection, exactly as written (no client
    /// normalises it); the status and the whole answer.
    async fn raw_get(&self, target: &str) -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.address, self.api_key
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
            .await
            .map_err(|_| format!("no answer to GET {target} within 20 s"))?
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in the answer to GET {target}: {text:?}"))?;
        Ok((status, text))
    }
}

/// A proxied GET with a query: the API takes the token and sees the query.
async fn get(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let (requests, _, served, _) = env.api.counts().snapshot();
    let started = Instant::now();
    let answer = env
        .http
        .get(env.proxy_url("hello?greeting=hi%20there&n=1"))
        .bearer_auth(&env.api_key)
        .send()
        .await
        .map_err(error)?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    o.figure("status", status.as_u16());
    o.figure("ms", started.elapsed().as_millis());
    o.check(
        status == 200,
        format!("the proxied GET answered {status}: {body}"),
    );
    o.check(
        body["query"] == "greeting=hi%20there&n=1",
        format!("the API saw another query: {body}"),
    );
    o.check(
        body["hello"].as_str().is_some_and(|sub| sub == "proxy"),
        format!("the API did not see the subject the provider gave the token: {body}"),
    );
    let (requests_after, _, served_after, _) = env.api.counts().snapshot();
    o.figure("api_requests", requests_after - requests);
    o.check(
        requests_after - requests == 1 && served_after - served == 1,
        format!(
            "the API received {} requests and served {} (one each expected)",
            requests_after - requests,
            served_after - served
        ),
    );
    Ok(o)
}

/// A proxied POST of a 50 MiB body, streamed: the API counts its bytes and checks their
/// digest, and has received part of it before the caller sends the rest.
async fn post_streamed(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let expected = upload_digest(CHUNKS, CHUNK);
    let progress = env.api.progress();
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held_by_proxy = std::sync::Arc::clone(&held);
    let chunks = futures::stream::unfold((0usize, progress), move |(index, mut progress)| {
        let held = std::sync::Arc::clone(&held_by_proxy);
        async move {
            if index == CHUNKS {
                return None;
            }
            if index == WAIT_AT {
                let arrived = matches!(
                    tokio::time::timeout(STREAM_WAIT, progress.wait_for(|bytes| *bytes > 0)).await,
                    Ok(Ok(_))
                );
                if !arrived {
                    held.store(true, std::sync::atomic::Ordering::SeqCst);
                    let stop = std::io::Error::other("the API received nothing: stopping");
                    return Some((Err(stop), (CHUNKS, progress)));
                }
            }
            Some((Ok(upload_chunk(index, CHUNK)), (index + 1, progress)))
        }
    });
    let started = Instant::now();
    let sent = env
        .http
        .post(env.proxy_url("upload"))
        .bearer_auth(&env.api_key)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    let took = started.elapsed();
    if held.load(std::sync::atomic::Ordering::SeqCst) {
        o.check(
            false,
            format!(
                "the API had received none of the body after {WAIT_AT} MiB were sent (waited {} \
                 s): the proxy holds the body instead of streaming it",
                STREAM_WAIT.as_secs()
            ),
        );
        return Ok(o);
    }
    let answer = sent.map_err(error)?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    let total = (CHUNKS * CHUNK) as u64;
    o.figure("status", status.as_u16());
    o.figure("bytes", body["bytes"].as_u64().unwrap_or(0));
    o.figure(
        "mib_per_s",
        format!("{:.0}", total as f64 / 1_048_576.0 / took.as_secs_f64()),
    );
    o.figure("api_had_bytes_before_mib", WAIT_AT);
    o.check(
        status == 200,
        format!("the upload answered {status}: {body}"),
    );
    o.check(
        body["bytes"].as_u64() == Some(total),
        format!("the API counted {} bytes, not {total}", body["bytes"]),
    );
    o.check(
        body["sha256"].as_str() == Some(expected.as_str()),
        format!(
            "the API's digest {} is not the body's {expected}",
            body["sha256"]
        ),
    );
    Ok(o)
}

/// The access token is revoked at the provider: the API answers 401, granary refreshes once
/// and sends the request again, the caller gets 200, and the provider saw one refresh.
async fn revoked_token(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let revoked = env.current_token().await?;
    let answer = env
        .http
        .post(format!("{}/__granary/revoke-access-token", env.issuer))
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .map_err(error)?;
    if answer.status() != 204 {
        return Err(format!(
            "the provider did not revoke the access token: {}",
            answer.status()
        ));
    }
    env.reset_provider_stats().await?;
    let (requests, refused, served, _) = env.api.counts().snapshot();
    let started = Instant::now();
    let answer = env
        .http
        .get(env.proxy_url("hello"))
        .bearer_auth(&env.api_key)
        .send()
        .await
        .map_err(error)?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    o.figure("status", status.as_u16());
    o.figure("ms", started.elapsed().as_millis());
    o.check(
        status == 200,
        format!("the caller got {status}, not 200: {body}"),
    );
    let (requests_after, refused_after, served_after, _) = env.api.counts().snapshot();
    o.figure("api_401", refused_after - refused);
    o.figure("api_200", served_after - served);
    o.check(
        refused_after - refused == 1
            && served_after - served == 1
            && requests_after - requests == 2,
        format!(
            "the API received {} requests, refused {} and served {} (2, 1 and 1 expected: the \
             revoked token, then the refreshed one)",
            requests_after - requests,
            refused_after - refused,
            served_after - served
        ),
    );
    let stats = env.provider_stats().await?;
    let refreshes = stats["token_requests"]["refresh_token"]
        .as_u64()
        .unwrap_or(0);
    o.figure("provider_refreshes", refreshes);
    o.check(
        refreshes == 1 && stats["total"].as_u64() == Some(1),
        format!("the provider saw {stats} (exactly one refresh expected)"),
    );
    let now = env.current_token().await?;
    o.check(
        now != revoked,
        "granary still hands out the revoked access token",
    );
    Ok(o)
}

/// Paths that try to leave the API's servers are refused with 400 and no request arrives
/// anywhere: not at the API, not elsewhere; then a plain call still arrives (the counters
/// do count).
async fn escape_refused(env: &Env) -> Result<Outcome, String> {
    let mut o = Outcome::default();
    let elsewhere = env.elsewhere.address;
    let paths = [
        "../../admin".to_string(),
        "hello/../../x".to_string(),
        "%2e%2e/%2e%2e/x".to_string(),
        "a/%2E%2e/x".to_string(),
        "./hello".to_string(),
        format!("/{elsewhere}/x"),
        format!("//{elsewhere}/x"),
        format!("user@{elsewhere}/x"),
        format!("@{elsewhere}/x"),
        format!("a%40{elsewhere}/x"),
        format!("http://{elsewhere}/x"),
        format!("https:{elsewhere}/x"),
        format!("http:%2F%2F{elsewhere}/x"),
        "a%2f..%2f..%2fx".to_string(),
        "a%5c..%5cx".to_string(),
    ];
    let (requests, ..) = env.api.counts().snapshot();
    let mut refused = 0;
    for path in &paths {
        let (status, text) = env
            .raw_get(&format!("/api/v1/instances/{INSTANCE}/proxy/{path}"))
            .await?;
        if status == 400 && text.contains("proxy-path-refused") {
            refused += 1;
        } else {
            o.check(
                false,
                format!(
                    "{path} was answered {status}, not 400 proxy-path-refused: {}",
                    text.chars().take(200).collect::<String>()
                ),
            );
        }
    }
    o.figure("refused", format!("{refused}/{}", paths.len()));
    let (after, ..) = env.api.counts().snapshot();
    o.figure("api_requests", after - requests);
    o.figure("elsewhere_connections", env.elsewhere.connections());
    o.check(
        after == requests,
        format!("{} requests arrived at the API", after - requests),
    );
    o.check(
        env.elsewhere.connections() == 0,
        format!(
            "{} connections arrived elsewhere ({elsewhere})",
            env.elsewhere.connections()
        ),
    );
    let (status, _) = env
        .raw_get(&format!("/api/v1/instances/{INSTANCE}/proxy/hello"))
        .await?;
    let (control, ..) = env.api.counts().snapshot();
    o.check(
        status == 200 && control == after + 1,
        format!(
            "the plain call after the attempts answered {status} with {} requests at the API (200 \
             and 1 expected)",
            control - after
        ),
    );
    Ok(o)
}
