//! The measuring harness shared by the `store` benches of the SQLite, sled and PostgreSQL
//! backends (behind the `bench` feature, which their dev-dependency on this crate enables):
//! the fixtures both sides use, and the paired, interleaved measurement that prints the
//! `granary-store-bench` lines `cargo xtask bench store` and `cargo xtask bench postgres`
//! read, over the three operations of [`store_against_raw`]. Each bench keeps only its store
//! and its raw [`Baseline`].

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::Criterion;
use granary_store::{
    ClientAuth, Instance, InstanceStatus, Integration, PendingAuthorization, Sealed, Store,
    Timestamp, TokenRecord,
};
use tokio::runtime::Runtime;

/// The clock of every operation.
pub const NOW: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);
/// The lease time-to-live.
pub const TTL: Duration = Duration::from_secs(30);

/// The token both sides write and read.
pub fn token() -> TokenRecord {
    TokenRecord {
        access_token: Sealed::new(vec![0xA5; 120]),
        refresh_token: Some(Sealed::new(vec![0x5A; 100])),
        token_type: "Bearer".to_string(),
        scope: Some("read write".to_string()),
        expires_at: Some(NOW),
        obtained_at: NOW,
        last_refresh: None,
        kept: Default::default(),
        version: 0,
    }
}

/// A pending authorization with the given state.
pub fn pending(state: &str) -> PendingAuthorization {
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

/// The integration and the instance `bench` the operations work on.
pub fn seed(runtime: &Runtime, store: &impl Store) {
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
            token_lifetime: None,
            connection: Default::default(),
            profile: None,
            status: InstanceStatus::Authorized,
            created: NOW,
            updated: NOW,
            version: 0,
        };
        store.create_instance(&instance).await.unwrap();
    });
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
pub fn paired(
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

/// How long `op` takes (its result is kept from the optimizer).
pub fn timed<T>(op: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    std::hint::black_box(op());
    start.elapsed()
}

/// The hand-written baseline of a backend: the same operations with the same durability,
/// straight on the backend's database.
pub trait Baseline {
    /// The version number kept with the token.
    type Version: Copy;
    /// What reading the token returns.
    type Token;
    /// Writes the token if its version is `expected`; returns the new version.
    fn put_token(&mut self, token: &TokenRecord, expected: Option<Self::Version>) -> Self::Version;
    /// Reads the token back.
    fn get_token(&self) -> Self::Token;
    /// Stores a pending authorization.
    fn put_pending(&mut self, pending: &PendingAuthorization);
    /// Takes a pending authorization away; whether it was there and not expired.
    fn take_pending(&mut self, state: &str) -> bool;
    /// Takes the lease of the instance `bench` and gives it back.
    fn acquire_release(&mut self);
}

/// The criterion settings of both benches: 20 samples of about 3 s after 1 s of warm-up.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// The runtime the store calls run on (2 workers, as on the 2-core machine).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Measures `store` against `raw` with [`paired`] in the groups `<prefix>-token-put-get`,
/// `<prefix>-pending-take` and `<prefix>-lease-acquire-release`. `store` must be seeded
/// with [`seed`].
pub fn store_against_raw(
    c: &mut Criterion,
    prefix: &str,
    runtime: &Runtime,
    store: &impl Store,
    raw: impl Baseline,
) {
    let raw = RefCell::new(raw);
    let token = token();

    let mut version = None;
    let mut raw_version = None;
    paired(
        c,
        &format!("{prefix}-token-put-get"),
        || {
            timed(|| {
                runtime.block_on(async {
                    version = Some(store.put_token("bench", &token, version).await.unwrap());
                    store.get_token("bench").await.unwrap().unwrap()
                })
            })
        },
        || {
            let mut raw = raw.borrow_mut();
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
        &format!("{prefix}-pending-take"),
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
            let mut raw = raw.borrow_mut();
            raw.put_pending(&pending(&state));
            timed(|| assert!(raw.take_pending(&state)))
        },
    );

    paired(
        c,
        &format!("{prefix}-lease-acquire-release"),
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
            let mut raw = raw.borrow_mut();
            timed(|| raw.acquire_release())
        },
    );
}
