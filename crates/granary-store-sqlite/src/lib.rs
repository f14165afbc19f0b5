//! The default granary store: one SQLite file (rusqlite with SQLite bundled, so no system
//! library is needed).
//!
//! [`SqliteStore`] implements [`granary_store::Store`] with every capability: durable across
//! crashes of the process and of the machine, and shared between processes.
//!
//! # Durability
//! The database runs in WAL mode with `synchronous=FULL`: every commit syncs the write-ahead
//! log before the method returns. With the WAL, `synchronous=NORMAL` syncs only at
//! checkpoints, so the last commits before a power loss or kernel crash can vanish; a
//! rotated refresh token that vanished would force an admin to authorize again by hand,
//! so granary pays one fsync per write. A crash of the process alone (SIGKILL, panic)
//! loses nothing in either mode; the conformance suite kills writers with SIGKILL to check.
//!
//! # Threads
//! Each store owns one connection on a dedicated thread; async methods send it a job and
//! await the reply, so no SQLite call (and no fsync) ever blocks an async worker thread.
//! A dedicated thread rather than `spawn_blocking`: the connection is not `Sync`, so
//! `spawn_blocking` would need a mutex around it, and concurrent callers would then park up
//! to 512 blocking-pool threads on that mutex; one thread with a queue keeps one warm
//! statement cache, orders the jobs, and costs one thread per open store. SQLite admits one
//! writer at a time anyway.
//!
//! # Several processes
//! Any number of processes may open the same file. Every read-modify-write runs in a
//! `BEGIN IMMEDIATE` transaction (the write lock is taken before the read, so two processes
//! never both read the old version), and a busy timeout (10 s by default) makes a process
//! wait for the lock instead of failing.
//!
//! # Schema
//! Migrations are keyed by `PRAGMA user_version`; `PRAGMA application_id` marks the file as
//! granary's. A file that is not SQLite, is damaged, belongs to another application, or was
//! written by a newer granary is refused with an error that says what to do; nothing is
//! ever overwritten to "repair" it.
#![warn(missing_docs)]

mod codec;
mod connection;
mod errors;
mod schema;
mod server_state;
mod store;
mod webhooks;

pub use store::{SqliteOptions, SqliteStore};

/// The schema version this build writes, stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = schema::MIGRATIONS.len() as i64;

/// The `PRAGMA application_id` of a granary database ("gran").
pub const APPLICATION_ID: i32 = 0x6772_616e;

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
