//! The granary store for more than one node: a PostgreSQL database that every node opens.
//!
//! ```no_run
//! # async fn demo() -> granary_store::Result<()> {
//! let store = granary_store_postgres::PostgresStore::open(
//!     "postgres://granary:PASSWORD@db.example:5432/granary?sslmode=verify-full",
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! - **Connections**: tokio-postgres behind a deadpool-postgres pool (at most
//!   [`PostgresOptions::max_connections`] per process); TLS through rustls, as `sslmode` of
//!   the libpq-style URL says: `disable`, `prefer` (the default; encrypted when the server
//!   offers it, certificate not checked), `require` (encrypted, certificate not checked),
//!   `verify-full` (the certificate chain checked against `sslrootcert=PATH`, a PEM file, or
//!   the Mozilla roots, and the host name checked). Only `verify-full` protects against a
//!   man in the middle: use it across any network you do not control.
//! - **Schema**: versioned migrations ([`schema`](crate) module) run at open, in one
//!   transaction that first takes a transaction-scoped advisory lock, so nodes that start at
//!   once migrate one after the other; a schema written by a newer granary is refused. The
//!   tables live in the connection's current schema, or in [`PostgresOptions::schema`].
//! - **Every method is one statement** ([`sql`]), so PostgreSQL makes it atomic and no
//!   transaction stays open across an await of anything but the database: conditional upsert
//!   for leases, `UPDATE ... WHERE version = $n` for the compare-and-swaps of tokens and
//!   instances, `DELETE ... RETURNING` for take-once, foreign keys with `ON DELETE CASCADE`
//!   for the delete of an instance, and the fenced token write locks the lease row
//!   `FOR SHARE` in the statement that writes. A statement aborted by a deadlock is run
//!   again (it changed nothing).
//! - **The change feed** is numbered from a counter row incremented in the write's own
//!   statement, not from a sequence: the row lock makes concurrent writers take numbers
//!   and commit one after the other, so changes become visible in number order. Every 64th
//!   change deletes those older than the newest [`CHANGES_KEPT`](granary_store::CHANGES_KEPT);
//!   a reader whose cursor fell behind gets `missed`.
//! - **Capabilities**: durable (a method returns once PostgreSQL committed) and shared
//!   between processes and nodes.
//!
//! # Clocks
//!
//! As with every store, time comes from the caller (`now`): a lease expires by the clock of
//! the node that reads it, not by the database's. A lease taken by node A at A's time `t`
//! with time-to-live `ttl` looks expired to node B once B's clock reads `t + ttl`. With B's
//! clock ahead of A's by `s`, B may take it over `ttl - s` after A last renewed it; the
//! engine renews every third of `ttl`, so a node that is alive keeps its lease while the
//! skew between any two nodes stays **below two thirds of the lease time-to-live** (3.3 s
//! with the engine's default of 5 s), minus the time a renewal takes. Beyond that two nodes
//! may refresh one instance at once. Tokens stay safe even then (a fenced write names its
//! holder and the version it read, so only one of them stores its answer), but a provider
//! with one-use refresh tokens may revoke the grant when it sees the old token twice. A
//! node whose clock is behind takes over a crashed holder's lease later by its lag. Keep
//! the nodes' clocks synchronised (NTP keeps them within milliseconds).
#![warn(missing_docs)]

mod connect;
mod errors;
mod schema;
pub mod sql;
mod store;

use std::time::Duration;

pub use store::PostgresStore;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The most connections this process keeps open (default 16).
    pub max_connections: usize,
    /// The schema that holds granary's tables, created when missing (default `None`: the
    /// connection's current schema, usually `public`). A plain lower-case identifier.
    pub schema: Option<String>,
    /// How long opening one connection may take (default 10 s).
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection before it fails (default 30 s).
    pub wait_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            schema: None,
            connect_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(30),
        }
    }
}

impl PostgresOptions {
    /// These options with granary's tables in `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// These options with at most `max` connections.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }
}

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
