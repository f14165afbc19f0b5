//! SqliteStore against hand-written rusqlite doing the same operations with the same
//! durability settings (WAL, synchronous=FULL, BEGIN IMMEDIATE), in the same run, interleaved.
//!
//! Groups: `sqlite-token-put-get`, `sqlite-pending-take`, `sqlite-lease-acquire-release`,
//! each with `granary` and `raw`. `cargo xtask bench store` prints the ratios.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use granary_store::{PendingAuthorization, Timestamp, TokenRecord};
use granary_store_sqlite::SqliteStore;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use granary_store_testkit::bench::{Baseline, NOW, TTL, runtime, seed, store_against_raw};

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
}

impl Baseline for Raw {
    type Version = i64;
    type Token = TokenRow;

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

fn benches(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(SqliteStore::open(dir.path().join("granary.db")))
        .unwrap();
    seed(&runtime, &store);
    let raw = Raw::open(&dir.path().join("raw.db"));
    store_against_raw(c, "sqlite", &runtime, &store, raw);
}

criterion_group! {
    name = store;
    config = granary_store_testkit::bench::config();
    targets = benches
}
criterion_main!(store);
