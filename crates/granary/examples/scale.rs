//! The runner of `cargo xtask bench scale`: a SQLite store with 1,000 and then 100,000
//! authorized instances whose tokens expire at spread times, the same 100 of them due; for
//! each size refresher rounds (`Engine::run_refresh_round`) against a token endpoint on
//! 127.0.0.1 (in this process) and first pages of the instance listing
//! (`Engine::list_instances_page`). Prints, per size,
//! `bench scale: store=sqlite instances=N due=100 round_ms=X page_ms=Y refreshed=100 ...`,
//! then the line of the issue with the ratios of 100,000 against 1,000 and the resident
//! memory; exits non-zero (with a `GOAL MISSED` line) when a goal is missed.
//!
//! The store is filled through the `Store` trait with sealed records (the engine's own
//! keyring seals each token for its instance), `FILL_CONCURRENCY` writes in flight; the
//! fill is not timed. Each figure is the median of `ROUNDS` measurements after one warm-up;
//! between rounds the 100 due tokens are written back as due (not timed).
//!
//! Usage: `scale [--work-dir DIR] [--sizes 1000,100000] [--postgres URL]` (the work
//! directory defaults to a temporary folder under /dev/shm when it exists, so that filling
//! does not wait on fsync). With `--postgres` (built with the `postgres` feature) the same
//! runs on PostgreSQL too, each size in a schema of its own, and prints `store=postgres`
//! lines with the same goals.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use granary::Clock as _;
use granary::flow::engine::{
    Engine, Field, Keyring, MasterKey, NewInstance, RefresherConfig, SystemClock,
};
use granary::sqlite::SqliteStore;
use granary::store::{Instance, InstanceFilter, InstanceStatus, Store, Timestamp, TokenRecord};
use secrecy::SecretBox;
use url::Url;

/// Instances whose token is due in every round, at every size.
const DUE: usize = 100;
/// Store writes in flight while filling.
const FILL_CONCURRENCY: usize = 64;
/// Timed measurements per figure (the median is printed).
const ROUNDS: usize = 3;
/// The page size of the listing.
const PAGE: usize = 100;
/// Goals: the cost at 100,000 within this many times the cost at 1,000.
const RATIO_GOAL: f64 = 2.0;
/// Goal: resident memory at 100,000 instances.
const RSS_GOAL_MB: f64 = 200.0;
const KEY: [u8; 32] = [42; 32];

fn keyring() -> Keyring {
    Keyring::new(
        MasterKey::from_bytes(&SecretBox::new(Box::new(KEY))),
        vec![],
    )
}

/// A token endpoint on 127.0.0.1 that answers every request with a fresh token; counts the
/// requests.
fn token_endpoint() -> (Url, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = listener.local_addr().expect("its address").port();
    let requests = Arc::new(AtomicU64::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || answer(stream, &counted));
        }
    });
    let url = Url::parse(&format!("http://127.0.0.1:{port}/token")).expect("a URL");
    (url, requests)
}

fn answer(mut stream: TcpStream, requests: &AtomicU64) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buffer.len() >= end + 4 + length {
            break;
        }
    }
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let body = format!(
        r#"{{"access_token":"access-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"refresh-{n}"}}"#
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

fn id(i: usize) -> String {
    format!("inst-{i:06}")
}

/// The token of instance `i`: due now (its refresh time passed) for the first [`DUE`], else
/// expiring hours to days ahead, spread.
fn token(keyring: &Keyring, i: usize, now: Timestamp) -> TokenRecord {
    let id = id(i);
    let (obtained, expires) = if i < DUE {
        (
            now.saturating_sub(Duration::from_secs(3_590)),
            now.saturating_add(Duration::from_secs(10)),
        )
    } else {
        let spread = u64::try_from(i).unwrap_or(0).wrapping_mul(7_919) % (3 * 86_400);
        (
            now.saturating_sub(Duration::from_secs(60)),
            now.saturating_add(Duration::from_secs(7_200 + spread)),
        )
    };
    TokenRecord {
        access_token: keyring
            .seal(&id, Field::AccessToken, format!("access-{id}").as_bytes())
            .expect("sealed"),
        refresh_token: Some(
            keyring
                .seal(&id, Field::RefreshToken, format!("refresh-{id}").as_bytes())
                .expect("sealed"),
        ),
        token_type: "Bearer".to_string(),
        scope: Some("read".to_string()),
        expires_at: Some(expires),
        obtained_at: obtained,
        last_refresh: None,
        kept: Default::default(),
        version: 0,
    }
}

/// Where a run keeps its stores.
#[derive(Clone)]
enum Backend {
    Sqlite(PathBuf),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// A new, empty store for `size` instances.
    async fn open(&self, size: usize) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(dir) => {
                let path = dir.join(format!("scale-{size}.db"));
                let _ = std::fs::remove_file(&path);
                Arc::new(SqliteStore::open(&path).await.expect("the store opens"))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                use granary::postgres::{PostgresOptions, PostgresStore};
                let schema = format!("scale_{size}_{}", std::process::id());
                let options = PostgresOptions::default()
                    .with_schema(schema)
                    .with_max_connections(16);
                Arc::new(
                    PostgresStore::open_with(url, options)
                        .await
                        .expect("the PostgreSQL store opens"),
                )
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres(_) => {
                panic!("--postgres needs the runner built with `--features postgres`")
            }
        }
    }
}

/// A store of `size` authorized instances with tokens, and an engine over it.
async fn filled(backend: &Backend, size: usize, token_url: &Url) -> (Arc<dyn Store>, Engine) {
    let store = backend.open(size).await;
    let engine = Engine::builder(
        store.clone(),
        keyring(),
        Url::parse("https://granary.test").expect("a URL"),
    )
    .build()
    .expect("an engine");
    let document = serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "Scale API", "version": "1"},
        "paths": {},
        "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {
            "authorizationCode": {
                "authorizationUrl": "http://127.0.0.1:1/authorize",
                "tokenUrl": token_url.as_str(),
                "scopes": {"read": "Read"}
            }
        }}}}
    });
    engine
        .import_integration("scale", document.to_string().as_bytes())
        .await
        .expect("the integration imports");
    // The template instance: the engine's own record of a public client, copied under
    // every id (nothing in it is sealed for its id).
    let mut new = NewInstance::new("template", "scale", "client-1");
    new.scopes = vec!["read".into()];
    engine
        .create_instance(new)
        .await
        .expect("the template instance");
    let template: Instance = store
        .get_instance("template")
        .await
        .expect("read")
        .expect("the template");
    store.delete_instance("template").await.expect("deleted");

    let started = Instant::now();
    let now = SystemClock.now();
    let keyring = Arc::new(keyring());
    let mut next = 0;
    while next < size {
        let mut tasks = tokio::task::JoinSet::new();
        for i in next..(next + FILL_CONCURRENCY * 16).min(size) {
            let store = store.clone();
            let keyring = keyring.clone();
            let mut instance = template.clone();
            tasks.spawn(async move {
                instance.id = id(i);
                instance.status = InstanceStatus::Authorized;
                store
                    .create_instance(&instance)
                    .await
                    .expect("create_instance");
                store
                    .put_token(&instance.id, &token(&keyring, i, now), None)
                    .await
                    .expect("put_token");
            });
            if tasks.len() >= FILL_CONCURRENCY {
                tasks.join_next().await;
            }
        }
        next = (next + FILL_CONCURRENCY * 16).min(size);
        while tasks.join_next().await.is_some() {}
    }
    eprintln!(
        "scale: {} filled with {size} instances in {:.1} s (not timed)",
        backend.name(),
        started.elapsed().as_secs_f64()
    );
    (store, engine)
}

/// Writes the due tokens back as due, and drops them from the engine's memory.
async fn make_due_again(store: &Arc<dyn Store>, engine: &Engine) {
    let keyring = keyring();
    let now = SystemClock.now();
    for i in 0..DUE {
        let id = id(i);
        let version = store
            .get_token(&id)
            .await
            .expect("get_token")
            .map(|t| t.version);
        store
            .put_token(&id, &token(&keyring, i, now), version)
            .await
            .expect("put_token");
        engine.forget(&id);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Measured {
    store: &'static str,
    size: usize,
    round_ms: f64,
    page_ms: f64,
    refreshed: usize,
    requests: u64,
}

async fn measure(
    backend: &Backend,
    size: usize,
    token_url: &Url,
    requests: &AtomicU64,
) -> Measured {
    let (store, engine) = filled(backend, size, token_url).await;
    let config = RefresherConfig {
        jitter: Duration::ZERO,
        concurrency: 8,
        concurrency_per_host: 8,
        ..RefresherConfig::default()
    };
    let mut rounds = Vec::new();
    let mut pages = Vec::new();
    let mut refreshed = usize::MAX;
    let before = requests.load(Ordering::SeqCst);
    for n in 0..=ROUNDS {
        make_due_again(&store, &engine).await;
        let started = Instant::now();
        let round = engine.run_refresh_round(&config).await;
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let page = engine
            .list_instances_page(None, PAGE, &InstanceFilter::all())
            .await
            .expect("a page of instances");
        let page_elapsed = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(page.instances.len(), PAGE, "a full first page");
        if n > 0 {
            rounds.push(elapsed);
            pages.push(page_elapsed);
            refreshed = refreshed.min(round.refreshed);
        }
        if round.due != DUE || round.refreshed != DUE {
            eprintln!("scale: {size} instances, round {n}: {round:?}");
        }
    }
    let requests = (requests.load(Ordering::SeqCst) - before) / (ROUNDS as u64 + 1);
    engine.shutdown(Duration::from_secs(5)).await;
    Measured {
        store: backend.name(),
        size,
        round_ms: median(rounds),
        page_ms: median(pages),
        refreshed,
        requests,
    }
}

/// The resident memory of this process, in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = value("--sizes")
        .unwrap_or_else(|| "1000,100000".to_string())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("--sizes takes numbers, e.g. 1000,100000")
        })
        .collect();
    let temp = match value("--work-dir") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("the work directory");
            None
        }
        None => Some(
            tempfile::Builder::new()
                .prefix("granary-scale-")
                .tempdir_in(if Path::new("/dev/shm").is_dir() {
                    PathBuf::from("/dev/shm")
                } else {
                    std::env::temp_dir()
                })
                .expect("a temporary folder"),
        ),
    };
    let dir = match (&temp, value("--work-dir")) {
        (Some(temp), _) => temp.path().to_path_buf(),
        (None, Some(dir)) => PathBuf::from(dir),
        (None, None) => unreachable!(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (token_url, requests) = token_endpoint();
    let mut backends = vec![Backend::Sqlite(dir.clone())];
    if let Some(url) = value("--postgres") {
        backends.push(Backend::Postgres(url));
    }
    let mut missed = Vec::new();
    for backend in &backends {
        let mut results = Vec::new();
        let mut rss = f64::NAN;
        for &size in &sizes {
            let measured = runtime.block_on(measure(backend, size, &token_url, &requests));
            rss = rss_mb();
            println!(
                "bench scale: store={} instances={} due={DUE} round_ms={:.1} page_ms={:.2} refreshed={} token_requests={} rss_mb={rss:.0}",
                measured.store,
                measured.size,
                measured.round_ms,
                measured.page_ms,
                measured.refreshed,
                measured.requests
            );
            results.push(measured);
        }
        judge(&results, rss, &mut missed);
    }
    if missed.is_empty() {
        println!("bench scale: goals met");
        ExitCode::SUCCESS
    } else {
        for line in &missed {
            println!("GOAL MISSED {line}");
        }
        ExitCode::FAILURE
    }
}

/// Prints the line of the ratios of one store and adds its missed goals to `missed`.
fn judge(results: &[Measured], rss: f64, missed: &mut Vec<String>) {
    for m in results {
        if m.refreshed != DUE {
            missed.push(format!(
                "{}: {} instances: the round refreshed {} of the {DUE} due",
                m.store, m.size, m.refreshed
            ));
        }
    }
    let [small, .., large] = results else {
        return;
    };
    let store = large.store;
    let round_ratio = large.round_ms / small.round_ms;
    let list_ratio = large.page_ms / small.page_ms;
    println!(
        "bench scale: store={store} instances={} due={DUE} round_ms={:.1} round_ms_small={:.1} round_ratio={round_ratio:.2} list_page_ms={:.2} list_ratio={list_ratio:.2} rss_mb={rss:.0}",
        large.size, large.round_ms, small.round_ms, large.page_ms
    );
    println!(
        "bench scale: store={store} goal round_ratio <= {RATIO_GOAL} and list_ratio <= {RATIO_GOAL} ({} against {} instances), rss_mb < {RSS_GOAL_MB}",
        large.size, small.size
    );
    if round_ratio.is_nan() || round_ratio > RATIO_GOAL {
        missed.push(format!(
            "{store}: round_ratio {round_ratio:.2}: a round at {} instances costs more than {RATIO_GOAL}x one at {}",
            large.size, small.size
        ));
    }
    if list_ratio.is_nan() || list_ratio > RATIO_GOAL {
        missed.push(format!(
            "{store}: list_ratio {list_ratio:.2}: a page at {} instances costs more than {RATIO_GOAL}x one at {}",
            large.size, small.size
        ));
    }
    if rss.is_nan() || rss >= RSS_GOAL_MB {
        missed.push(format!(
            "{store}: rss_mb {rss:.0} at {} instances, the goal is under {RSS_GOAL_MB}",
            large.size
        ));
    }
}
