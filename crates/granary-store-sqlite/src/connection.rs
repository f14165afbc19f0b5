//! The connection thread: opens the file, sets the pragmas, migrates, then runs jobs in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use granary_store::{Error, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::errors::map;
use crate::schema::MIGRATIONS;
use crate::{APPLICATION_ID, SCHEMA_VERSION, SqliteOptions};

/// Work for the connection thread.
pub(crate) type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Starts the thread that owns the connection to `path`; returns once the file is open and
/// migrated (or why it could not be).
pub(crate) async fn start(path: PathBuf, options: SqliteOptions) -> Result<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let (opened, opened_reply) = tokio::sync::oneshot::channel();
    let thread_path = path.clone();
    std::thread::Builder::new()
        .name("granary-sqlite".to_string())
        .spawn(move || {
            let mut connection = match open(&thread_path, &options) {
                Ok(connection) => {
                    let _ = opened.send(Ok(()));
                    connection
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                    return;
                }
            };
            // Ends when every sender (the store) is gone; the connection closes with it.
            while let Ok(job) = queue.recv() {
                // A job never panics by design; if one did, its caller gets an error (its
                // reply is dropped), the open transaction rolls back, and the thread goes on
                // serving the others.
                let _ = catch_unwind(AssertUnwindSafe(|| job(&mut connection)));
            }
        })
        .map_err(|e| {
            Error::backend(
                format!("cannot start the SQLite thread for {}", path.display()),
                e,
            )
        })?;
    opened_reply
        .await
        .map_err(|_| Error::backend("the SQLite thread stopped while opening", ThreadStopped))??;
    Ok(jobs)
}

/// The connection thread ended before answering (it never panics by design; this is the
/// error if it did).
#[derive(Debug, thiserror::Error)]
#[error("the SQLite connection thread is gone")]
pub(crate) struct ThreadStopped;

fn open(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut connection = Connection::open_with_flags(path, flags)
        .map_err(|e| map(e, "opening the database", path))?;
    connection
        .busy_timeout(options.busy_timeout)
        .map_err(|e| map(e, "setting the busy timeout", path))?;
    // Reading the header first turns "not a database" into a clear error before any write.
    connection
        .pragma_query_value(None, "application_id", |row| row.get::<_, i64>(0))
        .map_err(|e| map(e, "reading the database header", path))?;
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| map(e, "switching to WAL mode", path))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::unsupported(format!(
            "{} cannot use WAL mode (it stays in `{mode}` mode): put the data directory on a local \
             file system",
            path.display()
        )));
    }
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|e| map(e, "setting synchronous=FULL", path))?;
    migrate(&mut connection, path)?;
    if let Some(pages) = options.max_page_count {
        connection
            .pragma_update_and_check(None, "max_page_count", pages, |row| row.get::<_, i64>(0))
            .map_err(|e| map(e, "setting max_page_count", path))?;
    }
    Ok(connection)
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<()> {
    let shown = path.display();
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map(e, "starting the migration", path))?;
    let read = |pragma: &str| {
        tx.pragma_query_value(None, pragma, |row| row.get::<_, i64>(0))
            .map_err(|e| map(e, "reading the schema version", path))
    };
    let version = read("user_version")?;
    let application = read("application_id")?;
    if application != 0 && application != i64::from(APPLICATION_ID) {
        return Err(Error::corrupt(format!(
            "{shown} is a SQLite database of another application (application_id {application:#x}), \
             not a granary database: move it away or point the data directory elsewhere"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::unsupported(format!(
            "{shown} was written by a newer granary (schema version {version}; this granary knows up \
             to {SCHEMA_VERSION}): upgrade granary, or restore a backup taken before the upgrade"
        )));
    }
    if version < 0 {
        return Err(Error::corrupt(format!(
            "{shown} has schema version {version}, which no granary writes: move it away or point the \
             data directory elsewhere"
        )));
    }
    if version == 0 {
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| map(e, "reading the schema", path))?;
        if tables > 0 {
            return Err(Error::corrupt(format!(
                "{shown} is a SQLite database but not a granary one ({tables} tables or indexes of \
                 another application): move it away or point the data directory elsewhere"
            )));
        }
    }
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql).map_err(|e| {
            map(
                e,
                &format!("migrating the schema from version {from}"),
                path,
            )
        })?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
            .map_err(|e| map(e, "recording the schema version", path))?;
    }
    tx.commit()
        .map_err(|e| map(e, "committing the migration", path))
}
