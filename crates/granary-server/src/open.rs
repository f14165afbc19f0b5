//! Opens the granary of a data directory through the facade: the SQLite store and its key.
//!
//! Layout of a data directory (mode 0700): `granary.sqlite` (the store, with its WAL),
//! `granary.sqlite.key` (the master keys, base64, one a line, current first; mode 0600;
//! `GRANARY_MASTER_KEY` replaces it), `admin-token` and `api-keys.json` (see their modules).

use granary::{Config, Granary, KeyRotation, StoreConfig};
use granary_flow::engine::Engine;

use crate::Result;
use crate::secrets::ensure_dir;
use crate::settings::Settings;

/// The store file in the data directory.
pub const STORE_FILE: &str = "granary.sqlite";

/// Opens (creating when new) the granary of the settings' data directory.
pub async fn granary(settings: &Settings) -> Result<Granary> {
    ensure_dir(&settings.data_dir)?;
    let config = Config::new(
        StoreConfig::Sqlite(settings.data_dir.join(STORE_FILE)),
        settings.public_url.clone(),
    )
    .with_refresh_deadline(settings.refresh_deadline);
    Ok(Granary::open(config).await?)
}

/// The engine of [`granary`].
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
