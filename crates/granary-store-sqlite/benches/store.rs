//! SqliteStore against hand-written rusqlite doing the same operations with the same
//! durability settings (WAL, synchronous=FULL, BEGIN IMMEDIATE), in the same run, interleaved.
//!
//! Groups: `sqlite-token-put-get`, `sqlite-pending-take`, `sqlite-lease-acquire-release`,
//! each with `granary` and `raw`. `cargo xtask bench store` prints the ratios.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use granary_store::{
    ClientAuth, Instance, InstanceStatus, Integration, PendingAuthorization, Sealed, Store,
    Timestamp, TokenRecord,
};
use granary_store_sqlite::SqliteStore;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

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

fn seed(runtime: &tokio::runtime::Runtime, store: &SqliteStore) {
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

/// Every column of a token row.
type TokenRow = (
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    Option<String>,
    Option<i64>,
    i64,
    Option<String>,
    i64,
);

/// The raw baseline: its own connection to its own file, the same pragmas and schema.
struct Raw {
    connection: Connection,
}

impl Raw {
    fn open(path: &std::path::Path) -> Self {
        let connection = Connection::open(path).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        let _: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .unwrap();
        connection
            .pragma_update(None, "synchronous", "FULL")
            .unwrap();
        connection
            .execute_batch(
                "CREATE TABLE instances (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
                 INSERT INTO instances VALUES ('bench');
                 CREATE TABLE tokens (instance TEXT PRIMARY KEY NOT NULL, access_token BLOB NOT NULL,
                     refresh_token BLOB, token_type TEXT NOT NULL, scope TEXT, expires_at INTEGER,
                     obtained_at INTEGER NOT NULL, last_refresh TEXT, version INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE pendings (state TEXT PRIMARY KEY NOT NULL, instance TEXT NOT NULL,
                     pkce_verifier BLOB NOT NULL, redirect_uri TEXT NOT NULL, expected_issuer TEXT,
                     created INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE leases (instance TEXT PRIMARY KEY NOT NULL, holder TEXT NOT NULL,
                     expires INTEGER NOT NULL) WITHOUT ROWID;",
            )
            .unwrap();
        Self { connection }
    }

    fn put_token(&mut self, token: &TokenRecord, expected: Option<i64>) -> i64 {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        assert!(
            tx.prepare_cached("SELECT 1 FROM instances WHERE id = ?1")
                .unwrap()
                .exists(["bench"])
                .unwrap()
        );
        let current: Option<i64> = tx
            .prepare_cached("SELECT version FROM tokens WHERE instance = ?1")
            .unwrap()
            .query_row(["bench"], |row| row.get(0))
            .optional()
            .unwrap();
        assert_eq!(current, expected);
        let version = current.map_or(1, |v| v + 1);
        tx.prepare_cached(
            "INSERT OR REPLACE INTO tokens (instance, access_token, refresh_token, token_type, scope, \
             expires_at, obtained_at, last_refresh, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .unwrap()
        .execute(params![
            "bench",
            token.access_token.as_bytes(),
            token.refresh_token.as_ref().map(|s| s.as_bytes()),
            token.token_type,
            token.scope,
            token.expires_at.map(Timestamp::as_unix_millis),
            token.obtained_at.as_unix_millis(),
            Option::<String>::None,
            version,
        ])
        .unwrap();
        tx.commit().unwrap();
        version
    }

    fn get_token(&self) -> TokenRow {
        self.connection
            .prepare_cached(
                "SELECT access_token, refresh_token, token_type, scope, expires_at, obtained_at, last_refresh, \
                 version FROM tokens WHERE instance = ?1",
            )
            .unwrap()
            .query_row(["bench"], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })
            .unwrap()
    }

    fn put_pending(&mut self, pending: &PendingAuthorization) {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.prepare_cached(
            "INSERT INTO pendings (state, instance, pkce_verifier, redirect_uri, expected_issuer, created, \
             expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .unwrap()
        .execute(params![
            pending.state,
            pending.instance,
            pending.pkce_verifier.as_bytes(),
            pending.redirect_uri,
            pending.expected_issuer,
            pending.created.as_unix_millis(),
            pending.expires.as_unix_millis()
        ])
        .unwrap();
        tx.commit().unwrap();
    }

    fn take_pending(&mut self, state: &str) -> bool {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let expires: Option<(String, Vec<u8>, i64)> = tx
            .prepare_cached(
                "DELETE FROM pendings WHERE state = ?1 RETURNING state, pkce_verifier, expires",
            )
            .unwrap()
            .query_row([state], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .unwrap();
        tx.commit().unwrap();
        expires.is_some_and(|(_, _, e)| e > NOW.as_unix_millis())
    }

    fn acquire_release(&mut self) {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        assert!(
            tx.prepare_cached("SELECT 1 FROM instances WHERE id = ?1")
                .unwrap()
                .exists(["bench"])
                .unwrap()
        );
        let current: Option<(String, i64)> = tx
            .prepare_cached("SELECT holder, expires FROM leases WHERE instance = ?1")
            .unwrap()
            .query_row(["bench"], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .unwrap();
        assert!(
            current
                .is_none_or(|(holder, expires)| holder == "me" || expires <= NOW.as_unix_millis())
        );
        tx.prepare_cached(
            "INSERT OR REPLACE INTO leases (instance, holder, expires) VALUES (?1, ?2, ?3)",
        )
        .unwrap()
        .execute(params![
            "bench",
            "me",
            NOW.saturating_add(TTL).as_unix_millis()
        ])
        .unwrap();
        tx.commit().unwrap();
        let released = self
            .connection
            .prepare_cached("DELETE FROM leases WHERE instance = ?1 AND holder = ?2")
            .unwrap()
            .execute(["bench", "me"])
            .unwrap();
        assert_eq!(released, 1);
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
        .block_on(SqliteStore::open(dir.path().join("granary.db")))
        .unwrap();
    seed(&runtime, &store);
    let raw = RefCell::new(Raw::open(&dir.path().join("raw.db")));
    let token = token();

    let mut version = None;
    let mut raw_version = None;
    paired(
        c,
        "sqlite-token-put-get",
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
        "sqlite-pending-take",
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
        "sqlite-lease-acquire-release",
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

criterion_group! {
    name = store;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(store);
