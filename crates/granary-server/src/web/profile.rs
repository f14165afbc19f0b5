//! Provider profiles on the admin page: the profile an integration's scheme or an instance
//! gets (its headline and changes), the instance form's connection inputs and profile
//! settings, and the values kept with a token. Every value goes through askama's escaping.

use std::collections::BTreeMap;

use granary_store::{ClientAuth, Instance, InstanceStatus};
use serde_json::Value;

use super::FormData;
use crate::app::AppState;
use crate::profiles::{ProfileView, parse_profile_text};

/// The name prefix of the form's connection inputs (`connection.shop`).
pub const CONNECTION_PREFIX: &str = "connection.";

/// The profile shown on a page, or why there is none.
#[derive(Debug, Clone, Default)]
pub struct ProfileShown {
    /// The applied profile; `None` when it cannot be resolved.
    pub view: Option<ProfileView>,
    /// The engine's words when it cannot be resolved; empty otherwise.
    pub error: String,
}

impl ProfileShown {
    fn of<E: std::fmt::Display>(result: Result<granary_flow::profile::ResolvedProfile, E>) -> Self {
        match result {
            Ok(resolved) => Self {
                view: Some(ProfileView::of(&resolved)),
                error: String::new(),
            },
            Err(error) => Self {
                view: None,
                error: error.to_string(),
            },
        }
    }

    /// The headline, or words saying the standard applies.
    pub fn headline(&self) -> String {
        self.view
            .as_ref()
            .and_then(|v| v.headline.clone())
            .unwrap_or_else(|| {
                "No provider profile: granary follows RFC 6749 as the document describes it."
                    .to_string()
            })
    }

    /// What it changes (empty without a profile).
    pub fn changes(&self) -> Vec<String> {
        self.view
            .as_ref()
            .map(|v| v.changes.clone())
            .unwrap_or_default()
    }
}

/// The profile an instance of `scheme` of `integration` gets without settings of its own.
pub async fn scheme_profile(state: &AppState, integration: &str, scheme: &str) -> ProfileShown {
    ProfileShown::of(
        state
            .engine
            .integration_profile(integration, Some(scheme))
            .await,
    )
}

/// The profile that applies to a stored instance.
pub async fn instance_profile(state: &AppState, instance: &Instance) -> ProfileShown {
    ProfileShown::of(state.engine.instance_profile(instance).await)
}

/// One connection input of the instance form.
#[derive(Debug, Clone)]
pub struct ConnectionInput {
    /// The field's name (the input is `connection.<name>`).
    pub name: String,
    /// What the admin reads.
    pub label: String,
    /// The default, shown as the placeholder; empty when the field is required.
    pub placeholder: String,
    /// What was typed or is stored.
    pub value: String,
}

/// What the instance form shows of provider profiles.
#[derive(Debug, Clone, Default)]
pub struct FormProfile {
    /// The profile the instance would get.
    pub shown: ProfileShown,
    /// One input per connection field the admin enters, then any other typed name.
    pub inputs: Vec<ConnectionInput>,
}

/// The form's profile: resolved for what the form holds (its scheme and the typed profile
/// settings, when they read; else without them), with an input per entered field.
pub async fn form_profile(
    state: &AppState,
    id: &str,
    integration: &str,
    scheme: &str,
    connection: &BTreeMap<String, String>,
    profile_text: &str,
) -> FormProfile {
    let mut shown = ProfileShown::default();
    if let Some(layer) = parse_profile_text(profile_text).ok().flatten() {
        let probe = probe(state, id, integration, scheme, Some(layer));
        shown = ProfileShown::of(state.engine.instance_profile(&probe).await);
    }
    if shown.view.is_none() {
        shown = scheme_profile(state, integration, scheme).await;
    }
    let mut inputs: Vec<ConnectionInput> = shown
        .view
        .iter()
        .flat_map(ProfileView::entered_fields)
        .map(|field| ConnectionInput {
            name: field.name.clone(),
            label: field.label.clone(),
            placeholder: field.default.clone().unwrap_or_default(),
            value: connection.get(&field.name).cloned().unwrap_or_default(),
        })
        .collect();
    // What was typed for a name the profile no longer has stays visible (and is refused by
    // the engine with its words, unless emptied).
    for (name, value) in connection {
        if !inputs.iter().any(|i| &i.name == name) {
            inputs.push(ConnectionInput {
                name: name.clone(),
                label: name.clone(),
                placeholder: String::new(),
                value: value.clone(),
            });
        }
    }
    FormProfile { shown, inputs }
}

/// An instance with only what resolving a profile reads: the form's integration, scheme
/// and profile settings.
fn probe(
    state: &AppState,
    id: &str,
    integration: &str,
    scheme: &str,
    profile: Option<Value>,
) -> Instance {
    let now = state.engine.now();
    Instance {
        id: id.to_string(),
        integration: integration.to_string(),
        scheme: scheme.to_string(),
        client_id: String::new(),
        client_secret: None,
        scopes: Vec::new(),
        redirect_uri: String::new(),
        authorization_url: None,
        token_url: None,
        extra_authorization_params: Vec::new(),
        extra_token_params: Vec::new(),
        extra_token_headers: Vec::new(),
        client_auth: ClientAuth::None,
        token_lifetime: None,
        connection: BTreeMap::new(),
        profile,
        status: InstanceStatus::New,
        created: now,
        updated: now,
        version: 0,
    }
}

/// The connection values of a posted form (`connection.<name>` inputs), empty ones left
/// out (a field's default applies).
pub fn posted_connection(form: &FormData) -> BTreeMap<String, String> {
    form.0
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix(CONNECTION_PREFIX)?;
            let value = value.trim();
            (!name.is_empty() && !value.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// A stored instance's connection fields for its page: label and value (the default when
/// none is set), fields the callback gives left out.
pub fn connection_rows(
    shown: &ProfileShown,
    connection: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = shown
        .view
        .iter()
        .flat_map(ProfileView::entered_fields)
        .map(|field| {
            let value = match (connection.get(&field.name), &field.default) {
                (Some(value), _) => value.clone(),
                (None, Some(default)) => format!("{default} (default)"),
                (None, None) => "not set".to_string(),
            };
            (field.label.clone(), value)
        })
        .collect();
    for (name, value) in connection {
        let known = shown
            .view
            .iter()
            .flat_map(ProfileView::entered_fields)
            .any(|f| &f.name == name);
        if !known {
            rows.push((name.clone(), value.clone()));
        }
    }
    rows
}

/// The values kept with a token, by name, for a small table.
pub fn kept_rows(kept: Option<&BTreeMap<String, String>>) -> Vec<(String, String)> {
    kept.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
