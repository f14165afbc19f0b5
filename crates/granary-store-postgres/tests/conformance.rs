//! The conformance suite on [`PostgresStore`]: every check, including the ones with child
//! processes, against the server named by `GRANARY_TEST_POSTGRES` (a URL whose user may
//! create databases). `cargo xtask conformance store` starts a throwaway cluster and sets
//! it.
//!
//! Each run creates a database of its own (dropped at the end) and each check a schema of
//! its own, named in a file of the check's folder, so that a reopen and the child processes
//! find the same store and no run or check sees another's data. Without the variable every
//! check is reported as skipped, with the reason, and the xtask fails on such a run.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use granary_store::{Error, Store};
use granary_store_postgres::{PostgresOptions, PostgresStore};
use granary_store_testkit::Backend;

const URL_ENV: &str = "GRANARY_TEST_POSTGRES";
/// The file in a check's folder that names the database URL and the schema of its store.
const PLACE_FILE: &str = "postgres-store";

struct Postgres {
    /// The run's database; `None` in a child process, which reads the place file.
    run_url: Option<String>,
}

#[async_trait::async_trait]
impl Backend for Postgres {
    fn name(&self) -> &str {
        "postgres"
    }

    async fn open(&self, dir: &Path) -> granary_store::Result<Arc<dyn Store>> {
        let file = dir.join(PLACE_FILE);
        let (url, schema) = match std::fs::read_to_string(&file) {
            Ok(text) => {
                let mut lines = text.lines();
                match (lines.next(), lines.next()) {
                    (Some(url), Some(schema)) => (url.to_string(), schema.to_string()),
                    _ => return Err(Error::corrupt(format!("{} is damaged", file.display()))),
                }
            }
            Err(_) => {
                let url = self.run_url.clone().ok_or_else(|| {
                    Error::unsupported(format!(
                        "{} is missing: a child process opens a store its parent made",
                        file.display()
                    ))
                })?;
                let schema = format!("check_{:016x}", rand::random::<u64>());
                std::fs::write(&file, format!("{url}\n{schema}\n"))
                    .map_err(|e| Error::backend("cannot write the place file", e))?;
                (url, schema)
            }
        };
        let options = PostgresOptions::default()
            .with_schema(schema)
            .with_max_connections(8);
        Ok(Arc::new(PostgresStore::open_with(&url, options).await?))
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// Runs one statement on the server named by `url` (without TLS: a test server).
async fn admin(url: &str, statement: &str) -> Result<(), String> {
    let plain: String = match url.split_once('?') {
        Some((base, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.starts_with("sslmode=") && !pair.starts_with("sslrootcert="))
                .collect();
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => url.to_string(),
    };
    let (client, connection) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {URL_ENV}: {e}"))?;
    let task = tokio::spawn(connection);
    let result = client
        .batch_execute(statement)
        .await
        .map_err(|e| format!("`{statement}` failed: {e}"));
    drop(client);
    let _ = task.await;
    result
}

fn main() -> ExitCode {
    if granary_store_testkit::is_child_process() {
        return granary_store_testkit::main(Postgres { run_url: None });
    }
    let Some(server) = std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()) else {
        let reason =
            format!("{URL_ENV} is not set: set {URL_ENV} or run cargo xtask conformance store");
        for check in granary_store_testkit::CHECKS {
            println!("granary-store-conformance\tpostgres\t{check}\tskip\t{reason}");
        }
        println!(
            "granary-store-conformance: backend=postgres passed=0 failed=0 skipped={}",
            granary_store_testkit::CHECKS.len()
        );
        eprintln!("SKIPPED: the PostgreSQL conformance run did not happen ({reason})");
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let database = format!(
        "granary_test_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    if let Err(e) = runtime.block_on(admin(&server, &format!("CREATE DATABASE {database}"))) {
        eprintln!("cannot create the run's database on {URL_ENV}: {e}");
        return ExitCode::FAILURE;
    }
    let code = granary_store_testkit::main(Postgres {
        run_url: Some(with_database(&server, &database)),
    });
    if let Err(e) = runtime.block_on(admin(
        &server,
        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    )) {
        eprintln!("warning: cannot drop the run's database {database}: {e}");
    }
    code
}
