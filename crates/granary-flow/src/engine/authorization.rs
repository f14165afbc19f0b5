//! Authorization: the URL to send the user to (pending authorization stored, verifier
//! sealed), and the callback that exchanges the code and stores the sealed tokens.

use std::time::{Duration, SystemTime};

use granary_store::{InstanceStatus, PendingAuthorization, TokenRecord};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use super::integrations::IntegrationFlows;
use super::seal::Field;
use super::setup::InstanceSetup;
use super::{Engine, EngineError, EngineResult, Event};
use crate::protocol::{self, IssuerParameter, RefreshStrategy};

/// How long a pending authorization can be completed: 10 minutes.
pub const AUTHORIZATION_LIFETIME: Duration = Duration::from_secs(600);

/// A started authorization: the provider URL to send the user to, and its `state` (which
/// that URL carries too), so that a caller can bind the authorization to the browser that
/// starts it without reading the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationStart {
    /// The provider's authorization URL, with every parameter.
    pub url: Url,
    /// The `state` parameter of the URL (256 random bits, base64url).
    pub state: String,
}

impl Engine {
    /// The link an admin opens to connect `instance`:
    /// `{public_url}/admin/instances/{instance}/authorize`, the admin page whose "Get access
    /// token" starts the authorization in that browser (its state is bound to the browser
    /// that starts it, so the provider's URL itself is never handed out). An unknown
    /// instance is [`EngineError::NotFound`], a disabled one [`EngineError::Disabled`].
    pub async fn authorization_link(&self, instance: &str) -> EngineResult<Url> {
        let record = self.instance(instance).await?;
        if record.status == InstanceStatus::Disabled {
            return Err(EngineError::Disabled {
                instance: instance.to_string(),
            });
        }
        let mut link = self.inner.admin_url.clone();
        let path = format!("{}instances/{instance}/authorize", link.path());
        link.set_path(&path);
        Ok(link)
    }

    /// Starts an authorization of `instance`: stores a pending authorization (single use,
    /// expiring after 10 minutes, its PKCE verifier sealed) and returns the provider URL to
    /// send the user to, with its state.
    pub async fn begin_authorization(&self, instance: &str) -> EngineResult<AuthorizationStart> {
        let record = self.instance(instance).await?;
        if record.status == InstanceStatus::Disabled {
            return Err(EngineError::Disabled {
                instance: instance.to_string(),
            });
        }
        let integration = self.integration(&record.integration).await?;
        let flows = IntegrationFlows::of(&integration)?;
        let setup = self.instance_setup_with(&record, &flows, &Default::default())?;
        // The redirect URI follows the current public URL; the instance records the one
        // last sent, so that a change of public URL can be reported (see
        // `instances_registered_elsewhere`).
        let redirect_uri = self.inner.redirect_uri.clone();
        if record.redirect_uri != redirect_uri.as_str() {
            self.record_redirect_uri(instance, redirect_uri.as_str())
                .await?;
        }
        let (url, pending) = protocol::authorization_request(
            &setup.config,
            &redirect_uri,
            &setup.scopes(&record),
            flows.issuer.as_deref(),
        )?;
        // Without PKCE (a provider that rejects it) the stored verifier is empty.
        let no_verifier = SecretString::from(String::new());
        let verifier = pending.code_verifier.as_ref().unwrap_or(&no_verifier);
        let now = self.now();
        // Expired pendings of any instance are dead weight; their removal is best effort.
        if let Err(error) = self.inner.store.purge_expired_pendings(now).await {
            tracing::warn!(%error, "could not purge expired pending authorizations");
        }
        let stored = PendingAuthorization {
            state: pending.state.clone(),
            instance: instance.to_string(),
            pkce_verifier: self
                .keyring()
                .seal_str(instance, Field::PkceVerifier, verifier)?,
            redirect_uri: redirect_uri.to_string(),
            expected_issuer: pending.expected_issuer.clone(),
            created: now,
            expires: now.saturating_add(AUTHORIZATION_LIFETIME),
        };
        self.inner.store.put_pending(&stored).await?;
        Ok(AuthorizationStart {
            url,
            state: pending.state,
        })
    }

    /// Completes an authorization from the callback's query (`code=...&state=...[&iss=...]`
    /// or `error=...&state=...`): takes the pending authorization (once), checks the
    /// callback, exchanges the code, stores the sealed tokens and marks the instance
    /// authorized. Returns the instance id.
    pub async fn complete_authorization(&self, query: &str) -> EngineResult<String> {
        let state = protocol::callback_state(query).ok_or(EngineError::UnknownAuthorization)?;
        let now = self.now();
        let stored = self
            .inner
            .store
            .take_pending(&state, now)
            .await?
            .ok_or(EngineError::UnknownAuthorization)?;
        let instance_id = stored.instance.clone();
        let instance = self.instance(&instance_id).await?;
        let integration = self.integration(&instance.integration).await?;
        let flows = IntegrationFlows::of(&integration)?;
        let before_callback = self.instance_setup_with(&instance, &flows, &Default::default())?;
        let verifier =
            self.open_secret(&instance_id, Field::PkceVerifier, &stored.pkce_verifier)?;
        let verifier = (!verifier.expose_secret().is_empty()).then_some(verifier);
        let redirect_uri = Url::parse(&stored.redirect_uri).map_err(|e| {
            EngineError::Internal(format!("the stored redirect URI is not a URL ({e})"))
        })?;
        let pending = protocol::PendingAuthorization {
            state: stored.state,
            code_verifier: verifier,
            redirect_uri,
            scopes: before_callback.scopes(&instance),
            expected_issuer: stored.expected_issuer,
            created: SystemTime::now(),
        };
        let code = protocol::parse_callback_with(
            &before_callback.config,
            query,
            &pending,
            IssuerParameter::IfPresent,
        )?;
        // Values the callback sent (Zoho's accounts-server) may be part of the token URL.
        let setup = self.instance_setup_with(&instance, &flows, &code.kept)?;
        let config = &setup.config;
        let started = self.now();
        let tokens = protocol::exchange_code(&self.inner.http, config, &code, &pending)
            .await
            .map_err(|error| {
                let callback = naming_a_host_or_region(query);
                if callback.is_empty() || error.is_transient() {
                    EngineError::Protocol(error)
                } else {
                    EngineError::Exchange {
                        source: Box::new(error),
                        callback,
                    }
                }
            })?;

        let expires_in = tokens.expires_in.or(setup.stated_lifetime());
        let expires_at = match super::tokens::expiry(started, expires_in) {
            Some(at) => Some(at),
            None => {
                self.introspected_expiry(&instance_id, config, &tokens.access_token, started)
                    .await
            }
        };
        let keyring = self.keyring();
        let mut record = TokenRecord {
            access_token: keyring.seal_str(
                &instance_id,
                Field::AccessToken,
                &tokens.access_token,
            )?,
            refresh_token: match (&tokens.refresh_token, &config.refresh_strategy) {
                (Some(token), _) => {
                    Some(keyring.seal_str(&instance_id, Field::RefreshToken, token)?)
                }
                // A provider that renews by exchanging the access token: that token is
                // what renews it (see `Engine::refresh_under_lease`).
                (None, RefreshStrategy::AccessTokenExchange(_)) => Some(keyring.seal_str(
                    &instance_id,
                    Field::RefreshToken,
                    &tokens.access_token,
                )?),
                (None, _) => None,
            },
            token_type: tokens
                .token_type
                .clone()
                .unwrap_or_else(|| "Bearer".to_string()),
            scope: tokens.scope.as_ref().map(|s| s.join(" ")),
            expires_at,
            kept: InstanceSetup::kept_after(&code.kept, &tokens.kept),
            obtained_at: started,
            last_refresh: None,
            version: 0,
        };
        let what = format!(
            "the token of instance `{instance_id}` kept changing while it was stored \
             (authorize again)"
        );
        record.version = super::cas::retry_on_conflict!(what, {
            let current = self.inner.store.get_token(&instance_id).await?;
            let expected = current.map(|r| r.version);
            Ok(self
                .inner
                .store
                .put_token(&instance_id, &record, expected)
                .await?)
        })?;
        // A disabled instance stays disabled: the token waits in the store until it is
        // enabled again, and is not handed out meanwhile.
        if self.mark_authorized(&instance_id).await? {
            self.cache_record(&instance_id, &record, tokens.access_token.expose_secret())
                .await?;
        }
        self.emit(Event::Authorized {
            instance: instance_id.clone(),
        });
        Ok(instance_id)
    }
}

/// The callback's extra parameters that name a host or region (Zoho's `accounts-server` and
/// `location`, a `region`, a `data_center`, an `api_domain`, or any value that is an
/// `https` URL): what a failed exchange's message shows. The code, the state and the
/// standard parameters are never among them.
pub(crate) fn naming_a_host_or_region(query: &str) -> Vec<(String, String)> {
    const STANDARD: &[&str] = &[
        "code",
        "state",
        "iss",
        "error",
        "error_description",
        "error_uri",
        "scope",
        "session_state",
    ];
    const WORDS: &[&str] = &[
        "server",
        "location",
        "region",
        "domain",
        "host",
        "data_center",
        "datacenter",
        "dc",
        "instance_url",
        "site",
    ];
    url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
        .filter(|(name, _)| !STANDARD.contains(&name.as_ref()))
        .filter(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let named = WORDS
                .iter()
                .any(|word| lower.split(['-', '_']).any(|part| part == *word) || lower == *word)
                || lower.contains("server")
                || lower.contains("region")
                || lower.contains("domain");
            let url = Url::parse(value)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            (named || url) && !value.is_empty() && value.len() <= 200
        })
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .take(4)
        .collect()
}

#[cfg(test)]
mod callback_tests {
    use super::naming_a_host_or_region;

    #[test]
    fn only_parameters_that_name_a_host_or_region_are_kept() {
        let query = "code=secret-code&state=s&accounts-server=https%3A%2F%2Faccounts.zoho.eu\
                     &location=eu&realmId=123&iss=https%3A%2F%2Fas.example&api_domain=x.example";
        assert_eq!(
            naming_a_host_or_region(query),
            vec![
                (
                    "accounts-server".to_string(),
                    "https://accounts.zoho.eu".to_string()
                ),
                ("location".to_string(), "eu".to_string()),
                ("api_domain".to_string(), "x.example".to_string()),
            ]
        );
        assert!(naming_a_host_or_region("code=c&state=s&realmId=1").is_empty());
    }
}
