//! Key rotation: re-sealing every stored secret under the current key, and loading the keys
//! again when another process rotated them.

use std::sync::{Arc, PoisonError};

use granary_store::{ExtraValue, Sealed};
use secrecy::{ExposeSecret as _, SecretString};

use super::cas::retry_on_conflict;
use super::seal::{Field, Keyring};
use super::{Engine, EngineResult};

/// Loads the keys again (the facade reads its key file): called when a stored value names a
/// key this engine does not hold, which happens after another process rotated the key.
/// `Ok(None)`: the keys cannot be reloaded (they came from memory or the environment).
pub type KeyReloader = Arc<dyn Fn() -> Result<Option<Keyring>, String> + Send + Sync>;

/// What [`Engine::reseal_all`] re-sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Instances looked at.
    pub instances: usize,
    /// Client secrets re-sealed under the current key.
    pub client_secrets: usize,
    /// Token records re-sealed under the current key.
    pub token_records: usize,
    /// Instances whose extra token parameter or header values were re-sealed under the
    /// current key (or sealed for the first time: stored in plaintext by an older granary).
    pub extra_values: usize,
    /// Webhook signing secrets re-sealed under the current key.
    pub webhook_secrets: usize,
}

impl Engine {
    /// Opens a stored secret. When it names a key this engine does not hold, the keys are
    /// loaded again once (another process may have rotated them) before giving up.
    pub(crate) fn open_secret(
        &self,
        id: &str,
        field: Field,
        sealed: &Sealed,
    ) -> EngineResult<SecretString> {
        let keyring = self.keyring();
        match keyring.open_string(id, field, sealed) {
            Err(super::SealError::UnknownKey(key)) => match self.reload_keys() {
                Some(reloaded) => Ok(reloaded.open_string(id, field, sealed)?),
                None => Err(super::SealError::UnknownKey(key).into()),
            },
            other => Ok(other?),
        }
    }

    /// Loads the keys again through the reloader, if there is one and it gives keys.
    fn reload_keys(&self) -> Option<Arc<Keyring>> {
        let reloader = self.inner.key_reloader.as_ref()?;
        match reloader() {
            Ok(Some(keyring)) => {
                tracing::info!(
                    current = %keyring.current_id(),
                    "a stored secret named a key this process did not hold: keys loaded again"
                );
                self.replace_keyring(keyring);
                Some(self.keyring())
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot load the keys again");
                None
            }
        }
    }

    /// Seals with `keyring` from now on (its previous keys still open older values); call
    /// [`Engine::reseal_all`] next.
    pub fn replace_keyring(&self, keyring: Keyring) {
        *self
            .inner
            .keyring
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keyring);
    }

    /// Re-seals every client secret, token and webhook secret under the current key, so
    /// that the previous keys can be dropped. Pending authorizations are not re-sealed: they
    /// expire within 10 minutes, so keep the previous key loaded that long.
    pub async fn reseal_all(&self) -> EngineResult<ResealReport> {
        let mut report = ResealReport::default();
        for listed in self.inner.store.list_instances().await? {
            report.instances += 1;
            let (secret, extras) = self.reseal_instance(&listed.id).await?;
            report.client_secrets += usize::from(secret);
            report.extra_values += usize::from(extras);
            if self.reseal_token(&listed.id).await? {
                report.token_records += 1;
            }
        }
        report.webhook_secrets = self.reseal_webhook_secrets().await?;
        Ok(report)
    }

    /// Seals the extra token parameter and header values that an older granary stored in
    /// plaintext; how many instances had some. [`crate::engine`]'s users call it once when
    /// they open a store (the facade's `Granary::open` does), so that no plaintext value
    /// stays in the store until the instance's next change.
    pub async fn seal_plaintext_values(&self) -> EngineResult<usize> {
        let mut sealed = 0;
        for listed in self.inner.store.list_instances().await? {
            let has_plain = listed
                .extra_token_params
                .iter()
                .chain(&listed.extra_token_headers)
                .any(|(_, v)| matches!(v, ExtraValue::Plain(_)));
            if has_plain && self.reseal_instance(&listed.id).await?.1 {
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    /// Re-seals the client secret and the extra token values of instance `id` that need it
    /// (another key, or plaintext); whether the secret and whether extra values were.
    async fn reseal_instance(&self, id: &str) -> EngineResult<(bool, bool)> {
        let mut resealed = (false, false);
        self.change_instance(
            id,
            "it was re-sealed (run the rotation again)",
            |instance| {
                let keyring = self.keyring();
                let mut secret_resealed = false;
                if let Some(sealed) = instance
                    .client_secret
                    .as_ref()
                    .filter(|s| keyring.needs_reseal(s))
                {
                    let secret = keyring.open(id, Field::ClientSecret, sealed)?;
                    instance.client_secret =
                        Some(keyring.seal(id, Field::ClientSecret, secret.expose_secret())?);
                    secret_resealed = true;
                }
                let mut extras_resealed = self.seal_plain_extras(instance)?;
                for (pairs, field) in [
                    (&mut instance.extra_token_params, Field::ExtraTokenParam),
                    (&mut instance.extra_token_headers, Field::ExtraTokenHeader),
                ] {
                    for (_, value) in pairs.iter_mut() {
                        let ExtraValue::Sealed { sealed } = value else {
                            continue;
                        };
                        if keyring.needs_reseal(sealed) {
                            let plain = keyring.open(id, field, sealed)?;
                            *sealed = keyring.seal(id, field, plain.expose_secret())?;
                            extras_resealed = true;
                        }
                    }
                }
                resealed = (secret_resealed, extras_resealed);
                Ok(secret_resealed || extras_resealed)
            },
        )
        .await?;
        Ok(resealed)
    }

    async fn reseal_token(&self, id: &str) -> EngineResult<bool> {
        let what = format!(
            "the token of instance `{id}` kept changing while it was re-sealed (run the \
             rotation again)"
        );
        retry_on_conflict!(what, {
            let keyring = self.keyring();
            let Some(mut record) = self.inner.store.get_token(id).await? else {
                return Ok(false);
            };
            let refresh_stale = record
                .refresh_token
                .as_ref()
                .is_some_and(|s| keyring.needs_reseal(s));
            if !keyring.needs_reseal(&record.access_token) && !refresh_stale {
                return Ok(false);
            }
            let access = keyring.open(id, Field::AccessToken, &record.access_token)?;
            record.access_token = keyring.seal(id, Field::AccessToken, access.expose_secret())?;
            if let Some(sealed) = &record.refresh_token {
                let refresh = keyring.open(id, Field::RefreshToken, sealed)?;
                record.refresh_token =
                    Some(keyring.seal(id, Field::RefreshToken, refresh.expose_secret())?);
            }
            record.version = self
                .inner
                .store
                .put_token(id, &record, Some(record.version))
                .await?;
            // Other processes drop their cached token through the change feed; this one
            // keeps its (same) token.
            let secret = std::str::from_utf8(access.expose_secret()).unwrap_or_default();
            if self.cached_matching(id, |_| true).is_some() {
                self.cache_record(id, &record, secret).await?;
            }
            Ok(true)
        })
    }
}
