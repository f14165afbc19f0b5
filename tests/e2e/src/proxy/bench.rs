//! The proxy bench: requests per second to the API directly (with the access token granary
//! hands out) against the same requests through granary's proxy, paired in one run:
//! alternate rounds of each (direct, proxied, direct, ...), each round `requests` GETs of
//! `/v1/hello` by `concurrency` workers over keep-alive connections, after one unmeasured
//! round of each. Only 2xx answers with their body read count; anything else is an error.
//!
//! The API checks every token by introspection, and trusts an active one for a minute (as a
//! busy resource server caches introspection answers), so that both paths measure HTTP and
//! the proxy rather than the provider; it then works [`API_SERVICE_TIME`] on each request,
//! as a real API does.
//!
//! Prints `bench proxy: direct_rps=X proxied_rps=Y ratio=Z errors=N`; exits non-zero after a
//! `GOAL MISSED` line when the ratio is below [`GOAL_RATIO`] or a request failed.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;

use crate::Env;

/// The goal: proxied requests per second at least this share of direct ones.
pub const GOAL_RATIO: f64 = 0.7;

/// How long the bench's API works on a request: a fast real API (a cached lookup behind
/// TLS termination takes milliseconds). With an API that answers in microseconds on this
/// 2-core machine, the load generator, granary's two HTTP hops and the API share the same
/// cores and the ratio measures CPU per hop (about 0.2), not what a caller of a real API
/// loses by going through granary.
pub const API_SERVICE_TIME: Duration = Duration::from_millis(5);

/// How much load.
pub struct Plan {
    /// Measured rounds of each kind.
    pub rounds: usize,
    /// Requests per round.
    pub requests: usize,
    /// Workers sending at once.
    pub concurrency: usize,
}

/// One round: `requests` GETs of `url` with `authorization`; the time and the errors, with
/// the first error's reason.
async fn round(
    http: &Client,
    url: &str,
    authorization: &str,
    plan: &Plan,
) -> (Duration, usize, Option<String>) {
    let tickets = Arc::new(AtomicUsize::new(plan.requests));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency {
        let (http, url, authorization) = (http.clone(), url.to_string(), authorization.to_string());
        let tickets = Arc::clone(&tickets);
        workers.push(tokio::spawn(async move {
            let (mut errors, mut first) = (0, None);
            while tickets
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let sent = http
                    .get(&url)
                    .header("authorization", &authorization)
                    .send()
                    .await;
                let failed = match sent {
                    Ok(answer) if answer.status().is_success() => {
                        answer.bytes().await.err().map(|e| e.to_string())
                    }
                    Ok(answer) => Some(format!("answered {}", answer.status())),
                    Err(error) => Some(error.to_string()),
                };
                if let Some(reason) = failed {
                    errors += 1;
                    first.get_or_insert(reason);
                }
            }
            (errors, first)
        }));
    }
    let (mut errors, mut first) = (0, None);
    for worker in workers {
        match worker.await {
            Ok((e, f)) => {
                errors += e;
                if first.is_none() {
                    first = f;
                }
            }
            Err(error) => {
                errors += 1;
                first.get_or_insert(error.to_string());
            }
        }
    }
    (started.elapsed(), errors, first)
}

/// Runs the bench against `env`.
pub async fn run(env: &Env, plan: &Plan) -> ExitCode {
    let token = match env
        .serve
        .api
        .token(crate::INSTANCE, Duration::from_secs(20))
        .await
    {
        answer if answer.ok() => answer.access_token().unwrap_or_default().to_string(),
        answer => {
            eprintln!(
                "bench proxy: no token from granary: {} {}",
                answer.status, answer.body
            );
            return ExitCode::FAILURE;
        }
    };
    let http = match Client::builder()
        .pool_max_idle_per_host(plan.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            eprintln!("bench proxy: {error}");
            return ExitCode::FAILURE;
        }
    };
    let direct = (
        format!("{}/v1/hello", env.api.origin),
        format!("Bearer {token}"),
    );
    let proxied = (env.proxy_url("hello"), format!("Bearer {}", env.api_key));
    // Unmeasured: connections opened, the token's introspection cached.
    for (url, authorization) in [&direct, &proxied] {
        round(&http, url, authorization, plan).await;
    }
    let (mut direct_time, mut proxied_time) = (Duration::ZERO, Duration::ZERO);
    let (mut errors, mut first) = (0, None);
    for number in 1..=plan.rounds {
        for (kind, (url, authorization)) in [("direct", &direct), ("proxied", &proxied)] {
            let (took, failed, reason) = round(&http, url, authorization, plan).await;
            errors += failed;
            if first.is_none() {
                first = reason;
            }
            match kind {
                "direct" => direct_time += took,
                _ => proxied_time += took,
            }
            eprintln!(
                "bench proxy: round {number} {kind}: {:.0} requests/s ({failed} errors)",
                plan.requests as f64 / took.as_secs_f64()
            );
        }
    }
    let total = (plan.rounds * plan.requests) as f64;
    let direct_rps = total / direct_time.as_secs_f64();
    let proxied_rps = total / proxied_time.as_secs_f64();
    let ratio = proxied_rps / direct_rps;
    eprintln!(
        "bench proxy: {} rounds of {} requests each way, {} at once; the API introspected {} \
         times",
        plan.rounds,
        plan.requests,
        plan.concurrency,
        env.api.counts().snapshot().3
    );
    println!(
        "bench proxy: direct_rps={direct_rps:.0} proxied_rps={proxied_rps:.0} ratio={ratio:.2} \
         errors={errors} api_service_ms={}",
        API_SERVICE_TIME.as_millis()
    );
    if errors > 0 {
        println!(
            "GOAL MISSED: {errors} requests failed (the first: {})",
            first.unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    if ratio < GOAL_RATIO {
        println!(
            "GOAL MISSED: proxied requests per second are {ratio:.2} of direct ones, below \
             {GOAL_RATIO}"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
