//! Records for the checks: every field set, including binary sealed bytes and unicode.

use std::collections::BTreeMap;

use granary_store::{
    ClientAuth, ExtraValue, Instance, InstanceStatus, Integration, PendingAuthorization,
    RefreshErrorKind, RefreshOutcome, RefreshResult, Sealed, Timestamp, TokenRecord,
};

/// The checks' "now": a fixed instant, since stores never read the clock.
pub(crate) const T0: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

pub(crate) fn at(offset_millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0.as_unix_millis() + offset_millis)
}

/// Sealed bytes that hold every byte value, tagged so that records differ.
pub(crate) fn sealed(tag: &str) -> Sealed {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(tag.as_bytes());
    Sealed::new(bytes)
}

pub(crate) fn integration(name: &str) -> Integration {
    Integration {
        name: name.to_string(),
        source_digest: format!("sha256:{:0>64}", name.len()),
        flows: serde_json::json!({
            "oauth": {
                "authorizationCode": {
                    "authorizationUrl": "https://provider.example/authorize",
                    "tokenUrl": "https://provider.example/token",
                    "scopes": { "read": "Read things", "write": "Write things", "ünï côdé": "✓" }
                }
            }
        }),
        created: T0,
    }
}

pub(crate) fn instance(id: &str, integration: &str) -> Instance {
    Instance {
        id: id.to_string(),
        integration: integration.to_string(),
        scheme: "oauth".to_string(),
        client_id: format!("client-{id}"),
        client_secret: Some(sealed(&format!("secret-{id}"))),
        scopes: vec![
            "read".to_string(),
            "write".to_string(),
            "ünï côdé".to_string(),
        ],
        redirect_uri: "http://127.0.0.1:8080/admin/oauth/".to_string(),
        authorization_url: Some("https://override.example/authorize?x=1".to_string()),
        token_url: Some("https://override.example/token".to_string()),
        extra_authorization_params: vec![
            ("prompt".to_string(), "consent".to_string()),
            ("access_type".to_string(), "offline".to_string()),
        ],
        // A plaintext value, as records written before values were sealed hold, and sealed
        // ones: a backend keeps both as they are.
        extra_token_params: vec![(
            "audience".to_string(),
            ExtraValue::Plain("api://x".to_string()),
        )],
        extra_token_headers: vec![
            (
                "X-B".to_string(),
                ExtraValue::Sealed {
                    sealed: sealed("2"),
                },
            ),
            (
                "X-A".to_string(),
                ExtraValue::Sealed {
                    sealed: sealed("1"),
                },
            ),
        ],
        client_auth: ClientAuth::ClientSecretBasic,
        token_lifetime: Some(3_600),
        connection: BTreeMap::from([
            ("subdomain".to_string(), format!("acme-{id}")),
            ("tenant".to_string(), "ünï côdé ✓".to_string()),
        ]),
        profile: Some(serde_json::json!({
            "scope_separator": ",",
            "pkce": false,
            "authorization_params": { "access_type": "offline", "prompt": "consent" },
            "urls": { "token": "https://{subdomain}.provider.example/token" },
            "keep": ["instance_url", "team.id"],
            "note": "ünï côdé ✓",
        })),
        status: InstanceStatus::New,
        created: T0,
        updated: T0,
        version: 0,
    }
}

/// A public client with every optional field empty.
pub(crate) fn public_instance(id: &str, integration: &str) -> Instance {
    Instance {
        client_secret: None,
        scopes: Vec::new(),
        authorization_url: None,
        token_url: None,
        extra_authorization_params: Vec::new(),
        extra_token_params: Vec::new(),
        extra_token_headers: Vec::new(),
        client_auth: ClientAuth::None,
        token_lifetime: None,
        connection: BTreeMap::new(),
        profile: None,
        status: InstanceStatus::NeedsAuthorization,
        ..instance(id, integration)
    }
}

pub(crate) fn pending(state: &str, instance: &str, expires: Timestamp) -> PendingAuthorization {
    PendingAuthorization {
        state: state.to_string(),
        instance: instance.to_string(),
        pkce_verifier: sealed(&format!("verifier-{state}")),
        redirect_uri: "http://127.0.0.1:8080/admin/oauth/".to_string(),
        expected_issuer: Some("https://issuer.example".to_string()),
        created: T0,
        expires,
    }
}

pub(crate) fn token(tag: &str) -> TokenRecord {
    TokenRecord {
        access_token: sealed(&format!("access-{tag}")),
        refresh_token: Some(sealed(&format!("refresh-{tag}"))),
        token_type: "Bearer".to_string(),
        scope: Some("read write".to_string()),
        expires_at: Some(at(3_600_000)),
        obtained_at: T0,
        last_refresh: Some(RefreshOutcome {
            at: at(-1_000),
            result: RefreshResult::Failed {
                kind: RefreshErrorKind::Transient,
                message: format!("timeout ({tag})"),
                failures: 3,
                retry_at: Some(at(30_000)),
            },
        }),
        kept: BTreeMap::from([
            ("realmId".to_string(), format!("realm-{tag}")),
            (
                "instance_url".to_string(),
                "https://acme.my.salesforce.example".to_string(),
            ),
            ("team.id".to_string(), "T0 ünï côdé ✓".to_string()),
        ]),
        version: 0,
    }
}

/// A token with every optional field empty.
pub(crate) fn bare_token(tag: &str) -> TokenRecord {
    TokenRecord {
        refresh_token: None,
        scope: None,
        expires_at: None,
        last_refresh: Some(RefreshOutcome {
            at: T0,
            result: RefreshResult::Ok,
        }),
        kept: BTreeMap::new(),
        ..token(tag)
    }
}

/// Whether a stored token is `expected` as written, with the store's version.
pub(crate) fn same_token(stored: &TokenRecord, expected: &TokenRecord, version: u64) -> bool {
    let mut expected = expected.clone();
    expected.version = version;
    *stored == expected
}

pub(crate) fn same_instance(stored: &Instance, expected: &Instance, version: u64) -> bool {
    let mut expected = expected.clone();
    expected.version = version;
    *stored == expected
}
