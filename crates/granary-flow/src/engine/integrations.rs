//! Integrations: imported OpenAPI documents, reduced to their OAuth2 schemes, plus the
//! provider endpoints a document does not carry (issuer, revocation URL).

use std::path::Path;

use granary_openapi::{FlowKind, OAuth2Scheme};
use granary_store::Integration;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::{Engine, EngineError, EngineResult};

/// What the engine keeps of an imported document (the `flows` value of an [`Integration`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationFlows {
    /// The document's `info.title`.
    pub title: Option<String>,
    /// Its OAuth2 schemes.
    pub schemes: Vec<OAuth2Scheme>,
    /// The provider's issuer, checked against the callback's `iss` (RFC 9207), when known.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The provider's revocation endpoint (RFC 7009), when known: instances revoke their
    /// tokens there when deleted.
    #[serde(default)]
    pub revocation_url: Option<Url>,
    /// The provider's token introspection endpoint (RFC 7662), when discovered: asked when a
    /// token response states no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_url: Option<Url>,
    /// The API's base URL from the document (first server, variables at their defaults;
    /// Swagger 2.0 `scheme://host/basePath`), where the server's proxy sends requests.
    /// `None` in records imported before it was kept: import the document again.
    #[serde(default)]
    pub api_base_url: Option<Url>,
    /// The lifetime, in seconds, of a token of its instances whose expiry the provider does
    /// not state, for the instances without their own (see
    /// [`Engine::unknown_expiry_lifetime`]). `None` in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime: Option<u64>,
}

impl IntegrationFlows {
    /// Reads the flows of a stored integration.
    ///
    /// # Errors
    /// [`EngineError::Store`] when the stored value is not one the engine wrote.
    pub fn of(integration: &Integration) -> EngineResult<Self> {
        serde_json::from_value(integration.flows.clone()).map_err(|e| {
            EngineError::Store(granary_store::Error::undecodable(
                format!("the flows of integration `{}`", integration.name),
                e,
            ))
        })
    }

    /// The authorization-code flow of scheme `scheme`, or of the first scheme that has one.
    pub fn authorization_code_flow(
        &self,
        scheme: Option<&str>,
    ) -> Option<(&OAuth2Scheme, &granary_openapi::Flow)> {
        self.schemes
            .iter()
            .filter(|s| scheme.is_none_or(|name| s.name == name))
            .find_map(|s| s.flow(FlowKind::AuthorizationCode).map(|f| (s, f)))
    }
}

impl Engine {
    /// Imports an OpenAPI document (JSON or YAML) as integration `name`; a re-import replaces
    /// the schemes and keeps the issuer and revocation URL set before.
    ///
    /// # Errors
    /// [`EngineError::Import`] when the document cannot be read or has no authorization-code
    /// flow.
    pub async fn import_integration(
        &self,
        name: &str,
        document: &[u8],
    ) -> EngineResult<Integration> {
        if name.trim().is_empty() {
            return Err(EngineError::Invalid(
                "the integration name is empty: give it a name".to_string(),
            ));
        }
        super::validate_id(super::IdKind::Integration, name)?;
        let (parsed, source_digest) = self.parse_document(document).await?;
        for flow in parsed.authorization_code_flows()? {
            self.check_provider_url("the document's authorization URL", flow.authorization_url)?;
            self.check_provider_url("the document's token URL", flow.token_url)?;
        }
        let previous = match self.inner.store.get_integration(name).await? {
            Some(existing) => Some(IntegrationFlows::of(&existing)?),
            None => None,
        };
        let flows = IntegrationFlows {
            title: parsed.title,
            schemes: parsed.schemes,
            api_base_url: parsed.api_base_url,
            issuer: previous.as_ref().and_then(|p| p.issuer.clone()),
            introspection_url: previous.as_ref().and_then(|p| p.introspection_url.clone()),
            token_lifetime: previous.as_ref().and_then(|p| p.token_lifetime),
            revocation_url: previous.and_then(|p| p.revocation_url),
        };
        let integration = Integration {
            name: name.to_string(),
            source_digest,
            flows: to_value(&flows)?,
            created: self.now(),
        };
        self.inner.store.put_integration(&integration).await?;
        Ok(integration)
    }

    /// Parses a document off the async workers (on a blocking thread, with the engine's
    /// import timeout), after refusing one over the size limit without copying it. Returns
    /// the document and its digest.
    async fn parse_document(
        &self,
        document: &[u8],
    ) -> EngineResult<(granary_openapi::Document, String)> {
        let limits = self.inner.import_limits;
        if document.len() > limits.max_bytes {
            return Err(granary_openapi::Error::TooLarge {
                size: document.len(),
                limit: limits.max_bytes,
            }
            .into());
        }
        let bytes = document.to_vec();
        let parse = tokio::task::spawn_blocking(move || {
            let options = granary_openapi::ParseOptions::default().limits(limits);
            let parsed = granary_openapi::parse_with(&bytes, &options)?;
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            Ok::<_, EngineError>((parsed, digest))
        });
        let timeout = self.inner.import_timeout;
        match tokio::time::timeout(timeout, parse).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(EngineError::Internal(format!(
                "reading the document failed ({join}); check that it is an OpenAPI document"
            ))),
            Err(_) => Err(EngineError::Invalid(format!(
                "reading the document took longer than the limit of {}s: import a smaller \
                 document",
                timeout.as_secs_f64()
            ))),
        }
    }

    /// Imports the document at `path`; see [`Engine::import_integration`].
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when the file cannot be read, else as `import_integration`.
    pub async fn import_integration_file(
        &self,
        name: &str,
        path: impl AsRef<Path>,
    ) -> EngineResult<Integration> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path).await.map_err(|e| {
            EngineError::Invalid(format!(
                "cannot read {}: {e}; check the path",
                path.display()
            ))
        })?;
        self.import_integration(name, &bytes).await
    }

    /// Every integration, by name.
    pub async fn list_integrations(&self) -> EngineResult<Vec<Integration>> {
        Ok(self.inner.store.list_integrations().await?)
    }

    /// The integration `name`.
    pub async fn integration(&self, name: &str) -> EngineResult<Integration> {
        self.inner
            .store
            .get_integration(name)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("integration `{name}`")))
    }

    /// Removes integration `name`; fails while instances still use it.
    pub async fn remove_integration(&self, name: &str) -> EngineResult<bool> {
        Ok(self.inner.store.delete_integration(name).await?)
    }

    /// Sets the provider endpoints a document does not carry: the issuer (checked against
    /// the callback's `iss`) and the revocation URL (used when an instance is deleted).
    pub async fn set_integration_endpoints(
        &self,
        name: &str,
        issuer: Option<String>,
        revocation_url: Option<Url>,
    ) -> EngineResult<Integration> {
        if let Some(issuer) = &issuer {
            let url = Url::parse(issuer).map_err(|e| {
                EngineError::Invalid(format!("the issuer `{issuer}` is not a URL ({e})"))
            })?;
            self.check_provider_url("the issuer", &url)?;
        }
        if let Some(url) = &revocation_url {
            self.check_provider_url("the revocation URL", url)?;
        }
        let mut integration = self.integration(name).await?;
        let mut flows = IntegrationFlows::of(&integration)?;
        flows.issuer = issuer;
        flows.revocation_url = revocation_url;
        integration.flows = to_value(&flows)?;
        self.inner.store.put_integration(&integration).await?;
        Ok(integration)
    }

    /// Sets the lifetime of a token of unknown expiry of integration `name`'s instances that
    /// have none of their own (`None` or zero: the engine's default); a re-import keeps it.
    pub async fn set_integration_token_lifetime(
        &self,
        name: &str,
        lifetime: Option<std::time::Duration>,
    ) -> EngineResult<Integration> {
        let mut integration = self.integration(name).await?;
        let mut flows = IntegrationFlows::of(&integration)?;
        flows.token_lifetime = lifetime.map(|l| l.as_secs()).filter(|secs| *secs > 0);
        integration.flows = to_value(&flows)?;
        self.inner.store.put_integration(&integration).await?;
        Ok(integration)
    }

    /// Reads the issuer and revocation URL from the provider's metadata (RFC 8414 or OpenID
    /// Connect Discovery) and sets them on integration `name`.
    pub async fn discover_integration_endpoints(
        &self,
        name: &str,
        issuer: &str,
    ) -> EngineResult<Integration> {
        if let Ok(url) = Url::parse(issuer) {
            self.check_provider_url("the issuer", &url)?;
        }
        let metadata = crate::protocol::discover(&self.inner.http, issuer).await?;
        if let Some(url) = &metadata.introspection_endpoint {
            self.check_provider_url("the introspection URL", url)?;
        }
        self.set_integration_endpoints(name, Some(metadata.issuer), metadata.revocation_endpoint)
            .await?;
        let mut integration = self.integration(name).await?;
        let mut flows = IntegrationFlows::of(&integration)?;
        if flows.introspection_url != metadata.introspection_endpoint {
            flows.introspection_url = metadata.introspection_endpoint;
            integration.flows = to_value(&flows)?;
            self.inner.store.put_integration(&integration).await?;
        }
        Ok(integration)
    }
}

fn to_value(flows: &IntegrationFlows) -> EngineResult<serde_json::Value> {
    serde_json::to_value(flows).map_err(|e| {
        EngineError::Internal(format!("the integration's flows cannot be serialized: {e}"))
    })
}
