//! What an instance's requests are made of: its integration's flow, the provider profile
//! that applies (catalogue, document, instance), its connection values and its own
//! overrides, turned into one protocol [`ClientConfig`].

use std::collections::BTreeMap;

use granary_store::{ClientAuth, Instance};
use url::Url;

use super::integrations::IntegrationFlows;
use super::seal::Field;
use super::{Engine, EngineError, EngineResult};
use crate::profile::{
    self, ProfileError, ProfileSource, ProviderProfile, RefreshKind, ResolvedProfile, Values,
    catalogue,
};
use crate::protocol::{AccessTokenExchange, ClientConfig, RefreshStrategy, ScopeEncoding};

/// An instance ready for requests: the protocol configuration, the profile it came from
/// and the connection's values (fields, kept callback values and token-answer fields).
#[derive(Debug, Clone)]
pub(crate) struct InstanceSetup {
    /// The protocol configuration.
    pub config: ClientConfig,
    /// The provider profile applied.
    pub profile: ResolvedProfile,
    /// The values templates were filled with.
    pub values: Values,
}

impl InstanceSetup {
    /// The scopes of an authorization request: the instance's, then the profile's
    /// always-requested ones it lacks.
    pub fn scopes(&self, instance: &Instance) -> Vec<String> {
        let mut scopes = instance.scopes.clone();
        for scope in self
            .profile
            .profile
            .authorization
            .always_scopes
            .iter()
            .flatten()
        {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        scopes
    }

    /// The profile's lifetime of a token whose answer states none.
    pub fn stated_lifetime(&self) -> Option<std::time::Duration> {
        self.profile
            .profile
            .token
            .lifetime
            .filter(|secs| *secs > 0)
            .map(std::time::Duration::from_secs)
    }

    /// The values to keep with a new token: `earlier` (kept before), then what the
    /// callback and the answer gave now.
    pub fn kept_after(
        earlier: &BTreeMap<String, String>,
        now: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut kept = earlier.clone();
        kept.extend(now.iter().map(|(k, v)| (k.clone(), v.clone())));
        kept
    }
}

/// Where an instance's API is and how it takes the token: for the server's proxy and the
/// [`super::AuthorizedClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTarget {
    /// The API's base URL: the provider profile's (filled with the connection's values and
    /// what was kept from the token answer, such as Salesforce's `instance_url`), else the
    /// document's first server; `None` when neither says.
    pub base_url: Option<Url>,
    /// The header that carries the token (`Authorization` unless the profile names another).
    pub token_header: String,
    /// What precedes the token in it (`Bearer ` for `Authorization`).
    pub token_prefix: String,
}

impl ApiTarget {
    /// The header value for `token`.
    pub fn header_value(&self, token: &str) -> String {
        format!("{}{token}", self.token_prefix)
    }
}

/// The provider endpoints an instance uses, as the engine builds them: for pages that show
/// them and for the admin page's form targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEndpoints {
    /// Where the user approves.
    pub authorization_url: Url,
    /// Where codes are exchanged.
    pub token_url: Url,
    /// Where tokens are refreshed, when not the token URL.
    pub refresh_url: Option<Url>,
    /// Where tokens are revoked, if anywhere.
    pub revocation_url: Option<Url>,
}

impl Engine {
    /// The endpoints `instance` uses now: its overrides, its profile's templates filled with
    /// its connection (and the values kept from its last authorization), or its flow's.
    ///
    /// # Errors
    /// As [`Engine::instance_profile`], and [`EngineError::Invalid`] when a template needs
    /// a connection field that is not set.
    pub async fn instance_endpoints(&self, instance: &Instance) -> EngineResult<InstanceEndpoints> {
        let kept = self
            .inner
            .store
            .get_token(&instance.id)
            .await?
            .map(|token| token.kept)
            .unwrap_or_default();
        let config = self.instance_setup(instance, &kept).await?.config;
        Ok(InstanceEndpoints {
            refresh_url: config.refresh_url.clone(),
            revocation_url: config.revocation_url.clone(),
            authorization_url: config.authorization_url,
            token_url: config.token_url,
        })
    }

    /// Where the API of `instance` is and how it takes the token (see [`ApiTarget`]).
    ///
    /// # Errors
    /// [`EngineError::NotFound`] for an unknown instance; [`EngineError::Invalid`] when the
    /// profile's base URL template names a value the connection does not have yet (authorize
    /// first) or does not give a URL.
    pub async fn api_target(&self, instance: &str) -> EngineResult<ApiTarget> {
        let record = self.instance(instance).await?;
        let kept = self
            .inner
            .store
            .get_token(instance)
            .await?
            .map(|token| token.kept)
            .unwrap_or_default();
        let integration = self.integration(&record.integration).await?;
        let flows = IntegrationFlows::of(&integration)?;
        let setup = self.instance_setup_with(&record, &flows, &kept)?;
        let api_profile = &setup.profile.profile;
        let api = &api_profile.api;
        let base_url = match &api.base_url {
            Some(template) => Some(
                api_profile
                    .fill("API base URL", template, &setup.values)
                    .map_err(|e| profile_error(&record, e))?,
            ),
            None => flows.api_base_url.clone(),
        };
        let token_header = api
            .token_header
            .clone()
            .unwrap_or_else(|| "Authorization".to_string());
        let token_prefix = match &api.token_prefix {
            Some(prefix) => prefix.clone(),
            None if token_header.eq_ignore_ascii_case("authorization") => "Bearer ".to_string(),
            None => String::new(),
        };
        Ok(ApiTarget {
            base_url,
            token_header,
            token_prefix,
        })
    }

    /// The provider profile that applies to `instance`: its own settings over its
    /// integration document's `x-granary-profile` (the flow's over the scheme's) over the
    /// catalogue profile it names or that its URLs' host recognises.
    ///
    /// # Errors
    /// [`EngineError::NotFound`] for an unknown integration, [`EngineError::Invalid`] when a
    /// layer does not decode or names no catalogue profile.
    pub async fn instance_profile(&self, instance: &Instance) -> EngineResult<ResolvedProfile> {
        let integration = self.integration(&instance.integration).await?;
        let flows = IntegrationFlows::of(&integration)?;
        resolve_profile(instance, &flows)
    }

    /// [`Engine::instance_setup_with`] after reading the instance's integration.
    pub(crate) async fn instance_setup(
        &self,
        instance: &Instance,
        kept: &BTreeMap<String, String>,
    ) -> EngineResult<InstanceSetup> {
        let integration = self.integration(&instance.integration).await?;
        let flows = IntegrationFlows::of(&integration)?;
        self.instance_setup_with(instance, &flows, kept)
    }

    pub(crate) fn client_config_with(
        &self,
        instance: &Instance,
        flows: &IntegrationFlows,
    ) -> EngineResult<ClientConfig> {
        Ok(self
            .instance_setup_with(instance, flows, &BTreeMap::new())?
            .config)
    }

    /// Everything an instance's requests are made of, with `kept` the values kept with its
    /// connection so far (callback values, token-answer fields).
    ///
    /// URLs, in order: the instance's own override, the profile's template, the flow's.
    /// Parameters and headers: the instance's over the profile's of the same name.
    pub(crate) fn instance_setup_with(
        &self,
        instance: &Instance,
        flows: &IntegrationFlows,
        kept: &BTreeMap<String, String>,
    ) -> EngineResult<InstanceSetup> {
        let (_, flow) = flows
            .authorization_code_flow(Some(&instance.scheme))
            .ok_or_else(|| no_flow(&instance.integration, Some(&instance.scheme)))?;
        let resolved = resolve_profile(instance, flows)?;
        let profile = &resolved.profile;
        let entered = with_values_of_flow_urls(profile, flow, &instance.connection);
        let values = profile
            .connection_values(&entered, kept)
            .map_err(|e| profile_error(instance, e))?;
        // Before the callback, templates that name a value only the callback sends (Zoho's
        // accounts-server) cannot be filled: the flow's URLs stand in until then.
        let ready = without_templates_awaiting_the_callback(profile, &values);
        let profile = &ready;
        let template_url = |what: &str, template: &Option<String>| -> EngineResult<Option<Url>> {
            template
                .as_deref()
                .map(|t| profile.fill(what, t, &values))
                .transpose()
                .map_err(|e| profile_error(instance, e))
        };

        // A concrete URL of the document wins over a URL only the catalogue gives: the
        // document is about this API, the catalogue about the provider in general.
        let catalogue_base = resolved.sources.iter().find_map(|source| match source {
            ProfileSource::Catalogue { id, .. } => catalogue().get(id),
            _ => None,
        });
        let endpoint = |what: &str,
                        own: &Option<String>,
                        template: &Option<String>,
                        from_catalogue: Option<&Option<String>>,
                        documented: &Option<Url>|
         -> EngineResult<Url> {
            if let Some(url) = own {
                return parse_url(url, what);
            }
            let concrete = documented.as_ref().filter(|url| is_concrete(url));
            // A value the provider sent to the callback (Zoho's data centre) belongs to this
            // connection: a template naming one wins over the document's URL.
            // So does a field the admin entered on the instance (a Shopify shop): the admin
            // chose this connection's host.
            let names_connection_value = template.as_deref().is_some_and(|t| {
                profile.fields.iter().any(|f| {
                    let named = t.contains(&format!("{{{}}}", f.name));
                    let entered = instance
                        .connection
                        .get(&f.name)
                        .is_some_and(|v| !v.is_empty());
                    named && (f.from_callback || entered)
                })
            });
            let catalogue_only =
                from_catalogue.is_some_and(|base| base == template) && !names_connection_value;
            match (template, concrete) {
                (Some(_), Some(url)) if catalogue_only => Ok(url.clone()),
                (Some(template), _) => profile
                    .fill(what, template, &values)
                    .map_err(|e| profile_error(instance, e)),
                (None, _) => documented
                    .clone()
                    .ok_or_else(|| missing_url(instance, what)),
            }
        };
        let authorization_url = endpoint(
            "authorization URL",
            &instance.authorization_url,
            &profile.authorization.url,
            catalogue_base.map(|base| &base.authorization.url),
            &flow.authorization_url,
        )?;
        let token_url = endpoint(
            "token URL",
            &instance.token_url,
            &profile.token.url,
            catalogue_base.map(|base| &base.token.url),
            &flow.token_url,
        )?;
        let mut config =
            ClientConfig::new(instance.client_id.clone(), authorization_url, token_url);
        config.revocation_url = match template_url("revocation URL", &profile.revocation.url)? {
            Some(url) => Some(url),
            None => flows.revocation_url.clone(),
        };
        config.introspection_url = flows.introspection_url.clone();
        config.auth_method = instance.client_auth;
        if let Some(sealed) = &instance.client_secret {
            config.client_secret =
                Some(self.open_secret(&instance.id, Field::ClientSecret, sealed)?);
        } else if config.auth_method != ClientAuth::None {
            return Err(EngineError::Invalid(format!(
                "instance `{}` authenticates with {} but has no client secret: set the secret, \
                 or switch the method to none for a public client",
                instance.id, config.auth_method
            )));
        }

        let a = &profile.authorization;
        let mut authorization_params = Vec::new();
        for (name, value) in &a.params {
            let value = profile::expand(value, &values).map_err(|e| profile_error(instance, e))?;
            authorization_params.push((name.clone(), value));
        }
        config.extra_authorization_params = overlay(
            authorization_params,
            instance.extra_authorization_params.clone(),
        );
        config.authorization_param_renames = pairs(&a.rename);
        config.dropped_authorization_params = a.drop.clone().unwrap_or_default();
        if let Some(separator) = &a.scope_separator {
            config.scope_separator = separator.clone();
        }
        if a.encode_scopes == Some(false) {
            config.scope_encoding = ScopeEncoding::Raw;
        }
        if let Some(pkce) = a.pkce {
            config.pkce = pkce;
        }
        if let Some(code) = &a.code_param {
            config.code_param = code.clone();
        }
        config.kept_callback_params = a.keep.clone().unwrap_or_default();
        for field in profile.fields.iter().filter(|f| f.from_callback) {
            if !config.kept_callback_params.contains(&field.name) {
                config.kept_callback_params.push(field.name.clone());
            }
        }

        let t = &profile.token;
        if let Some(body) = t.body {
            config.token_body = body;
        }
        // Token request parameters may name the connection's values and `{client_id}`
        // (TikTok's `client_key = "{client_id}"`).
        let mut token_values = values.clone();
        token_values
            .entry("client_id".to_string())
            .or_insert_with(|| instance.client_id.clone());
        let token_pairs = |map: &BTreeMap<String, String>| -> EngineResult<Vec<(String, String)>> {
            map.iter()
                .map(|(name, value)| {
                    profile::expand(value, &token_values)
                        .map(|value| (name.clone(), value))
                        .map_err(|e| profile_error(instance, e))
                })
                .collect()
        };
        config.extra_token_params = overlay(
            token_pairs(&t.params)?,
            self.open_extras(
                &instance.id,
                Field::ExtraTokenParam,
                &instance.extra_token_params,
            )?,
        );
        config.extra_token_headers = overlay(
            pairs(&t.headers),
            self.open_extras(
                &instance.id,
                Field::ExtraTokenHeader,
                &instance.extra_token_headers,
            )?,
        );
        config.exchange_params = token_pairs(&t.exchange_params)?;
        config.token_location = t.location.clone();
        config.kept_token_fields = t.keep.clone().unwrap_or_default();
        config.error_flag = t.error_flag.clone();

        config.revocation_params = token_pairs(&profile.revocation.params)?;
        let r = &profile.refresh;
        config.refresh_url = template_url("refresh URL", &r.url)?;
        config.refresh_params = token_pairs(&r.params)?;
        config.refresh_strategy = match r.strategy.unwrap_or_default() {
            RefreshKind::RefreshToken => RefreshStrategy::RefreshToken,
            RefreshKind::None => RefreshStrategy::None,
            RefreshKind::AccessTokenExchange => {
                let exchange = r.exchange.as_ref().ok_or_else(|| {
                    profile_error(
                        instance,
                        ProfileError::Invalid {
                            source_name: "that applies".to_string(),
                            reason: "refresh.strategy is access_token_exchange but refresh.exchange is not set: say which request trades the token".to_string(),
                        },
                    )
                })?;
                RefreshStrategy::AccessTokenExchange(AccessTokenExchange {
                    url: template_url("exchange URL", &exchange.url)?,
                    method: exchange.method,
                    grant_type: exchange.grant_type.clone(),
                    token_param: exchange.token_param.clone(),
                    send_client_credentials: exchange.client_credentials,
                })
            }
        };
        Ok(InstanceSetup {
            config,
            values,
            profile: resolved,
        })
    }

    /// The client authentication a new instance gets when none is given: the profile's,
    /// else HTTP Basic with a secret and `none` without.
    pub(crate) fn default_client_auth(
        instance: &Instance,
        flows: &IntegrationFlows,
        has_secret: bool,
    ) -> EngineResult<ClientAuth> {
        let profile = resolve_profile(instance, flows)?;
        Ok(match (profile.profile.token.client_auth, has_secret) {
            (Some(auth), true) => auth,
            (_, false) => ClientAuth::None,
            (None, true) => ClientAuth::ClientSecretBasic,
        })
    }
}

impl Engine {
    /// The provider profile an instance of `scheme` (`None`: the first with an
    /// authorization-code flow) of `integration` gets without settings of its own: what
    /// the integration page shows, and the connection fields a new instance's form asks
    /// for.
    ///
    /// # Errors
    /// [`EngineError::NotFound`] for an unknown integration; [`EngineError::Invalid`] when
    /// the scheme has no authorization-code flow or the document's layer is not valid.
    pub async fn integration_profile(
        &self,
        integration: &str,
        scheme: Option<&str>,
    ) -> EngineResult<ResolvedProfile> {
        let record = self.integration(integration).await?;
        let flows = IntegrationFlows::of(&record)?;
        let (found, _) = flows
            .authorization_code_flow(scheme)
            .ok_or_else(|| no_flow(integration, scheme))?;
        resolve_layers(&flows, &found.name, integration, None, "")
    }
}

/// The profile of `instance` of `flows` (see [`Engine::instance_profile`]).
pub(crate) fn resolve_profile(
    instance: &Instance,
    flows: &IntegrationFlows,
) -> EngineResult<ResolvedProfile> {
    resolve_layers(
        flows,
        &instance.scheme,
        &instance.integration,
        instance.profile.as_ref(),
        &instance.id,
    )
}

/// The profile of scheme `scheme` of `flows`, with `own` the instance's layer (of instance
/// `owner`, for messages).
fn resolve_layers(
    flows: &IntegrationFlows,
    scheme: &str,
    integration: &str,
    own: Option<&serde_json::Value>,
    owner: &str,
) -> EngineResult<ResolvedProfile> {
    let (scheme, flow) = flows
        .authorization_code_flow(Some(scheme))
        .ok_or_else(|| no_flow(integration, Some(scheme)))?;
    let invalid =
        |e: ProfileError| EngineError::Invalid(format!("integration `{integration}`: {e}"));
    let layer = |value: Option<&serde_json::Value>, source: String| {
        value
            .map(|v| ProviderProfile::from_json(v, &source))
            .transpose()
            .map_err(invalid)
    };
    let scheme_layer = layer(
        scheme.profile_extension.as_ref(),
        format!("x-granary-profile of scheme `{}`", scheme.name),
    )?;
    let flow_layer = layer(
        flow.profile_extension.as_ref(),
        format!("x-granary-profile of the flow of scheme `{}`", scheme.name),
    )?;
    let document = match (scheme_layer, flow_layer) {
        (Some(s), Some(f)) => Some(s.merged_with(&f)),
        (s, f) => f.or(s),
    };
    let own = layer(own, format!("of instance `{owner}`"))?;
    let mut urls: Vec<&Url> = Vec::new();
    urls.extend(flow.authorization_url.iter());
    urls.extend(flow.token_url.iter());
    catalogue()
        .resolve(document.as_ref(), own.as_ref(), &urls)
        .map_err(invalid)
}

/// The connection fields `entered`, and below them the values that make the profile's
/// authorization and token URL templates give the flow's own URLs (a document naming
/// `https://acme.my.salesforce.com/...` fills `hostname`), so that a recognised profile
/// keeps a document's concrete host instead of its template's default.
fn with_values_of_flow_urls(
    profile: &ProviderProfile,
    flow: &granary_openapi::Flow,
    entered: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let pairs = [
        (&profile.authorization.url, &flow.authorization_url),
        (&profile.token.url, &flow.token_url),
    ];
    for (template, url) in pairs {
        let (Some(template), Some(url)) = (template, url) else {
            continue;
        };
        for (name, value) in profile::match_template(template, url.as_str()).unwrap_or_default() {
            let admin_field = profile
                .fields
                .iter()
                .any(|f| f.name == name && !f.from_callback);
            if admin_field
                && profile
                    .fields
                    .iter()
                    .any(|f| f.name == name && f.check(&value).is_ok())
            {
                values.entry(name).or_insert(value);
            }
        }
    }
    for (name, value) in entered.iter().filter(|(_, v)| !v.is_empty()) {
        values.insert(name.clone(), value.clone());
    }
    values
}

/// Whether a document's URL names a real endpoint rather than a template left in it
/// (`https://%7Bshop%7D.myshopify.com/...`).
fn is_concrete(url: &Url) -> bool {
    !url.as_str().contains("%7B") && !url.as_str().contains('{')
}

fn profile_error(instance: &Instance, error: ProfileError) -> EngineError {
    EngineError::Invalid(format!("instance `{}`: {error}", instance.id))
}

/// `profile` without its token, refresh, exchange and revocation URL templates that name a
/// callback value `values` does not hold yet (authorization URLs need theirs at once).
fn without_templates_awaiting_the_callback(
    profile: &ProviderProfile,
    values: &Values,
) -> ProviderProfile {
    let awaits = |template: &Option<String>| {
        template.as_deref().is_some_and(|t| {
            profile.fields.iter().any(|f| {
                f.from_callback
                    && !values.contains_key(&f.name)
                    && t.contains(&format!("{{{}}}", f.name))
            })
        })
    };
    let mut ready = profile.clone();
    for url in [
        &mut ready.token.url,
        &mut ready.revocation.url,
        &mut ready.refresh.url,
    ] {
        if awaits(url) {
            *url = None;
        }
    }
    if let Some(exchange) = ready.refresh.exchange.as_mut() {
        if awaits(&exchange.url) {
            exchange.url = None;
        }
    }
    ready
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `under` with `over`'s pairs replacing those of the same name, then `over`'s others.
fn overlay(under: Vec<(String, String)>, over: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = under
        .into_iter()
        .filter(|(name, _)| !over.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        .collect();
    merged.extend(over);
    merged
}

pub(crate) fn no_flow(integration: &str, scheme: Option<&str>) -> EngineError {
    match scheme {
        Some(scheme) => EngineError::Invalid(format!(
            "integration `{integration}` has no authorization-code flow in scheme `{scheme}`: \
             choose one of its schemes that has one"
        )),
        None => EngineError::Invalid(format!(
            "integration `{integration}` has no authorization-code flow: import a document that \
             declares one"
        )),
    }
}

pub(crate) fn parse_url(url: &str, what: &str) -> EngineResult<Url> {
    Url::parse(url).map_err(|e| {
        EngineError::Invalid(format!(
            "the {what} `{url}` is not an absolute URL ({e}): fix it"
        ))
    })
}

fn missing_url(instance: &Instance, what: &str) -> EngineError {
    EngineError::Invalid(format!(
        "the flow of instance `{}` has no {what}: set one on the instance",
        instance.id
    ))
}
