//! The master key: from configuration, the environment, or a key file generated with mode
//! 0600 on first use; and its rotation.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use granary_flow::engine::seal::{Field, SealError};
use granary_flow::engine::{Keyring, MasterKey, ResealReport};
use granary_store::Store;
use secrecy::{ExposeSecret as _, SecretBox};

use crate::config::KeySource;
use crate::{Error, Result};

/// The environment variable that holds the master key (base64 of 32 bytes).
pub const KEY_ENV: &str = "GRANARY_MASTER_KEY";

type KeyBytes = SecretBox<[u8; 32]>;

/// What [`crate::Granary::rotate_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyRotation {
    /// The id of the key that seals from now on.
    pub new_key_id: String,
    /// The id of the key it replaced (still loaded, to open what is not re-sealed).
    pub previous_key_id: String,
    /// The key file that now holds the new key, if the key lives in a file.
    pub key_file: Option<PathBuf>,
    /// What was re-sealed.
    pub report: ResealReport,
}

/// The loaded keys: the current one first.
pub(crate) struct Keys {
    keys: Mutex<Vec<KeyBytes>>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("loaded", &self.lock().len())
            .field("file", &self.file)
            .finish()
    }
}

impl Keys {
    pub(crate) fn load(source: &KeySource, previous: &[KeyBytes]) -> Result<Self> {
        let (mut keys, file) = match source {
            KeySource::Bytes(bytes) => (vec![copy(bytes)], None),
            KeySource::Env => (
                vec![from_env()?.ok_or_else(|| {
                    Error::Key(format!(
                        "{KEY_ENV} is not set: set it to the base64 of 32 random bytes (for \
                     example `openssl rand -base64 32`)"
                    ))
                })?],
                None,
            ),
            KeySource::File(path) => (read_or_create(path)?, Some(path.clone())),
            KeySource::EnvOrFile(path) => match from_env()? {
                Some(key) => (vec![key], None),
                None => (read_or_create(path)?, Some(path.clone())),
            },
            KeySource::Ephemeral => (vec![generate()], None),
        };
        keys.extend(previous.iter().map(copy));
        Ok(Self {
            keys: Mutex::new(keys),
            file,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<KeyBytes>> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn keyring(&self) -> Keyring {
        keyring_of(&self.lock())
    }

    /// Reads the key file again (another process rotated the key): its keys first, in its
    /// order, then any key loaded here that the file no longer lists. `Ok(None)` when the
    /// keys do not live in a file.
    pub(crate) fn reload(&self) -> Result<Option<Keyring>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let text = fs::read_to_string(file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let mut fresh = parse_key_file(file, &text)?;
        let mut keys = self.lock();
        for held in keys.iter() {
            if !fresh
                .iter()
                .any(|k| k.expose_secret() == held.expose_secret())
            {
                fresh.push(copy(held));
            }
        }
        *keys = fresh;
        Ok(Some(keyring_of(&keys)))
    }

    /// Puts `new` (or a generated key) first and keeps the others as previous keys; writes
    /// the key file first when there is one.
    pub(crate) fn rotate(&self, new: Option<KeyBytes>) -> Result<(Keyring, KeyRotation)> {
        let new = match new {
            Some(new) => new,
            None if self.file.is_some() => generate(),
            None => {
                return Err(Error::Key(
                    "the key does not live in a key file, so granary cannot store a generated \
                     one: generate a key, put it where the configuration reads it, and pass it \
                     to rotate_key"
                        .to_string(),
                ));
            }
        };
        let mut keys = self.lock();
        let previous_key_id = keys
            .first()
            .map(|k| MasterKey::from_bytes(k).id().to_string())
            .unwrap_or_default();
        let new_key_id = MasterKey::from_bytes(&new).id().to_string();
        let mut rotated = vec![new];
        rotated.extend(keys.iter().map(copy));
        if let Some(file) = &self.file {
            write_key_file(file, &rotated)?;
        }
        *keys = rotated;
        let rotation = KeyRotation {
            new_key_id,
            previous_key_id,
            key_file: self.file.clone(),
            report: ResealReport::default(),
        };
        Ok((keyring_of(&keys), rotation))
    }
}

/// What the key check holds, sealed (`Field::KeyCheck`, instance id `""`).
const KEY_CHECK_PLAINTEXT: &[u8] = b"granary key check v1";

fn seal_key_check(keyring: &Keyring) -> Result<granary_store::Sealed> {
    keyring
        .seal("", Field::KeyCheck, KEY_CHECK_PLAINTEXT)
        .map_err(|e| Error::Key(format!("cannot seal the key check: {e}")))
}

/// Checks at open that these keys open the store's secrets: stores a key check sealed with
/// the current key when the store has none, else opens the stored one. A store without key
/// checks (a custom backend that keeps the trait's default) is opened with a warning.
pub(crate) async fn check_key(store: &dyn Store, keyring: &Keyring) -> Result<()> {
    let candidate = seal_key_check(keyring)?;
    let stored = match store.put_key_check(&candidate, false).await {
        Ok(stored) => stored,
        Err(granary_store::Error::Unsupported { .. }) => {
            tracing::warn!(
                "the store keeps no key check: a wrong master key will show only when a secret \
                 is opened"
            );
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    if stored == candidate {
        return Ok(());
    }
    match keyring.open("", Field::KeyCheck, &stored) {
        Ok(plain) if plain.expose_secret() == KEY_CHECK_PLAINTEXT => Ok(()),
        Ok(_) | Err(SealError::Tampered { .. }) => Err(Error::Key(format!(
            "the master key cannot open this store's secrets: its key check (sealed with key \
             {}) does not open with this node's key {}, so the key or the check was altered. \
             Start this node with the master key the store was written with \
             (GRANARY_MASTER_KEY or the key file)",
            describe_key(&stored),
            keyring.current_id()
        ))),
        Err(SealError::UnknownKey(id)) => Err(Error::Key(format!(
            "the master key cannot open this store's secrets: they are sealed with key {id}, \
             and this node holds {}. Start this node with the master key the store was written \
             with (the same GRANARY_MASTER_KEY or key file as the other nodes); a new key would \
             leave every stored secret unreadable",
            keyring
                .key_ids()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        Err(other) => Err(Error::Key(format!(
            "the master key cannot open this store's key check: {other}"
        ))),
    }
}

fn describe_key(sealed: &granary_store::Sealed) -> String {
    Keyring::sealed_key_id(sealed).map_or_else(|| "unknown".to_string(), |id| id.to_string())
}

/// After a rotation: the key check sealed with the new current key.
pub(crate) async fn replace_key_check(store: &dyn Store, keyring: &Keyring) -> Result<()> {
    match store.put_key_check(&seal_key_check(keyring)?, true).await {
        Ok(_) | Err(granary_store::Error::Unsupported { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn keyring_of(keys: &[KeyBytes]) -> Keyring {
    let mut masters = keys.iter().map(MasterKey::from_bytes);
    match masters.next() {
        Some(current) => Keyring::new(current, masters.collect()),
        // `load` always puts one key first; a random key would seal nothing reusable.
        None => Keyring::new(MasterKey::generate().0, Vec::new()),
    }
}

fn copy(key: &KeyBytes) -> KeyBytes {
    SecretBox::new(Box::new(*key.expose_secret()))
}

fn generate() -> KeyBytes {
    MasterKey::generate().1
}

fn decode(text: &str, whence: &str) -> Result<KeyBytes> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| {
            Error::Key(format!(
                "{whence} is not base64: it must be the base64 of 32 random bytes"
            ))
        })?;
    let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        Error::Key(format!(
            "{whence} holds {} bytes, not 32: it must be the base64 of 32 random bytes",
            b.len()
        ))
    })?;
    Ok(SecretBox::new(Box::new(key)))
}

fn from_env() -> Result<Option<KeyBytes>> {
    match std::env::var(KEY_ENV) {
        Ok(value) if !value.trim().is_empty() => decode(&value, KEY_ENV).map(Some),
        _ => Ok(None),
    }
}

fn read_or_create(path: &Path) -> Result<Vec<KeyBytes>> {
    match fs::read_to_string(path) {
        Ok(text) => parse_key_file(path, &text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = generate();
            // Written beside, then linked into place: of several processes starting at
            // once, one creates the file and the others read it whole.
            match create_exclusive(path, std::slice::from_ref(&key)) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated a new master key file");
                    Ok(vec![key])
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = fs::read_to_string(path).map_err(|source| Error::Io {
                        path: path.to_path_buf(),
                        source,
                    })?;
                    parse_key_file(path, &text)
                }
                Err(source) => Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_key_file(path: &Path, text: &str) -> Result<Vec<KeyBytes>> {
    warn_if_readable_by_others(path);
    let whence = format!("the key file {}", path.display());
    let keys = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line| decode(line, &whence))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        return Err(Error::Key(format!(
            "{whence} holds no key: remove the empty file to have a new key generated (only if \
             nothing was stored with the old one), or restore it from a backup"
        )));
    }
    Ok(keys)
}

fn key_file_text(keys: &[KeyBytes]) -> String {
    let mut text = String::from(
        "# granary master keys: the first seals, the others still open. Keep this file secret.\n",
    );
    for key in keys {
        text.push_str(&STANDARD.encode(key.expose_secret()));
        text.push('\n');
    }
    text
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(name)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn create_exclusive(path: &Path, keys: &[KeyBytes]) -> std::io::Result<()> {
    let temp = temp_path(path);
    let _ = fs::remove_file(&temp);
    write_private(&temp, &key_file_text(keys))?;
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    linked
}

fn write_key_file(path: &Path, keys: &[KeyBytes]) -> Result<()> {
    let temp = temp_path(path);
    let _ = fs::remove_file(&temp);
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    write_private(&temp, &key_file_text(keys)).map_err(io)?;
    fs::rename(&temp, path).map_err(io)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the key file is readable by other users: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("granary.key");
        let first = read_or_create(&path).unwrap();
        let again = read_or_create(&path).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].expose_secret(), again[0].expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn rotation_writes_the_new_key_first_and_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let keys = Keys::load(&KeySource::File(path.clone()), &[]).unwrap();
        let old = keys.keyring().current_id();
        let (ring, rotation) = keys.rotate(None).unwrap();
        assert_eq!(rotation.previous_key_id, old.to_string());
        assert_ne!(ring.current_id(), old);
        let reloaded = Keys::load(&KeySource::File(path), &[]).unwrap().keyring();
        assert_eq!(reloaded.key_ids(), vec![ring.current_id(), old]);
    }

    #[test]
    fn reload_reads_a_key_another_process_rotated_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let here = Keys::load(&KeySource::File(path.clone()), &[]).unwrap();
        let old_id = here.keyring().current_id();
        let there = Keys::load(&KeySource::File(path.clone()), &[]).unwrap();
        let (_, rotation) = there.rotate(None).unwrap();
        let reloaded = here.reload().unwrap().expect("a key file reloads");
        assert_eq!(reloaded.current_id().to_string(), rotation.new_key_id);
        assert!(
            reloaded.key_ids().contains(&old_id),
            "the old key still opens"
        );
        let memory = Keys::load(&KeySource::Ephemeral, &[]).unwrap();
        assert!(memory.reload().unwrap().is_none());
    }

    #[test]
    fn malformed_keys_are_refused_with_a_hint() {
        let err = decode("not base64!", "X").err().unwrap();
        assert!(err.to_string().contains("base64 of 32 random bytes"));
        let err = decode(&STANDARD.encode([1u8; 16]), "X").err().unwrap();
        assert!(err.to_string().contains("16 bytes"));
        assert!(decode(&STANDARD.encode([1u8; 32]), "X").is_ok());
        assert!(
            Keys::load(&KeySource::Ephemeral, &[])
                .unwrap()
                .rotate(None)
                .is_err()
        );
    }
}
