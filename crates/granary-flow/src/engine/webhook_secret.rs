//! Webhook signing secrets: sealed with the engine's keyring (field
//! [`Field::WebhookSecret`], the endpoint's id in place of an instance id) before the server
//! stores them, opened again to sign each delivery.

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
        Ok(self
            .keyring()
            .open_string(endpoint, Field::WebhookSecret, sealed)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use granary_store::MemoryStore;
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
}
