//! An **experimental** granary store on sled 0.34, the stable line of sled.
//!
//! sled's own maintainers call 0.34 beta software whose on-disk format will change, and
//! granary follows them: use the SQLite backend (the default) for tokens you cannot afford
//! to lose. What [`SledStore`] promises:
//! - **durable**: every write method flushes sled (`Db::flush`) and then `fsync`s sled's log
//!   file before it returns, so a committed token survives a crash of the process or the
//!   machine. The `fsync` is needed because on Linux `Db::flush` syncs with
//!   `sync_file_range`, which flushes neither the disk's write cache nor the file size.
//!   One gap remains, in sled itself: a single log item larger than a quarter of a segment
//!   (128 KiB with the default 512 KiB segments; granary's records are far smaller, but a
//!   huge integration document's flows could reach it) goes to a separate blob file that
//!   sled writes without syncing;
//! - **atomic**: each method is all-or-nothing; methods that touch several trees use one sled
//!   transaction: every write to an instance or token record with its change-feed entry and
//!   the change counter (kept in the `meta` tree, so pruning the feed never lowers it), and
//!   deleting an instance with its token, lease and pending authorizations;
//!   `take_pending` is a single `remove`, so one caller at most gets a pending authorization;
//! - **isolated within one process**: read-modify-write methods (compare-and-swap of
//!   versions, leases, existence checks) run under one writer mutex per store.
//!
//! What it does **not** promise: sharing between processes. sled 0.34 takes an exclusive
//! lock on its folder; a second process that opens it gets [`granary_store::Error::Unsupported`]
//! saying so, and the store declares `shared_between_processes = false`.
//!
//! All sled calls (and every flush) run on tokio's blocking pool (`spawn_blocking`), never
//! on an async worker thread; sled handles are `Send + Sync`, so no connection thread is
//! needed.
#![warn(missing_docs)]

mod errors;
mod store;

pub use store::SledStore;

/// The format of a granary sled folder, stored under `format` in the `meta` tree. Format 2
/// adds the ordered keys of the token records by expiry and by the time they were obtained
/// (built from the tokens when a format 1 folder opens; a granary that knows only format 1
/// refuses the folder rather than write tokens without them).
pub const FORMAT_VERSION: u64 = 2;

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
