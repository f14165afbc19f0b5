//! granary: hands-off OAuth 2.0 authorization code grants for API integrations.
//!
//! This crate is the thin facade: [`Granary::open`] opens the store the [`Config`] names
//! (SQLite by default, sled and PostgreSQL behind the `sled` and `postgres` features,
//! memory, or any [`store::Store`] you built: [`StoreConfig::Custom`]), loads or creates the
//! master key, checks it against the key check the store keeps, and hands out the [`Engine`] (through `Deref`), which does the work:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use granary::{Config, Granary, StoreConfig};
//!
//! let config = Config::new(
//!     StoreConfig::Sqlite("granary.db".into()),
//!     "https://granary.example.com".parse()?,
//! );
//! let granary = Granary::open(config).await?;
//! let token = granary.access_token("github-prod").await?;
//! # let _ = token;
//! # Ok(())
//! # }
//! ```
//!
//! The crates underneath are re-exported: [`openapi`] (the importer), [`flow`] (protocol
//! and engine), [`store`] (the `Store` trait), and the backends behind their features.
#![warn(missing_docs)]

mod config;
mod error;
mod keys;

use std::ops::Deref;
use std::sync::Arc;

pub use granary_flow as flow;
pub use granary_openapi as openapi;
pub use granary_store as store;
#[cfg(feature = "postgres")]
pub use granary_store_postgres as postgres;
#[cfg(feature = "sled")]
pub use granary_store_sled as sled;
#[cfg(feature = "sqlite")]
pub use granary_store_sqlite as sqlite;

pub use config::{Config, KeySource, StoreConfig};
pub use error::{Error, Result};
pub use granary_flow::engine::{
    AccessToken, AuthorizedClient, Clock, DeleteReport, DisconnectReport, Engine, EngineError,
    Event, InstanceReport, InstanceUpdate, NewInstance, Refresher, RefresherConfig, ResealReport,
    ShutdownReport, SystemClock,
};
pub use keys::{KEY_ENV, KeyRotation};

use granary_store::Store;

/// An opened granary: a store, a master key, and the engine over them.
///
/// Dereferences to the [`Engine`], so `granary.access_token(..)` works directly.
pub struct Granary {
    engine: Engine,
    store: Arc<dyn Store>,
    keys: Arc<keys::Keys>,
}

impl Granary {
    /// Opens the store, loads (or creates) the key, and builds the engine.
    ///
    /// In memory (gone with the process, with a key that lives as long: tests and demos):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use granary::{Config, Granary, StoreConfig};
    ///
    /// let config = Config::new(StoreConfig::Memory, "http://127.0.0.1:8080".parse()?);
    /// let granary = Granary::open(config).await?;
    /// assert!(granary.list_instances().await?.is_empty());
    /// // No such instance yet: import an integration, create an instance, authorize it.
    /// assert!(granary.access_token("box").await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// With a SQLite file, the key is kept in a file beside it, made on first use
    /// (`granary.sqlite.key`, mode 0600): back it up with the database.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot be opened, [`Error::Key`] when the key is
    /// missing or malformed, [`Error::Engine`] when the public URL is unusable.
    pub async fn open(config: Config) -> Result<Self> {
        let store = config::open_store(&config.store).await?;
        let keys = Arc::new(keys::Keys::load(&config.key, &config.previous_keys)?);
        keys::check_key(store.as_ref(), &keys.keyring()).await?;
        let reloading = Arc::clone(&keys);
        let mut builder = Engine::builder(store.clone(), keys.keyring(), config.public_url)
            .refresh_margin(config.refresh_margin)
            .refresh_deadline(config.refresh_deadline)
            .default_token_lifetime(config.default_token_lifetime)
            .reconnect_link_ttl(config.reconnect_link_ttl)
            .import_limits(config.import_limits)
            .allow_insecure_http(config.allow_insecure_http)
            .key_reloader(Arc::new(move || {
                reloading.reload().map_err(|error| error.to_string())
            }));
        if let Some(clock) = config.clock {
            builder = builder.clock(clock);
        }
        if let Some(http) = config.http_client {
            builder = builder.http_client(http);
        }
        let engine = builder.build()?;
        // Extra token values an older granary stored in plaintext are sealed now, not at
        // the instance's next change.
        let sealed = engine.seal_plaintext_values().await?;
        if sealed > 0 {
            tracing::info!(
                instances = sealed,
                "extra token parameter and header values stored in plaintext were sealed"
            );
        }
        Ok(Self {
            engine,
            store,
            keys,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Rotates the master key: seals with `new_key` from now on (a generated one when
    /// `None`, which needs a key file), re-seals every stored secret, and keeps the
    /// previous key loaded so that what is not yet re-sealed (pending authorizations, for
    /// their 10 minutes) still opens. With a key file, the file is rewritten (new key
    /// first, the previous one after it) before anything is re-sealed. With a key from the
    /// environment or the configuration, store the new key there yourself, and keep the old
    /// one in `previous_keys` until the next start.
    ///
    /// # Errors
    /// [`Error::Key`] when no new key is given and there is no key file to write it to;
    /// [`Error::Engine`] when re-sealing fails (run it again: it resumes).
    pub async fn rotate_key(
        &self,
        new_key: Option<secrecy::SecretBox<[u8; 32]>>,
    ) -> Result<KeyRotation> {
        let (keyring, rotation) = self.keys.rotate(new_key)?;
        self.engine.replace_keyring(keyring);
        let report = self.engine.reseal_all().await?;
        keys::replace_key_check(self.store.as_ref(), &self.keys.keyring()).await?;
        Ok(KeyRotation { report, ..rotation })
    }
}

impl std::fmt::Debug for Granary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granary")
            .field("engine", &self.engine)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Deref for Granary {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// The examples of this crate's README.md, compiled and run as doc tests (they open a SQLite
/// file).
#[cfg(all(doctest, feature = "sqlite"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
