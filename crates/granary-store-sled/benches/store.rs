//! SledStore against hand-written sled doing the same operations with the same durability
//! (a flush and an fsync of sled's log before each write returns), in the same run,
//! interleaved.
//!
//! Groups: `sled-token-put-get`, `sled-pending-take`, `sled-lease-acquire-release`, each
//! with `granary` and `raw`. `cargo xtask bench store` prints the ratios.

use criterion::{Criterion, criterion_group, criterion_main};
use granary_store::{Lease, PendingAuthorization, TokenRecord};
use granary_store_sled::SledStore;

use granary_store_testkit::bench::{Baseline, NOW, TTL, runtime, seed, store_against_raw};

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
}

impl Baseline for Raw {
    type Version = u64;
    type Token = TokenRecord;

    fn put_token(&mut self, token: &TokenRecord, expected: Option<u64>) -> u64 {
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

    fn put_pending(&mut self, pending: &PendingAuthorization) {
        assert!(!self.pendings.contains_key(&pending.state).unwrap());
        assert!(self.instances.contains_key("bench").unwrap());
        self.pendings
            .insert(pending.state.as_str(), serde_json::to_vec(pending).unwrap())
            .unwrap();
        self.sync();
    }

    fn take_pending(&mut self, state: &str) -> bool {
        let raw = self.pendings.remove(state).unwrap();
        self.sync();
        raw.map(|raw| serde_json::from_slice::<PendingAuthorization>(&raw).unwrap())
            .is_some_and(|p| !p.is_expired(NOW))
    }

    fn acquire_release(&mut self) {
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
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(SledStore::open(dir.path().join("granary.sled")))
        .unwrap();
    seed(&runtime, &store);
    let raw = Raw::open(&dir.path().join("raw.sled"));
    store_against_raw(c, "sled", &runtime, &store, raw);
}

criterion_group! {
    name = store;
    config = granary_store_testkit::bench::config();
    targets = benches
}
criterion_main!(store);
