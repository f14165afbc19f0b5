//! Endpoints and issuer from provider metadata: RFC 8414 first, then OpenID Connect Discovery.

use serde_json::{Map, Value};
use url::Url;

use super::http::{RawResponse, send};
use super::{ClientConfig, IssuerParameter};
use crate::error::{Endpoint, Error, Result};

/// What a provider's metadata document says, as far as the authorization code grant needs.
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    /// The issuer identifier, equal to the one asked for (checked).
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: Url,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// The revocation endpoint (RFC 7009), if any.
    pub revocation_endpoint: Option<Url>,
    /// The token introspection endpoint (RFC 7662), if any.
    pub introspection_endpoint: Option<Url>,
    /// `scopes_supported`, empty when not sent.
    pub scopes_supported: Vec<String>,
    /// `code_challenge_methods_supported`, empty when not sent.
    pub code_challenge_methods_supported: Vec<String>,
    /// `token_endpoint_auth_methods_supported`, empty when not sent.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Whether every callback carries `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    /// The URL the document was read from.
    pub source: Url,
    /// The whole document.
    pub raw: Map<String, Value>,
}

impl ProviderMetadata {
    /// How strictly callbacks must carry `iss`: required when the provider advertises it.
    pub fn issuer_parameter(&self) -> IssuerParameter {
        if self.authorization_response_iss_parameter_supported {
            IssuerParameter::Required
        } else {
            IssuerParameter::IfPresent
        }
    }

    /// A public client configuration with these endpoints (add a secret with
    /// [`ClientConfig::with_secret`]). PKCE stays on unless the provider lists challenge
    /// methods without `S256`.
    pub fn client_config(&self, client_id: impl Into<String>) -> ClientConfig {
        let mut config = ClientConfig::new(
            client_id,
            self.authorization_endpoint.clone(),
            self.token_endpoint.clone(),
        );
        config.revocation_url = self.revocation_endpoint.clone();
        config.introspection_url = self.introspection_endpoint.clone();
        config.pkce = self.code_challenge_methods_supported.is_empty()
            || self
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256");
        config
    }
}

/// The metadata URLs to try for an issuer: RFC 8414 3.1 (well-known segment inserted before
/// the issuer's path), then OpenID Connect Discovery 4 (appended to it).
fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut urls = Vec::new();
    for (prefix, suffix) in [
        (
            format!("/.well-known/oauth-authorization-server{path}"),
            String::new(),
        ),
        (
            String::new(),
            format!("{path}/.well-known/openid-configuration"),
        ),
    ] {
        let mut url = issuer.clone();
        url.set_path(&format!("{prefix}{suffix}"));
        url.set_query(None);
        url.set_fragment(None);
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

/// Reads the provider metadata of an issuer: RFC 8414 first, then OpenID Connect Discovery
/// when that is not found. The document's `issuer` must equal the one asked for
/// (RFC 8414 3.3), or the metadata could be another server's.
pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<ProviderMetadata> {
    let fail = |reason: String| Error::Discovery {
        issuer: issuer.to_string(),
        reason,
    };
    let issuer_url =
        Url::parse(issuer).map_err(|e| fail(format!("the issuer is not a URL ({e})")))?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(fail(
            "an issuer has no query and no fragment (RFC 8414 2)".to_string(),
        ));
    }
    let mut tried = Vec::new();
    for url in metadata_urls(&issuer_url) {
        let request = client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .build()
            .map_err(|e| fail(super::http::source_chain(&e)))?;
        let raw = match send(client, request, Endpoint::Discovery, &url).await {
            Ok(raw) => raw,
            Err(error) if error.is_transient() => return Err(error),
            Err(error) => return Err(fail(error.to_string())),
        };
        if raw.status == 429 || raw.status >= 500 {
            return Err(Error::Transient {
                endpoint: Endpoint::Discovery,
                url: url.to_string(),
                reason: format!("HTTP {}", raw.status),
                status: Some(raw.status),
                retry_after: raw.retry_after,
                details: None,
            });
        }
        if matches!(raw.status, 404 | 405 | 410) {
            tried.push(format!("{url} answered {}", raw.status));
            continue;
        }
        return read_metadata(&raw, &url, issuer).map_err(fail);
    }
    Err(fail(format!(
        "no metadata document was found ({}): check the issuer URL, or configure the endpoints by hand",
        tried.join("; ")
    )))
}

fn read_metadata(raw: &RawResponse, url: &Url, issuer: &str) -> Result<ProviderMetadata, String> {
    if !(200..300).contains(&raw.status) {
        return Err(format!("{url} answered HTTP {}", raw.status));
    }
    if raw.too_large {
        return Err(format!("{url} answered a document over 1 MiB"));
    }
    // Only a metadata document is read; anything else is summarised and never echoed, so
    // that discovery cannot be used to read pages granary can reach and its user cannot.
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&raw.body) else {
        return Err(format!(
            "{url} answered HTTP {} with {} ({} bytes), not a JSON metadata document: check \
             the issuer URL",
            raw.status,
            raw.content_type_text().chars().take(80).collect::<String>(),
            raw.body.len()
        ));
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
    let found_issuer = text("issuer").ok_or_else(|| format!("{url} has no `issuer`"))?;
    if found_issuer != issuer {
        let found_issuer: String = found_issuer.chars().take(200).collect();
        return Err(format!(
            "{url} names the issuer `{found_issuer}`, not `{issuer}` (RFC 8414 3.3): use exactly the issuer it names, if you trust it"
        ));
    }
    let endpoint = |key: &str| -> Result<Option<Url>, String> {
        match text(key) {
            Some(value) => Url::parse(&value)
                .map(Some)
                .map_err(|e| format!("`{key}` in {url} is not a URL ({e})")),
            None => Ok(None),
        }
    };
    let list = |key: &str| -> Vec<String> {
        map.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(ProviderMetadata {
        issuer: found_issuer,
        authorization_endpoint: endpoint("authorization_endpoint")?
            .ok_or_else(|| format!("{url} has no `authorization_endpoint`"))?,
        token_endpoint: endpoint("token_endpoint")?
            .ok_or_else(|| format!("{url} has no `token_endpoint`"))?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        introspection_endpoint: endpoint("introspection_endpoint")?,
        scopes_supported: list("scopes_supported"),
        code_challenge_methods_supported: list("code_challenge_methods_supported"),
        token_endpoint_auth_methods_supported: list("token_endpoint_auth_methods_supported"),
        authorization_response_iss_parameter_supported: map
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        source: url.clone(),
        raw: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_follow_rfc_8414_then_oidc() {
        let urls = metadata_urls(&Url::parse("https://as.example/tenant/one").unwrap());
        assert_eq!(
            urls[0].as_str(),
            "https://as.example/.well-known/oauth-authorization-server/tenant/one"
        );
        assert_eq!(
            urls[1].as_str(),
            "https://as.example/tenant/one/.well-known/openid-configuration"
        );
        let urls = metadata_urls(&Url::parse("http://127.0.0.1:4000").unwrap());
        assert_eq!(
            urls[0].as_str(),
            "http://127.0.0.1:4000/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            urls[1].as_str(),
            "http://127.0.0.1:4000/.well-known/openid-configuration"
        );
    }
}
