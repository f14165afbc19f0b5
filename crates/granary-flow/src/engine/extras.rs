//! The values of an instance's extra token parameters and headers: sealed before the store
//! sees them (they may be keys of their own), opened to build requests.

use granary_store::{ExtraValue, Instance};
use secrecy::ExposeSecret as _;

use super::seal::Field;
use super::{Engine, EngineResult};

impl Engine {
    /// Seals the values of extra token parameters or headers.
    pub(super) fn seal_extras(
        &self,
        id: &str,
        field: Field,
        pairs: &[(String, String)],
    ) -> EngineResult<Vec<(String, ExtraValue)>> {
        let keyring = self.keyring();
        pairs
            .iter()
            .map(|(name, value)| {
                let sealed = keyring.seal(id, field, value.as_bytes())?;
                Ok((name.clone(), ExtraValue::Sealed { sealed }))
            })
            .collect()
    }

    /// Seals the values an older granary stored in plaintext; whether there were any.
    pub(super) fn seal_plain_extras(&self, instance: &mut Instance) -> EngineResult<bool> {
        let keyring = self.keyring();
        let mut sealed_any = false;
        for (pairs, field) in [
            (&mut instance.extra_token_params, Field::ExtraTokenParam),
            (&mut instance.extra_token_headers, Field::ExtraTokenHeader),
        ] {
            for (_, value) in pairs.iter_mut() {
                if let ExtraValue::Plain(plain) = value {
                    let sealed = keyring.seal(&instance.id, field, plain.as_bytes())?;
                    *value = ExtraValue::Sealed { sealed };
                    sealed_any = true;
                }
            }
        }
        Ok(sealed_any)
    }

    /// Opens the values of extra token parameters or headers (a plaintext value of an older
    /// granary as it is).
    pub(super) fn open_extras(
        &self,
        id: &str,
        field: Field,
        pairs: &[(String, ExtraValue)],
    ) -> EngineResult<Vec<(String, String)>> {
        pairs
            .iter()
            .map(|(name, value)| {
                let plain = match value {
                    ExtraValue::Sealed { sealed } => self
                        .open_secret(id, field, sealed)?
                        .expose_secret()
                        .to_string(),
                    ExtraValue::Plain(plain) => plain.clone(),
                };
                Ok((name.clone(), plain))
            })
            .collect()
    }
}
