//! Opens the engine of a data directory: the SQLite store and the master key file.
//!
//! Layout of a data directory (mode 0700): `granary.sqlite` (the store), `master.key` (hex
//! master keys, one a line: the current key first, then previous keys that still open older
//! values; mode 0600), `admin-token` and `api-keys.json` (see their modules).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use granary_flow::engine::{Engine, Keyring, MasterKey, ResealReport};
use granary_store::Store;
use granary_store_sqlite::SqliteStore;
use secrecy::{ExposeSecret as _, SecretBox};
use url::Url;

use crate::secrets::{ensure_dir, write_private};
use crate::{Error, Result};

/// The store file in the data directory.
pub const STORE_FILE: &str = "granary.sqlite";
/// The key file in the data directory.
pub const KEY_FILE: &str = "master.key";

/// The keys of a data directory, and whether they were generated now.
struct Keys {
    keys: Vec<SecretBox<[u8; 32]>>,
}

fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

fn parse_key(line: &str, path: &Path, number: usize) -> Result<SecretBox<[u8; 32]>> {
    let bytes = hex::decode(line.trim()).map_err(|_| {
        Error::Config(format!(
            "line {number} of {} is not a hex key: restore the file from a backup (without it the stored secrets cannot be opened)",
            path.display()
        ))
    })?;
    let array: [u8; 32] = bytes.try_into().map_err(|_| {
        Error::Config(format!(
            "line {number} of {} is not a 32-byte key: restore the file from a backup",
            path.display()
        ))
    })?;
    Ok(SecretBox::new(Box::new(array)))
}

fn load_keys(data_dir: &Path) -> Result<Keys> {
    let path = key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let keys = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(number, line)| parse_key(line, &path, number + 1))
                .collect::<Result<Vec<_>>>()?;
            if keys.is_empty() {
                return Err(Error::Config(format!(
                    "{} holds no key: restore it from a backup",
                    path.display()
                )));
            }
            Ok(Keys { keys })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let store = data_dir.join(STORE_FILE);
            if store.exists() {
                return Err(Error::Config(format!(
                    "{} exists but its key file {} is missing: restore the key file (without it the stored secrets cannot be opened)",
                    store.display(),
                    path.display()
                )));
            }
            let (_, bytes) = MasterKey::generate();
            write_keys(data_dir, std::slice::from_ref(&bytes))?;
            Ok(Keys { keys: vec![bytes] })
        }
        Err(e) => Err(Error::io(
            format!("cannot read the key file {}", path.display()),
            e,
        )),
    }
}

fn write_keys(data_dir: &Path, keys: &[SecretBox<[u8; 32]>]) -> Result<()> {
    let mut text = String::new();
    for key in keys {
        text.push_str(&hex::encode(key.expose_secret()));
        text.push('\n');
    }
    write_private(&key_path(data_dir), text.as_bytes())
}

fn keyring(keys: &Keys) -> Keyring {
    let mut iter = keys.keys.iter().map(MasterKey::from_bytes);
    let current = iter.next().unwrap_or_else(|| MasterKey::generate().0);
    Keyring::new(current, iter.collect())
}

/// Opens (creating when new) the store and key of `data_dir`, and builds the engine reached
/// at `public_url`.
pub async fn engine(data_dir: &Path, public_url: &Url) -> Result<Engine> {
    ensure_dir(data_dir)?;
    let keys = load_keys(data_dir)?;
    let store = SqliteStore::open(data_dir.join(STORE_FILE))
        .await
        .map_err(|e| Error::Engine(e.into()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    Ok(Engine::builder(store, keyring(&keys), public_url.clone()).build()?)
}

/// Rotates the master key: a new key seals from now on, every stored secret is re-sealed
/// under it, and the previous key is kept (second line) for pending authorizations.
pub async fn rotate_key(data_dir: &Path, engine: &Engine) -> Result<ResealReport> {
    let old = load_keys(data_dir)?;
    let (_, new) = MasterKey::generate();
    let mut keys = vec![new];
    // The new key is on disk before anything is sealed with it.
    keys.extend(old.keys.into_iter().take(1));
    write_keys(data_dir, &keys)?;
    let loaded = Keys { keys };
    engine.replace_keyring(keyring(&loaded));
    Ok(engine.reseal_all().await?)
}
