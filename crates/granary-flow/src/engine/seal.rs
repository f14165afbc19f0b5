//! Sealing of secrets before they reach the store: XChaCha20-Poly1305 with the instance id
//! and the field name as associated data, under a key that each sealed value names.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use granary_store::Sealed;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

/// The envelope format version, the first byte of every sealed value.
const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Which secret a sealed value holds; part of the associated data, so a value sealed for
/// one field does not open as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The instance's client secret.
    ClientSecret,
    /// An access token.
    AccessToken,
    /// A refresh token.
    RefreshToken,
    /// The PKCE code verifier of a pending authorization.
    PkceVerifier,
    /// The value of an extra token request parameter.
    ExtraTokenParam,
    /// The value of an extra token request header.
    ExtraTokenHeader,
    /// The store's key check (sealed with instance id `""`), which tells at open whether
    /// this key opens the store's secrets.
    KeyCheck,
    /// A webhook endpoint's signing secret (sealed with the endpoint's id in place of an
    /// instance id).
    WebhookSecret,
}

impl Field {
    /// The field's name as bound into the associated data.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::PkceVerifier => "pkce_verifier",
            Self::ExtraTokenParam => "extra_token_param",
            Self::ExtraTokenHeader => "extra_token_header",
            Self::KeyCheck => "key_check",
            Self::WebhookSecret => "webhook_secret",
        }
    }
}

/// The fingerprint that names a key inside every value sealed with it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 32-byte master key. Debug prints its id only.
pub struct MasterKey {
    id: KeyId,
    cipher: XChaCha20Poly1305,
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &SecretBox<[u8; 32]>) -> Self {
        let digest = Sha256::new()
            .chain_update(b"granary master key id\0")
            .chain_update(bytes.expose_secret())
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        for (slot, byte) in id.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
        Self {
            id: KeyId(id),
            cipher: XChaCha20Poly1305::new(Key::from_slice(bytes.expose_secret())),
        }
    }

    /// A new random key.
    pub fn generate() -> (Self, SecretBox<[u8; 32]>) {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let bytes = SecretBox::new(Box::new(<[u8; 32]>::from(key)));
        (Self::from_bytes(&bytes), bytes)
    }

    /// The key's fingerprint.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The value names a key that is not loaded.
    #[error(
        "a stored secret was sealed with key {0}, which is not loaded: load that key as a previous key, or authorize the instance again"
    )]
    UnknownKey(KeyId),
    /// Encryption failed (only possible for absurdly large values).
    #[error("a {field} of instance {instance} could not be sealed: the value is too large")]
    Encrypt {
        /// The instance it was sealed for.
        instance: String,
        /// The field it was sealed for.
        field: &'static str,
    },
    /// The value is not a sealed value of this format, or was altered, or belongs to another
    /// instance or field.
    #[error(
        "a stored {field} of instance {instance} failed to open: it was altered, or copied from another instance or field; authorize the instance again"
    )]
    Tampered {
        /// The instance it was read for.
        instance: String,
        /// The field it was read for.
        field: &'static str,
    },
}

/// The current key that seals, and older keys that still open what they sealed.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring sealing with `current`, opening with `current` and `previous`.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> KeyId {
        self.current.id
    }

    /// Seals `plaintext` as `field` of `instance` under the current key.
    pub fn seal(
        &self,
        instance: &str,
        field: Field,
        plaintext: &[u8],
    ) -> Result<Sealed, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.current.id.0);
        out.extend_from_slice(&nonce);
        let aad = associated_data(&out, instance, field);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Encrypt {
                instance: instance.to_string(),
                field: field.name(),
            })?;
        out.extend_from_slice(&sealed);
        Ok(Sealed::new(out))
    }

    /// Seals a UTF-8 secret.
    pub fn seal_str(
        &self,
        instance: &str,
        field: Field,
        secret: &SecretString,
    ) -> Result<Sealed, SealError> {
        self.seal(instance, field, secret.expose_secret().as_bytes())
    }

    /// Opens a value sealed as `field` of `instance`.
    pub fn open(
        &self,
        instance: &str,
        field: Field,
        sealed: &Sealed,
    ) -> Result<SecretBox<[u8]>, SealError> {
        let sealed = sealed.as_bytes();
        let tampered = || SealError::Tampered {
            instance: instance.to_string(),
            field: field.name(),
        };
        let id = key_id_of(sealed).ok_or_else(tampered)?;
        let key = self.key(id).ok_or(SealError::UnknownKey(id))?;
        let (header, body) = sealed.split_at_checked(HEADER_LEN).ok_or_else(tampered)?;
        let nonce = header.get(1 + KEY_ID_LEN..).ok_or_else(tampered)?;
        let nonce = XNonce::from_slice(nonce);
        let aad = associated_data(header, instance, field);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(|plain| SecretBox::new(plain.into_boxed_slice()))
            .map_err(|_| tampered())
    }

    /// Opens a sealed UTF-8 secret.
    pub fn open_string(
        &self,
        instance: &str,
        field: Field,
        sealed: &Sealed,
    ) -> Result<SecretString, SealError> {
        let plain = self.open(instance, field, sealed)?;
        std::str::from_utf8(plain.expose_secret())
            .map(SecretString::from)
            .map_err(|_| SealError::Tampered {
                instance: instance.to_string(),
                field: field.name(),
            })
    }

    /// The key id a sealed value names, if it is one of ours.
    pub fn sealed_key_id(sealed: &Sealed) -> Option<KeyId> {
        key_id_of(sealed.as_bytes())
    }

    /// Whether `sealed` names a key other than the current one (it needs re-sealing).
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        Self::sealed_key_id(sealed) != Some(self.current.id)
    }

    /// The ids of every loaded key, the current one first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| k.id)
            .collect()
    }

    fn key(&self, id: KeyId) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }
}

/// The key id of a sealed value of this format; `None` for anything else.
fn key_id_of(sealed: &[u8]) -> Option<KeyId> {
    if sealed.len() < HEADER_LEN || sealed.first() != Some(&FORMAT_V1) {
        return None;
    }
    let bytes = sealed.get(1..1 + KEY_ID_LEN)?;
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(bytes);
    Some(KeyId(id))
}

/// Header, instance id and field name, each length-prefixed so no two differ only by a shifted boundary.
fn associated_data(header: &[u8], instance: &str, field: Field) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + instance.len() + 32);
    aad.extend_from_slice(header);
    for part in [instance.as_bytes(), field.name().as_bytes()] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(MasterKey::generate().0, vec![])
    }

    #[test]
    fn round_trip() {
        let ring = ring();
        let sealed = ring.seal("i1", Field::AccessToken, b"tok").unwrap();
        assert_eq!(
            ring.open("i1", Field::AccessToken, &sealed)
                .unwrap()
                .expose_secret(),
            b"tok"
        );
        assert!(!sealed.as_bytes().windows(3).any(|w| w == b"tok"));
    }

    #[test]
    fn other_instance_or_field_fails() {
        let ring = ring();
        let sealed = ring.seal("i1", Field::AccessToken, b"tok").unwrap();
        assert!(matches!(
            ring.open("i2", Field::AccessToken, &sealed),
            Err(SealError::Tampered { .. })
        ));
        assert!(matches!(
            ring.open("i1", Field::RefreshToken, &sealed),
            Err(SealError::Tampered { .. })
        ));
        let mut bad = sealed.as_bytes().to_vec();
        *bad.last_mut().unwrap() ^= 1;
        assert!(
            ring.open("i1", Field::AccessToken, &Sealed::new(bad))
                .is_err()
        );
        let short = Sealed::new(sealed.as_bytes()[..10].to_vec());
        assert!(ring.open("i1", Field::AccessToken, &short).is_err());
        assert!(
            ring.open("i1", Field::AccessToken, &Sealed::new(Vec::new()))
                .is_err()
        );
    }

    #[test]
    fn previous_keys_open_and_unknown_keys_are_named() {
        let (old, old_bytes) = MasterKey::generate();
        let old_ring = Keyring::new(old, vec![]);
        let sealed = old_ring.seal("i", Field::ClientSecret, b"s").unwrap();
        let new_ring = Keyring::new(
            MasterKey::generate().0,
            vec![MasterKey::from_bytes(&old_bytes)],
        );
        assert_eq!(
            new_ring
                .open("i", Field::ClientSecret, &sealed)
                .unwrap()
                .expose_secret(),
            b"s"
        );
        assert!(new_ring.needs_reseal(&sealed));
        assert!(!old_ring.needs_reseal(&sealed));
        let lost = Keyring::new(MasterKey::generate().0, vec![]);
        let err = lost.open("i", Field::ClientSecret, &sealed).unwrap_err();
        assert!(matches!(err, SealError::UnknownKey(id) if id == old_ring.current_id()));
        assert!(!format!("{:?}", old_ring).contains(&hex::encode(old_bytes.expose_secret())));
    }
}

#[cfg(test)]
mod key_id_tests {
    use super::*;

    #[test]
    fn a_key_id_prints_as_hex_and_debugs_as_its_name() {
        let id = KeyId([0xab; KEY_ID_LEN]);
        let hex = "ab".repeat(KEY_ID_LEN);
        assert_eq!(id.to_string(), hex);
        assert_eq!(format!("{id:?}"), format!("KeyId({hex})"));
    }

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&SecretBox::new(Box::new([byte; 32])))
    }

    #[test]
    fn a_master_key_debugs_as_its_id_only() {
        let shown = format!("{:?}", key(0x41));
        assert!(shown.starts_with("MasterKey"), "{shown}");
        assert!(shown.contains(&key(0x41).id().to_string()), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn key_ids_list_the_current_key_first() {
        let keyring = Keyring::new(key(1), vec![key(2), key(3)]);
        assert_eq!(
            keyring.key_ids(),
            vec![key(1).id(), key(2).id(), key(3).id()]
        );
    }

    #[test]
    fn only_a_whole_header_of_this_format_names_a_key() {
        let mut value = vec![FORMAT_V1];
        value.extend_from_slice(&[0xcd; KEY_ID_LEN]);
        value.resize(HEADER_LEN, 0);
        assert_eq!(key_id_of(&value), Some(KeyId([0xcd; KEY_ID_LEN])));
        assert_eq!(key_id_of(&value[..HEADER_LEN - 1]), None, "a cut header");
        value[0] = FORMAT_V1.wrapping_add(1);
        assert_eq!(key_id_of(&value), None, "another format");
        assert_eq!(key_id_of(&[]), None);
    }
}
