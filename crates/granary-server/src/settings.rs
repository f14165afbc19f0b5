//! Settings: flags and `GRANARY_*` variables first, then an optional TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use granary::StoreConfig;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::{Error, Result};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "granary-data";
/// The default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// The largest OpenAPI document imported, by default: 64 MiB.
pub const DEFAULT_IMPORT_LIMIT: usize = granary_openapi::Limits::DEFAULT_MAX_BYTES;
/// How long `serve` waits at shutdown for refreshes in flight, by default (seconds).
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// How long a request may take by default, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
/// The largest request body the proxy forwards, by default: 64 MiB.
pub const DEFAULT_PROXY_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// How long a proxied request may take by default, in seconds (never more than the request
/// timeout).
pub const DEFAULT_PROXY_TIMEOUT_SECS: u64 = 30;

/// The options every subcommand shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// The data directory: SQLite file, key file, admin token, API keys [default: ./granary-data].
    #[arg(long, global = true, env = "GRANARY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store, by URL: `sqlite:PATH`, `sled:PATH`, `memory:`, or `postgres://...` /
    /// `postgresql://...` (libpq-style) [default: sqlite:{data_dir}/granary.sqlite].
    #[arg(
        long,
        global = true,
        env = "GRANARY_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// The master key file (base64 keys, one a line, current first; generated with mode 0600
    /// when missing). `GRANARY_MASTER_KEY` wins over it [default: the store's file + `.key`;
    /// a store without a file, such as PostgreSQL, needs this or `GRANARY_MASTER_KEY`].
    #[arg(long, global = true, env = "GRANARY_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// A TOML configuration file (keys: listen, public_url, data_dir, store, key_file,
    /// log_level, log_format, refresh_deadline, default_token_lifetime, shutdown_grace,
    /// refresh_per_host, request_timeout, proxy_body_limit, proxy_timeout, import_limit,
    /// allow_insecure_http, webhook_timeout, webhook_max_attempts, webhook_backoff,
    /// webhook_backoff_max, webhook_retention, webhook_poll, reconnect_link_ttl).
    #[arg(long, global = true, env = "GRANARY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The log filter, e.g. `info` or `granary_server=debug` [default: info].
    #[arg(long, global = true, env = "GRANARY_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// How log lines are written to stderr: `text` (coloured only on a terminal) or `json`
    /// (one JSON object a line, for log collectors) [default: text].
    #[arg(long, global = true, env = "GRANARY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<crate::logging::LogFormat>,
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "GRANARY_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The URL users reach granary at; the redirect URI is `{public_url}/admin/oauth/`
    /// [default: http://{listen}].
    #[arg(long, global = true, env = "GRANARY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<Url>,
    /// The deadline of one refresh at the provider, retries included, in seconds [default: 30].
    #[arg(
        long,
        global = true,
        env = "GRANARY_REFRESH_DEADLINE",
        value_name = "SECS"
    )]
    pub refresh_deadline: Option<u64>,
    /// How long a token whose expiry the provider did not state (no `expires_in`) is taken
    /// to live, in seconds: once that old it is refreshed, when a refresh token is held
    /// [default: none: used until an API refuses it and a caller reports it with
    /// `POST /api/v1/instances/{id}/token/rejected`].
    #[arg(
        long,
        global = true,
        env = "GRANARY_DEFAULT_TOKEN_LIFETIME",
        value_name = "SECS"
    )]
    pub default_token_lifetime: Option<u64>,
    /// The largest OpenAPI document imported, in bytes or with a unit (`64MiB`, `500KB`)
    /// [default: 64MiB].
    #[arg(long, global = true, env = "GRANARY_IMPORT_LIMIT", value_name = "SIZE")]
    pub import_limit: Option<String>,
    /// Accept plain http provider URLs (overrides, document URLs, issuers) to hosts other
    /// than loopback [default: false].
    #[arg(
        long,
        global = true,
        env = "GRANARY_ALLOW_INSECURE_HTTP",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub allow_insecure_http: Option<bool>,
}

/// The options of `granary serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// The admin token (prefer the environment variable: a flag shows in the process list).
    /// Without it, the token of `<data_dir>/admin-token` is used, generated on first start.
    #[arg(
        long,
        env = "GRANARY_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<SecretString>,
    /// At SIGTERM or Ctrl-C, how long refreshes in flight may take to finish and store their
    /// answer before they are cut short, in seconds [default: 10].
    #[arg(long, env = "GRANARY_SHUTDOWN_GRACE", value_name = "SECS")]
    pub shutdown_grace: Option<u64>,
    /// How many background refreshes may go to one provider host at once [default: 2].
    #[arg(long, env = "GRANARY_REFRESH_PER_HOST", value_name = "N")]
    pub refresh_per_host: Option<usize>,
    /// How long a request may take before it is answered 408, in seconds [default: 60].
    #[arg(long, env = "GRANARY_REQUEST_TIMEOUT", value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// The largest request body the proxy (`/api/v1/instances/{id}/proxy/...`) forwards, in
    /// bytes or with a unit (`64MiB`); a larger one is answered 413 [default: 64MiB].
    #[arg(long, env = "GRANARY_PROXY_BODY_LIMIT", value_name = "SIZE")]
    pub proxy_body_limit: Option<String>,
    /// How long a proxied request may take, in seconds: an API that has not answered by then
    /// is answered 504 [default: 30, at most the request timeout].
    #[arg(long, env = "GRANARY_PROXY_TIMEOUT", value_name = "SECS")]
    pub proxy_timeout: Option<u64>,
    /// How long a webhook receiver may take to answer a delivery, in seconds [default: 10].
    #[arg(long, env = "GRANARY_WEBHOOK_TIMEOUT", value_name = "SECS")]
    pub webhook_timeout: Option<u64>,
    /// How many attempts a webhook delivery gets before it is given up, 1 to 10 (the
    /// delivery log keeps 10) [default: 10].
    #[arg(long, env = "GRANARY_WEBHOOK_MAX_ATTEMPTS", value_name = "N")]
    pub webhook_max_attempts: Option<u32>,
    /// The wait before the first retry of a failed webhook delivery, in seconds; it doubles
    /// at each retry (with ±20% jitter) [default: 10].
    #[arg(long, env = "GRANARY_WEBHOOK_BACKOFF", value_name = "SECS")]
    pub webhook_backoff: Option<u64>,
    /// The longest wait between two attempts of a webhook delivery, in seconds [default:
    /// 3600].
    #[arg(long, env = "GRANARY_WEBHOOK_BACKOFF_MAX", value_name = "SECS")]
    pub webhook_backoff_max: Option<u64>,
    /// How long finished (delivered or failed) webhook deliveries stay in the delivery log,
    /// in seconds [default: 604800, 7 days].
    #[arg(long, env = "GRANARY_WEBHOOK_RETENTION", value_name = "SECS")]
    pub webhook_retention: Option<u64>,
    /// How often the webhook worker looks for deliveries other nodes enqueued, in seconds
    /// (its own node's wake it at once) [default: 2].
    #[arg(long, env = "GRANARY_WEBHOOK_POLL", value_name = "SECS")]
    pub webhook_poll: Option<u64>,
    /// How long a reconnect link lives unless a ttl is given when it is created: seconds, or
    /// a number with `s`, `m`, `h` or `d` (`7d`), at most 90 days [default: 7d].
    #[arg(long, env = "GRANARY_RECONNECT_LINK_TTL", value_name = "DURATION")]
    pub reconnect_link_ttl: Option<String>,
}

/// The TOML configuration file; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// The address to listen on.
    pub listen: Option<SocketAddr>,
    /// The URL users reach granary at.
    pub public_url: Option<Url>,
    /// The data directory; relative to the configuration file's folder.
    pub data_dir: Option<PathBuf>,
    /// The store URL (`sqlite:PATH`, `sled:PATH`, `memory:`, `postgres://...`).
    pub store: Option<String>,
    /// The master key file; relative to the configuration file's folder.
    pub key_file: Option<PathBuf>,
    /// The log filter.
    pub log_level: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<crate::logging::LogFormat>,
    /// The deadline of one refresh, retries included, in seconds.
    pub refresh_deadline: Option<u64>,
    /// The lifetime taken for a token without a stated expiry, in seconds.
    pub default_token_lifetime: Option<u64>,
    /// How long `serve` waits at shutdown for refreshes in flight, in seconds.
    pub shutdown_grace: Option<u64>,
    /// How many background refreshes may go to one provider host at once.
    pub refresh_per_host: Option<usize>,
    /// How long a request may take before it is answered 408, in seconds.
    pub request_timeout: Option<u64>,
    /// The largest request body the proxy forwards: bytes, or a text with a unit.
    pub proxy_body_limit: Option<toml::Value>,
    /// How long a proxied request may take before it is answered 504, in seconds.
    pub proxy_timeout: Option<u64>,
    /// The largest OpenAPI document imported: bytes, or a text with a unit (`"64MiB"`).
    pub import_limit: Option<toml::Value>,
    /// Accept plain http provider URLs to hosts other than loopback.
    pub allow_insecure_http: Option<bool>,
    /// How long a webhook receiver may take to answer, in seconds.
    pub webhook_timeout: Option<u64>,
    /// How many attempts a webhook delivery gets (1 to 10).
    pub webhook_max_attempts: Option<u32>,
    /// The wait before the first retry of a webhook delivery, in seconds.
    pub webhook_backoff: Option<u64>,
    /// The longest wait between two attempts of a webhook delivery, in seconds.
    pub webhook_backoff_max: Option<u64>,
    /// How long finished webhook deliveries are kept, in seconds.
    pub webhook_retention: Option<u64>,
    /// How often the webhook worker looks for other nodes' deliveries, in seconds.
    pub webhook_poll: Option<u64>,
    /// How long a reconnect link lives by default: seconds, or a text such as `"7d"`.
    pub reconnect_link_ttl: Option<toml::Value>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// The URL users reach granary at, without a trailing slash.
    pub public_url: Url,
    /// Whether a flag, variable or the configuration file set the public URL (otherwise it
    /// is `http://{listen}`, or for the CLI the one `serve` recorded in the data directory).
    pub public_url_given: bool,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The store (default: SQLite, `<data_dir>/granary.sqlite`).
    pub store: StoreConfig,
    /// The master key file given by flag, variable or the configuration file, if any.
    pub key_file: Option<PathBuf>,
    /// The admin token given by flag or environment, if any.
    pub admin_token: Option<SecretString>,
    /// The log filter.
    pub log_level: String,
    /// How log lines are written.
    pub log_format: crate::logging::LogFormat,
    /// The deadline of one refresh, retries included.
    pub refresh_deadline: Duration,
    /// The lifetime taken for a token without a stated expiry (refreshed once that old
    /// when a refresh token is held); `None`: used until refused and reported.
    pub default_token_lifetime: Option<Duration>,
    /// How long `serve` waits at shutdown for refreshes in flight.
    pub shutdown_grace: Duration,
    /// How many background refreshes may go to one provider host at once.
    pub refresh_per_host: usize,
    /// How long a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// The largest request body the proxy forwards, in bytes.
    pub proxy_body_limit: usize,
    /// How long a proxied request may take before it is answered 504.
    pub proxy_timeout: Duration,
    /// The largest OpenAPI document imported, in bytes.
    pub import_limit: usize,
    /// Whether provider URLs may use plain http to hosts other than loopback.
    pub allow_insecure_http: bool,
    /// How webhooks are delivered.
    pub webhooks: WebhookSettings,
    /// How long a reconnect link lives unless its creator says otherwise.
    pub reconnect_link_ttl: Duration,
}

/// How webhooks are delivered (see `crate::webhooks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// How long a receiver may take to answer one delivery.
    pub timeout: Duration,
    /// How many attempts a delivery gets before it is given up (1 to
    /// [`granary_store::DELIVERY_ATTEMPTS_KEPT`]).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles at each retry, with jitter.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long finished deliveries stay in the log.
    pub retention: Duration,
    /// How often the worker looks for deliveries enqueued by other nodes.
    pub poll: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            poll: Duration::from_secs(2),
        }
    }
}

impl WebhookSettings {
    /// Merges flags and variables (first), the configuration file, and the defaults.
    fn resolve(serve: &ServeArgs, file: &FileSettings) -> Result<Self> {
        let defaults = Self::default();
        let secs = |name: &str, given: Option<u64>, default: Duration| match given {
            Some(0) => Err(Error::Config(format!("{name} must be at least 1 second"))),
            Some(secs) => Ok(Duration::from_secs(secs)),
            None => Ok(default),
        };
        let max_attempts = serve
            .webhook_max_attempts
            .or(file.webhook_max_attempts)
            .unwrap_or(defaults.max_attempts);
        let kept = granary_store::DELIVERY_ATTEMPTS_KEPT;
        if max_attempts == 0 || max_attempts as usize > kept {
            return Err(Error::Config(format!(
                "webhook_max_attempts = {max_attempts}: give 1 to {kept} (the delivery log keeps \
                 {kept} attempts)"
            )));
        }
        let backoff = secs(
            "webhook_backoff",
            serve.webhook_backoff.or(file.webhook_backoff),
            defaults.backoff,
        )?;
        let backoff_max = secs(
            "webhook_backoff_max",
            serve.webhook_backoff_max.or(file.webhook_backoff_max),
            defaults.backoff_max,
        )?;
        if backoff_max < backoff {
            return Err(Error::Config(format!(
                "webhook_backoff_max ({} s) is shorter than webhook_backoff ({} s): raise it",
                backoff_max.as_secs(),
                backoff.as_secs()
            )));
        }
        Ok(Self {
            timeout: secs(
                "webhook_timeout",
                serve.webhook_timeout.or(file.webhook_timeout),
                defaults.timeout,
            )?,
            max_attempts,
            backoff,
            backoff_max,
            retention: secs(
                "webhook_retention",
                serve.webhook_retention.or(file.webhook_retention),
                defaults.retention,
            )?,
            poll: secs(
                "webhook_poll",
                serve.webhook_poll.or(file.webhook_poll),
                defaults.poll,
            )?,
        })
    }
}

impl FileSettings {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io(
                format!("cannot read the configuration file {}", path.display()),
                e,
            )
        })?;
        let mut settings: Self = toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{} is not a valid granary configuration: {e}",
                path.display()
            ))
        })?;
        if let Some(folder) = path.parent() {
            for dir in [&mut settings.data_dir, &mut settings.key_file]
                .into_iter()
                .flatten()
            {
                if dir.is_relative() {
                    *dir = folder.join(&*dir);
                }
            }
        }
        Ok(settings)
    }
}

impl Settings {
    /// Merges flags and environment (first), the configuration file, and the defaults.
    pub fn resolve(common: &CommonArgs, serve: &ServeArgs) -> Result<Self> {
        let file = match &common.config {
            Some(path) => FileSettings::load(path)?,
            None => FileSettings::default(),
        };
        let webhooks = WebhookSettings::resolve(serve, &file)?;
        let listen = match common.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| Error::Config(format!("bad default listen address: {e}")))?,
        };
        let public_url_given = common.public_url.is_some() || file.public_url.is_some();
        let public_url = match common.public_url.clone().or(file.public_url) {
            Some(url) => url,
            None => Url::parse(&format!("http://{listen}")).map_err(|e| {
                Error::Config(format!("cannot make a public URL from {listen}: {e}"))
            })?,
        };
        let public_url = normalize_public_url(public_url)?;
        let data_dir = common
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let store = match common.store.clone().or(file.store) {
            Some(url) => store_from_url(&url)?,
            None => StoreConfig::Sqlite(data_dir.join(crate::open::STORE_FILE)),
        };
        let key_file = common.key_file.clone().or(file.key_file);
        let log_level = common
            .log_level
            .clone()
            .or(file.log_level)
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string());
        let log_format = common.log_format.or(file.log_format).unwrap_or_default();
        let refresh_deadline = common.refresh_deadline.or(file.refresh_deadline).map_or(
            granary_flow::engine::DEFAULT_REFRESH_DEADLINE,
            Duration::from_secs,
        );
        if refresh_deadline.is_zero() {
            return Err(Error::Config(
                "the refresh deadline must be at least 1 second".to_string(),
            ));
        }
        let default_token_lifetime = common
            .default_token_lifetime
            .or(file.default_token_lifetime)
            .map(Duration::from_secs);
        if default_token_lifetime.is_some_and(|l| l.is_zero()) {
            return Err(Error::Config(
                "default_token_lifetime must be at least 1 second (leave it unset to use a \
                 token of unknown expiry until it is refused)"
                    .to_string(),
            ));
        }
        let shutdown_grace = Duration::from_secs(
            serve
                .shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
        );
        let refresh_per_host = serve
            .refresh_per_host
            .or(file.refresh_per_host)
            .unwrap_or_else(|| {
                granary_flow::engine::RefresherConfig::default().concurrency_per_host
            });
        if refresh_per_host == 0 {
            return Err(Error::Config(
                "refresh_per_host must be at least 1 (refreshes to one provider host at once)"
                    .to_string(),
            ));
        }
        let request_timeout = Duration::from_secs(
            serve
                .request_timeout
                .or(file.request_timeout)
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS),
        );
        if request_timeout.is_zero() {
            return Err(Error::Config(
                "request_timeout must be at least 1 second".to_string(),
            ));
        }
        let import_limit = match (&common.import_limit, &file.import_limit) {
            (Some(text), _) => parse_size(text)?,
            (None, Some(toml::Value::Integer(n))) => usize::try_from(*n)
                .map_err(|_| Error::Config(format!("import_limit = {n} is not a size")))?,
            (None, Some(toml::Value::String(text))) => parse_size(text)?,
            (None, Some(other)) => {
                return Err(Error::Config(format!(
                    "import_limit = {other} is not a size: give bytes or a text such as \"64MiB\""
                )));
            }
            (None, None) => DEFAULT_IMPORT_LIMIT,
        };
        let proxy_size = |text: &str| {
            parse_size(text).map_err(|_| {
                Error::Config(format!(
                    "proxy_body_limit `{text}` is not a size: give bytes, or a number with KiB, \
                     MiB or GiB (such as 64MiB)"
                ))
            })
        };
        let proxy_body_limit = match (&serve.proxy_body_limit, &file.proxy_body_limit) {
            (Some(text), _) => proxy_size(text)?,
            (None, Some(toml::Value::Integer(n))) => usize::try_from(*n)
                .map_err(|_| Error::Config(format!("proxy_body_limit = {n} is not a size")))?,
            (None, Some(toml::Value::String(text))) => proxy_size(text)?,
            (None, Some(other)) => {
                return Err(Error::Config(format!(
                    "proxy_body_limit = {other} is not a size: give bytes or a text such as \"64MiB\""
                )));
            }
            (None, None) => DEFAULT_PROXY_BODY_LIMIT,
        };
        let proxy_timeout = match serve.proxy_timeout.or(file.proxy_timeout) {
            Some(0) => {
                return Err(Error::Config(
                    "proxy_timeout must be at least 1 second".to_string(),
                ));
            }
            Some(secs) if Duration::from_secs(secs) > request_timeout => {
                return Err(Error::Config(format!(
                    "proxy_timeout ({secs} s) is longer than request_timeout ({} s), which would \
                     answer first: raise request_timeout too",
                    request_timeout.as_secs()
                )));
            }
            Some(secs) => Duration::from_secs(secs),
            None => Duration::from_secs(DEFAULT_PROXY_TIMEOUT_SECS).min(request_timeout),
        };
        let allow_insecure_http = common
            .allow_insecure_http
            .or(file.allow_insecure_http)
            .unwrap_or(false);
        let reconnect_link_ttl = crate::reconnect::ttl_setting(
            serve.reconnect_link_ttl.as_deref(),
            file.reconnect_link_ttl.as_ref(),
        )?;
        Ok(Self {
            webhooks,
            reconnect_link_ttl,
            import_limit,
            allow_insecure_http,
            listen,
            public_url,
            public_url_given,
            data_dir,
            store,
            key_file,
            admin_token: serve.admin_token.clone(),
            log_level,
            log_format,
            refresh_deadline,
            default_token_lifetime,
            shutdown_grace,
            refresh_per_host,
            request_timeout,
            proxy_body_limit,
            proxy_timeout,
        })
    }

    /// For the CLI: the public URL `serve` recorded in the data directory, when no flag,
    /// variable or configuration file sets one (so that printed links and redirect URIs are
    /// the server's, not `http://127.0.0.1:8080`).
    pub fn with_recorded_public_url(mut self) -> Self {
        if self.public_url_given {
            return self;
        }
        if let Some(url) = recorded_public_url(&self.data_dir) {
            self.public_url = url;
        }
        self
    }

    /// The redirect URI to register at every provider: `{public_url}/admin/oauth/`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/admin/oauth/", self.base())
    }

    /// The public URL as text, without a trailing slash.
    pub fn base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// Whether cookies must carry `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// The file in the data directory where `serve` records its public URL for the CLI.
pub const PUBLIC_URL_FILE: &str = "public-url";

/// Records the public URL `serve` runs under in the data directory (for the CLI's links).
pub fn record_public_url(data_dir: &Path, public_url: &Url) -> Result<()> {
    let text = format!("{}\n", public_url.as_str().trim_end_matches('/'));
    crate::secrets::write_private(&data_dir.join(PUBLIC_URL_FILE), text.as_bytes())
}

/// The public URL recorded by `serve`, if any (a damaged file is ignored with a warning).
pub fn recorded_public_url(data_dir: &Path) -> Option<Url> {
    let path = data_dir.join(PUBLIC_URL_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match Url::parse(text.trim())
        .map_err(|e| Error::Config(e.to_string()))
        .and_then(normalize_public_url)
    {
        Ok(url) => Some(url),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "ignoring the recorded public URL");
            None
        }
    }
}

/// Reads a store URL (`--store`, `GRANARY_STORE`, `store = "..."`).
pub fn store_from_url(url: &str) -> Result<StoreConfig> {
    StoreConfig::from_url(url).map_err(|e| Error::Config(format!("the store setting: {e}")))
}

/// Reads a size: bytes (`1048576`), or a number with a unit (`64MiB`, `500 KB`, `2GiB`;
/// KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
pub fn parse_size(text: &str) -> Result<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" | "k" => 1024,
        "mb" => 1000 * 1000,
        "mib" | "m" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" | "g" => 1024 * 1024 * 1024,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|n| factor > 0 && *n > 0)
        .and_then(|n| n.checked_mul(factor))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            Error::Config(format!(
                "import limit `{text}` is not a size: give bytes, or a number with KiB, MiB or \
                 GiB (such as 64MiB)"
            ))
        })
}

/// Checks the public URL: http or https, no query or fragment, no trailing slash.
fn normalize_public_url(url: Url) -> Result<Url> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "the public URL {url} must start with http:// or https://"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "the public URL {url} must have no query and no fragment"
        )));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(Error::Config(format!("the public URL {url} has no host")));
    }
    if !url.path().trim_end_matches('/').is_empty() {
        return Err(Error::Config(format!(
            "the public URL {url} has a path: serve granary at the root of its host (for \
             example https://granary.example.com), since its pages link to /admin/ and /api/v1"
        )));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_string();
    Url::parse(&trimmed).map_err(|e| Error::Config(format!("the public URL {url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let settings = Settings::resolve(&CommonArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            settings.redirect_uri(),
            "http://127.0.0.1:8080/admin/oauth/"
        );
        assert_eq!(settings.data_dir, PathBuf::from("granary-data"));
        assert!(!settings.secure_cookies());
        assert_eq!(settings.refresh_deadline, Duration::from_secs(30));
        assert_eq!(settings.default_token_lifetime, None);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
        assert_eq!(settings.refresh_per_host, 2);
        assert_eq!(settings.request_timeout, Duration::from_secs(60));
        assert_eq!(settings.import_limit, 64 * 1024 * 1024);
        assert!(!settings.allow_insecure_http);
        assert_eq!(settings.proxy_body_limit, 64 * 1024 * 1024);
        assert_eq!(settings.proxy_timeout, Duration::from_secs(30));
        assert_eq!(settings.webhooks, WebhookSettings::default());
    }

    #[test]
    fn webhook_settings_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.toml");
        std::fs::write(
            &path,
            "webhook_timeout = 3\nwebhook_max_attempts = 4\nwebhook_backoff = 2\nwebhook_backoff_max = 60\nwebhook_retention = 3600\nwebhook_poll = 5\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        let w = &settings.webhooks;
        assert_eq!(
            (
                w.timeout,
                w.max_attempts,
                w.backoff,
                w.backoff_max,
                w.retention,
                w.poll
            ),
            (
                Duration::from_secs(3),
                4,
                Duration::from_secs(2),
                Duration::from_secs(60),
                Duration::from_secs(3600),
                Duration::from_secs(5)
            )
        );
        let serve = ServeArgs {
            webhook_max_attempts: Some(7),
            ..ServeArgs::default()
        };
        assert_eq!(
            Settings::resolve(&common, &serve)
                .unwrap()
                .webhooks
                .max_attempts,
            7
        );
        for bad in [
            ServeArgs {
                webhook_max_attempts: Some(11),
                ..ServeArgs::default()
            },
            ServeArgs {
                webhook_max_attempts: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                webhook_timeout: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                webhook_backoff_max: Some(1),
                ..ServeArgs::default()
            },
        ] {
            let error = Settings::resolve(&common, &bad).unwrap_err().to_string();
            assert!(error.contains("webhook_"), "{error}");
        }
    }

    #[test]
    fn proxy_limits_from_flags_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.toml");
        std::fs::write(&path, "proxy_body_limit = \"2MiB\"\nproxy_timeout = 5\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(settings.proxy_body_limit, 2 << 20);
        assert_eq!(settings.proxy_timeout, Duration::from_secs(5));
        let serve = ServeArgs {
            proxy_body_limit: Some("1000".into()),
            proxy_timeout: Some(7),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(&common, &serve).unwrap();
        assert_eq!(settings.proxy_body_limit, 1000);
        assert_eq!(settings.proxy_timeout, Duration::from_secs(7));
        let short = ServeArgs {
            request_timeout: Some(10),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(&CommonArgs::default(), &short).unwrap();
        assert_eq!(settings.proxy_timeout, Duration::from_secs(10));
        let longer = ServeArgs {
            proxy_timeout: Some(11),
            ..short
        };
        let error = Settings::resolve(&CommonArgs::default(), &longer).unwrap_err();
        assert!(error.to_string().contains("request_timeout"), "{error}");
    }

    #[test]
    fn import_limit_and_insecure_http_from_flags_and_file() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("500 KB").unwrap(), 500_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("lots").is_err() && parse_size("0").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.toml");
        std::fs::write(
            &path,
            "import_limit = \"2MiB\"\nallow_insecure_http = true\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(settings.import_limit, 2 << 20);
        assert!(settings.allow_insecure_http);
        let common = CommonArgs {
            import_limit: Some("1000".into()),
            allow_insecure_http: Some(false),
            ..common
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(settings.import_limit, 1000);
        assert!(!settings.allow_insecure_http);
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\npublic_url = \"https://granary.example/\"\ndata_dir = \"data\"\nlog_level = \"debug\"\nrefresh_deadline = 7\ndefault_token_lifetime = 7200\nshutdown_grace = 3\nrefresh_per_host = 5\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(
            settings.redirect_uri(),
            "https://granary.example/admin/oauth/"
        );
        assert_eq!(settings.data_dir, dir.path().join("data"));
        assert_eq!(settings.log_level, "debug");
        assert!(settings.secure_cookies());
        assert_eq!(settings.refresh_deadline, Duration::from_secs(7));
        assert_eq!(
            settings.default_token_lifetime,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(settings.shutdown_grace, Duration::from_secs(3));
        assert_eq!(settings.refresh_per_host, 5);
        let refused = Settings::resolve(
            &common,
            &ServeArgs {
                refresh_per_host: Some(0),
                ..ServeArgs::default()
            },
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("refresh_per_host"),
            "{refused}"
        );

        let common = CommonArgs {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..common
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:9001");
    }

    #[test]
    fn store_urls_from_flags_variables_and_the_file() {
        let settings = Settings::resolve(&CommonArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(
            settings.store,
            StoreConfig::Sqlite(PathBuf::from("granary-data").join("granary.sqlite"))
        );
        assert_eq!(settings.key_file, None);
        let with = |url: &str| {
            Settings::resolve(
                &CommonArgs {
                    store: Some(url.to_string()),
                    ..CommonArgs::default()
                },
                &ServeArgs::default(),
            )
        };
        assert_eq!(
            with("sqlite:/srv/g.sqlite").unwrap().store,
            StoreConfig::Sqlite("/srv/g.sqlite".into())
        );
        assert_eq!(
            with("sled:/srv/sled").unwrap().store,
            StoreConfig::Sled("/srv/sled".into())
        );
        assert_eq!(with("memory:").unwrap().store, StoreConfig::Memory);
        for url in [
            "postgres://granary:pw@db.internal/granary?sslmode=verify-full",
            "postgresql://db/granary",
        ] {
            assert_eq!(
                with(url).unwrap().store,
                StoreConfig::Postgres(url.to_string())
            );
        }
        for bad in ["mysql://db/g", "/srv/g.sqlite", "sqlite:", "memory:/x"] {
            let error = with(bad).unwrap_err().to_string();
            assert!(error.contains("the store setting"), "{bad}: {error}");
        }
        let error = with("mysql://db/g").unwrap_err().to_string();
        for form in ["sqlite:PATH", "sled:PATH", "memory:", "postgres://"] {
            assert!(error.contains(form), "{error}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.toml");
        std::fs::write(
            &path,
            "store = \"postgres://db/granary\"\nkey_file = \"keys/master.key\"\n",
        )
        .unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(
            settings.store,
            StoreConfig::Postgres("postgres://db/granary".to_string())
        );
        assert_eq!(settings.key_file, Some(dir.path().join("keys/master.key")));
        let common = CommonArgs {
            store: Some("memory:".into()),
            key_file: Some("/etc/granary.key".into()),
            ..common
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        assert_eq!(settings.store, StoreConfig::Memory);
        assert_eq!(settings.key_file, Some(PathBuf::from("/etc/granary.key")));
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..CommonArgs::default()
        };
        let error = Settings::resolve(&common, &ServeArgs::default()).unwrap_err();
        assert!(error.to_string().contains("lisen"), "{error}");
        let common = CommonArgs {
            public_url: Some(Url::parse("ftp://x.example").unwrap()),
            ..CommonArgs::default()
        };
        assert!(Settings::resolve(&common, &ServeArgs::default()).is_err());
        let common = CommonArgs {
            public_url: Some(Url::parse("https://x.example/prefix").unwrap()),
            ..CommonArgs::default()
        };
        let error = Settings::resolve(&common, &ServeArgs::default()).unwrap_err();
        assert!(error.to_string().contains("root of its host"), "{error}");
    }
}
