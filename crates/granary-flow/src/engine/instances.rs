//! Instances: a configured client of an integration's scheme, created with checked scopes,
//! editable afterwards, deleted with its tokens revoked where the provider allows.

use std::collections::BTreeMap;
use std::fmt;

use granary_store::{ClientAuth, Instance, InstanceStatus, TokenRecord};
use secrecy::SecretString;
use url::Url;

use super::cas::retry_on_conflict;
use super::integrations::IntegrationFlows;
use super::reports::{DeleteReport, InstanceReport, TokenSummary};
use super::seal::Field;
use super::setup::no_flow;
use super::{Engine, EngineError, EngineResult};
use crate::protocol::{self, ClientConfig, TokenTypeHint};

/// What [`Engine::create_instance`] needs.
#[derive(Clone, Default)]
pub struct NewInstance {
    /// The unique id.
    pub id: String,
    /// The integration it belongs to.
    pub integration: String,
    /// The OAuth2 scheme; `None`: the first scheme with an authorization-code flow.
    pub scheme: Option<String>,
    /// The client id the provider issued.
    pub client_id: String,
    /// The client secret; `None` for a public client.
    pub client_secret: Option<SecretString>,
    /// How the client authenticates; `None`: HTTP Basic with a secret, `none` without.
    pub client_auth: Option<ClientAuth>,
    /// The scopes to request.
    pub scopes: Vec<String>,
    /// Accept scopes the flow does not declare.
    pub force_scopes: bool,
    /// Overrides the flow's authorization URL.
    pub authorization_url: Option<Url>,
    /// Overrides the flow's token URL.
    pub token_url: Option<Url>,
    /// Extra query parameters of the authorization request (never a secret: they go in a URL).
    pub extra_authorization_params: Vec<(String, String)>,
    /// Extra body parameters of every token request.
    pub extra_token_params: Vec<(String, String)>,
    /// Extra headers of every token request.
    pub extra_token_headers: Vec<(String, String)>,
    /// The lifetime of a token whose expiry the provider does not state (refreshed once
    /// that old, when a refresh token is held); `None`: the integration's, else the
    /// engine's default (see [`Engine::unknown_expiry_lifetime`]). Whole seconds; zero is
    /// none.
    pub token_lifetime: Option<std::time::Duration>,
    /// Connection fields the provider profile asks for (`shop`, `tenant`), by name.
    pub connection: BTreeMap<String, String>,
    /// The instance's own provider-profile settings (a profile object, or a catalogue id
    /// as a string; `{"use": "none"}` for none), over the document's and the catalogue's.
    pub profile: Option<serde_json::Value>,
}

impl NewInstance {
    /// An instance `id` of `integration` with client id `client_id`; set the rest by field.
    pub fn new(
        id: impl Into<String>,
        integration: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            integration: integration.into(),
            client_id: client_id.into(),
            ..Self::default()
        }
    }
}

impl fmt::Debug for NewInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewInstance")
            .field("id", &self.id)
            .field("integration", &self.integration)
            .field("scheme", &self.scheme)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A change to an instance: every `Some` field is set, the others are kept.
#[derive(Clone, Default)]
pub struct InstanceUpdate {
    /// A new scheme.
    pub scheme: Option<String>,
    /// A new client id.
    pub client_id: Option<String>,
    /// A new client secret (`Some(None)`: a public client from now on).
    pub client_secret: Option<Option<SecretString>>,
    /// A new client authentication method.
    pub client_auth: Option<ClientAuth>,
    /// New scopes (checked like at creation).
    pub scopes: Option<Vec<String>>,
    /// Accept scopes the flow does not declare.
    pub force_scopes: bool,
    /// A new authorization URL override (`Some(None)`: the flow's own).
    pub authorization_url: Option<Option<Url>>,
    /// A new token URL override (`Some(None)`: the flow's own).
    pub token_url: Option<Option<Url>>,
    /// New extra authorization parameters.
    pub extra_authorization_params: Option<Vec<(String, String)>>,
    /// New extra token parameters.
    pub extra_token_params: Option<Vec<(String, String)>>,
    /// New extra token headers.
    pub extra_token_headers: Option<Vec<(String, String)>>,
    /// A new lifetime of a token of unknown expiry (`Some(None)`: the integration's, else
    /// the engine's default).
    pub token_lifetime: Option<Option<std::time::Duration>>,
    /// New connection fields (all of them: a name left out is cleared).
    pub connection: Option<BTreeMap<String, String>>,
    /// New provider-profile settings of the instance (`Some(None)`: none of its own).
    pub profile: Option<Option<serde_json::Value>>,
    /// `Some(false)` disables the instance; `Some(true)` enables it again.
    pub enabled: Option<bool>,
}

impl fmt::Debug for InstanceUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceUpdate")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .field("token_url", &self.token_url)
            .field("token_lifetime", &self.token_lifetime)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The origins of the authorization and token URLs `instance` uses (its overrides, its
    /// profile's templates filled with its connection fields, or its flow's); `None` for a
    /// configuration that does not build.
    fn endpoint_origins(
        &self,
        instance: &Instance,
        flows: &IntegrationFlows,
    ) -> Option<(url::Origin, url::Origin)> {
        let setup = self
            .instance_setup_with(instance, flows, &BTreeMap::new())
            .ok()?;
        Some((
            setup.config.authorization_url.origin(),
            setup.config.token_url.origin(),
        ))
    }

    /// Applies the URL rule to an instance's authorization and token URL overrides.
    fn check_overrides(
        &self,
        authorization: Option<&Url>,
        token: Option<&Url>,
    ) -> EngineResult<()> {
        if let Some(url) = authorization {
            self.check_provider_url("the authorization URL", url)?;
        }
        if let Some(url) = token {
            self.check_provider_url("the token URL", url)?;
        }
        Ok(())
    }

    /// Creates an instance. Scopes the flow does not declare are refused, with the nearest
    /// declared one suggested, unless `force_scopes` is set.
    pub async fn create_instance(&self, new: NewInstance) -> EngineResult<Instance> {
        if new.id.trim().is_empty() || new.client_id.trim().is_empty() {
            return Err(EngineError::Invalid(
                "an instance needs an id and a client_id: fill both in".to_string(),
            ));
        }
        super::validate_id(super::IdKind::Instance, &new.id)?;
        self.check_overrides(new.authorization_url.as_ref(), new.token_url.as_ref())?;
        let integration = self.integration(&new.integration).await?;
        let flows = IntegrationFlows::of(&integration)?;
        let (scheme, _) = flows
            .authorization_code_flow(new.scheme.as_deref())
            .ok_or_else(|| no_flow(&new.integration, new.scheme.as_deref()))?;
        let scheme = scheme.name.clone();
        let scopes = check_scopes(
            &flows,
            &new.integration,
            &scheme,
            &new.scopes,
            new.force_scopes,
        )?;
        let now = self.now();
        let client_secret = match &new.client_secret {
            Some(secret) => Some(
                self.keyring()
                    .seal_str(&new.id, Field::ClientSecret, secret)?,
            ),
            None => None,
        };
        let extra_token_params =
            self.seal_extras(&new.id, Field::ExtraTokenParam, &new.extra_token_params)?;
        let extra_token_headers =
            self.seal_extras(&new.id, Field::ExtraTokenHeader, &new.extra_token_headers)?;
        let mut instance = Instance {
            id: new.id,
            integration: new.integration,
            scheme,
            client_id: new.client_id,
            client_secret,
            scopes,
            redirect_uri: self.inner.redirect_uri.to_string(),
            authorization_url: new.authorization_url.map(String::from),
            token_url: new.token_url.map(String::from),
            extra_authorization_params: new.extra_authorization_params,
            extra_token_params,
            extra_token_headers,
            client_auth: ClientAuth::None,
            token_lifetime: lifetime_secs(new.token_lifetime),
            connection: new.connection,
            profile: new.profile,
            status: InstanceStatus::New,
            created: now,
            updated: now,
            version: 0,
        };
        instance.client_auth = match new.client_auth {
            Some(auth) => auth,
            None => Self::default_client_auth(&instance, &flows, instance.client_secret.is_some())?,
        };
        self.client_config_with(&instance, &flows)?;
        instance.version = self.inner.store.create_instance(&instance).await?;
        self.note_instance_lifetime(instance.token_lifetime);
        Ok(instance)
    }

    /// The instance `id`.
    pub async fn instance(&self, id: &str) -> EngineResult<Instance> {
        self.inner
            .store
            .get_instance(id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance `{id}`")))
    }

    /// Every instance, by id.
    pub async fn list_instances(&self) -> EngineResult<Vec<Instance>> {
        Ok(self.inner.store.list_instances().await?)
    }

    /// The instance and the state of its token.
    pub async fn status(&self, id: &str) -> EngineResult<InstanceReport> {
        let instance = self.instance(id).await?;
        let token = self.inner.store.get_token(id).await?;
        let mut token = token.as_ref().map(TokenSummary::from);
        if let Some(summary) = token.as_mut().filter(|t| !t.has_refresh_token) {
            summary.no_refresh_token = Some(self.no_refresh_token_cause(&instance).await);
        }
        Ok(InstanceReport { instance, token })
    }

    /// Changes any field of an instance (the token URL included); retried when another
    /// writer changed the instance at the same moment.
    pub async fn update_instance(
        &self,
        id: &str,
        update: InstanceUpdate,
    ) -> EngineResult<Instance> {
        self.check_overrides(
            update.authorization_url.as_ref().and_then(Option::as_ref),
            update.token_url.as_ref().and_then(Option::as_ref),
        )?;
        let secret = match &update.client_secret {
            Some(Some(secret)) => Some(Some(self.keyring().seal_str(
                id,
                Field::ClientSecret,
                secret,
            )?)),
            Some(None) => Some(None),
            None => None,
        };
        let params = match &update.extra_token_params {
            Some(params) => Some(self.seal_extras(id, Field::ExtraTokenParam, params)?),
            None => None,
        };
        let headers = match &update.extra_token_headers {
            Some(headers) => Some(self.seal_extras(id, Field::ExtraTokenHeader, headers)?),
            None => None,
        };
        // A change of endpoints may move the instance to another origin, which forgets its
        // tokens (below); the single flight is held so that a refresh running in this
        // process finishes first and no refresh starts with the old token meanwhile.
        let moves = update.scheme.is_some()
            || update.authorization_url.is_some()
            || update.token_url.is_some()
            || update.connection.is_some()
            || update.profile.is_some();
        let flight = moves.then(|| self.flight(id));
        let mut flight_state = match &flight {
            Some(flight) => Some(flight.lock.lock().await),
            None => None,
        };
        retry_on_conflict!(
            format!("instance `{id}` kept changing while it was updated"),
            {
                let mut instance = self.instance(id).await?;
                let before = instance.clone();
                let integration = self.integration(&instance.integration).await?;
                let flows = IntegrationFlows::of(&integration)?;
                if let Some(scheme) = &update.scheme {
                    instance.scheme.clone_from(scheme);
                }
                if flows
                    .authorization_code_flow(Some(&instance.scheme))
                    .is_none()
                {
                    return Err(no_flow(&instance.integration, Some(&instance.scheme)));
                }
                if let Some(client_id) = &update.client_id {
                    instance.client_id.clone_from(client_id);
                }
                if let Some(secret) = &secret {
                    instance.client_secret.clone_from(secret);
                }
                if let Some(auth) = update.client_auth {
                    instance.client_auth = auth;
                }
                if let Some(scopes) = &update.scopes {
                    instance.scopes = check_scopes(
                        &flows,
                        &instance.integration,
                        &instance.scheme,
                        scopes,
                        update.force_scopes,
                    )?;
                }
                if let Some(url) = &update.authorization_url {
                    instance.authorization_url = url.as_ref().map(Url::to_string);
                }
                if let Some(url) = &update.token_url {
                    instance.token_url = url.as_ref().map(Url::to_string);
                }
                if let Some(params) = &update.extra_authorization_params {
                    instance.extra_authorization_params.clone_from(params);
                }
                if let Some(params) = &params {
                    instance.extra_token_params.clone_from(params);
                }
                if let Some(headers) = &headers {
                    instance.extra_token_headers.clone_from(headers);
                }
                if let Some(lifetime) = update.token_lifetime {
                    instance.token_lifetime = lifetime_secs(lifetime);
                }
                if let Some(connection) = &update.connection {
                    instance.connection.clone_from(connection);
                }
                if let Some(profile) = &update.profile {
                    instance.profile.clone_from(profile);
                }
                // Values stored in plaintext by an older granary are sealed on every write.
                self.seal_plain_extras(&mut instance)?;
                match update.enabled {
                    Some(false) => instance.status = InstanceStatus::Disabled,
                    Some(true) if instance.status == InstanceStatus::Disabled => {
                        let has_token = self.inner.store.get_token(id).await?.is_some();
                        instance.status = if has_token {
                            InstanceStatus::Authorized
                        } else {
                            InstanceStatus::New
                        };
                    }
                    _ => {}
                }
                self.client_config_with(&instance, &flows)?;
                // Another origin for the token or authorization URL: the tokens are forgotten
                // (the refresh token never goes to the new origin; a new authorization is
                // needed), in the status write itself, so that no process hands the token out
                // or refreshes it from then on.
                let moved = self.endpoint_origins(&before, &flows)
                    != self.endpoint_origins(&instance, &flows);
                if moved {
                    instance.status = match instance.status {
                        InstanceStatus::Disabled => InstanceStatus::Disabled,
                        InstanceStatus::New => InstanceStatus::New,
                        InstanceStatus::Authorized | InstanceStatus::NeedsAuthorization => {
                            InstanceStatus::NeedsAuthorization
                        }
                    };
                }
                instance.updated = self.now();
                instance.version = self.inner.store.update_instance(&instance).await?;
                self.note_instance_lifetime(instance.token_lifetime);
                if instance.status == InstanceStatus::Disabled || moved {
                    self.forget(id);
                }
                if moved {
                    self.forget_moved_tokens(&before).await?;
                    if let Some(state) = flight_state.as_mut() {
                        **state = Default::default();
                    }
                }
                Ok(instance)
            }
        )
    }

    /// Deletes an instance with its tokens, pending authorizations and lease, revoking its
    /// tokens first where the integration has a revocation endpoint. A failed revocation is
    /// reported and does not stop the deletion.
    ///
    /// It disconnects first ([`Engine::disconnect`]: status, then revocation, then a
    /// version-checked deletion of the token record), so that a token a refresh in another
    /// process writes meanwhile is revoked too, and only then removes the instance.
    pub async fn delete_instance(&self, id: &str) -> EngineResult<DeleteReport> {
        let disconnected = match self.disconnect(id).await {
            Ok(report) => report,
            Err(EngineError::NotFound { .. }) => {
                return Ok(DeleteReport {
                    deleted: false,
                    revoked: false,
                    revocation_note: None,
                });
            }
            Err(error) => return Err(error),
        };
        let deleted = self.inner.store.delete_instance(id).await?;
        Ok(DeleteReport {
            deleted,
            revoked: disconnected.revoked,
            revocation_note: disconnected.revocation_note,
        })
    }

    /// The protocol configuration of `instance` when its integration knows a revocation
    /// endpoint; `Err` says why not (never a secret).
    pub(super) async fn revocation_config(
        &self,
        instance: &Instance,
    ) -> Result<ClientConfig, String> {
        // With the values kept with the connection: a revocation URL may name one the
        // callback gave (Zoho's accounts-server).
        let kept = match self.inner.store.get_token(&instance.id).await {
            Ok(Some(record)) => record.kept,
            _ => BTreeMap::new(),
        };
        let config = self
            .instance_setup(instance, &kept)
            .await
            .map_err(|e| e.to_string())?
            .config;
        if config.revocation_url.is_none() {
            return Err("the integration has no revocation endpoint: the tokens were not revoked at the provider".into());
        }
        Ok(config)
    }

    /// Revokes the tokens of `record` (the refresh token, then the access token) with
    /// `config`, a configuration from [`Engine::revocation_config`]. `Err` says why they
    /// were not revoked (never a secret).
    pub(super) async fn revoke_record(
        &self,
        instance: &Instance,
        config: &ClientConfig,
        record: &TokenRecord,
    ) -> Result<(), String> {
        // Revoking the refresh token ends the whole grant at most providers; the access
        // token is revoked too for those that keep them apart.
        let mut grant_revoked = false;
        if let Some(sealed) = &record.refresh_token {
            let token = self
                .open_secret(&instance.id, Field::RefreshToken, sealed)
                .map_err(|e| e.to_string())?;
            protocol::revoke(
                &self.inner.http,
                config,
                &token,
                Some(TokenTypeHint::RefreshToken),
            )
            .await
            .map_err(|e| e.to_string())?;
            grant_revoked = true;
        }
        let token = self
            .open_secret(&instance.id, Field::AccessToken, &record.access_token)
            .map_err(|e| e.to_string())?;
        match protocol::revoke(
            &self.inner.http,
            config,
            &token,
            Some(TokenTypeHint::AccessToken),
        )
        .await
        {
            Ok(()) => Ok(()),
            // The access token went with the grant (Google and others answer 400
            // `invalid_token` for a token already revoked, where RFC 7009 says 200).
            Err(e)
                if grant_revoked && e.oauth_error().is_some_and(|o| o.error == "invalid_token") =>
            {
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Deletes the tokens of an instance whose token or authorization URL moved to another
    /// origin. They are revoked where they came from (`before`, the instance as it was:
    /// the integration's revocation endpoint with the old configuration), never at the new
    /// origin; a failed revocation is logged.
    async fn forget_moved_tokens(&self, before: &Instance) -> EngineResult<()> {
        let id = before.id.as_str();
        let forgotten = self.revoke_and_delete_tokens(before).await?;
        if forgotten.token_deleted {
            tracing::warn!(
                instance = id,
                revoked = forgotten.revoked,
                note = forgotten.revocation_note.as_deref().unwrap_or(""),
                "the token or authorization URL moved to another origin: the tokens are forgotten, authorize again"
            );
            self.emit(super::Event::Disconnected {
                instance: id.to_string(),
                revoked: forgotten.revoked,
            });
        }
        Ok(())
    }

    /// Marks an instance authorized after a completed authorization, unless an admin
    /// disabled it: then it stays disabled. Whether it is authorized now.
    pub(crate) async fn mark_authorized(&self, id: &str) -> EngineResult<bool> {
        let (instance, _) = self
            .change_instance(id, "its status was set", |instance| {
                Ok(match instance.status {
                    InstanceStatus::Disabled | InstanceStatus::Authorized => false,
                    InstanceStatus::New | InstanceStatus::NeedsAuthorization => {
                        instance.status = InstanceStatus::Authorized;
                        true
                    }
                })
            })
            .await?;
        Ok(instance.status == InstanceStatus::Authorized)
    }

    /// Records `redirect_uri` as the one instance `id` was last authorized with.
    pub(crate) async fn record_redirect_uri(
        &self,
        id: &str,
        redirect_uri: &str,
    ) -> EngineResult<()> {
        self.change_instance(id, "its redirect URI was recorded", |instance| {
            if instance.redirect_uri == redirect_uri {
                return Ok(false);
            }
            instance.redirect_uri = redirect_uri.to_string();
            Ok(true)
        })
        .await
        .map(drop)
    }

    /// The instances whose last authorization used another redirect URI than the current
    /// one ([`Engine::redirect_uri`], from the public URL), with that URI: the public URL
    /// changed since, so the provider's registration of each needs the current redirect
    /// URI before the next authorization.
    pub async fn instances_registered_elsewhere(&self) -> EngineResult<Vec<(String, String)>> {
        let current = self.inner.redirect_uri.as_str();
        Ok(self
            .list_instances()
            .await?
            .into_iter()
            .filter(|i| i.redirect_uri != current)
            .map(|i| (i.id, i.redirect_uri))
            .collect())
    }

    /// Updates the status of an instance, retried when another writer raced.
    pub(crate) async fn set_status(&self, id: &str, status: InstanceStatus) -> EngineResult<()> {
        self.change_instance(id, "its status was set", |instance| {
            let changes = instance.status != status;
            instance.status = status;
            Ok(changes)
        })
        .await
        .map(drop)
    }
}

fn check_scopes(
    flows: &IntegrationFlows,
    integration: &str,
    scheme: &str,
    scopes: &[String],
    force: bool,
) -> EngineResult<Vec<String>> {
    let Some((_, flow)) = flows.authorization_code_flow(Some(scheme)) else {
        return Err(no_flow(integration, Some(scheme)));
    };
    let check = flow.check_scopes(&scopes.join(" "));
    if !check.unknown.is_empty() && !force {
        return Err(EngineError::UnknownScopes {
            integration: integration.to_string(),
            unknown: check.unknown,
        });
    }
    let mut all = check.known;
    all.extend(check.unknown.into_iter().map(|u| u.name));
    Ok(all)
}

/// A lifetime as the store keeps it: whole seconds, zero as none.
fn lifetime_secs(lifetime: Option<std::time::Duration>) -> Option<u64> {
    lifetime.map(|l| l.as_secs()).filter(|secs| *secs > 0)
}
