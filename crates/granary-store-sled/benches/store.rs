//! SledStore against hand-written sled doing the same operations with the same durability
//! (a flush and an fsync of sled's log before each write returns), in the same run,
//! interleaved.
//!
//! Groups: `sled-token-put-get`, `sled-pending-take`, `sled-lease-acquire-release`, each
//! with `granary` and `raw`. `cargo xtask bench store` prints the ratios.

use std::cell::RefCell;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use granary_store::{Lease, PendingAuthorization, Store, TokenRecord};
use granary_store_sled::SledStore;

#[path = "../../granary-store-testkit/benches_support/paired.rs"]
mod paired;

use paired::{NOW, TTL, paired, pending, seed, timed, token};

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
