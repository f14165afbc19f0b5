//! The one conformance suite of granary stores: `pub async fn` checks over `&dyn Store`, the
//! checks that need reopening or child processes, and [`run_all`] / [`main`] to run them all.
//!
//! A backend gets the whole suite with a test target that has `harness = false` and this
//! `main` (see `docs/guides/writing-a-backend.md`):
//!
//! ```no_run
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use granary_store::{MemoryStore, Store};
//! use granary_store_testkit::Backend;
//!
//! struct Memory;
//!
//! #[async_trait::async_trait]
//! impl Backend for Memory {
//!     fn name(&self) -> &str {
//!         "memory"
//!     }
//!     async fn open(&self, _dir: &Path) -> granary_store::Result<Arc<dyn Store>> {
//!         Ok(Arc::new(MemoryStore::new()))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     granary_store_testkit::main(Memory)
//! }
//! ```
//!
//! Every check names the contract it broke when it fails ([`Violation`]). Checks of a
//! capability the backend does not claim are skipped, and say so.
#![warn(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use granary_store::Store;

#[cfg(feature = "bench")]
pub mod bench;
pub mod checks;
mod fixtures;
mod process;
mod runner;
mod violation;

pub use process::{
    durable_after_sigkill, processes_fence_token_put, processes_race_banner, processes_race_claims,
    processes_race_lease, processes_race_token_cas, processes_see_changes, reopen_keeps_everything,
    reopen_keeps_sessions_and_api_keys, reopen_keeps_webhooks,
};
pub use runner::{CHECKS, CheckResult, Options, Outcome, Report, is_child_process, main, run_all};
pub use violation::Violation;

/// How the suite opens stores of one backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The backend's name in reports (e.g. `sqlite`).
    fn name(&self) -> &str;

    /// Opens the store kept in the folder `dir`, creating it when the folder is empty.
    ///
    /// The suite gives each check a new empty folder. Opening the same folder again (after
    /// the previous store was dropped, or from another process) must give the same store
    /// when the backend claims durability or sharing. A backend that keeps nothing on disk
    /// ignores `dir`.
    async fn open(&self, dir: &Path) -> granary_store::Result<Arc<dyn Store>>;
}

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
