//! Opens the granary of the settings through the facade: the store their URL names (SQLite
//! in the data directory by default) and its key.
//!
//! Layout of a data directory (mode 0700): `granary.sqlite` (the store, with its WAL),
//! `granary.sqlite.key` (the master keys, base64, one a line, current first; mode 0600;
//! `GRANARY_MASTER_KEY` replaces it) and `admin-token` (see its module). Admin sessions and
//! API keys live in the store; an `api-keys.json` left by an older granary is moved into the
//! store when the store is opened (see `api_keys::migrate_file`).
//!
//! The store's files are 0600 whatever the directory's mode: the database file is created
//! (or narrowed) to 0600 before SQLite opens it, and SQLite gives its `-wal` and `-shm` files
//! the mode of the database file; ones left by an older granary are narrowed too.

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use granary::{Config, Granary, KEY_ENV, KeyRotation, KeySource, StoreConfig};
use granary_flow::engine::Engine;

use crate::secrets::ensure_dir;
use crate::settings::Settings;
use crate::{Error, Result};

/// The store file in the data directory.
pub const STORE_FILE: &str = "granary.sqlite";

/// Opens (creating when new) the granary of the settings: their store and key. The API keys
/// of an `api-keys.json` in the data directory (kept there before the store kept them) move
/// into the store, and the file is removed.
pub async fn granary(settings: &Settings) -> Result<Granary> {
    ensure_dir(&settings.data_dir)?;
    if let StoreConfig::Sqlite(path) = &settings.store {
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            ensure_dir(folder)?;
        }
        private_store_files(path)?;
    }
    let config = Config::new(settings.store.clone(), settings.public_url.clone())
        .with_key(key_source(settings)?)
        .with_refresh_deadline(settings.refresh_deadline)
        .with_default_token_lifetime(settings.default_token_lifetime)
        .with_reconnect_link_ttl(Some(settings.reconnect_link_ttl))
        .with_import_limits(granary_openapi::Limits::new(
            settings.import_limit,
            granary_openapi::Limits::DEFAULT_MAX_DEPTH,
        ))
        .with_allow_insecure_http(settings.allow_insecure_http);
    let granary = Granary::open(config).await?;
    crate::api_keys::migrate_file(&settings.data_dir, granary.store().as_ref()).await?;
    Ok(granary)
}

/// Where the master key comes from: `GRANARY_MASTER_KEY`, else the key file setting, else
/// the file next to the store; a store with no file next to it (PostgreSQL) needs one of the
/// first two, and a memory store gets a key of its own.
pub fn key_source(settings: &Settings) -> Result<KeySource> {
    if let Some(file) = &settings.key_file {
        return Ok(KeySource::EnvOrFile(file.clone()));
    }
    if let Some(file) = settings.store.key_file() {
        return Ok(KeySource::EnvOrFile(file));
    }
    if settings.store == StoreConfig::Memory {
        return Ok(KeySource::Ephemeral);
    }
    if std::env::var(KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        return Ok(KeySource::Env);
    }
    Err(Error::Config(format!(
        "this store has no file next to it to keep the master key in: set {KEY_ENV} (the base64 \
         of 32 random bytes, e.g. `openssl rand -base64 32`), or a key file with --key-file, \
         GRANARY_KEY_FILE or key_file; every node on the store needs the same key"
    )))
}

/// Whether the store holds granary data already (a store without a local file is taken to).
pub fn store_exists(settings: &Settings) -> bool {
    match &settings.store {
        StoreConfig::Sqlite(path) | StoreConfig::Sled(path) => path.exists(),
        StoreConfig::Memory => false,
        _ => true,
    }
}

/// Makes the database file and its `-wal`/`-shm`/`-journal` companions mode 0600: creates
/// the database file empty (SQLite takes an empty file as a new database) when missing.
pub fn private_store_files(database: &Path) -> Result<()> {
    let private = std::fs::Permissions::from_mode(0o600);
    if !database.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(database)
            .or_else(|e| {
                // Created by another process meanwhile: narrowed below.
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    std::fs::File::open(database)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| Error::io(format!("cannot create {}", database.display()), e))?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        let path = std::path::PathBuf::from(path);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&path, private.clone()).map_err(|e| {
                    Error::io(format!("cannot make {} private (0600)", path.display()), e)
                })?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }
    Ok(())
}

/// A warning when others than the owner may read or enter the data directory (its files
/// are 0600, but their names and sizes show, and a file created by hand may be readable).
pub fn data_dir_warning(dir: &Path) -> Option<String> {
    let mode = std::fs::metadata(dir).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "the data directory {} has mode {:o}: others than its owner can see into it; make it private with `chmod 700 {}`",
            dir.display(),
            mode & 0o777,
            dir.display()
        )
    })
}

/// The engine of [`granary()`].
pub async fn engine(settings: &Settings) -> Result<Engine> {
    Ok(granary(settings).await?.engine().clone())
}

/// Rotates the master key of the data directory: a new key seals from now on, every stored
/// secret is re-sealed, the previous key stays in the key file for pending authorizations.
/// A server running on the same directory notices: it loads the key file again when it
/// meets a value sealed with the new key (and the change feed makes it read the re-sealed
/// records within a second).
pub async fn rotate_key(settings: &Settings) -> Result<KeyRotation> {
    let granary = granary(settings).await?;
    Ok(granary.rotate_key(None).await?)
}
