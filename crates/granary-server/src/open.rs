//! Opens the granary of a data directory through the facade: the SQLite store and its key.
//!
//! Layout of a data directory (mode 0700): `granary.sqlite` (the store, with its WAL),
//! `granary.sqlite.key` (the master keys, base64, one a line, current first; mode 0600;
//! `GRANARY_MASTER_KEY` replaces it), `admin-token` and `api-keys.json` (see their modules).

use std::path::Path;

use granary::{Config, Granary, KeyRotation, StoreConfig};
use granary_flow::engine::Engine;
use url::Url;

use crate::Result;
use crate::secrets::ensure_dir;

/// The store file in the data directory.
pub const STORE_FILE: &str = "granary.sqlite";

/// Opens (creating when new) the granary of `data_dir`, reached at `public_url`.
pub async fn granary(data_dir: &Path, public_url: &Url) -> Result<Granary> {
    ensure_dir(data_dir)?;
    let config = Config::new(
        StoreConfig::Sqlite(data_dir.join(STORE_FILE)),
        public_url.clone(),
    );
    Ok(Granary::open(config).await?)
}

/// The engine of [`granary`].
pub async fn engine(data_dir: &Path, public_url: &Url) -> Result<Engine> {
    Ok(granary(data_dir, public_url).await?.engine().clone())
}

/// Rotates the master key of `data_dir`: a new key seals from now on, every stored secret
/// is re-sealed, the previous key stays in the key file for pending authorizations.
pub async fn rotate_key(data_dir: &Path, public_url: &Url) -> Result<KeyRotation> {
    let granary = granary(data_dir, public_url).await?;
    Ok(granary.rotate_key(None).await?)
}
