//! Provider profiles on the wire: the one JSON form of an applied profile
//! ([`ProfileView`]), shared by the REST API, the CLI and the admin page; the catalogue
//! listing (`GET /api/v1/providers`); instance and integration JSON with the profile that
//! applies; and the one reading of a profile typed as text (CLI `--profile`, the form).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::response::{IntoResponse, Response};
use granary_flow::engine::{Engine, EngineResult, InstanceReport, IntegrationFlows};
use granary_flow::profile::{
    ConnectionField, FieldKind, NO_PROFILE, ProfileSource, ProviderProfile, ResolvedProfile,
    catalogue,
};
use granary_openapi::FlowKind;
use granary_store::{Instance, Integration};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{instance_json, integration_json};

/// An applied provider profile, as the API, the CLI and the admin page show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProfileView {
    /// Which profile applied and why (`Recognised Shopify (by the host ...): ...`); `None`
    /// when the standard applies unchanged.
    pub headline: Option<String>,
    /// What it changes, one sentence each.
    pub changes: Vec<String>,
    /// Where its layers came from, bottom first.
    pub sources: Vec<ProfileSource>,
    /// The connection fields it needs.
    pub fields: Vec<FieldView>,
}

/// A connection field a profile needs (a shop, a tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldView {
    /// Its name, the key in an instance's `connection`.
    pub name: String,
    /// What it is, for a person (the name when the profile gives no label).
    pub label: String,
    /// What a value must look like.
    pub kind: FieldKind,
    /// The value used when none is given; `None`: required.
    pub default: Option<String>,
    /// The provider sends it to the callback: not entered, kept with the token.
    pub from_callback: bool,
}

impl FieldView {
    fn of(field: &ConnectionField) -> Self {
        Self {
            name: field.name.clone(),
            label: field.label.clone().unwrap_or_else(|| field.name.clone()),
            kind: field.kind,
            default: field.default.clone(),
            from_callback: field.from_callback,
        }
    }
}

impl ProfileView {
    /// The view of a resolved profile.
    pub fn of(resolved: &ResolvedProfile) -> Self {
        Self {
            headline: resolved.headline(),
            changes: resolved.profile.changes(),
            sources: resolved.sources.clone(),
            fields: resolved.profile.fields.iter().map(FieldView::of).collect(),
        }
    }

    /// The fields an admin enters (not those the callback gives).
    pub fn entered_fields(&self) -> impl Iterator<Item = &FieldView> {
        self.fields.iter().filter(|f| !f.from_callback)
    }

    /// As JSON (the `provider_profile` of instance and integration JSON).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Puts `provider_profile` (or, when the profile cannot be resolved, `null` and
/// `provider_profile_error` with the engine's words) into the object `into`.
fn put_profile(into: &mut Value, resolved: &Result<ResolvedProfile, String>) {
    let Some(object) = into.as_object_mut() else {
        return;
    };
    match resolved {
        Ok(resolved) => {
            object.insert(
                "provider_profile".into(),
                ProfileView::of(resolved).to_json(),
            );
        }
        Err(error) => {
            object.insert("provider_profile".into(), Value::Null);
            object.insert(
                "provider_profile_error".into(),
                Value::String(error.clone()),
            );
        }
    }
}

fn words(result: EngineResult<ResolvedProfile>) -> Result<ResolvedProfile, String> {
    result.map_err(|error| error.to_string())
}

/// Resolves the profiles of instances, reading each integration's profile once for the
/// instances that have no layer of their own.
pub struct ProfileLookup<'a> {
    engine: &'a Engine,
    by_scheme: HashMap<(String, String), Result<ResolvedProfile, String>>,
}

impl<'a> ProfileLookup<'a> {
    /// A lookup on `engine`.
    pub fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            by_scheme: HashMap::new(),
        }
    }

    /// The profile that applies to `instance`, or the engine's words on why none can.
    pub async fn of(&mut self, instance: &Instance) -> Result<ResolvedProfile, String> {
        if instance.profile.is_some() {
            return words(self.engine.instance_profile(instance).await);
        }
        let key = (instance.integration.clone(), instance.scheme.clone());
        if let Some(found) = self.by_scheme.get(&key) {
            return found.clone();
        }
        let resolved = words(self.engine.instance_profile(instance).await);
        self.by_scheme.insert(key, resolved.clone());
        resolved
    }

    /// The JSON of an instance with its `provider_profile`.
    pub async fn instance_json(
        &mut self,
        instance: &Instance,
        report: Option<&InstanceReport>,
    ) -> Value {
        let mut value = instance_json(instance, report);
        let resolved = self.of(instance).await;
        put_profile(&mut value, &resolved);
        value
    }
}

/// The JSON of one instance with its `provider_profile`.
pub async fn instance_json_with_profile(
    engine: &Engine,
    instance: &Instance,
    report: Option<&InstanceReport>,
) -> Value {
    ProfileLookup::new(engine)
        .instance_json(instance, report)
        .await
}

/// The JSON of an integration; each scheme with an authorization-code flow gains the
/// `provider_profile` its instances get without settings of their own.
pub async fn integration_json_with_profiles(engine: &Engine, integration: &Integration) -> Value {
    let mut value = integration_json(integration);
    let with_code_flow: Vec<String> = IntegrationFlows::of(integration)
        .map(|flows| {
            flows
                .schemes
                .iter()
                .filter(|s| s.flow(FlowKind::AuthorizationCode).is_some())
                .map(|s| s.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let Some(schemes) = value.get_mut("schemes").and_then(Value::as_array_mut) else {
        return value;
    };
    for scheme in schemes {
        let Some(name) = scheme
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        if with_code_flow.contains(&name) {
            let resolved = words(
                engine
                    .integration_profile(&integration.name, Some(&name))
                    .await,
            );
            put_profile(scheme, &resolved);
        }
    }
    value
}

/// One catalogue profile, as `GET /api/v1/providers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogueEntry {
    /// Its id (what `use` and `--profile` name).
    pub id: String,
    /// The provider's name.
    pub title: String,
    /// The hosts that recognise it.
    pub hosts: Vec<String>,
    /// Why it is needed.
    pub why: Option<String>,
    /// What it changes, one sentence each.
    pub changes: Vec<String>,
    /// The connection fields it needs.
    pub fields: Vec<FieldView>,
}

impl CatalogueEntry {
    fn of(profile: &ProviderProfile) -> Self {
        Self {
            id: profile.id.clone().unwrap_or_default(),
            title: profile.title.clone().unwrap_or_default(),
            hosts: profile.hosts.clone(),
            why: profile.why.clone(),
            changes: profile.changes(),
            fields: profile.fields.iter().map(FieldView::of).collect(),
        }
    }
}

/// The built-in catalogue, by id.
pub fn catalogue_entries() -> Vec<CatalogueEntry> {
    let mut entries: Vec<CatalogueEntry> =
        catalogue().all().iter().map(CatalogueEntry::of).collect();
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
}

/// `GET /api/v1/providers`: the built-in catalogue of provider profiles.
pub async fn providers_list() -> Response {
    Json(json!({ "providers": catalogue_entries() })).into_response()
}

/// Reads an instance's own profile layer typed as text (the CLI's `--profile`, the
/// admin form): empty is none; a JSON object is a profile layer; a JSON string, or a bare
/// word, names a catalogue profile (`none`: no catalogue profile at all). The engine
/// checks the layer itself when the instance is saved.
///
/// # Errors
/// Text that starts like JSON but does not read, or JSON that is neither an object nor a
/// string, with what to write instead.
pub fn parse_profile_text(text: &str) -> Result<Option<Value>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if !text.starts_with(['{', '"', '[']) {
        if text.chars().any(char::is_whitespace) {
            return Err(format!(
                "the provider profile `{text}` is neither a JSON object nor a catalogue id: \
                 write a JSON object such as {{\"authorization\": {{\"pkce\": false}}}}, a \
                 catalogue id such as shopify, or {NO_PROFILE}"
            ));
        }
        return Ok(Some(Value::String(text.to_string())));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "the provider profile settings are not valid JSON ({e}): write a JSON object such \
             as {{\"authorization\": {{\"pkce\": false}}}}, or a catalogue id"
        )
    })?;
    match value {
        Value::Object(_) | Value::String(_) => Ok(Some(value)),
        other => Err(format!(
            "the provider profile settings are {}, not an object: write a JSON object such as \
             {{\"authorization\": {{\"pkce\": false}}}}, or a catalogue id",
            kind_of(&other)
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a list",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::String(_) => "a string",
        Value::Object(_) => "an object",
    }
}

/// An instance's own profile layer as text for a form or a terminal: a catalogue id as
/// itself, an object as pretty JSON, none as empty.
pub fn profile_text(profile: Option<&Value>) -> String {
    match profile {
        None => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// `NAME=VALUE` pairs as a connection map (the CLI's `--connection`).
///
/// # Errors
/// A pair without `=` or with an empty name, naming the fix.
pub fn parse_connection(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                map.insert(name.trim().to_string(), value.trim().to_string());
            }
            _ => {
                return Err(format!(
                    "--connection `{pair}` is not NAME=VALUE: write it like --connection shop=acme"
                ));
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_text_reads_objects_ids_and_none_and_refuses_the_rest() {
        assert_eq!(parse_profile_text("  "), Ok(None));
        assert_eq!(
            parse_profile_text("shopify"),
            Ok(Some(Value::String("shopify".into())))
        );
        assert_eq!(
            parse_profile_text("none"),
            Ok(Some(Value::String("none".into())))
        );
        assert_eq!(
            parse_profile_text(r#"{"authorization": {"pkce": false}}"#),
            Ok(Some(json!({"authorization": {"pkce": false}})))
        );
        assert!(
            parse_profile_text("{oops")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(parse_profile_text("[1]").unwrap_err().contains("a list"));
        assert!(
            parse_profile_text("two words")
                .unwrap_err()
                .contains("catalogue id")
        );
        assert_eq!(
            profile_text(Some(&Value::String("none".into()))),
            "none".to_string()
        );
    }

    #[test]
    fn connection_pairs_need_a_name_and_an_equals_sign() {
        assert_eq!(
            parse_connection(&["shop=acme".into(), " tenant = t1 ".into()]),
            Ok(BTreeMap::from([
                ("shop".to_string(), "acme".to_string()),
                ("tenant".to_string(), "t1".to_string())
            ]))
        );
        assert!(
            parse_connection(&["shop".into()])
                .unwrap_err()
                .contains("NAME=VALUE")
        );
        assert!(parse_connection(&["=x".into()]).is_err());
    }

    #[test]
    fn the_catalogue_lists_every_profile_with_what_it_changes() {
        let entries = catalogue_entries();
        let shopify = entries.iter().find(|e| e.id == "shopify").unwrap();
        assert_eq!(shopify.title, "Shopify");
        assert_eq!(shopify.hosts, vec!["myshopify.com".to_string()]);
        assert_eq!(shopify.fields[0].name, "shop");
        assert!(!shopify.changes.is_empty());
        assert_eq!(entries.len(), catalogue().all().len());
    }
}
