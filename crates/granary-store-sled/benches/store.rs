//! SledStore against hand-written sled doing the same operations with the same durability
//! (a flush and an fsync of sled's log before each write returns), in the same run,
//! interleaved.
//!
//! Groups: `sled-token-put-get`, `sled-pending-take`, `sled-lease-acquire-release`, each
//! with `granary` and `raw`. `cargo xtask bench store` prints the ratios.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use granary_store::Lease;
use granary_store::{
    ClientAuth, Instance, InstanceStatus, Integration, PendingAuthorization, Sealed, Store,
    Timestamp, TokenRecord,
};
use granary_store_sled::SledStore;

const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
const TTL: Duration = Duration::from_secs(30);

fn token() -> TokenRecord {
    TokenRecord {
        access_token: Sealed::new(vec![0xA5; 120]),
        refresh_token: Some(Sealed::new(vec![0x5A; 100])),
        token_type: "Bearer".to_string(),
        scope: Some("read write".to_string()),
        expires_at: Some(NOW),
        obtained_at: NOW,
        last_refresh: None,
        version: 0,
    }
}

fn pending(state: &str) -> PendingAuthorization {
    PendingAuthorization {
        state: state.to_string(),
        instance: "bench".to_string(),
        pkce_verifier: Sealed::new(vec![7; 60]),
        redirect_uri: "http://127.0.0.1:8080/admin/oauth/".to_string(),
        expected_issuer: Some("https://issuer.example".to_string()),
        created: NOW,
        expires: NOW.saturating_add(Duration::from_secs(600)),
    }
}

fn seed(runtime: &tokio::runtime::Runtime, store: &SledStore) {
    runtime.block_on(async {
        let integration = Integration {
            name: "api".to_string(),
            source_digest: "sha256:0".to_string(),
            flows: serde_json::json!({}),
            created: NOW,
        };
        store.put_integration(&integration).await.unwrap();
        let instance = Instance {
            id: "bench".to_string(),
            integration: "api".to_string(),
            scheme: "oauth".to_string(),
            client_id: "client".to_string(),
            client_secret: Some(Sealed::new(vec![1; 40])),
            scopes: vec!["read".to_string()],
            redirect_uri: "http://127.0.0.1:8080/admin/oauth/".to_string(),
            authorization_url: None,
            token_url: None,
            extra_authorization_params: Vec::new(),
            extra_token_params: Vec::new(),
            extra_token_headers: Vec::new(),
            client_auth: ClientAuth::ClientSecretBasic,
            status: InstanceStatus::Authorized,
            created: NOW,
            updated: NOW,
            version: 0,
        };
        store.create_instance(&instance).await.unwrap();
    });
}

/// The raw baseline: its own folder, one tree per record kind, records as JSON, a flush
/// after each write.
struct Raw {
    db: sled::Db,
    log: std::fs::File,
    instances: sled::Tree,
    tokens: sled::Tree,
    pendings: sled::Tree,
    leases: sled::Tree,
}

impl Raw {
    fn open(path: &std::path::Path) -> Self {
        let db = sled::open(path).unwrap();
        let tree = |name: &str| db.open_tree(name).unwrap();
        let raw = Self {
            log: std::fs::File::open(path.join("db")).unwrap(),
            instances: tree("instances"),
            tokens: tree("tokens"),
            pendings: tree("pendings"),
            leases: tree("leases"),
            db,
        };
        raw.instances.insert("bench", b"{}".as_slice()).unwrap();
        raw
    }

    /// The same durability as SledStore: flush, then fdatasync the log file.
    fn sync(&self) {
        self.db.flush().unwrap();
        self.log.sync_data().unwrap();
    }

    fn put_token(&self, token: &TokenRecord, expected: Option<u64>) -> u64 {
        assert!(self.instances.contains_key("bench").unwrap());
        let current = self
            .tokens
            .get("bench")
            .unwrap()
            .map(|raw| serde_json::from_slice::<TokenRecord>(&raw).unwrap().version);
        assert_eq!(current, expected);
        let mut token = token.clone();
        token.version = current.map_or(1, |v| v + 1);
        self.tokens
            .insert("bench", serde_json::to_vec(&token).unwrap())
            .unwrap();
        self.sync();
        token.version
    }

    fn get_token(&self) -> TokenRecord {
        serde_json::from_slice(&self.tokens.get("bench").unwrap().unwrap()).unwrap()
    }

    fn put_pending(&self, pending: &PendingAuthorization) {
        assert!(!self.pendings.contains_key(&pending.state).unwrap());
        assert!(self.instances.contains_key("bench").unwrap());
        self.pendings
            .insert(pending.state.as_str(), serde_json::to_vec(pending).unwrap())
            .unwrap();
        self.sync();
    }

    fn take_pending(&self, state: &str) -> bool {
        let raw = self.pendings.remove(state).unwrap();
        self.sync();
        raw.map(|raw| serde_json::from_slice::<PendingAuthorization>(&raw).unwrap())
            .is_some_and(|p| !p.is_expired(NOW))
    }

    fn acquire_release(&self) {
        assert!(self.instances.contains_key("bench").unwrap());
        let current: Option<Lease> = self
            .leases
            .get("bench")
            .unwrap()
            .map(|raw| serde_json::from_slice(&raw).unwrap());
        assert!(current.is_none_or(|lease| lease.can_be_taken_by("me", NOW)));
        let lease = Lease {
            instance: "bench".to_string(),
            holder: "me".to_string(),
            expires: NOW.saturating_add(TTL),
        };
        self.leases
            .insert("bench", serde_json::to_vec(&lease).unwrap())
            .unwrap();
        self.sync();
        let current: Option<Lease> = self
            .leases
            .get("bench")
            .unwrap()
            .map(|raw| serde_json::from_slice(&raw).unwrap());
        assert!(current.is_some_and(|lease| lease.holder == "me"));
        self.leases.remove("bench").unwrap();
        self.sync();
    }
}

/// Measures `granary` and `raw` interleaved: one call of each per iteration, each timing
/// itself, taking turns at going first, so that both see the same disk. fsync latency on a
/// shared machine comes in bursts (a few calls take 10-50 ms while the neighbours flush),
/// so each criterion sample reports its **median** iteration (times the iteration count)
/// rather than the sum: a burst that hits one side only would otherwise decide the ratio.
///
/// Slow phases of the disk last seconds, longer than a criterion sample, and criterion
/// measures `granary` and `raw` one after the other; so the figures that count are taken
/// from the same interleaved iterations: every (granary, raw) pair of both benches goes
/// into one list, and the line `granary-store-bench<TAB>group<TAB>granary ns<TAB>raw
/// ns<TAB>pairs` reports the median of each side over it. `cargo xtask bench store` reads
/// these lines.
fn paired(
    c: &mut Criterion,
    group: &str,
    granary: impl FnMut() -> Duration,
    raw: impl FnMut() -> Duration,
) {
    let ops = RefCell::new((granary, raw));
    let pairs = RefCell::new(Vec::<(Duration, Duration)>::new());
    let mut g = c.benchmark_group(group);
    for (name, measure_raw) in [("granary", false), ("raw", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut ops = ops.borrow_mut();
                let mut times = Vec::with_capacity(usize::try_from(iters).unwrap_or(0));
                for i in 0..iters {
                    let (first, second) = if i % 2 == 0 {
                        let g = (ops.0)();
                        (g, (ops.1)())
                    } else {
                        let r = (ops.1)();
                        ((ops.0)(), r)
                    };
                    times.push(if measure_raw { second } else { first });
                    pairs.borrow_mut().push((first, second));
                }
                times.sort();
                let median = times.get(times.len() / 2).copied().unwrap_or_default();
                median * u32::try_from(iters).unwrap_or(u32::MAX)
            })
        });
    }
    g.finish();
    let pairs = pairs.into_inner();
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times.get(times.len() / 2).copied().unwrap_or_default()
    };
    let granary = median(pairs.iter().map(|p| p.0).collect());
    let raw = median(pairs.iter().map(|p| p.1).collect());
    println!(
        "granary-store-bench\t{group}\t{}\t{}\t{}",
        granary.as_nanos(),
        raw.as_nanos(),
        pairs.len()
    );
}

fn timed<T>(op: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    std::hint::black_box(op());
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(SledStore::open(dir.path().join("granary.sled")))
        .unwrap();
    seed(&runtime, &store);
    let raw = RefCell::new(Raw::open(&dir.path().join("raw.sled")));
    let token = token();

    let mut version = None;
    let mut raw_version = None;
    paired(
        c,
        "sled-token-put-get",
        || {
            timed(|| {
                runtime.block_on(async {
                    version = Some(store.put_token("bench", &token, version).await.unwrap());
                    store.get_token("bench").await.unwrap().unwrap()
                })
            })
        },
        || {
            let raw = raw.borrow_mut();
            timed(|| {
                raw_version = Some(raw.put_token(&token, raw_version));
                raw.get_token()
            })
        },
    );

    let mut n = 0u64;
    let mut raw_n = 0u64;
    paired(
        c,
        "sled-pending-take",
        || {
            n += 1;
            let state = format!("state-{n}");
            runtime
                .block_on(store.put_pending(&pending(&state)))
                .unwrap();
            timed(|| {
                runtime
                    .block_on(store.take_pending(&state, NOW))
                    .unwrap()
                    .unwrap()
            })
        },
        || {
            raw_n += 1;
            let state = format!("raw-state-{raw_n}");
            let raw = raw.borrow_mut();
            raw.put_pending(&pending(&state));
            timed(|| assert!(raw.take_pending(&state)))
        },
    );

    paired(
        c,
        "sled-lease-acquire-release",
        || {
            timed(|| {
                runtime.block_on(async {
                    assert!(
                        store
                            .try_acquire_lease("bench", "me", NOW, TTL)
                            .await
                            .unwrap()
                    );
                    assert!(store.release_lease("bench", "me").await.unwrap());
                })
            })
        },
        || {
            let raw = raw.borrow_mut();
            timed(|| raw.acquire_release())
        },
    );
}

criterion_group! {
    name = store;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(store);
