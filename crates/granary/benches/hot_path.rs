//! The hot path: `access_token()` on a valid token, on 2 threads at once, against a bare
//! `RwLock<HashMap>` lookup measured in the same run.
//!
//! Group `facade-hot-path`: `access_token` and `rwlock_hashmap`. Each iteration is one call
//! on each of 2 threads, so the estimate is the time of one call while another thread calls
//! too. `cargo xtask bench facade` prints the ratio.

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
    group.bench_function("access_token", |b| {
        b.iter_custom(|iters| {
            on_threads(iters, |iters| {
                handle.block_on(async {
                    for _ in 0..iters {
                        black_box(engine.access_token(black_box("bench")).await.ok());
                    }
                });
            })
        });
    });
    group.bench_function("rwlock_hashmap", |b| {
        b.iter_custom(|iters| {
            on_threads(iters, |iters| {
                for _ in 0..iters {
                    let map = baseline.read().unwrap_or_else(|e| e.into_inner());
                    black_box(map.get(black_box("bench")).cloned());
                }
            })
        });
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
