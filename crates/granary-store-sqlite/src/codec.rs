//! Rows to records and back: enums as text, lists and JSON values as JSON text, sealed bytes
//! as BLOBs, timestamps as integer milliseconds, versions as integers.

use granary_store::{
    ClientAuth, Error, Instance, InstanceStatus, Integration, Lease, PendingAuthorization,
    RefreshOutcome, Result, Sealed, Timestamp, TokenRecord,
};
use rusqlite::Row;
use std::collections::BTreeMap;

pub(crate) const INSTANCE_COLUMNS: &str = "id, integration, scheme, client_id, client_secret, scopes, \
    redirect_uri, authorization_url, token_url, extra_authorization_params, extra_token_params, \
    extra_token_headers, client_auth, status, created, updated, version, token_lifetime, connection, \
    profile";

pub(crate) const PENDING_COLUMNS: &str =
    "state, instance, pkce_verifier, redirect_uri, expected_issuer, created, expires";

pub(crate) const TOKEN_COLUMNS: &str = "access_token, refresh_token, token_type, scope, expires_at, obtained_at, last_refresh, version, kept";

pub(crate) fn client_auth_text(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::None => "none",
    }
}

fn client_auth_from(text: &str) -> Option<ClientAuth> {
    Some(match text {
        "client_secret_basic" => ClientAuth::ClientSecretBasic,
        "client_secret_post" => ClientAuth::ClientSecretPost,
        "none" => ClientAuth::None,
        _ => return None,
    })
}

pub(crate) fn status_text(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::New => "new",
        InstanceStatus::Authorized => "authorized",
        InstanceStatus::NeedsAuthorization => "needs_authorization",
        InstanceStatus::Disabled => "disabled",
    }
}

pub(crate) fn status_from(text: &str) -> Option<InstanceStatus> {
    Some(match text {
        "new" => InstanceStatus::New,
        "authorized" => InstanceStatus::Authorized,
        "needs_authorization" => InstanceStatus::NeedsAuthorization,
        "disabled" => InstanceStatus::Disabled,
        _ => return None,
    })
}

/// JSON text of a value the store serializes itself (cannot fail for these types).
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend("cannot serialize a record field", e))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::undecodable(what, e))
}

/// The JSON text of a map of a nullable column: NULL when it is empty (as in the rows
/// written before the column existed).
pub(crate) fn map_json(map: &BTreeMap<String, String>) -> Result<Option<String>> {
    if map.is_empty() {
        Ok(None)
    } else {
        json(map).map(Some)
    }
}

/// A map of a nullable JSON text column: NULL is empty.
fn map_from(text: Option<&str>, what: &str) -> Result<BTreeMap<String, String>> {
    text.map_or(Ok(BTreeMap::new()), |text| from_json(text, what))
}

pub(crate) fn version_from(raw: i64, what: &str) -> Result<u64> {
    u64::try_from(raw).map_err(|_| Error::undecodable(what, format!("negative version {raw}")))
}

pub(crate) fn version_to(version: u64) -> Result<i64> {
    i64::try_from(version)
        .map_err(|_| Error::unsupported("a record version beyond 2^63 cannot be stored"))
}

/// A row read with rusqlite's own errors first, then decoded with the store's.
pub(crate) type Raw<T> = rusqlite::Result<T>;

pub(crate) struct RawIntegration(String, String, String, i64);

pub(crate) fn raw_integration(row: &Row<'_>) -> Raw<RawIntegration> {
    Ok(RawIntegration(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
    ))
}

impl RawIntegration {
    pub(crate) fn decode(self) -> Result<Integration> {
        let what = format!("integration `{}`", self.0);
        Ok(Integration {
            flows: from_json(&self.2, &what)?,
            name: self.0,
            source_digest: self.1,
            created: Timestamp::from_unix_millis(self.3),
        })
    }
}

pub(crate) struct RawInstance {
    id: String,
    integration: String,
    scheme: String,
    client_id: String,
    client_secret: Option<Vec<u8>>,
    scopes: String,
    redirect_uri: String,
    authorization_url: Option<String>,
    token_url: Option<String>,
    extra_authorization_params: String,
    extra_token_params: String,
    extra_token_headers: String,
    client_auth: String,
    status: String,
    created: i64,
    updated: i64,
    version: i64,
    token_lifetime: Option<i64>,
    connection: Option<String>,
    profile: Option<String>,
}

pub(crate) fn raw_instance(row: &Row<'_>) -> Raw<RawInstance> {
    Ok(RawInstance {
        id: row.get(0)?,
        integration: row.get(1)?,
        scheme: row.get(2)?,
        client_id: row.get(3)?,
        client_secret: row.get(4)?,
        scopes: row.get(5)?,
        redirect_uri: row.get(6)?,
        authorization_url: row.get(7)?,
        token_url: row.get(8)?,
        extra_authorization_params: row.get(9)?,
        extra_token_params: row.get(10)?,
        extra_token_headers: row.get(11)?,
        client_auth: row.get(12)?,
        status: row.get(13)?,
        created: row.get(14)?,
        updated: row.get(15)?,
        version: row.get(16)?,
        token_lifetime: row.get(17)?,
        connection: row.get(18)?,
        profile: row.get(19)?,
    })
}

impl RawInstance {
    pub(crate) fn decode(self) -> Result<Instance> {
        let what = format!("instance `{}`", self.id);
        Ok(Instance {
            client_auth: client_auth_from(&self.client_auth).ok_or_else(|| {
                Error::undecodable(&what, format!("unknown client_auth `{}`", self.client_auth))
            })?,
            status: status_from(&self.status).ok_or_else(|| {
                Error::undecodable(&what, format!("unknown status `{}`", self.status))
            })?,
            scopes: from_json(&self.scopes, &what)?,
            extra_authorization_params: from_json(&self.extra_authorization_params, &what)?,
            extra_token_params: from_json(&self.extra_token_params, &what)?,
            extra_token_headers: from_json(&self.extra_token_headers, &what)?,
            version: version_from(self.version, &what)?,
            token_lifetime: self
                .token_lifetime
                .map(|secs| {
                    u64::try_from(secs).map_err(|_| {
                        Error::undecodable(&what, format!("negative token_lifetime {secs}"))
                    })
                })
                .transpose()?,
            connection: map_from(self.connection.as_deref(), &what)?,
            profile: self
                .profile
                .as_deref()
                .map(|text| from_json(text, &what))
                .transpose()?,
            id: self.id,
            integration: self.integration,
            scheme: self.scheme,
            client_id: self.client_id,
            client_secret: self.client_secret.map(Sealed::new),
            redirect_uri: self.redirect_uri,
            authorization_url: self.authorization_url,
            token_url: self.token_url,
            created: Timestamp::from_unix_millis(self.created),
            updated: Timestamp::from_unix_millis(self.updated),
        })
    }
}

pub(crate) fn pending(row: &Row<'_>) -> Raw<PendingAuthorization> {
    Ok(PendingAuthorization {
        state: row.get(0)?,
        instance: row.get(1)?,
        pkce_verifier: Sealed::new(row.get::<_, Vec<u8>>(2)?),
        redirect_uri: row.get(3)?,
        expected_issuer: row.get(4)?,
        created: Timestamp::from_unix_millis(row.get(5)?),
        expires: Timestamp::from_unix_millis(row.get(6)?),
    })
}

pub(crate) struct RawToken {
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
    token_type: String,
    scope: Option<String>,
    expires_at: Option<i64>,
    obtained_at: i64,
    last_refresh: Option<String>,
    version: i64,
    kept: Option<String>,
}

pub(crate) fn raw_token(row: &Row<'_>) -> Raw<RawToken> {
    raw_token_at(row, 0)
}

/// The token columns ([`TOKEN_COLUMNS`]) from column `first` on.
pub(crate) fn raw_token_at(row: &Row<'_>, first: usize) -> Raw<RawToken> {
    Ok(RawToken {
        access_token: row.get(first)?,
        refresh_token: row.get(first + 1)?,
        token_type: row.get(first + 2)?,
        scope: row.get(first + 3)?,
        expires_at: row.get(first + 4)?,
        obtained_at: row.get(first + 5)?,
        last_refresh: row.get(first + 6)?,
        version: row.get(first + 7)?,
        kept: row.get(first + 8)?,
    })
}

impl RawToken {
    pub(crate) fn decode(self, instance: &str) -> Result<TokenRecord> {
        let what = format!("token of instance `{instance}`");
        let last_refresh: Option<RefreshOutcome> = match &self.last_refresh {
            Some(text) => Some(from_json(text, &what)?),
            None => None,
        };
        Ok(TokenRecord {
            access_token: Sealed::new(self.access_token),
            refresh_token: self.refresh_token.map(Sealed::new),
            token_type: self.token_type,
            scope: self.scope,
            expires_at: self.expires_at.map(Timestamp::from_unix_millis),
            obtained_at: Timestamp::from_unix_millis(self.obtained_at),
            last_refresh,
            kept: map_from(self.kept.as_deref(), &what)?,
            version: version_from(self.version, &what)?,
        })
    }
}

pub(crate) fn lease(row: &Row<'_>) -> Raw<Lease> {
    Ok(Lease {
        instance: row.get(0)?,
        holder: row.get(1)?,
        expires: Timestamp::from_unix_millis(row.get(2)?),
    })
}
