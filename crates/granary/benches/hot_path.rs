//! The hot path: `access_token()` on a valid token, on 2 threads at once, against a bare
//! `RwLock<HashMap>` lookup measured in the same run.
//!
//! Group `facade-hot-path`: `access_token` and `rwlock_hashmap`. Each iteration is one call
//! on each of 2 threads, so the estimate is the time of one call while another thread calls
//! too.
//!
//! Criterion measures the two one after the other, seconds apart, and on a shared machine a
//! neighbour's burst can land on one of them only. So the figure that counts is measured
//! afterwards in pairs: [`ROUNDS`] rounds, each timing a batch of both back to back (taking
//! turns at going first); the ratio is the median of the per-round ratios, printed as
//! `granary-hot-path<TAB>granary ns<TAB>baseline ns<TAB>ratio<TAB>rounds`, which
//! `cargo xtask bench facade` reads and checks against its goal (within 3x).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use granary::flow::engine::{Field, Keyring, MasterKey};
use granary::store::{InstanceStatus, TokenRecord};
use granary::{Config, Granary, KeySource, NewInstance, StoreConfig};
use secrecy::{SecretBox, SecretString};

const THREADS: usize = 2;
/// Paired rounds after criterion's measurement.
const ROUNDS: usize = 41;
/// How long each side's batch of a round lasts, about.
const BATCH: Duration = Duration::from_millis(20);
const KEY: [u8; 32] = [42; 32];
const DOCUMENT: &str = r#"{"openapi": "3.0.3", "info": {"title": "Bench", "version": "1"}, "paths": {},
  "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {"authorizationCode": {
  "authorizationUrl": "https://provider.invalid/authorize", "tokenUrl": "https://provider.invalid/token",
  "scopes": {"read": "Read"}}}}}}}"#;

/// A granary over a memory store holding a valid token for instance `bench`.
fn granary(runtime: &tokio::runtime::Runtime) -> Granary {
    runtime.block_on(async {
        let config = Config::new(StoreConfig::Memory, "http://127.0.0.1:9".parse().unwrap())
            .with_key(KeySource::Bytes(SecretBox::new(Box::new(KEY))));
        let granary = Granary::open(config).await.unwrap();
        granary
            .import_integration("bench", DOCUMENT.as_bytes())
            .await
            .unwrap();
        let mut new = NewInstance::new("bench", "bench", "client");
        new.client_secret = Some(SecretString::from("secret"));
        new.scopes = vec!["read".into()];
        granary.create_instance(new).await.unwrap();
        let ring = Keyring::new(
            MasterKey::from_bytes(&SecretBox::new(Box::new(KEY))),
            vec![],
        );
        let now = granary.now();
        let record = TokenRecord {
            access_token: ring
                .seal("bench", Field::AccessToken, b"bench-access-token")
                .unwrap(),
            refresh_token: Some(
                ring.seal("bench", Field::RefreshToken, b"bench-refresh")
                    .unwrap(),
            ),
            token_type: "Bearer".into(),
            scope: Some("read".into()),
            expires_at: Some(now.saturating_add(Duration::from_secs(24 * 3600))),
            obtained_at: now,
            last_refresh: None,
            kept: Default::default(),
            version: 0,
        };
        granary
            .store()
            .put_token("bench", &record, None)
            .await
            .unwrap();
        let mut instance = granary
            .store()
            .get_instance("bench")
            .await
            .unwrap()
            .unwrap();
        instance.status = InstanceStatus::Authorized;
        granary.store().update_instance(&instance).await.unwrap();
        // The first call reads the store and fills the cache.
        assert_eq!(
            granary.access_token("bench").await.unwrap().secret(),
            "bench-access-token"
        );
        granary
    })
}

/// Runs `work(iters)` on `THREADS` threads at once and returns the wall time.
fn on_threads(iters: u64, work: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| work(iters));
        }
    });
    start.elapsed()
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .unwrap();
    let granary = granary(&runtime);
    let engine = granary.engine().clone();
    let handle = runtime.handle().clone();

    // The baseline: what a hand-written cache of tokens costs at least.
    let mut map: HashMap<String, Arc<String>> = HashMap::new();
    for i in 0..16 {
        map.insert(format!("instance-{i}"), Arc::new(format!("token-{i}")));
    }
    map.insert(
        "bench".to_string(),
        Arc::new("bench-access-token".to_string()),
    );
    let baseline = RwLock::new(map);

    let mut group = c.benchmark_group("facade-hot-path");
    let granary_side = |iters: u64| {
        on_threads(iters, |iters| {
            handle.block_on(async {
                for _ in 0..iters {
                    black_box(engine.access_token(black_box("bench")).await.ok());
                }
            });
        })
    };
    let baseline_side = |iters: u64| {
        on_threads(iters, |iters| {
            for _ in 0..iters {
                let map = baseline.read().unwrap_or_else(|e| e.into_inner());
                black_box(map.get(black_box("bench")).cloned());
            }
        })
    };
    group.bench_function("access_token", |b| b.iter_custom(granary_side));
    group.bench_function("rwlock_hashmap", |b| b.iter_custom(baseline_side));
    group.finish();
    paired(granary_side, baseline_side);
}

/// The paired measurement (see the module documentation): prints the medians of each side
/// per call and the median of the per-round ratios.
fn paired(granary: impl Fn(u64) -> Duration, baseline: impl Fn(u64) -> Duration) {
    // Batches of about BATCH each, sized from a first try of each side.
    let per_call = |side: &dyn Fn(u64) -> Duration| {
        let iters = 10_000;
        side(iters).as_secs_f64() / iters as f64
    };
    let batch = |seconds: f64| (BATCH.as_secs_f64() / seconds.max(1e-9)).clamp(100.0, 1e8) as u64;
    let (g_iters, b_iters) = (batch(per_call(&granary)), batch(per_call(&baseline)));
    let (mut g_ns, mut b_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (g, b) = if round % 2 == 0 {
            let g = granary(g_iters);
            (g, baseline(b_iters))
        } else {
            let b = baseline(b_iters);
            (granary(g_iters), b)
        };
        let g = g.as_nanos() as f64 / g_iters as f64;
        let b = b.as_nanos() as f64 / b_iters as f64;
        g_ns.push(g);
        b_ns.push(b);
        ratios.push(g / b.max(f64::MIN_POSITIVE));
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "granary-hot-path\t{:.2}\t{:.2}\t{:.3}\t{ROUNDS}",
        median(g_ns),
        median(b_ns),
        median(ratios)
    );
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
