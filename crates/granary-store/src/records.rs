//! The kinds of record a store holds: integrations, instances, pending authorizations,
//! token records, refresh leases, the change feed's entries, and the server's admin
//! sessions and API keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Sealed, Timestamp};

/// An imported API document: its name, the digest of its source, and its OAuth2 flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    /// The unique name, chosen at import (the key).
    pub name: String,
    /// A digest of the imported document (e.g. `sha256:<hex>`), to tell re-imports apart.
    pub source_digest: String,
    /// The OAuth2 security schemes and flows found in the document, serialized by the
    /// importer. The store keeps this value as is.
    pub flows: serde_json::Value,
    /// When it was imported.
    pub created: Timestamp,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded client id and secret (RFC 6749 2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
    /// A public client: `client_id` in the body, no secret.
    None,
}

impl ClientAuth {
    /// The name used in provider metadata (`token_endpoint_auth_method`), in the store and
    /// on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an instance stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatus {
    /// Configured, never authorized.
    New,
    /// Holds a token.
    Authorized,
    /// The provider refused the refresh token (or it was lost): an admin must authorize
    /// again.
    NeedsAuthorization,
    /// Switched off by an admin: no token is handed out or refreshed.
    Disabled,
}

/// A configured client of one integration's OAuth2 scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The unique id (the key).
    pub id: String,
    /// The [`Integration::name`] it belongs to; the integration must exist.
    pub integration: String,
    /// The name of the OAuth2 security scheme within the integration.
    pub scheme: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The sealed client secret; `None` for a public client.
    pub client_secret: Option<Sealed>,
    /// The scopes requested at authorization.
    pub scopes: Vec<String>,
    /// The redirect URI registered at the provider.
    pub redirect_uri: String,
    /// Overrides the integration's authorization URL.
    pub authorization_url: Option<String>,
    /// Overrides the integration's token URL.
    pub token_url: Option<String>,
    /// Extra query parameters of the authorization request, in order.
    pub extra_authorization_params: Vec<(String, String)>,
    /// Extra body parameters of every token request, in order; the values sealed (they
    /// are often API keys).
    pub extra_token_params: Vec<(String, ExtraValue)>,
    /// Extra headers of every token request, in order; the values sealed.
    pub extra_token_headers: Vec<(String, ExtraValue)>,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// The lifetime, in seconds, of a token whose expiry the provider did not state (it is
    /// refreshed once that old); `None`: the integration's, else the engine's default.
    /// Records written before it was kept read as `None`.
    #[serde(default)]
    pub token_lifetime: Option<u64>,
    /// The connection fields of the instance, by name: the values its provider's URL
    /// templates need (e.g. `subdomain`, `tenant`, `hostname`). The store keeps them as
    /// given; records written before they were kept read as empty.
    #[serde(default)]
    pub connection: BTreeMap<String, String>,
    /// The instance's own provider-profile settings, as the engine serializes them; the
    /// store keeps this value as is (as JSON text). `None`: the instance has none. Records
    /// written before it was kept read as `None`.
    #[serde(default)]
    pub profile: Option<serde_json::Value>,
    /// Where the instance stands.
    pub status: InstanceStatus,
    /// When it was created (the caller's clock).
    pub created: Timestamp,
    /// When it was last changed (the caller's clock).
    pub updated: Timestamp,
    /// The version the store holds: 1 after creation, one more after each update. The store
    /// sets it; the value passed to `create_instance` is ignored, the value passed to
    /// `update_instance` is the version the caller read.
    pub version: u64,
}

/// The value of an extra token parameter or header of an [`Instance`] (often an API key).
///
/// Serialized as `{"sealed": "<base64>"}`; a plain JSON string is a [`ExtraValue::Plain`]
/// value, as granary wrote them before they were sealed, so that those records still decode.
/// Its `Debug` never shows a plaintext value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtraValue {
    /// Sealed by the engine: what granary writes.
    Sealed {
        /// The sealed value.
        sealed: Sealed,
    },
    /// A plaintext value of a record written before values were sealed. Read only: the
    /// engine seals it when it opens the store and on every write of the instance.
    Plain(String),
}

impl std::fmt::Debug for ExtraValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sealed { sealed } => write!(f, "{sealed:?}"),
            Self::Plain(_) => f.write_str("Plain([redacted])"),
        }
    }
}

/// An authorization in progress: created when the user is sent to the provider, taken once
/// by the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The `state` parameter sent to the provider (the key; at least 128 random bits).
    pub state: String,
    /// The [`Instance::id`] being authorized; the instance must exist.
    pub instance: String,
    /// The sealed PKCE code verifier.
    pub pkce_verifier: Sealed,
    /// The redirect URI sent with the authorization request.
    pub redirect_uri: String,
    /// The issuer the callback's `iss` must match (RFC 9207), when known.
    pub expected_issuer: Option<String>,
    /// When it was created.
    pub created: Timestamp,
    /// When it stops being usable: at `expires` and later, it is never returned.
    pub expires: Timestamp,
}

/// Why a refresh failed, for the admin page and the refresh policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshErrorKind {
    /// The provider refused the refresh token (`invalid_grant`): authorize again.
    InvalidGrant,
    /// The provider refused the client (`invalid_client`): check the client credentials.
    InvalidClient,
    /// A fault that may pass (timeout, connection error, 5xx, 429).
    Transient,
    /// Any other error answer or an unreadable response.
    #[serde(other)]
    Other,
}

/// How the last refresh ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RefreshResult {
    /// A new token was stored.
    Ok,
    /// The refresh failed.
    Failed {
        /// The kind of failure.
        kind: RefreshErrorKind,
        /// A message for the admin (never a secret).
        message: String,
        /// How many refreshes in a row failed, this one included (1 for the first).
        #[serde(default = "one")]
        failures: u32,
        /// No process asks the provider again before this time (the provider's
        /// `Retry-After`, or the engine's backoff); `None`: no wait.
        #[serde(default)]
        retry_at: Option<Timestamp>,
    },
}

fn one() -> u32 {
    1
}

/// The last refresh of a token: when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshOutcome {
    /// When it ended.
    pub at: Timestamp,
    /// How it ended.
    pub result: RefreshResult,
}

/// The tokens of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The sealed access token.
    pub access_token: Sealed,
    /// The sealed refresh token, if the provider issued one.
    pub refresh_token: Option<Sealed>,
    /// The token type (usually `Bearer`).
    pub token_type: String,
    /// The scope the provider granted, if it said.
    pub scope: Option<String>,
    /// When the access token expires; `None` when the provider did not say.
    pub expires_at: Option<Timestamp>,
    /// When the token was obtained.
    pub obtained_at: Timestamp,
    /// How the last refresh ended, if there was one.
    pub last_refresh: Option<RefreshOutcome>,
    /// The values kept with the connection, by name: parameters of the authorization
    /// callback (e.g. QuickBooks `realmId`) and fields of the token response (e.g.
    /// Salesforce `instance_url`, Slack `team.id`) that callers of the API need. Not
    /// secrets: stored as plain text, as given. Records written before they were kept read
    /// as empty.
    #[serde(default)]
    pub kept: BTreeMap<String, String>,
    /// The version the store holds: 1 for the first record, one more after each write. The
    /// store sets it; the value passed to `put_token` is ignored.
    pub version: u64,
}

/// A refresh lease: while it is held and not expired, only its holder refreshes the
/// instance's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The [`Instance::id`] it guards.
    pub instance: String,
    /// Who holds it (e.g. a random id per engine process).
    pub holder: String,
    /// When it expires: at `expires` and later, another holder may take it over.
    pub expires: Timestamp,
}

/// A signed-in admin of the admin page, shared by every server node on the store.
///
/// The browser holds a random session id; the store keeps only its digest. The session's
/// one-time banner is not a field: it is set and taken with
/// [`Store::set_session_banner`](crate::Store::set_session_banner) and
/// [`Store::take_session_banner`](crate::Store::take_session_banner).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSession {
    /// The SHA-256 digest (hex) of the session id the browser holds (the key).
    pub digest: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    /// When it was created (the caller's clock).
    pub created: Timestamp,
    /// When it ends: at `expires` and later, it is never returned.
    pub expires: Timestamp,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("digest", &self.digest)
            .field("csrf", &"[redacted]")
            .field("created", &self.created)
            .field("expires", &self.expires)
            .finish()
    }
}

impl AdminSession {
    /// Whether it has ended at `now` (`expires <= now`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires <= now
    }
}

/// A key of the REST API, as stored: never the key itself, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// A short public id, to name and revoke the key (the key of the record).
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// What the key may do, as the server names it (e.g. `tokens`, `admin`). The store keeps
    /// it as given.
    pub role: String,
    /// The SHA-256 digest (hex) of the key; unique among the stored keys.
    pub digest: String,
    /// When it was created (the caller's clock).
    pub created: Timestamp,
}

impl PendingAuthorization {
    /// Whether it can no longer be used at `now` (`expires <= now`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires <= now
    }
}

impl Lease {
    /// `Ok` when `holder` holds the lease `lease` of `instance` unexpired at `now`
    /// (`expires > now`), else the `Conflict` of
    /// [`Store::put_token_fenced`](crate::Store::put_token_fenced) that says why: the one
    /// fence check of every backend.
    pub fn check_fence(
        lease: Option<&Lease>,
        instance: &str,
        holder: &str,
        now: Timestamp,
    ) -> crate::Result<()> {
        let what = || format!("token of instance `{instance}`");
        let why = match lease {
            Some(lease) if lease.is_held_by(holder, now) => return Ok(()),
            Some(lease) if lease.holder == holder => format!(
                "the lease of `{holder}` expired at {} ms",
                lease.expires.as_unix_millis()
            ),
            Some(lease) => format!("the lease is held by `{}`, not by `{holder}`", lease.holder),
            None => format!("`{holder}` holds no lease of this instance"),
        };
        Err(crate::Error::conflict(what(), why))
    }

    /// Whether `holder` may acquire this lease at `now`: it holds it already, or the lease
    /// expired (`expires <= now`).
    pub fn can_be_taken_by(&self, holder: &str, now: Timestamp) -> bool {
        self.holder == holder || self.expires <= now
    }

    /// Whether `holder` holds this lease unexpired at `now` (`expires > now`): the fence of
    /// [`Store::put_token_fenced`](crate::Store::put_token_fenced).
    pub fn is_held_by(&self, holder: &str, now: Timestamp) -> bool {
        self.holder == holder && self.expires > now
    }
}

/// One entry of the change feed: the instance `instance`, or its token record, changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The change number: greater than every earlier change's, across every process.
    pub seq: u64,
    /// The [`Instance::id`] that changed (created, updated, deleted, or its token written or
    /// deleted).
    pub instance: String,
}

/// What [`Store::changes_since`](crate::Store::changes_since) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The changes after the cursor, oldest first, at most the limit asked for.
    pub changes: Vec<Change>,
    /// The store no longer keeps some change after the cursor (it keeps at least the newest
    /// [`CHANGES_KEPT`]): the reader missed changes it cannot name, and must treat every
    /// instance as changed.
    pub missed: bool,
}

/// How many of the newest changes a store keeps at least; older ones may be dropped.
pub const CHANGES_KEPT: u64 = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_refresh_written_before_backoff_was_recorded_still_decodes() {
        let old = r#"{"result":"failed","kind":"transient","message":"timeout"}"#;
        let decoded: RefreshResult = serde_json::from_str(old).expect("old records decode");
        assert_eq!(
            decoded,
            RefreshResult::Failed {
                kind: RefreshErrorKind::Transient,
                message: "timeout".to_string(),
                failures: 1,
                retry_at: None,
            }
        );
    }
    /// As the sled backend stores it: JSON, so a record of an older granary (without
    /// `token_lifetime`) must still read.
    #[test]
    fn an_instance_written_before_token_lifetime_was_kept_still_decodes() {
        let instance = Instance {
            id: "old".to_string(),
            integration: "api".to_string(),
            scheme: "oauth".to_string(),
            client_id: "client".to_string(),
            client_secret: None,
            scopes: Vec::new(),
            redirect_uri: "http://127.0.0.1/admin/oauth/".to_string(),
            authorization_url: None,
            token_url: None,
            extra_authorization_params: Vec::new(),
            extra_token_params: Vec::new(),
            extra_token_headers: Vec::new(),
            client_auth: ClientAuth::None,
            token_lifetime: Some(60),
            connection: BTreeMap::from([("subdomain".to_string(), "acme".to_string())]),
            profile: Some(serde_json::json!({ "pkce": false })),
            status: InstanceStatus::New,
            created: Timestamp::EPOCH,
            updated: Timestamp::EPOCH,
            version: 1,
        };
        let mut json = serde_json::to_value(&instance).expect("encodes");
        assert_eq!(json["token_lifetime"], 60);
        assert_eq!(json["connection"]["subdomain"], "acme");
        assert_eq!(json["profile"]["pkce"], false);
        let object = json.as_object_mut().expect("an object");
        for field in ["token_lifetime", "connection", "profile"] {
            object.remove(field);
        }
        let decoded: Instance = serde_json::from_value(json).expect("old records decode");
        assert_eq!(
            decoded,
            Instance {
                token_lifetime: None,
                connection: BTreeMap::new(),
                profile: None,
                ..instance
            }
        );
    }

    /// As the sled backend stores it: a token record of an older granary (without `kept`)
    /// must still read.
    #[test]
    fn a_token_written_before_kept_values_still_decodes() {
        let token = TokenRecord {
            access_token: Sealed::new(vec![1, 2, 3]),
            refresh_token: None,
            token_type: "Bearer".to_string(),
            scope: None,
            expires_at: None,
            obtained_at: Timestamp::EPOCH,
            last_refresh: None,
            kept: BTreeMap::from([("realmId".to_string(), "123".to_string())]),
            version: 1,
        };
        let mut json = serde_json::to_value(&token).expect("encodes");
        assert_eq!(json["kept"]["realmId"], "123");
        json.as_object_mut().expect("an object").remove("kept");
        let decoded: TokenRecord = serde_json::from_value(json).expect("old records decode");
        assert_eq!(
            decoded,
            TokenRecord {
                kept: BTreeMap::new(),
                ..token
            }
        );
    }
}
