//! API keys of the REST API: created on the admin page (or by the CLI), stored as SHA-256 digests.
//!
//! The keys live in `<data_dir>/api-keys.json` (mode 0600) as `{id, name, role, sha256,
//! created}`; the key itself is shown once, at creation, and never stored. Each key has a
//! [`Role`]: `tokens` (the default) or `admin`; a key stored before roles existed has no
//! `role` field and reads as `admin`, since it could do everything then.
//!
//! A request's key is looked up in memory only. A key unknown here may have been created by
//! another process (the CLI) just now: the file is read again, off the async workers, and
//! concurrent unknown keys share one read. Keys revoked by another process are seen within a
//! second ([`ApiKeys::reload_if_changed`], run by the server every second); every change of
//! the key set is announced on [`ApiKeys::changes`] so that open event streams re-check
//! their key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::secrets::{constant_time_eq, random_token, sha256_hex, write_private};
use crate::{Error, Result};

/// The file name in the data directory.
pub const FILE: &str = "api-keys.json";
/// Every key starts with this, so that a leaked key is recognizable (secret scanners).
pub const PREFIX: &str = "granary_";

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// List and read instances, get and refresh tokens, read events (the default for new keys).
    #[default]
    Tokens,
    /// Everything the REST API offers: integrations, instance configuration, authorization.
    Admin,
}

impl Role {
    /// Whether a key of this role may call a route that needs `needed`.
    pub fn permits(self, needed: Role) -> bool {
        self == Role::Admin || needed == Role::Tokens
    }

    /// The role's name, as in the file, the CLI and the admin page.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tokens => "tokens",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text.trim() {
            "tokens" => Ok(Role::Tokens),
            "admin" => Ok(Role::Admin),
            other => Err(Error::Config(format!(
                "`{other}` is no API key role: use `tokens` (read instances, get and refresh tokens, read events) or `admin` (everything)"
            ))),
        }
    }
}

/// Keys written before roles existed could do everything: they read as `admin`.
fn legacy_role() -> Role {
    Role::Admin
}

/// One API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// A short public id, to name and revoke the key.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// What the key may do (absent in files written before roles: `admin`).
    #[serde(default = "legacy_role")]
    pub role: Role,
    /// The SHA-256 digest of the key, hex.
    pub sha256: String,
    /// When it was created (unix seconds).
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<ApiKey>,
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<Vec<ApiKey>>,
    modified: Option<SystemTime>,
}

/// The API keys of one data directory.
#[derive(Debug)]
pub struct ApiKeys {
    path: PathBuf,
    /// The keys in memory: held only to read or swap the list, never across I/O.
    loaded: RwLock<Loaded>,
    /// Serializes read-modify-write of the file (create, revoke).
    writing: Mutex<()>,
    /// Serializes reloads; holds when the last one started.
    reload: tokio::sync::Mutex<Option<Instant>>,
    /// Counts changes of the key set (for open event streams).
    changes: tokio::sync::watch::Sender<u64>,
}

impl ApiKeys {
    /// Opens the keys of `data_dir` (no file: no keys).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(FILE);
        let (keys, modified) = read(&path)?;
        Ok(Self {
            path,
            loaded: RwLock::new(Loaded {
                keys: Arc::new(keys),
                modified,
            }),
            writing: Mutex::new(()),
            reload: tokio::sync::Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Every key, oldest first (reads the file).
    pub fn list(&self) -> Result<Vec<ApiKey>> {
        let _writing = lock(&self.writing);
        let (keys, modified) = read(&self.path)?;
        self.replace(keys.clone(), modified);
        Ok(keys)
    }

    /// Creates a key named `name` with `role`; returns its record and the key, shown once.
    pub fn create(&self, name: &str, role: Role) -> Result<(ApiKey, SecretString)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::Config(
                "an API key needs a name of 1 to 100 characters".into(),
            ));
        }
        let _writing = lock(&self.writing);
        let (mut keys, _) = read(&self.path)?;
        let key = format!("{PREFIX}{}", random_token(32));
        let record = ApiKey {
            id: random_token(6),
            name: name.to_string(),
            role,
            sha256: sha256_hex(&key),
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        };
        keys.push(record.clone());
        self.write(keys)?;
        Ok((record, SecretString::from(key)))
    }

    /// Removes the key `id`; returns whether it existed.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        let _writing = lock(&self.writing);
        let (keys, modified) = read(&self.path)?;
        let kept: Vec<ApiKey> = keys.iter().filter(|k| k.id != id).cloned().collect();
        if kept.len() == keys.len() {
            self.replace(keys, modified);
            return Ok(false);
        }
        self.write(kept)?;
        Ok(true)
    }

    /// The key record that `presented` belongs to, if any (digests compared in constant
    /// time). A key not in memory makes the file be read again (off the async workers; one
    /// read shared by every request waiting for it).
    pub async fn verify(&self, presented: &str) -> Option<ApiKey> {
        if !presented.starts_with(PREFIX) {
            return None;
        }
        let digest = sha256_hex(presented);
        if let Some(found) = self.lookup(&digest) {
            return Some(found);
        }
        let asked = Instant::now();
        let mut last = self.reload.lock().await;
        // A reload that started after this request looked is as good as a new one.
        if last.is_none_or(|started| started < asked) {
            *last = Some(Instant::now());
            if let Err(error) = self.reload_now().await {
                tracing::warn!(%error, "cannot reload the API keys; keeping the ones loaded");
            }
        }
        drop(last);
        self.lookup(&digest)
    }

    /// The key with this digest among the keys in memory (no I/O).
    pub fn lookup(&self, digest: &str) -> Option<ApiKey> {
        let keys = Arc::clone(&read_lock(&self.loaded).keys);
        find(&keys, digest)
    }

    /// Reads the file again when its modification time changed (off the async workers);
    /// returns whether the keys were read. The server calls this every second, so that keys
    /// revoked by another process stop working.
    pub async fn reload_if_changed(&self) -> Result<bool> {
        let _last = self.reload.lock().await;
        self.reload_now().await
    }

    async fn reload_now(&self) -> Result<bool> {
        let path = self.path.clone();
        let known = read_lock(&self.loaded).modified;
        let read = tokio::task::spawn_blocking(move || {
            let modified = modified(&path);
            if modified == known && modified.is_some() {
                return Ok(None);
            }
            read(&path).map(Some)
        })
        .await
        .map_err(|e| Error::Config(format!("the API key reload failed: {e}")))??;
        match read {
            Some((keys, modified)) => {
                self.replace(keys, modified);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A receiver that sees every change of the key set.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The key as the CLI was given it: checks the prefix only (the server verifies it).
    pub fn looks_like_key(key: &SecretString) -> bool {
        key.expose_secret().starts_with(PREFIX)
    }

    /// Swaps the keys in memory; announces a change when they differ.
    fn replace(&self, keys: Vec<ApiKey>, modified: Option<SystemTime>) {
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded.modified = modified;
        if *loaded.keys != keys {
            loaded.keys = Arc::new(keys);
            drop(loaded);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    fn write(&self, keys: Vec<ApiKey>) -> Result<()> {
        let file = KeyFile { keys };
        let text = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Config(format!("cannot serialize the API keys: {e}")))?;
        if let Some(dir) = self.path.parent() {
            crate::secrets::ensure_dir(dir)?;
        }
        write_private(&self.path, &text)?;
        self.replace(file.keys, modified(&self.path));
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key with this digest (every digest is compared, in constant time).
fn find(keys: &[ApiKey], digest: &str) -> Option<ApiKey> {
    let mut found = None;
    for key in keys {
        if constant_time_eq(&key.sha256, digest) {
            found = Some(key.clone());
        }
    }
    found
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<(Vec<ApiKey>, Option<SystemTime>)> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Config(format!(
                    "{} is damaged ({e}): fix it, or remove it and create the API keys again",
                    path.display()
                ))
            })?;
            Ok((file.keys, modified(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), None)),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        let (record, key) = keys.create("ci", Role::Tokens).unwrap();
        assert!(key.expose_secret().starts_with(PREFIX));
        let found = keys.verify(key.expose_secret()).await.unwrap();
        assert_eq!(found.id, record.id);
        assert_eq!(found.role, Role::Tokens);
        assert!(keys.verify("granary_wrong").await.is_none());
        assert!(keys.verify("").await.is_none());

        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            !text.contains(key.expose_secret()),
            "the key itself is never stored"
        );
        assert!(text.contains("\"role\": \"tokens\""), "{text}");
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // Another process (the CLI) sees the key, and revokes it.
        let other = ApiKeys::open(dir.path()).unwrap();
        assert!(other.verify(key.expose_secret()).await.is_some());
        let changes = keys.changes();
        assert!(other.revoke(&record.id).unwrap());
        assert!(!other.revoke(&record.id).unwrap());
        assert!(other.verify(key.expose_secret()).await.is_none());
        // The first process sees the revocation at its next reload, and announces it.
        assert!(keys.reload_if_changed().await.unwrap());
        assert!(changes.has_changed().unwrap());
        assert!(keys.verify(key.expose_secret()).await.is_none());
        assert!(keys.list().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_key_created_by_another_process_works_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let server = ApiKeys::open(dir.path()).unwrap();
        assert!(server.verify("granary_unknown").await.is_none());
        let cli = ApiKeys::open(dir.path()).unwrap();
        let (_, key) = cli.create("ci", Role::Admin).unwrap();
        assert_eq!(
            server.verify(key.expose_secret()).await.unwrap().role,
            Role::Admin
        );
    }

    #[test]
    fn keys_stored_without_a_role_are_admin_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            r#"{"keys":[{"id":"old","name":"before roles","sha256":"00","created":1}]}"#,
        )
        .unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        assert_eq!(keys.list().unwrap()[0].role, Role::Admin);
    }

    #[test]
    fn roles_permit_what_they_say() {
        assert!(Role::Admin.permits(Role::Admin));
        assert!(Role::Admin.permits(Role::Tokens));
        assert!(Role::Tokens.permits(Role::Tokens));
        assert!(!Role::Tokens.permits(Role::Admin));
        assert_eq!("tokens".parse::<Role>().unwrap(), Role::Tokens);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Role::default(), Role::Tokens);
    }

    #[test]
    fn an_empty_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        assert!(keys.create("  ", Role::Tokens).is_err());
    }
}
