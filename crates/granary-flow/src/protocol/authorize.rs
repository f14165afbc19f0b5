//! The authorization request (state, PKCE S256) and the callback check (state, RFC 9207 `iss`, errors).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use url::Url;

use super::quirks::{append_query, authorization_params, check_callback_settings};
use super::{ClientConfig, REDACTED};
use crate::error::{Error, OAuthError, Result};

/// Random bytes in a state (256 bits) and a PKCE verifier (43 base64url characters).
const RANDOM_BYTES: usize = 32;

/// Parameters the protocol sets itself; extra authorization parameters may not override them.
const RESERVED_AUTHORIZATION_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// An authorization in progress: what the callback is checked against and the code
/// exchange needs. Keep it server-side, single use, until the callback (the engine seals the
/// verifier and stores the rest).
#[derive(Clone)]
pub struct PendingAuthorization {
    /// The `state` sent (256 random bits, base64url); also the key to look the pending
    /// authorization up by at the callback.
    pub state: String,
    /// The PKCE verifier, when PKCE is on.
    pub code_verifier: Option<SecretString>,
    /// The redirect URI sent; the code exchange must send the same.
    pub redirect_uri: Url,
    /// The scopes requested, for error messages.
    pub scopes: Vec<String>,
    /// The issuer the callback's `iss` must name, when known.
    pub expected_issuer: Option<String>,
    /// When the authorization request was built.
    pub created: SystemTime,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("state", &self.state)
            .field(
                "code_verifier",
                &self.code_verifier.as_ref().map(|_| REDACTED),
            )
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("scopes", &self.scopes)
            .field("expected_issuer", &self.expected_issuer)
            .field("created", &self.created)
            .finish()
    }
}

/// Whether the callback must carry `iss` (RFC 9207).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerParameter {
    /// The provider advertises `authorization_response_iss_parameter_supported`: a callback
    /// without `iss` is rejected.
    Required,
    /// Checked where present, accepted where absent.
    IfPresent,
}

/// The authorization code of a checked callback.
#[derive(Clone)]
pub struct AuthorizationCode {
    /// The code, single use.
    pub code: SecretString,
    /// The `iss` of the callback, when sent (already checked).
    pub issuer: Option<String>,
    /// The values of the configured kept callback parameters that the callback carried
    /// ([`ClientConfig::kept_callback_params`]); an absent or empty one is left out.
    pub kept: BTreeMap<String, String>,
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("code", &REDACTED)
            .field("issuer", &self.issuer)
            .field("kept", &self.kept)
            .finish()
    }
}

/// Builds the authorization URL to send the user to, and the pending authorization to keep.
///
/// The URL has `response_type=code`, `client_id`, `redirect_uri`, `scope` (joined with the
/// configured separator), a fresh `state`, the PKCE S256 challenge when PKCE is on, and the
/// extra authorization parameters; query parameters already in the configured
/// authorization URL are kept. The provider's quirks apply: standard parameters renamed
/// ([`ClientConfig::authorization_param_renames`]) or dropped
/// ([`ClientConfig::dropped_authorization_params`]), the scope sent unencoded
/// ([`ClientConfig::scope_encoding`]). Fails when an extra parameter would override one of
/// these, when two parameters would share a name, when a raw scope would break the URL, and
/// when the callback settings cannot work.
pub fn authorization_request<S: AsRef<str>>(
    config: &ClientConfig,
    redirect_uri: &Url,
    scopes: &[S],
    expected_issuer: Option<&str>,
) -> Result<(Url, PendingAuthorization)> {
    if config.client_id.is_empty() {
        return Err(Error::Config(
            "the client_id is empty: set the client id the provider issued".into(),
        ));
    }
    if redirect_uri.fragment().is_some() {
        return Err(Error::Config(format!(
            "the redirect URI {redirect_uri} has a fragment, which RFC 6749 3.1.2 forbids: remove the `#...` part"
        )));
    }
    for (name, _) in &config.extra_authorization_params {
        if RESERVED_AUTHORIZATION_PARAMS.contains(&name.as_str()) {
            return Err(Error::Config(format!(
                "the extra authorization parameter `{name}` would override one that granary sets itself: remove it"
            )));
        }
    }
    check_callback_settings(config)?;
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_ref().to_string()).collect();
    let state = random_base64url();
    let code_verifier = config.pkce.then(|| SecretString::from(random_base64url()));

    let mut standard = vec![
        ("response_type", "code".to_string()),
        ("client_id", config.client_id.clone()),
        ("redirect_uri", redirect_uri.to_string()),
    ];
    if !scopes.is_empty() {
        standard.push(("scope", scopes.join(&config.scope_separator)));
    }
    standard.push(("state", state.clone()));
    if let Some(verifier) = &code_verifier {
        standard.push(("code_challenge", pkce_challenge(verifier.expose_secret())));
        standard.push(("code_challenge_method", "S256".to_string()));
    }
    let params = authorization_params(config, standard, &scopes)?;
    let mut url = config.authorization_url.clone();
    append_query(&mut url, &params);
    let pending = PendingAuthorization {
        state,
        code_verifier,
        redirect_uri: redirect_uri.clone(),
        scopes,
        expected_issuer: expected_issuer.map(str::to_string),
        created: SystemTime::now(),
    };
    Ok((url, pending))
}

/// The PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)), RFC 7636 4.2.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn random_base64url() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `state` of a callback query, to look the pending authorization up with before
/// calling [`parse_callback`].
pub fn callback_state(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
}

/// Checks a callback query (`code=...&state=...&iss=...` or `error=...&state=...`) against
/// the pending authorization and returns the code.
///
/// In order: the state must equal the pending one (compared in constant time); `iss`, where
/// present, must equal the expected issuer, and must be present when `issuer` is
/// [`IssuerParameter::Required`] (RFC 9207, also for error responses); an `error` becomes
/// [`Error::AccessDenied`], [`Error::InvalidScope`] or [`Error::AuthorizationFailed`]; no
/// code is [`Error::MissingCode`].
pub fn parse_callback(
    query: &str,
    pending: &PendingAuthorization,
    issuer: IssuerParameter,
) -> Result<AuthorizationCode> {
    read_callback(query, pending, issuer, "code", &[])
}

/// [`parse_callback`] with the provider's callback quirks: the code read from
/// [`ClientConfig::code_param`], and the values of [`ClientConfig::kept_callback_params`]
/// returned in [`AuthorizationCode::kept`] (an absent or empty one is left out, not an error).
pub fn parse_callback_with(
    config: &ClientConfig,
    query: &str,
    pending: &PendingAuthorization,
    issuer: IssuerParameter,
) -> Result<AuthorizationCode> {
    check_callback_settings(config)?;
    read_callback(
        query,
        pending,
        issuer,
        &config.code_param,
        &config.kept_callback_params,
    )
}

fn read_callback(
    query: &str,
    pending: &PendingAuthorization,
    issuer: IssuerParameter,
    code_param: &str,
    kept_params: &[String],
) -> Result<AuthorizationCode> {
    let mut params: HashMap<String, String> = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        if params
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return Err(Error::MalformedCallback(format!(
                "the parameter `{name}` appears more than once (RFC 6749 3.1)"
            )));
        }
    }

    let state_matches = params
        .get("state")
        .is_some_and(|got| bool::from(got.as_bytes().ct_eq(pending.state.as_bytes())));
    if !state_matches {
        return Err(Error::StateMismatch);
    }

    let iss = params.get("iss").cloned();
    match (&iss, &pending.expected_issuer) {
        (Some(received), Some(expected)) if received != expected => {
            return Err(Error::IssuerMismatch {
                expected: expected.clone(),
                received: received.clone(),
            });
        }
        (None, expected) if issuer == IssuerParameter::Required => {
            return Err(Error::IssuerMissing {
                expected: expected.clone().unwrap_or_else(|| "(unknown)".to_string()),
            });
        }
        _ => {}
    }

    if let Some(error) = params.get("error") {
        let details = OAuthError {
            error: error.clone(),
            description: params.get("error_description").cloned(),
            uri: params.get("error_uri").cloned(),
        };
        return Err(match error.as_str() {
            "access_denied" => Error::AccessDenied { details },
            "invalid_scope" => Error::InvalidScope {
                scopes: pending.scopes.clone(),
                details,
            },
            _ => Error::AuthorizationFailed { details },
        });
    }

    let kept = kept_params
        .iter()
        .filter_map(|name| {
            let value = params.get(name).filter(|v| !v.is_empty())?;
            Some((name.clone(), value.clone()))
        })
        .collect();
    match params.remove(code_param) {
        Some(code) if !code.is_empty() => Ok(AuthorizationCode {
            code: SecretString::from(code),
            issuer: iss,
            kept,
        }),
        _ => Err(Error::MissingCode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::new(
            "client one",
            Url::parse("https://as.example/authorize?audience=api").unwrap(),
            Url::parse("https://as.example/token").unwrap(),
        )
        .with_authorization_param("prompt", "consent")
    }

    fn redirect() -> Url {
        Url::parse("http://127.0.0.1:8080/admin/oauth/").unwrap()
    }

    fn request(issuer: Option<&str>) -> (Url, PendingAuthorization) {
        authorization_request(&config(), &redirect(), &["read", "write all"], issuer).unwrap()
    }

    fn query_of(url: &Url) -> HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn the_url_carries_every_parameter_once() {
        let (url, pending) = request(None);
        let q = query_of(&url);
        assert_eq!(q["audience"], "api");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "client one");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:8080/admin/oauth/");
        assert_eq!(q["scope"], "read write all");
        assert_eq!(q["state"], pending.state);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["prompt"], "consent");
        let verifier = pending
            .code_verifier
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string();
        assert_eq!(verifier.len(), 43);
        assert_eq!(q["code_challenge"], pkce_challenge(&verifier));
        assert!(
            !url.as_str().contains(&verifier),
            "the verifier must never be in the URL"
        );
        assert_eq!(url.query_pairs().count(), q.len(), "no parameter twice");
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn states_are_fresh_and_long() {
        let (_, a) = request(None);
        let (_, b) = request(None);
        assert_ne!(a.state, b.state);
        assert!(URL_SAFE_NO_PAD.decode(&a.state).unwrap().len() * 8 >= 128);
    }

    #[test]
    fn pkce_off_and_a_comma_separator() {
        let config = config().with_pkce(false).with_scope_separator(",");
        let (url, pending) =
            authorization_request(&config, &redirect(), &["a", "b"], None).unwrap();
        let q = query_of(&url);
        assert_eq!(q["scope"], "a,b");
        assert!(!q.contains_key("code_challenge"));
        assert!(pending.code_verifier.is_none());
    }

    #[test]
    fn reserved_extra_parameters_are_refused() {
        let config = config().with_authorization_param("state", "fixed");
        let err = authorization_request(&config, &redirect(), &["a"], None).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.contains("`state`")),
            "{err}"
        );
    }

    #[test]
    fn a_good_callback_gives_the_code() {
        let (_, pending) = request(Some("https://as.example"));
        let query = format!(
            "code=abc&state={}&iss=https%3A%2F%2Fas.example",
            pending.state
        );
        let code = parse_callback(&query, &pending, IssuerParameter::Required).unwrap();
        assert_eq!(code.code.expose_secret(), "abc");
        assert_eq!(code.issuer.as_deref(), Some("https://as.example"));
        assert_eq!(
            callback_state(&format!("?{query}")).as_deref(),
            Some(pending.state.as_str())
        );
    }

    #[test]
    fn a_wrong_or_missing_state_is_refused_before_anything_else() {
        let (_, pending) = request(None);
        for query in [
            "code=abc&state=other".to_string(),
            "code=abc".to_string(),
            format!("code=abc&state={}x", pending.state),
            "error=access_denied&state=other".to_string(),
        ] {
            let err = parse_callback(&query, &pending, IssuerParameter::IfPresent).unwrap_err();
            assert!(matches!(err, Error::StateMismatch), "{query}: {err}");
            assert!(err.needs_reauthorization());
        }
    }

    #[test]
    fn iss_checks_of_rfc_9207() {
        let (_, pending) = request(Some("https://as.example"));
        let other = format!(
            "code=abc&state={}&iss=https%3A%2F%2Fevil.example",
            pending.state
        );
        let err = parse_callback(&other, &pending, IssuerParameter::IfPresent).unwrap_err();
        assert!(
            matches!(err, Error::IssuerMismatch { ref received, .. } if received == "https://evil.example")
        );
        let missing = format!("code=abc&state={}", pending.state);
        let err = parse_callback(&missing, &pending, IssuerParameter::Required).unwrap_err();
        assert!(matches!(err, Error::IssuerMissing { .. }), "{err}");
        assert!(parse_callback(&missing, &pending, IssuerParameter::IfPresent).is_ok());
        let error_from_other = format!(
            "error=access_denied&state={}&iss=https%3A%2F%2Fevil.example",
            pending.state
        );
        let err =
            parse_callback(&error_from_other, &pending, IssuerParameter::IfPresent).unwrap_err();
        assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
    }

    #[test]
    fn callback_errors_are_typed_and_say_what_happened() {
        let (_, pending) = request(None);
        let q = |rest: &str| format!("state={}&{rest}", pending.state);
        let err = parse_callback(
            &q("error=access_denied&error_description=User+said+no&error_uri=https%3A%2F%2Fdoc"),
            &pending,
            IssuerParameter::IfPresent,
        )
        .unwrap_err();
        assert!(err.to_string().contains("declined"), "{err}");
        assert!(err.to_string().contains("User said no"), "{err}");
        assert_eq!(
            err.oauth_error().unwrap().uri.as_deref(),
            Some("https://doc")
        );

        let err = parse_callback(
            &q("error=invalid_scope"),
            &pending,
            IssuerParameter::IfPresent,
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidScope { .. }));
        assert!(err.to_string().contains("[read write all]"), "{err}");

        let err = parse_callback(
            &q("error=server_error"),
            &pending,
            IssuerParameter::IfPresent,
        )
        .unwrap_err();
        assert!(matches!(err, Error::AuthorizationFailed { .. }), "{err}");

        let err = parse_callback(&q("foo=bar"), &pending, IssuerParameter::IfPresent).unwrap_err();
        assert!(matches!(err, Error::MissingCode), "{err}");
        let err = parse_callback(&q("code="), &pending, IssuerParameter::IfPresent).unwrap_err();
        assert!(matches!(err, Error::MissingCode), "an empty code: {err}");

        let err =
            parse_callback(&q("code=a&code=b"), &pending, IssuerParameter::IfPresent).unwrap_err();
        assert!(matches!(err, Error::MalformedCallback(_)), "{err}");
    }

    #[test]
    fn debug_never_shows_the_verifier_or_the_code() {
        let (_, pending) = request(None);
        let verifier = pending
            .code_verifier
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string();
        let shown = format!("{pending:?}");
        assert!(
            !shown.contains(&verifier) && shown.contains("[redacted]"),
            "{shown}"
        );
        let code = AuthorizationCode {
            code: SecretString::from("the-code-123"),
            issuer: None,
            kept: BTreeMap::new(),
        };
        let shown = format!("{code:?}");
        assert!(
            !shown.contains("the-code-123") && shown.contains("[redacted]"),
            "{shown}"
        );
    }
}
