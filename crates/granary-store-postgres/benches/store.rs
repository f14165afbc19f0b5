//! PostgresStore against raw tokio-postgres running the very same statements
//! ([`granary_store_postgres::sql`]), prepared once, on one connection, in the same run,
//! interleaved, on the server named by `GRANARY_TEST_POSTGRES` (a database of its own per
//! run, dropped at the end). `cargo xtask bench postgres` starts a throwaway cluster, runs
//! this and prints the ratios.
//!
//! Groups: `postgres-token-put-get`, `postgres-pending-take`,
//! `postgres-lease-acquire-release`, each with `granary` and `raw`.

use std::process::ExitCode;

use granary_store::{PendingAuthorization, TokenRecord};
use granary_store_postgres::{PostgresOptions, PostgresStore, sql};
use tokio::runtime::Handle;
use tokio_postgres::{Client, NoTls, Statement};

use granary_store_testkit::bench::{Baseline, NOW, TTL, config, runtime, seed, store_against_raw};

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
    Option<String>,
);

/// The raw baseline: one connection, the statements prepared once, its own schema (made and
/// seeded like the store's).
struct Raw {
    client: Client,
    handle: Handle,
    put_new: Statement,
    put_cas: Statement,
    get: Statement,
    put_pending: Statement,
    take_pending: Statement,
    acquire: Statement,
    release: Statement,
}

impl Raw {
    fn connect(handle: Handle, url: &str) -> Self {
        handle.clone().block_on(async move {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
            tokio::spawn(connection);
            let prepare = |sql: &'static str| client.prepare(sql);
            let put_new = prepare(sql::PUT_TOKEN_NEW).await.unwrap();
            let put_cas = prepare(sql::PUT_TOKEN_CAS).await.unwrap();
            let get = prepare(sql::GET_TOKEN).await.unwrap();
            let put_pending = prepare(sql::PUT_PENDING).await.unwrap();
            let take_pending = prepare(sql::TAKE_PENDING).await.unwrap();
            let acquire = prepare(sql::TRY_ACQUIRE_LEASE).await.unwrap();
            let release = prepare(sql::RELEASE_LEASE).await.unwrap();
            Self {
                client,
                handle,
                put_new,
                put_cas,
                get,
                put_pending,
                take_pending,
                acquire,
                release,
            }
        })
    }
}

impl Baseline for Raw {
    type Version = i64;
    type Token = TokenRow;

    fn put_token(&mut self, token: &TokenRecord, expected: Option<i64>) -> i64 {
        let access = token.access_token.as_bytes().to_vec();
        let refresh = token.refresh_token.as_ref().map(|s| s.as_bytes().to_vec());
        let expires = token.expires_at.map(|t| t.as_unix_millis());
        let obtained = token.obtained_at.as_unix_millis();
        let last = token
            .last_refresh
            .as_ref()
            .map(|l| serde_json::to_string(l).unwrap());
        let kept = (!token.kept.is_empty()).then(|| serde_json::to_string(&token.kept).unwrap());
        self.handle.block_on(async {
            let rows = match expected {
                None => {
                    self.client
                        .query(
                            &self.put_new,
                            &[
                                &"bench",
                                &access,
                                &refresh,
                                &token.token_type,
                                &token.scope,
                                &expires,
                                &obtained,
                                &last,
                                &kept,
                            ],
                        )
                        .await
                }
                Some(expected) => {
                    self.client
                        .query(
                            &self.put_cas,
                            &[
                                &"bench",
                                &access,
                                &refresh,
                                &token.token_type,
                                &token.scope,
                                &expires,
                                &obtained,
                                &last,
                                &expected,
                                &kept,
                            ],
                        )
                        .await
                }
            }
            .unwrap();
            rows[0].get(0)
        })
    }

    fn get_token(&self) -> TokenRow {
        self.handle.block_on(async {
            let row = self.client.query_one(&self.get, &[&"bench"]).await.unwrap();
            (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
                row.get(6),
                row.get(7),
                row.get(8),
            )
        })
    }

    fn put_pending(&mut self, pending: &PendingAuthorization) {
        self.handle.block_on(async {
            self.client
                .execute(
                    &self.put_pending,
                    &[
                        &pending.state,
                        &pending.instance,
                        &pending.pkce_verifier.as_bytes(),
                        &pending.redirect_uri,
                        &pending.expected_issuer,
                        &pending.created.as_unix_millis(),
                        &pending.expires.as_unix_millis(),
                    ],
                )
                .await
                .unwrap();
        });
    }

    fn take_pending(&mut self, state: &str) -> bool {
        self.handle.block_on(async {
            let rows = self
                .client
                .query(&self.take_pending, &[&state])
                .await
                .unwrap();
            rows.first()
                .is_some_and(|row| row.get::<_, i64>(6) > NOW.as_unix_millis())
        })
    }

    fn acquire_release(&mut self) {
        let expires = NOW.saturating_add(TTL).as_unix_millis();
        self.handle.block_on(async {
            let taken = self
                .client
                .query(
                    &self.acquire,
                    &[&"bench", &"me", &expires, &NOW.as_unix_millis()],
                )
                .await
                .unwrap();
            assert_eq!(taken.len(), 1);
            let released = self
                .client
                .query(&self.release, &[&"bench", &"me"])
                .await
                .unwrap();
            assert_eq!(released.len(), 1);
        });
    }
}

/// `url` with its database replaced by `database` and its query by `query`.
fn with_database(url: &str, database: &str, query: &str) -> String {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{database}?{query}")
}

async fn admin(url: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    client.batch_execute(statement).await.unwrap();
    drop(client);
    let _ = task.await;
}

fn main() -> ExitCode {
    let Some(server) = std::env::var("GRANARY_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!(
            "bench postgres: GRANARY_TEST_POSTGRES is not set: set it or run cargo xtask bench \
             postgres (which starts a throwaway PostgreSQL)"
        );
        return ExitCode::FAILURE;
    };
    let runtime = runtime();
    let database = format!("granary_bench_{}", std::process::id());
    let admin_url = with_database(&server, "postgres", "sslmode=disable");
    runtime.block_on(admin(&admin_url, &format!("CREATE DATABASE {database}")));
    let store_url = with_database(&server, &database, "sslmode=disable");
    let store = runtime
        .block_on(PostgresStore::open_with(
            &store_url,
            PostgresOptions::default().with_schema("bench_store"),
        ))
        .unwrap();
    seed(&runtime, &store);
    let raw_store = runtime
        .block_on(PostgresStore::open_with(
            &store_url,
            PostgresOptions::default().with_schema("bench_raw"),
        ))
        .unwrap();
    seed(&runtime, &raw_store);
    drop(raw_store);
    let raw = Raw::connect(
        runtime.handle().clone(),
        &with_database(
            &server,
            &database,
            "sslmode=disable&options=-csearch_path%3Dbench_raw",
        ),
    );

    let mut criterion = config().configure_from_args();
    store_against_raw(&mut criterion, "postgres", &runtime, &store, raw);
    criterion.final_summary();

    drop(store);
    runtime.block_on(admin(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    ));
    ExitCode::SUCCESS
}
