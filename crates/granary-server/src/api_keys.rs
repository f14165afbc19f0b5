//! API keys of the REST API: created on the admin page (or by the CLI), kept in the store as
//! SHA-256 digests.
//!
//! The store keeps each key as `{id, name, role, digest, created}` (see
//! [`granary_store::ApiKeyRecord`]); the key itself is shown once, at creation, and never
//! stored. Each key has a [`Role`]: `tokens` (the default) or `admin`. Revoking a key removes
//! it from the store.
//!
//! Every node on the store keeps the list in memory and looks a request's key up there. A
//! key unknown here may have been created by another node (or the CLI) just now: the list is
//! read from the store again, and concurrent unknown keys share one read. Keys revoked
//! elsewhere are seen within a second ([`ApiKeys::reload_if_changed`], run by the server
//! every second); every change of the key set is announced on [`ApiKeys::changes`] so that
//! open event streams re-check their key.
//!
//! Keys of a granary before the store kept them live in `<data_dir>/api-keys.json`:
//! [`migrate_file`] moves them into the store on the first open (a key stored before roles
//! has no `role` and reads as `admin`, since it could do everything then), then removes the
//! file.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use granary_store::{ApiKeyRecord, Store, Timestamp};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::secrets::{constant_time_eq, random_token, sha256_hex};
use crate::{Error, Result};

/// The file in the data directory where granary kept the keys before the store did; migrated
/// and removed by [`migrate_file`].
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

    /// The role's name, as in the store, the CLI and the admin page.
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

/// The `api-keys.json` of a granary before the store kept the keys.
#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<ApiKey>,
}

impl ApiKey {
    fn from_record(record: ApiKeyRecord) -> Self {
        let role = record.role.parse().unwrap_or_else(|_| {
            tracing::warn!(
                id = %record.id,
                role = %record.role,
                "an API key in the store has a role this granary does not know: it acts as a `tokens` key; revoke it and create it again"
            );
            Role::Tokens
        });
        Self {
            id: record.id,
            name: record.name,
            role,
            sha256: record.digest,
            created: u64::try_from(record.created.as_unix_millis() / 1000).unwrap_or(0),
        }
    }

    fn to_record(&self) -> ApiKeyRecord {
        ApiKeyRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role.as_str().to_string(),
            digest: self.sha256.clone(),
            created: Timestamp::from_unix_millis(
                i64::try_from(self.created.saturating_mul(1000)).unwrap_or(i64::MAX),
            ),
        }
    }
}

/// The API keys of a store, with the list a node keeps in memory.
pub struct ApiKeys {
    store: Arc<dyn Store>,
    /// The keys in memory: held only to read or swap the list, never across I/O.
    loaded: RwLock<Arc<Vec<ApiKey>>>,
    /// Serializes reloads; holds when the last one started.
    reload: tokio::sync::Mutex<Option<Instant>>,
    /// Counts changes of the key set (for open event streams).
    changes: tokio::sync::watch::Sender<u64>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

fn store_error(doing: &str, error: granary_store::Error) -> Error {
    Error::store(doing, error)
}

impl ApiKeys {
    /// The keys of `store`, read once now.
    pub async fn open(store: Arc<dyn Store>) -> Result<Self> {
        let keys = Self {
            store,
            loaded: RwLock::new(Arc::new(Vec::new())),
            reload: tokio::sync::Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        };
        keys.list().await?;
        Ok(keys)
    }

    /// Every key, oldest first (read from the store).
    pub async fn list(&self) -> Result<Vec<ApiKey>> {
        let records = self
            .store
            .list_api_keys()
            .await
            .map_err(|e| store_error("listing the API keys", e))?;
        let mut keys: Vec<ApiKey> = records.into_iter().map(ApiKey::from_record).collect();
        keys.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        self.replace(keys.clone());
        Ok(keys)
    }

    /// Creates a key named `name` with `role`; returns its record and the key, shown once.
    pub async fn create(&self, name: &str, role: Role) -> Result<(ApiKey, SecretString)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::Config(
                "an API key needs a name of 1 to 100 characters".into(),
            ));
        }
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
        self.store
            .create_api_key(&record.to_record())
            .await
            .map_err(|e| store_error("creating an API key", e))?;
        self.list().await?;
        Ok((record, SecretString::from(key)))
    }

    /// Revokes (removes) the key `id` on every node; returns whether it existed.
    pub async fn revoke(&self, id: &str) -> Result<bool> {
        let revoked = self
            .store
            .revoke_api_key(id)
            .await
            .map_err(|e| store_error("revoking an API key", e))?;
        self.list().await?;
        Ok(revoked)
    }

    /// The key record that `presented` belongs to, if any (digests compared in constant
    /// time). A key not in memory makes the list be read from the store again (one read
    /// shared by every request waiting for it).
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
            if let Err(error) = self.list().await {
                tracing::warn!(%error, "cannot reload the API keys; keeping the ones loaded");
            }
        }
        drop(last);
        self.lookup(&digest)
    }

    /// The key with this digest among the keys in memory (no I/O).
    pub fn lookup(&self, digest: &str) -> Option<ApiKey> {
        let keys = Arc::clone(&read_lock(&self.loaded));
        find(&keys, digest)
    }

    /// Reads the list from the store again; returns whether it changed (and then announces
    /// it on [`Self::changes`]). The server calls this every second, so that keys revoked
    /// on another node stop working here.
    pub async fn reload_if_changed(&self) -> Result<bool> {
        let mut last = self.reload.lock().await;
        *last = Some(Instant::now());
        let before = self.changes.borrow().to_owned();
        self.list().await?;
        Ok(*self.changes.borrow() != before)
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
    fn replace(&self, keys: Vec<ApiKey>) {
        let mut loaded = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if **loaded != keys {
            *loaded = Arc::new(keys);
            drop(loaded);
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

/// Moves the keys of `<data_dir>/api-keys.json` (written by a granary before the store kept
/// them) into `store`, then removes the file; returns how many keys were moved (0 when there
/// is no file). A key the store holds already is left as it is, so a migration cut short
/// (or run by two nodes at once) is finished by the next one without duplicates.
pub async fn migrate_file(data_dir: &Path, store: &dyn Store) -> Result<usize> {
    let path = data_dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Config(format!(
            "{} is damaged ({e}): fix it (its keys move into the store at the next start), or \
             remove it and create the API keys again",
            path.display()
        ))
    })?;
    let mut moved = 0;
    for key in &file.keys {
        match store.create_api_key(&key.to_record()).await {
            Ok(()) => moved += 1,
            Err(granary_store::Error::AlreadyExists { .. }) => {}
            Err(e) => {
                return Err(store_error(
                    &format!("moving the API keys of {} into the store", path.display()),
                    e,
                ));
            }
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::io(
                format!(
                    "the API keys of {} are in the store now, but the file cannot be removed: remove it by hand",
                    path.display()
                ),
                e,
            ));
        }
    }
    tracing::info!(
        file = %path.display(),
        keys = file.keys.len(),
        new = moved,
        "moved the API keys of the data directory into the store and removed the file"
    );
    Ok(moved)
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

#[cfg(test)]
mod tests {
    use granary_store::MemoryStore;

    use super::*;

    fn shared() -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn create_verify_revoke_across_nodes() {
        let store = shared();
        let a = ApiKeys::open(Arc::clone(&store)).await.unwrap();
        let b = ApiKeys::open(Arc::clone(&store)).await.unwrap();
        let (record, key) = a.create("ci", Role::Tokens).await.unwrap();
        assert!(key.expose_secret().starts_with(PREFIX));
        let found = a.verify(key.expose_secret()).await.unwrap();
        assert_eq!(found.id, record.id);
        assert_eq!(found.role, Role::Tokens);
        assert!(a.verify("granary_wrong").await.is_none());
        assert!(a.verify("").await.is_none());

        let stored = store.list_api_keys().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].role, "tokens");
        assert_ne!(stored[0].digest, key.expose_secret().to_string());
        assert!(
            !format!("{stored:?}").contains(key.expose_secret()),
            "the key itself is never stored"
        );

        // Node B has never seen the key: a miss reads the store at once.
        assert_eq!(b.verify(key.expose_secret()).await.unwrap().id, record.id);
        // Revoked on A: B still holds it in memory until its next reload, which announces it.
        let changes = b.changes();
        assert!(a.revoke(&record.id).await.unwrap());
        assert!(!a.revoke(&record.id).await.unwrap());
        assert!(a.verify(key.expose_secret()).await.is_none());
        assert!(b.reload_if_changed().await.unwrap());
        assert!(changes.has_changed().unwrap());
        assert!(b.verify(key.expose_secret()).await.is_none());
        assert!(
            !b.reload_if_changed().await.unwrap(),
            "nothing changed since"
        );
        assert!(b.list().await.unwrap().is_empty());
    }

    const OLD_FILE: &str = r#"{"keys":[
        {"id":"old","name":"before roles","sha256":"00aa","created":1},
        {"id":"new","name":"with a role","role":"tokens","sha256":"11bb","created":2}
    ]}"#;

    #[tokio::test]
    async fn an_api_keys_file_moves_into_the_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        std::fs::write(&file, OLD_FILE).unwrap();
        let store = shared();
        assert_eq!(migrate_file(dir.path(), store.as_ref()).await.unwrap(), 2);
        assert!(
            !file.exists(),
            "the file is removed once its keys are stored"
        );

        let keys = ApiKeys::open(Arc::clone(&store)).await.unwrap();
        let listed = keys.list().await.unwrap();
        let summary: Vec<(&str, Role, &str, u64)> = listed
            .iter()
            .map(|k| (k.id.as_str(), k.role, k.sha256.as_str(), k.created))
            .collect();
        assert_eq!(
            summary,
            [
                ("old", Role::Admin, "00aa", 1),
                ("new", Role::Tokens, "11bb", 2)
            ],
            "a key stored before roles is an admin key"
        );
        assert_eq!(keys.lookup("00aa").unwrap().name, "before roles");

        // A second start finds no file; a file put back (from a backup) adds no duplicate.
        assert_eq!(migrate_file(dir.path(), store.as_ref()).await.unwrap(), 0);
        std::fs::write(&file, OLD_FILE).unwrap();
        assert_eq!(migrate_file(dir.path(), store.as_ref()).await.unwrap(), 0);
        assert!(!file.exists());
        assert_eq!(store.list_api_keys().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_damaged_api_keys_file_is_kept_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        std::fs::write(&file, "{not json").unwrap();
        let store = shared();
        let error = migrate_file(dir.path(), store.as_ref())
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("api-keys.json is damaged"), "{error}");
        assert!(file.exists(), "a file that cannot be read is left as it is");
        assert!(store.list_api_keys().await.unwrap().is_empty());
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

    #[tokio::test]
    async fn an_empty_name_is_refused() {
        let keys = ApiKeys::open(shared()).await.unwrap();
        assert!(keys.create("  ", Role::Tokens).await.is_err());
    }
}
