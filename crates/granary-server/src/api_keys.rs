//! API keys of the REST API: created on the admin page (or by the CLI), stored as SHA-256 digests.
//!
//! The keys live in `<data_dir>/api-keys.json` (mode 0600) as `{id, name, sha256, created}`;
//! the key itself is shown once, at creation, and never stored. A server notices keys that
//! the CLI created or removed in the same data directory within a second.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::secrets::{constant_time_eq, random_token, sha256_hex, write_private};
use crate::{Error, Result};

/// The file name in the data directory.
pub const FILE: &str = "api-keys.json";
/// Every key starts with this, so that a leaked key is recognizable (secret scanners).
pub const PREFIX: &str = "granary_";
/// How often a server looks at the file for changes made by another process.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// One API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// A short public id, to name and revoke the key.
    pub id: String,
    /// What the key is for.
    pub name: String,
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
    keys: Vec<ApiKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// The API keys of one data directory.
#[derive(Debug)]
pub struct ApiKeys {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl ApiKeys {
    /// Opens the keys of `data_dir` (no file: no keys).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(FILE);
        let (keys, modified) = read(&path)?;
        Ok(Self {
            path,
            loaded: Mutex::new(Loaded {
                keys,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<ApiKey>> {
        let mut loaded = self.lock();
        self.refresh(&mut loaded, Check::Always)?;
        Ok(loaded.keys.clone())
    }

    /// Creates a key named `name`; returns its record and the key, which is shown once.
    pub fn create(&self, name: &str) -> Result<(ApiKey, SecretString)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::Config(
                "an API key needs a name of 1 to 100 characters".into(),
            ));
        }
        let mut loaded = self.lock();
        self.refresh(&mut loaded, Check::Always)?;
        let key = format!("{PREFIX}{}", random_token(32));
        let record = ApiKey {
            id: random_token(6),
            name: name.to_string(),
            sha256: sha256_hex(&key),
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        };
        let mut keys = loaded.keys.clone();
        keys.push(record.clone());
        self.write(&mut loaded, keys)?;
        Ok((record, SecretString::from(key)))
    }

    /// Removes the key `id`; returns whether it existed.
    pub fn revoke(&self, id: &str) -> Result<bool> {
        let mut loaded = self.lock();
        self.refresh(&mut loaded, Check::Always)?;
        let keys: Vec<ApiKey> = loaded.keys.iter().filter(|k| k.id != id).cloned().collect();
        if keys.len() == loaded.keys.len() {
            return Ok(false);
        }
        self.write(&mut loaded, keys)?;
        Ok(true)
    }

    /// The key record that `presented` belongs to, if any (digests compared in constant time).
    pub fn verify(&self, presented: &str) -> Option<ApiKey> {
        if !presented.starts_with(PREFIX) {
            return None;
        }
        let digest = sha256_hex(presented);
        let mut loaded = self.lock();
        // Revocations by another process are seen within a second; a key unknown here may
        // have been created by another process just now: look at the file at once.
        let mut found = find(&loaded.keys, &digest);
        let check = if found.is_some() {
            Check::Periodic
        } else {
            Check::IfChanged
        };
        match self.refresh(&mut loaded, check) {
            Ok(true) => found = find(&loaded.keys, &digest),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot reload the API keys; keeping the ones loaded")
            }
        }
        found
    }

    /// The key as the CLI was given it: checks the prefix only (the server verifies it).
    pub fn looks_like_key(key: &SecretString) -> bool {
        key.expose_secret().starts_with(PREFIX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reloads the file as `check` says; returns whether it did.
    fn refresh(&self, loaded: &mut Loaded, check: Check) -> Result<bool> {
        if check == Check::Periodic && loaded.checked.elapsed() < RELOAD_EVERY {
            return Ok(false);
        }
        loaded.checked = Instant::now();
        let modified = modified(&self.path);
        if check == Check::Always || modified != loaded.modified {
            let (keys, modified) = read(&self.path)?;
            loaded.keys = keys;
            loaded.modified = modified;
            return Ok(true);
        }
        Ok(false)
    }

    fn write(&self, loaded: &mut Loaded, keys: Vec<ApiKey>) -> Result<()> {
        let file = KeyFile { keys };
        let text = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Config(format!("cannot serialize the API keys: {e}")))?;
        if let Some(dir) = self.path.parent() {
            crate::secrets::ensure_dir(dir)?;
        }
        write_private(&self.path, &text)?;
        loaded.keys = file.keys;
        loaded.modified = modified(&self.path);
        Ok(())
    }
}

/// When to read the key file again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Now.
    Always,
    /// When its modification time changed.
    IfChanged,
    /// When it changed, at most once a second.
    Periodic,
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

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        let (record, key) = keys.create("ci").unwrap();
        assert!(key.expose_secret().starts_with(PREFIX));
        assert_eq!(keys.verify(key.expose_secret()).unwrap().id, record.id);
        assert!(keys.verify("granary_wrong").is_none());
        assert!(keys.verify("").is_none());

        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            !text.contains(key.expose_secret()),
            "the key itself is never stored"
        );
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // Another process (the CLI) sees the key, and revokes it.
        let other = ApiKeys::open(dir.path()).unwrap();
        assert!(other.verify(key.expose_secret()).is_some());
        assert!(other.revoke(&record.id).unwrap());
        assert!(!other.revoke(&record.id).unwrap());
        assert!(other.verify(key.expose_secret()).is_none());
        assert!(keys.list().unwrap().is_empty());
    }

    #[test]
    fn an_empty_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::open(dir.path()).unwrap();
        assert!(keys.create("  ").is_err());
    }
}
