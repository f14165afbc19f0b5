//! What a granary is opened from: the store, the master key, the public URL, the margin.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use granary_flow::engine::{Clock, DEFAULT_REFRESH_DEADLINE, DEFAULT_REFRESH_MARGIN};
use granary_store::Store;
use secrecy::SecretBox;
use url::Url;

use crate::{Error, Result};

/// Which store to open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreConfig {
    /// A SQLite file (created when missing): the default, shared safely between processes.
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    /// A sled folder (created when missing): experimental, one process at a time.
    #[cfg(feature = "sled")]
    Sled(PathBuf),
    /// In memory: gone when the process ends (tests, demos).
    Memory,
}

impl StoreConfig {
    /// Where a key file next to the store goes (`<store>.key`), if the store is on disk.
    fn key_file(&self) -> Option<PathBuf> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(path) => Some(with_suffix(path, ".key")),
            #[cfg(feature = "sled")]
            Self::Sled(path) => Some(with_suffix(path, ".key")),
            Self::Memory => None,
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "sled"))]
fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the 32-byte master key comes from.
#[non_exhaustive]
pub enum KeySource {
    /// These bytes (from a configuration of your own).
    Bytes(SecretBox<[u8; 32]>),
    /// The environment variable `GRANARY_MASTER_KEY` (base64 of 32 bytes); it must be set.
    Env,
    /// A key file, generated with mode 0600 on first use. It holds one base64 key per line:
    /// the current key first, previous keys (still used to open) after it.
    File(PathBuf),
    /// `GRANARY_MASTER_KEY` when it is set, else the key file (generated on first use).
    EnvOrFile(PathBuf),
    /// A random key that lives as long as the process: only for a memory store.
    Ephemeral,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(_) => f.write_str("Bytes([redacted])"),
            Self::Env => f.write_str("Env"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::EnvOrFile(path) => f.debug_tuple("EnvOrFile").field(path).finish(),
            Self::Ephemeral => f.write_str("Ephemeral"),
        }
    }
}

/// How to open a [`crate::Granary`].
#[non_exhaustive]
pub struct Config {
    /// The store.
    pub store: StoreConfig,
    /// The master key (default: `GRANARY_MASTER_KEY`, else `<store>.key` next to the store;
    /// a memory store gets an ephemeral key).
    pub key: KeySource,
    /// Older keys that still open what they sealed (during a rotation).
    pub previous_keys: Vec<SecretBox<[u8; 32]>>,
    /// The URL granary is reached at; the redirect URI is `{public_url}/admin/oauth/`.
    pub public_url: Url,
    /// Refresh this long before expiry (default 60 s; at most half a token's lifetime).
    pub refresh_margin: Duration,
    /// The deadline of one refresh, retries included (default 30 s).
    pub refresh_deadline: Duration,
    /// The HTTP client for the providers (default: no redirects, 10 s connect, 30 s total).
    pub http_client: Option<reqwest::Client>,
    /// The clock (default: the system clock).
    pub clock: Option<Arc<dyn Clock>>,
    /// What an imported document may cost (default: 64 MiB, 128 levels of nesting).
    pub import_limits: granary_openapi::Limits,
    /// Whether provider URLs may use plain http to hosts other than loopback (default
    /// false; see `granary_flow::protocol::check_provider_url`).
    pub allow_insecure_http: bool,
}

impl Config {
    /// A configuration with the defaults for everything but the store and the public URL.
    pub fn new(store: StoreConfig, public_url: Url) -> Self {
        let key = match store.key_file() {
            Some(file) => KeySource::EnvOrFile(file),
            None => KeySource::Ephemeral,
        };
        Self {
            store,
            key,
            previous_keys: Vec::new(),
            public_url,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            refresh_deadline: DEFAULT_REFRESH_DEADLINE,
            http_client: None,
            clock: None,
            import_limits: granary_openapi::Limits::default(),
            allow_insecure_http: false,
        }
    }

    /// Sets the key source.
    pub fn with_key(mut self, key: KeySource) -> Self {
        self.key = key;
        self
    }

    /// Sets the refresh margin.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Sets the deadline of one refresh, retries included.
    pub fn with_refresh_deadline(mut self, deadline: Duration) -> Self {
        self.refresh_deadline = deadline;
        self
    }

    /// Sets the HTTP client for the providers.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Sets the limits of an imported document.
    pub fn with_import_limits(mut self, limits: granary_openapi::Limits) -> Self {
        self.import_limits = limits;
        self
    }

    /// Allows plain http provider URLs to hosts other than loopback.
    pub fn with_allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("key", &self.key)
            .field("previous_keys", &self.previous_keys.len())
            .field("public_url", &self.public_url.as_str())
            .field("refresh_margin", &self.refresh_margin)
            .field("refresh_deadline", &self.refresh_deadline)
            .field("import_limits", &self.import_limits)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

/// Opens the store a configuration names.
pub(crate) async fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    match config {
        #[cfg(feature = "sqlite")]
        StoreConfig::Sqlite(path) => Ok(Arc::new(
            granary_store_sqlite::SqliteStore::open(path).await?,
        )),
        #[cfg(feature = "sled")]
        StoreConfig::Sled(path) => Ok(Arc::new(granary_store_sled::SledStore::open(path).await?)),
        StoreConfig::Memory => Ok(Arc::new(granary_store::MemoryStore::new())),
        #[allow(unreachable_patterns)]
        _ => Err(Error::Config(
            "this store is not built in: enable its feature of the granary crate".to_string(),
        )),
    }
}
