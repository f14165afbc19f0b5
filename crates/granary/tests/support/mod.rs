//! Shared by the facade's lifecycle tests and the storm bench: the conformance server's
//! address and clients, the integration document, a browser stand-in, counters, byte search.
#![allow(dead_code)]

pub mod user_agent;

use std::path::{Path, PathBuf};

use granary::{Granary, NewInstance};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

/// The variable that names the running oidc-provider's issuer.
pub const ISSUER_ENV: &str = "GRANARY_FACADE_ISSUER";
/// The variable that names its clients file.
pub const CLIENTS_ENV: &str = "GRANARY_FACADE_CLIENTS";
/// The public URL of every test granary; its redirect URI is registered at the provider.
pub const PUBLIC_URL: &str = "http://127.0.0.1:9/";

/// The running conformance server.
pub struct Provider {
    pub issuer: String,
    pub clients: Value,
    pub http: reqwest::Client,
}

impl Provider {
    /// Reads the issuer and the clients from the environment the xtask sets.
    pub fn from_env() -> Provider {
        let issuer = std::env::var(ISSUER_ENV).unwrap_or_else(|_| {
            panic!("{ISSUER_ENV} is not set: run `cargo xtask conformance facade`")
        });
        let clients = std::env::var(CLIENTS_ENV).unwrap_or_else(|_| {
            panic!("{CLIENTS_ENV} is not set: run `cargo xtask conformance facade`")
        });
        let clients: Value =
            serde_json::from_str(&std::fs::read_to_string(&clients).unwrap()).unwrap();
        Provider {
            issuer,
            clients,
            http: reqwest::Client::new(),
        }
    }

    /// The secret of client `id`, if it has one.
    pub fn secret(&self, id: &str) -> Option<String> {
        self.clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == id)
            .and_then(|c| c["client_secret"].as_str())
            .map(str::to_string)
    }

    /// An OpenAPI document whose oauth2 scheme points at the server.
    pub fn document(&self) -> Vec<u8> {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "Conformance API", "version": "1"},
            "paths": {},
            "components": {"securitySchemes": {"oidc": {"type": "oauth2", "flows": {
                "authorizationCode": {
                    "authorizationUrl": format!("{}/auth", self.issuer),
                    "tokenUrl": format!("{}/token", self.issuer),
                    "scopes": {"openid": "OpenID", "offline_access": "Refresh tokens",
                               "email": "Email", "profile": "Profile"}
                }
            }}}}
        })
        .to_string()
        .into_bytes()
    }

    /// Imports the integration `conformance` (with the discovered issuer and revocation
    /// endpoint) and creates instance `id` for client `client`.
    pub async fn create_instance(&self, granary: &Granary, id: &str, client: &str) {
        if granary.integration("conformance").await.is_err() {
            granary
                .import_integration("conformance", &self.document())
                .await
                .unwrap();
            granary
                .discover_integration_endpoints("conformance", &self.issuer)
                .await
                .unwrap();
        }
        let mut new = NewInstance::new(id, "conformance", client);
        new.client_secret = self.secret(client).map(SecretString::from);
        new.scopes = vec!["openid".into(), "offline_access".into()];
        new.extra_authorization_params = vec![("prompt".into(), "consent".into())];
        granary.create_instance(new).await.unwrap();
    }

    /// Runs the whole authorization of `instance` through the server's login and consent
    /// forms.
    pub async fn authorize(&self, granary: &Granary, instance: &str) {
        let url = granary.begin_authorization(instance).await.unwrap().url;
        let query = user_agent::authorize(&url, granary.redirect_uri())
            .await
            .unwrap();
        let done = granary.complete_authorization(&query).await.unwrap();
        assert_eq!(done, instance);
    }

    /// The server's token-request counters.
    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/__granary/stats", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// How many refresh_token grants the server answered so far.
    pub async fn refresh_requests(&self) -> u64 {
        self.stats().await["token_requests"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }

    /// How many authorization_code grants the server answered so far.
    pub async fn code_requests(&self) -> u64 {
        self.stats().await["token_requests"]["authorization_code"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Calls the userinfo endpoint with `instance`'s token through the authorized client.
    pub async fn userinfo_status(&self, granary: &Granary, instance: &str) -> u16 {
        let client = granary.authorized_client(instance, reqwest::Client::new());
        let response = client
            .send(client.http().get(format!("{}/me", self.issuer)))
            .await
            .unwrap();
        response.status().as_u16()
    }
}

/// The public URL of the test granaries.
pub fn public_url() -> Url {
    Url::parse(PUBLIC_URL).unwrap()
}

/// Every file under `root` (or `root` itself), recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if root.is_file() {
        out.push(root.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            out.extend(files_under(&entry.path()));
        }
    }
    out
}

/// The files (of `files`) whose bytes contain `needle`.
pub fn files_containing(files: &[PathBuf], needle: &[u8]) -> Vec<PathBuf> {
    assert!(
        needle.len() >= 8,
        "a needle this short would match by chance"
    );
    files
        .iter()
        .filter(|file| {
            std::fs::read(file)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}
