//! The server bench's load client: loopback HTTP load on `GET /api/v1/instances/{id}/token`
//! against `GET /healthz` as the baseline.
//!
//! Run by `cargo xtask bench server`, which starts oidc-provider and passes its issuer:
//!
//! ```text
//! load --granary target/release/granary --port N --issuer URL --client-id ID
//!      --client-secret S --out DIR [--seconds 20] [--connections 32]
//! ```
//!
//! It starts `granary serve` with a fresh data directory, connects an instance through the
//! admin page and the provider's login and consent forms (plain HTTP, no browser), creates
//! an API key, then loads each endpoint for `--seconds` with `--connections` keep-alive
//! connections (in the order healthz, token, token, healthz, half the time each, so that a
//! drift of the shared machine cancels out) and prints requests per second and p99 latency
//! of both, the ratio, and: `bench server: token_rps=X healthz_rps=Y ratio=Z errors=N`.
//!
//! Only successful requests (2xx, body read) count as throughput and latency; a failed
//! request is counted as an error, and the first one's reason is kept. The exit status is
//! non-zero, after a `GOAL MISSED` line, when any request failed or the ratio is below
//! [`GOAL_RATIO`].

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use granary_e2e::{Authorization, Flags, authorize, box_document, runtime, sign_in, text};
use reqwest::Client;
use reqwest::redirect::Policy;

struct Args {
    granary: PathBuf,
    port: u16,
    issuer: String,
    client_id: String,
    client_secret: String,
    out: PathBuf,
    seconds: u64,
    connections: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut flags = Flags::parse(std::env::args().skip(1), "")?;
    Ok(Args {
        granary: PathBuf::from(flags.required("granary")?),
        port: flags
            .required("port")?
            .parse()
            .map_err(|e| format!("--port: {e}"))?,
        issuer: flags.required("issuer")?,
        client_id: flags.required("client-id")?,
        client_secret: flags.required("client-secret")?,
        out: PathBuf::from(flags.required("out")?),
        seconds: flags
            .optional("seconds")
            .unwrap_or_else(|| "20".into())
            .parse()
            .map_err(|e| format!("--seconds: {e}"))?,
        connections: flags
            .optional("connections")
            .unwrap_or_else(|| "32".into())
            .parse()
            .map_err(|e| format!("--connections: {e}"))?,
    })
}

/// The token endpoint must serve at least this share of what `/healthz` serves.
const GOAL_RATIO: f64 = 0.7;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";

struct Granary(Child);

impl Drop for Granary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_granary(args: &Args) -> Result<Granary, String> {
    let data = args.out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let log = std::fs::File::create(args.out.join("granary.log"))
        .map_err(|e| format!("cannot create the log: {e}"))?;
    let child = Command::new(&args.granary)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", args.port),
            "--log-level",
            "warn",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("GRANARY_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("GRANARY_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.granary.display()))?;
    let granary = Granary(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", args.port)).is_err() {
        if Instant::now() > deadline {
            return Err("granary did not listen within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(granary)
}

/// Signs in, imports the Box document pointed at the issuer, creates and connects an
/// instance (login and consent at the provider over HTTP), and creates an API key.
async fn connect(base: &str, args: &Args) -> Result<(String, String), String> {
    let http = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let err = |e: reqwest::Error| e.to_string();
    let csrf = sign_in(&http, base, ADMIN_TOKEN).await?;
    let document = box_document(&args.issuer)?;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("name", "box")
        .text("document", document);
    let imported = http
        .post(format!("{base}/admin/integrations"))
        .multipart(form)
        .send()
        .await
        .map_err(err)?;
    if imported.status() != 303 {
        return Err(format!("import answered {}", imported.status()));
    }
    let created = http
        .post(format!("{base}/admin/instances"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("id", "bench"),
            ("integration", "box"),
            ("client_id", args.client_id.as_str()),
            ("client_secret", args.client_secret.as_str()),
            ("client_auth", "client_secret_basic"),
            ("scope", "root_readonly"),
            ("extra_scopes", "openid offline_access"),
            ("force_scopes", "1"),
            ("extra_authorization_params", "prompt=consent"),
        ])
        .send()
        .await
        .map_err(err)?;
    if created.status() != 303 {
        return Err(format!("instance creation answered {}", created.status()));
    }
    // A provider that did not redirect back within its steps shows below, as an instance that
    // did not connect.
    if let Authorization::Callback(status, _) =
        authorize(&http, base, &args.issuer, "bench", &csrf, "bench").await?
    {
        return Err(format!("the callback answered {status}"));
    }
    let instance = text(http.get(format!("{base}/admin/instances/bench"))).await?;
    if !instance.contains("Connected: instance bench holds an access token.") {
        return Err("the instance did not connect; see the oidc-provider log".into());
    }
    let keys = text(
        http.post(format!("{base}/admin/api-keys"))
            .form(&[("csrf", csrf.as_str()), ("name", "bench")]),
    )
    .await?;
    let start = keys.find("id=\"new-key\">").ok_or("no API key shown")? + "id=\"new-key\">".len();
    let end = keys[start..].find('<').ok_or("no API key end")? + start;
    Ok(("bench".to_string(), keys[start..end].to_string()))
}

/// One endpoint's figures; `requests`, `rps` and the latencies count successful requests
/// only.
struct Figures {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    rps: f64,
    p99: Duration,
    latencies: Vec<Duration>,
    seconds: f64,
}

impl Figures {
    /// The figures of two runs of the same endpoint, as one.
    fn merge(mut self, mut other: Figures) -> Figures {
        self.latencies.append(&mut other.latencies);
        self.latencies.sort_unstable();
        let requests = self.requests + other.requests;
        let seconds = self.seconds + other.seconds;
        Figures {
            requests,
            errors: self.errors + other.errors,
            first_error: self.first_error.or(other.first_error),
            rps: requests as f64 / seconds,
            p99: p99(&self.latencies),
            latencies: self.latencies,
            seconds,
        }
    }
}

fn p99(sorted: &[Duration]) -> Duration {
    sorted
        .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

async fn load(
    url: String,
    key: Option<String>,
    seconds: u64,
    connections: usize,
) -> Result<Figures, String> {
    let http = Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (http, url, key, stop) = (http.clone(), url.clone(), key.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut first_error = None;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut request = http.get(&url);
                if let Some(key) = &key {
                    request = request.bearer_auth(key);
                }
                let failure = match request.send().await {
                    Ok(response) if response.status().is_success() => response
                        .bytes()
                        .await
                        .err()
                        .map(|e| format!("reading the body: {e}")),
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        Some(format!(
                            "HTTP {status}: {}",
                            body.chars().take(200).collect::<String>()
                        ))
                    }
                    Err(e) => Some(format!("request failed: {e}")),
                };
                match failure {
                    None => latencies.push(started.elapsed()),
                    Some(why) => {
                        errors += 1;
                        first_error.get_or_insert(why);
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for worker in workers {
        let (mut l, e, first) = worker.await.map_err(|e| e.to_string())?;
        latencies.append(&mut l);
        errors += e;
        first_error = first_error.or(first);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    Ok(Figures {
        requests,
        errors,
        first_error,
        rps: requests as f64 / elapsed,
        p99: p99(&latencies),
        latencies,
        seconds: elapsed,
    })
}

async fn run(args: Args) -> Result<(), String> {
    let _granary = start_granary(&args)?;
    let base = format!("http://127.0.0.1:{}", args.port);
    let (instance, key) = connect(&base, &args).await?;
    let token_url = format!("{base}/api/v1/instances/{instance}/token");
    // Warm up both paths (connections, the token cache).
    load(format!("{base}/healthz"), None, 1, args.connections).await?;
    load(token_url.clone(), Some(key.clone()), 1, args.connections).await?;
    eprintln!(
        "bench server: {} s per endpoint, {} connections, loopback; order healthz, token, token, \
         healthz (half the time each), so that a drift of the machine cancels out",
        args.seconds, args.connections
    );
    let half = (args.seconds / 2).max(1);
    let healthz_url = format!("{base}/healthz");
    let healthz_a = load(healthz_url.clone(), None, half, args.connections).await?;
    let token_a = load(token_url.clone(), Some(key.clone()), half, args.connections).await?;
    let token_b = load(token_url, Some(key), half, args.connections).await?;
    let healthz_b = load(healthz_url, None, half, args.connections).await?;
    let healthz = healthz_a.merge(healthz_b);
    let token = token_a.merge(token_b);
    let ratio = token.rps / healthz.rps;
    let errors = token.errors + healthz.errors;
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>8}",
        "endpoint", "requests/s", "p99 ms", "requests", "errors"
    );
    println!(
        "{:<34} {:>12.0} {:>10.2} {:>10} {:>8}",
        "GET /healthz (baseline)",
        healthz.rps,
        healthz.p99.as_secs_f64() * 1000.0,
        healthz.requests,
        healthz.errors
    );
    println!(
        "{:<34} {:>12.0} {:>10.2} {:>10} {:>8}",
        "GET /api/v1/instances/{id}/token",
        token.rps,
        token.p99.as_secs_f64() * 1000.0,
        token.requests,
        token.errors
    );
    println!("ratio token/healthz: {ratio:.2} (goal: {GOAL_RATIO} or better, zero errors)");
    println!(
        "bench server: token_rps={:.0} healthz_rps={:.0} ratio={ratio:.2} errors={errors}",
        token.rps, healthz.rps
    );
    let mut missed = Vec::new();
    for (name, figures) in [("token", &token), ("healthz", &healthz)] {
        if figures.errors > 0 {
            missed.push(format!(
                "{} of the {name} requests failed, the goal is none; the first: {}",
                figures.errors,
                figures.first_error.as_deref().unwrap_or("(no reason kept)")
            ));
        }
        if figures.requests == 0 {
            missed.push(format!("no {name} request succeeded"));
        }
    }
    if !ratio.is_finite() || ratio < GOAL_RATIO {
        missed.push(format!(
            "the token endpoint served {ratio:.2}x what /healthz served, the goal is {GOAL_RATIO}x or better"
        ));
    }
    if missed.is_empty() {
        println!("bench server: goals met");
        Ok(())
    } else {
        for line in &missed {
            println!("GOAL MISSED {line}");
        }
        Err(format!(
            "the server bench missed its goals: {}",
            missed.join("; ")
        ))
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("load: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime("load", None) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}
