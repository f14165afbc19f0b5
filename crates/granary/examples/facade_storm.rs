//! The refresh storms of `cargo xtask bench facade`, against the conformance oidc-provider
//! (its issuer and clients file in `GRANARY_FACADE_ISSUER` / `GRANARY_FACADE_CLIENTS`).
//!
//! - refresh storm: 10,000 concurrent callers in one process on an expired token;
//! - cross-process storm: 4 processes (this program, `worker` mode) sharing one SQLite
//!   file, 1,000 callers each, on an expired token.
//!
//! The token is authorized with the real clock; the storms run with a clock 2 hours ahead,
//! so that the token is expired for them and the new one (from their clock) is fresh. Token
//! requests are counted by the server. Prints `bench refresh_storm: ...` and
//! `bench cross_process_storm: ...`; exits non-zero if a caller failed, callers disagree,
//! the server's counter cannot be read, or a storm made other than exactly 1 token request.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use granary::store::Timestamp;
use granary::{AccessToken, Clock, Config, Engine, Granary, KeySource, StoreConfig, SystemClock};
use support::Provider;

const CALLERS: usize = 10_000;
const PROCESSES: usize = 4;
const CALLERS_PER_PROCESS: usize = 1_000;
const AHEAD: Duration = Duration::from_secs(2 * 3600);

/// The system clock, `AHEAD` in the future.
struct AheadClock;

impl Clock for AheadClock {
    fn now(&self) -> Timestamp {
        SystemClock.now().saturating_add(AHEAD)
    }
}

async fn open(db: &Path, ahead: bool) -> Granary {
    let mut config = Config::new(StoreConfig::Sqlite(db.to_path_buf()), support::public_url())
        .with_key(KeySource::File(db.with_extension("key")));
    if ahead {
        config = config.with_clock(Arc::new(AheadClock));
    }
    Granary::open(config)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()))
}

/// A short, non-secret fingerprint of a token, to compare across processes.
fn fingerprint(token: &AccessToken) -> String {
    let mut hasher = DefaultHasher::new();
    token.secret().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// `callers` concurrent calls; `Ok(fingerprint)` when all got the same token.
async fn storm(engine: &Engine, instance: &str, callers: usize) -> Result<String, String> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let engine = engine.clone();
            let instance = instance.to_string();
            tokio::spawn(async move { engine.access_token(&instance).await })
        })
        .collect();
    let mut seen: Option<String> = None;
    for task in tasks {
        let token = task
            .await
            .map_err(|e| format!("a caller panicked: {e}"))?
            .map_err(|e| format!("a caller failed: {e}"))?;
        let print = fingerprint(&token);
        match &seen {
            Some(first) if *first != print => return Err("callers got different tokens".into()),
            Some(_) => {}
            None => seen = Some(print),
        }
    }
    seen.ok_or_else(|| "no callers".to_string())
}

async fn reset_stats(provider: &Provider) {
    provider
        .http
        .post(format!("{}/__granary/stats/reset", provider.issuer))
        .send()
        .await
        .unwrap();
}

/// The token requests the server counted since the last reset; an error when its counter
/// is missing (a server without it cannot show that one refresh was made).
async fn token_requests(provider: &Provider) -> Result<u64, String> {
    let stats = provider.stats().await;
    stats["total"]
        .as_u64()
        .ok_or_else(|| format!("the server's counters have no `total` token requests: {stats}"))
}

/// What each storm must cause: exactly one token request at the provider.
const GOAL_TOKEN_REQUESTS: u64 = 1;

/// Authorizes instance `id` into a fresh SQLite file; returns the token's fingerprint.
async fn authorized_db(provider: &Provider, db: &Path, id: &str) -> String {
    let granary = open(db, false).await;
    provider.create_instance(&granary, id, "facade-bench").await;
    provider.authorize(&granary, id).await;
    fingerprint(&granary.access_token(id).await.unwrap())
}

async fn refresh_storm(provider: &Provider, work: &Path) -> Result<u64, String> {
    let db = work.join("storm.db");
    let before = authorized_db(provider, &db, "storm").await;
    let granary = open(&db, true).await;
    reset_stats(provider).await;
    let after = storm(granary.engine(), "storm", CALLERS).await?;
    if after == before {
        return Err("the callers got the expired token".into());
    }
    token_requests(provider).await
}

async fn cross_process_storm(provider: &Provider, work: &Path) -> Result<u64, String> {
    let db = work.join("cross.db");
    let before = authorized_db(provider, &db, "cross").await;
    reset_stats(provider).await;
    let start_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + Duration::from_millis(2_000);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .arg("worker")
                .arg(&db)
                .arg(start_at.as_millis().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start a worker: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut prints = Vec::new();
    let mut failed = None;
    for child in children {
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        eprint!("{text}");
        if !output.status.success() {
            failed = Some(format!("a worker failed ({})", output.status));
        }
        prints.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("worker ok fingerprint="))
                .map(str::to_string),
        );
    }
    if let Some(failed) = failed {
        return Err(failed);
    }
    if prints.len() != PROCESSES || prints.iter().any(|p| *p != prints[0]) || prints[0] == before {
        return Err(format!(
            "the workers disagree or kept the expired token: {prints:?}"
        ));
    }
    token_requests(provider).await
}

async fn worker(db: PathBuf, start_at: u64) -> ExitCode {
    let granary = open(&db, true).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if let Some(wait) = Duration::from_millis(start_at).checked_sub(now) {
        tokio::time::sleep(wait).await;
    }
    match storm(granary.engine(), "cross", CALLERS_PER_PROCESS).await {
        Ok(print) => {
            println!("worker ok fingerprint={print}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("worker failed: {error}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        let (Some(db), Some(start)) = (args.get(1), args.get(2).and_then(|s| s.parse().ok()))
        else {
            eprintln!("usage: facade_storm worker <db> <start-at-unix-ms>");
            return ExitCode::FAILURE;
        };
        return worker(PathBuf::from(db), start).await;
    }
    let work = match args.as_slice() {
        [flag, dir] if flag == "--work-dir" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: facade_storm --work-dir <dir>   (run by cargo xtask bench facade)");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let provider = Provider::from_env();
    let single = match refresh_storm(&provider, &work).await {
        Ok(n) => n,
        Err(error) => {
            eprintln!("refresh storm failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let cross = match cross_process_storm(&provider, &work).await {
        Ok(n) => n,
        Err(error) => {
            eprintln!("cross-process storm failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("bench refresh_storm: callers={CALLERS} token_requests={single}");
    println!(
        "bench cross_process_storm: processes={PROCESSES} callers={} token_requests={cross}",
        PROCESSES * CALLERS_PER_PROCESS
    );
    let mut missed = false;
    for (storm, requests) in [("refresh_storm", single), ("cross_process_storm", cross)] {
        if requests != GOAL_TOKEN_REQUESTS {
            println!(
                "GOAL MISSED {storm}: token_requests={requests}, the goal is exactly {GOAL_TOKEN_REQUESTS} (one refresh however many callers and processes ask)"
            );
            missed = true;
        }
    }
    if missed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
