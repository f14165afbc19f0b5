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
#[derive(Clone)]
#[non_exhaustive]
pub enum StoreConfig {
    /// A SQLite file (created when missing): the default, shared safely between processes.
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    /// A sled folder (created when missing): experimental, one process at a time.
    #[cfg(feature = "sled")]
    Sled(PathBuf),
    /// A PostgreSQL database, by libpq-style URL (`postgres://user:password@host/db?sslmode=
    /// require`; see `granary_store_postgres::PostgresStore::open`): for several nodes.
    #[cfg(feature = "postgres")]
    Postgres(String),
    /// In memory: gone when the process ends (tests, demos).
    Memory,
    /// A store you built yourself, from any crate that implements
    /// [`Store`](granary_store::Store): the facade opens it as it is, so a backend needs no
    /// change here. Its default key source is `GRANARY_MASTER_KEY` when the store is durable,
    /// an ephemeral key when it is not (see [`Config::new`]).
    Custom(Arc<dyn Store>),
}

impl StoreConfig {
    /// Reads a store URL: `sqlite:PATH`, `sled:PATH`, `memory:`, or `postgres://...` /
    /// `postgresql://...`. A form whose feature is not built in is refused by name.
    ///
    /// ```
    /// use granary::StoreConfig;
    ///
    /// assert!(matches!(StoreConfig::from_url("memory:")?, StoreConfig::Memory));
    /// # #[cfg(feature = "sqlite")]
    /// assert!(matches!(
    ///     StoreConfig::from_url("sqlite:/var/lib/granary/granary.sqlite")?,
    ///     StoreConfig::Sqlite(_)
    /// ));
    /// assert!(StoreConfig::from_url("mysql://db.example/granary").is_err());
    /// # Ok::<(), granary::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the accepted forms when `url` is none of them.
    pub fn from_url(url: &str) -> Result<Self> {
        let accepted = "accepted forms: sqlite:PATH, sled:PATH, memory:, postgres://USER@HOST/DB \
                        (or postgresql://...)";
        let url = url.trim();
        let path = |rest: &str, scheme: &str| {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if rest.is_empty() {
                Err(Error::Config(format!(
                    "the store URL `{scheme}:` names no path: give one, e.g. \
                     {scheme}:/var/lib/granary/granary.{scheme}"
                )))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Self::Postgres(url.to_string()));
            #[cfg(not(feature = "postgres"))]
            return Err(Self::not_built("postgres"));
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(Error::Config(format!(
                "`{url}` is not a store URL: {accepted}"
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = path(rest, "sqlite")?;
                #[cfg(feature = "sqlite")]
                return Ok(Self::Sqlite(path));
                #[cfg(not(feature = "sqlite"))]
                {
                    let _ = path;
                    Err(Self::not_built("sqlite"))
                }
            }
            "sled" => {
                let path = path(rest, "sled")?;
                #[cfg(feature = "sled")]
                return Ok(Self::Sled(path));
                #[cfg(not(feature = "sled"))]
                {
                    let _ = path;
                    Err(Self::not_built("sled"))
                }
            }
            "memory" if rest.trim_start_matches('/').is_empty() => Ok(Self::Memory),
            "memory" => Err(Error::Config(format!(
                "`{url}`: a memory store takes no path (write `memory:`)"
            ))),
            _ => Err(Error::Config(format!(
                "`{url}` is not a store URL this granary knows: {accepted}"
            ))),
        }
    }

    #[cfg_attr(
        all(feature = "sqlite", feature = "sled", feature = "postgres"),
        allow(dead_code)
    )]
    fn not_built(name: &str) -> Error {
        Error::Config(format!(
            "the store URL asks for {name}, which this build of granary does not include \
             (the `{name}` feature of the granary crate)"
        ))
    }

    /// Where a key file next to the store goes (`<store>.key`), if the store is on disk.
    pub fn key_file(&self) -> Option<PathBuf> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(path) => Some(with_suffix(path, ".key")),
            #[cfg(feature = "sled")]
            Self::Sled(path) => Some(with_suffix(path, ".key")),
            _ => None,
        }
    }

    /// Whether what this store keeps outlives the process (a memory store's does not).
    fn durable(&self) -> bool {
        match self {
            Self::Memory => false,
            Self::Custom(store) => store.capabilities().durable,
            #[allow(unreachable_patterns)]
            _ => true,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            #[cfg(feature = "sled")]
            Self::Sled(path) => f.debug_tuple("Sled").field(path).finish(),
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&redact_password(url))
                .finish(),
            Self::Memory => f.write_str("Memory"),
            Self::Custom(store) => f
                .debug_tuple("Custom")
                .field(&store.capabilities())
                .finish(),
        }
    }
}

impl PartialEq for StoreConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            #[cfg(feature = "sqlite")]
            (Self::Sqlite(a), Self::Sqlite(b)) => a == b,
            #[cfg(feature = "sled")]
            (Self::Sled(a), Self::Sled(b)) => a == b,
            #[cfg(feature = "postgres")]
            (Self::Postgres(a), Self::Postgres(b)) => a == b,
            (Self::Memory, Self::Memory) => true,
            (Self::Custom(a), Self::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for StoreConfig {}

/// A PostgreSQL URL with its password replaced by `***`, for logs and `Debug`.
#[cfg(feature = "postgres")]
pub fn redact_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<a URL that does not parse>".to_string(),
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
    /// a store without a file next to it (PostgreSQL, a durable custom store) needs
    /// `GRANARY_MASTER_KEY`; a memory store gets an ephemeral key).
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
    /// How long a token whose expiry the provider did not state is taken to live when a
    /// refresh token is held; once that old, it is refreshed (default `None`: used until
    /// refused and reported, see `Engine::token_rejected`).
    pub default_token_lifetime: Option<Duration>,
    /// How long the reconnect link made when an instance comes to need authorization lives
    /// (default 7 days; `None`: no link; see `EngineBuilder::reconnect_link_ttl`).
    pub reconnect_link_ttl: Option<Duration>,
}

impl Config {
    /// A configuration with the defaults for everything but the store and the public URL.
    pub fn new(store: StoreConfig, public_url: Url) -> Self {
        let key = match store.key_file() {
            Some(file) => KeySource::EnvOrFile(file),
            None if store.durable() => KeySource::Env,
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
            default_token_lifetime: None,
            reconnect_link_ttl: Some(granary_flow::engine::DEFAULT_RECONNECT_LINK_TTL),
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

    /// Sets the lifetime assumed for a token whose expiry the provider did not state
    /// (refreshed once that old, when a refresh token is held).
    pub fn with_default_token_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.default_token_lifetime = lifetime;
        self
    }

    /// Sets how long the reconnect link of a needs-authorization event lives (`None`: no
    /// link is made).
    pub fn with_reconnect_link_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.reconnect_link_ttl = ttl;
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
        #[cfg(feature = "postgres")]
        StoreConfig::Postgres(url) => Ok(Arc::new(
            granary_store_postgres::PostgresStore::open(url).await?,
        )),
        StoreConfig::Memory => Ok(Arc::new(granary_store::MemoryStore::new())),
        StoreConfig::Custom(store) => Ok(Arc::clone(store)),
        #[allow(unreachable_patterns)]
        _ => Err(Error::Config(
            "this store is not built in: enable its feature of the granary crate".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_of_every_form_and_their_errors() {
        #[cfg(feature = "sqlite")]
        assert_eq!(
            StoreConfig::from_url("sqlite:/var/lib/g.sqlite").unwrap(),
            StoreConfig::Sqlite("/var/lib/g.sqlite".into())
        );
        #[cfg(feature = "sqlite")]
        assert_eq!(
            StoreConfig::from_url("sqlite://rel/g.sqlite").unwrap(),
            StoreConfig::Sqlite("rel/g.sqlite".into())
        );
        #[cfg(feature = "sled")]
        assert_eq!(
            StoreConfig::from_url("sled:data/sled").unwrap(),
            StoreConfig::Sled("data/sled".into())
        );
        #[cfg(feature = "postgres")]
        for url in [
            "postgres://u:pw@db/granary?sslmode=require",
            "postgresql://db/g",
        ] {
            assert_eq!(
                StoreConfig::from_url(url).unwrap(),
                StoreConfig::Postgres(url.to_string())
            );
        }
        #[cfg(feature = "postgres")]
        assert!(
            !format!(
                "{:?}",
                StoreConfig::from_url("postgres://u:hunter2@db/g").unwrap()
            )
            .contains("hunter2")
        );
        assert_eq!(
            StoreConfig::from_url("memory:").unwrap(),
            StoreConfig::Memory
        );
        for bad in ["mysql://db/g", "granary.sqlite", "memory:/x", "sqlite:", ""] {
            let error = StoreConfig::from_url(bad).unwrap_err().to_string();
            assert!(
                error.contains("sqlite:PATH")
                    || error.contains("names no path")
                    || error.contains("takes no path"),
                "{bad}: {error}"
            );
        }
        let error = StoreConfig::from_url("mysql://db/g")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("postgres://") && error.contains("memory:"),
            "{error}"
        );
    }
}
