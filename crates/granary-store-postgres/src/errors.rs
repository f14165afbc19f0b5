//! PostgreSQL's faults mapped onto [`granary_store::Error`], with messages that say what to
//! do.

use std::error::Error as StdError;
use std::io;

use deadpool_postgres::PoolError;
use granary_store::Error;
use tokio_postgres::error::SqlState;

/// A failure inside a store call: already a store error, or the pool's or PostgreSQL's
/// (mapped with what the call was doing by [`map`]).
#[derive(Debug)]
pub(crate) enum Fault {
    Store(Error),
    Pool(PoolError),
    Db(tokio_postgres::Error),
}

impl From<Error> for Fault {
    fn from(error: Error) -> Self {
        Self::Store(error)
    }
}

impl From<tokio_postgres::Error> for Fault {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error)
    }
}

impl From<PoolError> for Fault {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => Self::Db(error),
            other => Self::Pool(other),
        }
    }
}

impl Fault {
    /// The SQLSTATE of a database error.
    pub(crate) fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Db(error) => error.code(),
            _ => None,
        }
    }

    /// Whether running the statement again may succeed: a deadlock or a serialization
    /// failure aborted it, and it changed nothing.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self.code(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
        )
    }
}

/// `fault` as a store error: `doing` says what the store was doing, `server` which server
/// (host, port and database, never the password).
pub(crate) fn map(fault: Fault, doing: &str, server: &str) -> Error {
    let error = match fault {
        Fault::Store(error) => return error,
        Fault::Pool(PoolError::Timeout(_)) => {
            return Error::backend(
                format!(
                    "{doing}: no connection to PostgreSQL at {server} became free or could be \
                     opened in time: check that the server runs and answers, and that \
                     `max_connections` of the pool suits the load"
                ),
                "pool wait timed out",
            );
        }
        Fault::Pool(other) => {
            return Error::backend(
                format!("{doing}: the connection pool of PostgreSQL at {server} failed"),
                other.to_string(),
            );
        }
        Fault::Db(error) => error,
    };
    let message = if let Some(code) = error.code() {
        by_code(code, doing, server)
    } else if let Some(kind) = io_kind(&error) {
        match kind {
            io::ErrorKind::ConnectionRefused => format!(
                "{doing}: cannot connect to PostgreSQL at {server} (connection refused): check \
                 the URL (host and port) and that PostgreSQL runs and listens there"
            ),
            io::ErrorKind::NotFound => format!(
                "{doing}: cannot connect to PostgreSQL at {server} (no such socket or host): \
                 check the host in the URL and that PostgreSQL runs"
            ),
            io::ErrorKind::TimedOut => format!(
                "{doing}: connecting to PostgreSQL at {server} timed out: check the host, the \
                 port and the firewall"
            ),
            _ => format!(
                "{doing}: the connection to PostgreSQL at {server} failed: check the network \
                 and that the server runs"
            ),
        }
    } else if is_tls(&error) {
        format!(
            "{doing}: TLS with PostgreSQL at {server} failed: check `sslmode` (verify-full \
             needs a server certificate for the host name of the URL, signed by `sslrootcert` \
             or a public authority; `sslmode=disable` only on a trusted network)"
        )
    } else if error.is_closed() {
        format!(
            "{doing}: the connection to PostgreSQL at {server} closed: check that the server \
             runs; the next call opens a new connection"
        )
    } else {
        format!("{doing}: PostgreSQL at {server} failed")
    };
    Error::backend(message, error)
}

fn by_code(code: &SqlState, doing: &str, server: &str) -> String {
    match *code {
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "{doing}: PostgreSQL at {server} refused the login: check the user and password in \
             the URL, and pg_hba.conf on the server"
        ),
        SqlState::INVALID_CATALOG_NAME => format!(
            "{doing}: the database named in the URL does not exist on {server}: create it \
             (`createdb NAME`) or fix the URL"
        ),
        SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "{doing}: the PostgreSQL user lacks a privilege on {server}: let it own granary's \
             schema (or grant it CREATE and USAGE on the schema and every right on its tables)"
        ),
        SqlState::DISK_FULL | SqlState::OUT_OF_MEMORY | SqlState::INSUFFICIENT_RESOURCES => {
            format!(
                "{doing}: PostgreSQL at {server} is out of disk or memory: free some on the server"
            )
        }
        SqlState::TOO_MANY_CONNECTIONS => format!(
            "{doing}: PostgreSQL at {server} has no connection left: raise its \
             `max_connections` or lower the pool size of the nodes"
        ),
        SqlState::ADMIN_SHUTDOWN | SqlState::CRASH_SHUTDOWN | SqlState::CANNOT_CONNECT_NOW => {
            format!(
                "{doing}: PostgreSQL at {server} is shutting down or starting: try again once \
                 it runs"
            )
        }
        SqlState::READ_ONLY_SQL_TRANSACTION => format!(
            "{doing}: PostgreSQL at {server} is read-only (a standby?): point the URL at the \
             primary (`target_session_attrs=read-write` with several hosts)"
        ),
        SqlState::T_R_DEADLOCK_DETECTED | SqlState::T_R_SERIALIZATION_FAILURE => format!(
            "{doing}: PostgreSQL at {server} kept aborting the statement for concurrent \
             writers: try again"
        ),
        SqlState::UNDEFINED_TABLE | SqlState::UNDEFINED_COLUMN => format!(
            "{doing}: granary's tables are missing or altered on {server}: was the schema \
             dropped or changed by hand? Restore it from a backup"
        ),
        _ => format!("{doing}: PostgreSQL at {server} failed"),
    }
}

fn io_kind(error: &tokio_postgres::Error) -> Option<io::ErrorKind> {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            // rustls reports its errors wrapped in an io::Error of kind InvalidData.
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return None;
            }
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

fn is_tls(error: &tokio_postgres::Error) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        let text = cause.to_string();
        if text.contains("TLS") || text.contains("tls") || text.contains("certificate") {
            return true;
        }
        source = cause.source();
    }
    false
}
