//! [`Sealed`]: opaque encrypted bytes; the store never sees a plaintext secret.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret as the engine sealed it (AEAD ciphertext): opaque bytes that a store keeps and
/// returns unchanged. Its `Debug` shows only the length.
///
/// In serialized form (e.g. a backend that stores records as JSON) it is unpadded base64.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Wraps sealed bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The sealed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The sealed bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The number of sealed bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(<{} bytes>)", self.0.len())
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD_NO_PAD
            .decode(text.as_bytes())
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("sealed bytes are not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length() {
        let sealed = Sealed::new(b"very secret bytes".to_vec());
        assert_eq!(format!("{sealed:?}"), "Sealed(<17 bytes>)");
    }

    #[test]
    fn serde_round_trip_keeps_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let sealed = Sealed::new(bytes.clone());
        let json = serde_json::to_string(&sealed).unwrap();
        let back: Sealed = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_bytes(), bytes.as_slice());
        assert!(serde_json::from_str::<Sealed>("\"***\"").is_err());
    }
}
