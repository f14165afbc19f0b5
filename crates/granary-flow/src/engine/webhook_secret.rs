//! Webhook signing secrets: sealed with the engine's keyring (field
//! [`Field::WebhookSecret`], the endpoint's id in place of an instance id) before the server
//! stores them, opened again to sign each delivery, and re-sealed with the other secrets at
//! a key rotation ([`Engine::reseal_all`]).

use granary_store::Sealed;
use secrecy::SecretString;

use super::{Engine, EngineResult, Field};

impl Engine {
    /// Seals the signing secret of webhook endpoint `endpoint` under the current key.
    ///
    /// # Errors
    /// [`super::EngineError::Seal`] when sealing fails.
    pub fn seal_webhook_secret(
        &self,
        endpoint: &str,
        secret: &SecretString,
    ) -> EngineResult<Sealed> {
        Ok(self
            .keyring()
            .seal_str(endpoint, Field::WebhookSecret, secret)?)
    }

    /// Opens the signing secret of webhook endpoint `endpoint`.
    ///
    /// # Errors
    /// [`super::EngineError::Seal`] when the value was sealed with a key that is not loaded,
    /// or for another endpoint, or was altered.
    pub fn open_webhook_secret(
        &self,
        endpoint: &str,
        sealed: &Sealed,
    ) -> EngineResult<SecretString> {
        // Loads the keys again when another process rotated them.
        self.open_secret(endpoint, Field::WebhookSecret, sealed)
    }

    /// Re-seals under the current key every webhook secret sealed with another; how many.
    /// A store that keeps no webhooks has none.
    pub(crate) async fn reseal_webhook_secrets(&self) -> EngineResult<usize> {
        let endpoints = match self.inner.store.list_webhook_endpoints().await {
            Ok(endpoints) => endpoints,
            Err(granary_store::Error::Unsupported { .. }) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        let keyring = self.keyring();
        let mut resealed = 0;
        for mut endpoint in endpoints {
            if !keyring.needs_reseal(&endpoint.secret) {
                continue;
            }
            let secret = self.open_webhook_secret(&endpoint.id, &endpoint.secret)?;
            endpoint.secret = keyring.seal_str(&endpoint.id, Field::WebhookSecret, &secret)?;
            self.inner.store.put_webhook_endpoint(&endpoint).await?;
            resealed += 1;
        }
        Ok(resealed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use granary_store::{MemoryStore, Store as _};
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::engine::{Keyring, MasterKey};

    #[test]
    fn a_secret_opens_for_its_endpoint_only() {
        let engine = Engine::builder(
            Arc::new(MemoryStore::new()),
            Keyring::new(MasterKey::generate().0, Vec::new()),
            url::Url::parse("http://127.0.0.1:1").expect("a URL"),
        )
        .build()
        .expect("an engine");
        let secret = SecretString::from("0123abcd".to_string());
        let sealed = engine.seal_webhook_secret("wh1", &secret).expect("sealed");
        let opened = engine.open_webhook_secret("wh1", &sealed).expect("opened");
        assert_eq!(opened.expose_secret(), "0123abcd");
        assert!(engine.open_webhook_secret("wh2", &sealed).is_err());
    }

    #[tokio::test]
    async fn a_key_rotation_reseals_webhook_secrets() {
        let store = Arc::new(MemoryStore::new());
        let (old, old_bytes) = MasterKey::generate();
        let engine = Engine::builder(
            store.clone(),
            Keyring::new(old, Vec::new()),
            url::Url::parse("http://127.0.0.1:1").expect("a URL"),
        )
        .build()
        .expect("an engine");
        let secret = SecretString::from("feed".to_string());
        let endpoint = granary_store::WebhookEndpoint {
            id: "wh1".into(),
            url: "https://h.example/".into(),
            secret: engine.seal_webhook_secret("wh1", &secret).expect("sealed"),
            events: vec!["refreshed".into()],
            enabled: true,
            created: granary_store::Timestamp::EPOCH,
        };
        store.put_webhook_endpoint(&endpoint).await.expect("stored");
        let (new, new_bytes) = MasterKey::generate();
        engine.replace_keyring(Keyring::new(new, vec![MasterKey::from_bytes(&old_bytes)]));
        let report = engine.reseal_all().await.expect("resealed");
        assert_eq!(report.webhook_secrets, 1);
        assert_eq!(
            engine.reseal_all().await.expect("resealed").webhook_secrets,
            0
        );
        // Only the new key is needed now.
        let fresh = Engine::builder(
            store.clone(),
            Keyring::new(MasterKey::from_bytes(&new_bytes), Vec::new()),
            url::Url::parse("http://127.0.0.1:1").expect("a URL"),
        )
        .build()
        .expect("an engine");
        let stored = store.list_webhook_endpoints().await.expect("listed");
        let opened = fresh
            .open_webhook_secret("wh1", &stored[0].secret)
            .expect("opens with the new key");
        assert_eq!(opened.expose_secret(), "feed");
        assert_eq!(stored[0].events, endpoint.events);
    }
}
