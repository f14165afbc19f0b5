//! What the engine reports of an instance: its token's state for an admin page, a failing
//! refresh, and what a delete did. No secret is in any of them.

use std::collections::BTreeMap;

use granary_store::{
    Instance, RefreshErrorKind, RefreshOutcome, RefreshResult, Timestamp, TokenRecord,
};

/// An instance and the state of its token, for an admin page. No secret is in it.
#[derive(Debug, Clone)]
pub struct InstanceReport {
    /// The instance as stored (its secrets sealed).
    pub instance: Instance,
    /// Its token, if it has one.
    pub token: Option<TokenSummary>,
}

/// What can be shown of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    /// When the access token expires, if known.
    pub expires_at: Option<Timestamp>,
    /// When it was obtained.
    pub obtained_at: Timestamp,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// The granted scope, if the provider said.
    pub scope: Option<String>,
    /// How the last refresh ended.
    pub last_refresh: Option<RefreshOutcome>,
    /// The record's version.
    pub version: u64,
    /// Without a refresh token: the usual cause for this provider and the setting that asks
    /// for one (a new authorization is needed when the token expires). `None` while one is
    /// held.
    pub no_refresh_token: Option<String>,
    /// Values kept with the connection (callback values, token-answer fields), by name.
    pub kept: BTreeMap<String, String>,
}

/// A refresh that keeps failing while the instance is still authorized: shown as "refresh
/// failing" with the provider's answer, until a refresh works (or it needs authorization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFailure {
    /// Why the last refresh failed (the provider's answer; never a secret).
    pub message: String,
    /// How many refreshes in a row failed.
    pub failures: u32,
    /// No process asks the provider again before this time, if set.
    pub retry_at: Option<Timestamp>,
    /// Whether the failure may pass by itself (timeout, 5xx, 429).
    pub transient: bool,
}

impl TokenSummary {
    /// The failure of the last refresh, unless it ended in "needs authorization" (then the
    /// instance's status says so).
    pub fn refresh_failure(&self) -> Option<RefreshFailure> {
        match &self.last_refresh.as_ref()?.result {
            RefreshResult::Failed {
                kind,
                message,
                failures,
                retry_at,
            } if *kind != RefreshErrorKind::InvalidGrant => Some(RefreshFailure {
                message: message.clone(),
                failures: *failures,
                retry_at: *retry_at,
                transient: *kind == RefreshErrorKind::Transient,
            }),
            _ => None,
        }
    }
}

impl From<&TokenRecord> for TokenSummary {
    fn from(record: &TokenRecord) -> Self {
        Self {
            expires_at: record.expires_at,
            obtained_at: record.obtained_at,
            has_refresh_token: record.refresh_token.is_some(),
            scope: record.scope.clone(),
            last_refresh: record.last_refresh.clone(),
            version: record.version,
            no_refresh_token: None,
            kept: record.kept.clone(),
        }
    }
}

/// What [`Engine::delete_instance`](super::Engine::delete_instance) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    /// Whether the instance existed and was deleted.
    pub deleted: bool,
    /// Whether its tokens were revoked at the provider.
    pub revoked: bool,
    /// Why revocation failed or was skipped, if it was (the instance is deleted anyway).
    pub revocation_note: Option<String>,
}
