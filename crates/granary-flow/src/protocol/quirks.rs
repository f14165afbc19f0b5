//! Provider departures from the standard that shape requests and answers: renamed, dropped and raw authorization parameters, callback values kept, dotted paths into token responses.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::redact::is_sensitive_key;
use super::{ClientConfig, ScopeEncoding};
use crate::error::{Error, Result};

/// Standard authorization parameters a provider may know by another name or refuse.
/// `state` and the PKCE parameters are left alone: the callback is checked against the
/// state, and PKCE is switched off with `pkce`, not by dropping its parameters.
const SHAPEABLE_AUTHORIZATION_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "scope"];

/// Callback parameters that cannot carry the code nor be kept: the protocol reads them itself.
const PROTOCOL_CALLBACK_PARAMS: &[&str] =
    &["state", "iss", "error", "error_description", "error_uri"];

/// One parameter of the authorization URL, ready to be written.
pub(crate) struct QueryParam {
    pub name: String,
    pub value: String,
    /// Whether the value goes in as is, not percent-encoded.
    pub raw: bool,
}

/// The standard parameters (`(name, value)`, in order) with the configured drops and renames
/// applied, the scope marked raw when so configured, and the extra parameters after them.
/// Fails on a drop or rename of a parameter that cannot be shaped, on a raw scope that would
/// break the URL, and on two parameters of the same name.
pub(crate) fn authorization_params(
    config: &ClientConfig,
    standard: Vec<(&'static str, String)>,
    scopes: &[String],
) -> Result<Vec<QueryParam>> {
    let shapeable = |name: &str, what: &str| {
        if SHAPEABLE_AUTHORIZATION_PARAMS.contains(&name) {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "the authorization parameter `{name}` cannot be {what}: only {} can (switch PKCE \
                 off with the pkce setting; remove an extra parameter instead of dropping it)",
                SHAPEABLE_AUTHORIZATION_PARAMS.join(", ")
            )))
        }
    };
    for name in &config.dropped_authorization_params {
        shapeable(name, "dropped")?;
    }
    let mut renames: HashMap<&str, &str> = HashMap::new();
    for (standard_name, provider_name) in &config.authorization_param_renames {
        shapeable(standard_name, "renamed")?;
        if provider_name.trim().is_empty() {
            return Err(Error::Config(format!(
                "the authorization parameter `{standard_name}` is renamed to an empty name: give the provider's name"
            )));
        }
        if config.dropped_authorization_params.contains(standard_name) {
            return Err(Error::Config(format!(
                "the authorization parameter `{standard_name}` is both renamed and dropped: keep one"
            )));
        }
        if renames
            .insert(standard_name.as_str(), provider_name.as_str())
            .is_some()
        {
            return Err(Error::Config(format!(
                "the authorization parameter `{standard_name}` is renamed twice: keep one rename"
            )));
        }
    }
    let raw_scope = config.scope_encoding == ScopeEncoding::Raw;
    if raw_scope {
        check_raw_scopes(scopes, &config.scope_separator)?;
    }
    let mut params = Vec::new();
    for (name, value) in standard {
        if config
            .dropped_authorization_params
            .iter()
            .any(|d| d == name)
        {
            continue;
        }
        params.push(QueryParam {
            name: renames.get(name).copied().unwrap_or(name).to_string(),
            value,
            raw: raw_scope && name == "scope",
        });
    }
    for (name, value) in &config.extra_authorization_params {
        params.push(QueryParam {
            name: name.clone(),
            value: value.clone(),
            raw: false,
        });
    }
    let mut seen = HashSet::new();
    for param in &params {
        if !seen.insert(param.name.as_str()) {
            return Err(Error::Config(format!(
                "the authorization parameter `{}` would be sent twice (a rename and another \
                 parameter share the name): remove one",
                param.name
            )));
        }
    }
    Ok(params)
}

/// Scopes sent as is must not break the query: no `&`, `#`, `%`, whitespace or control
/// character in a scope name, nor in the separator other than whitespace.
fn check_raw_scopes(scopes: &[String], separator: &str) -> Result<()> {
    let breaks = |c: char| matches!(c, '&' | '#' | '%') || c.is_control();
    if let Some(bad) = separator.chars().find(|c| breaks(*c)) {
        return Err(Error::Config(format!(
            "the scope separator {separator:?} holds {bad:?}, which would break the authorization \
             URL when scopes are sent unencoded: choose another separator or encode scopes"
        )));
    }
    for scope in scopes {
        if let Some(bad) = scope.chars().find(|c| breaks(*c) || c.is_whitespace()) {
            return Err(Error::Config(format!(
                "the scope {scope:?} holds {bad:?}, which would break the authorization URL when \
                 scopes are sent unencoded: fix the scope name or encode scopes"
            )));
        }
    }
    Ok(())
}

/// Writes the parameters after the query already in `url`, each percent-encoded like a form
/// field except the raw ones.
pub(crate) fn append_query(url: &mut url::Url, params: &[QueryParam]) {
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let mut parts: Vec<String> = url
        .query()
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect();
    for param in params {
        let value: String = if param.raw {
            param.value.clone()
        } else {
            encode(&param.value)
        };
        parts.push(format!("{}={value}", encode(&param.name) as String));
    }
    url.set_query(Some(&parts.join("&")));
}

/// Checks the callback settings: a code parameter and kept parameters that the protocol
/// does not read itself, and no secret kept (kept values are shown to administrators).
pub(crate) fn check_callback_settings(config: &ClientConfig) -> Result<()> {
    let code = config.code_param.as_str();
    if code.trim().is_empty() || PROTOCOL_CALLBACK_PARAMS.contains(&code) {
        return Err(Error::Config(format!(
            "the code parameter {code:?} cannot carry the code: set the name of the callback \
             parameter that does (`code` unless the provider says otherwise)"
        )));
    }
    for kept in &config.kept_callback_params {
        if kept == code || PROTOCOL_CALLBACK_PARAMS.contains(&kept.as_str()) {
            return Err(Error::Config(format!(
                "the callback parameter `{kept}` cannot be kept: granary reads it itself; remove it from the kept parameters"
            )));
        }
        if is_sensitive_key(kept) {
            return Err(Error::Config(format!(
                "the callback parameter `{kept}` looks like a secret, and kept values are shown \
                 on the instance page: remove it from the kept parameters"
            )));
        }
    }
    Ok(())
}

/// Checks the token settings before a request is sent (a code is single use: a setting that
/// cannot work must fail before it is spent): well-formed dotted paths, and no kept field
/// that names a secret.
pub(crate) fn check_token_settings(config: &ClientConfig) -> Result<()> {
    let paths = config
        .token_location
        .iter()
        .map(|p| ("token location", p))
        .chain(config.error_flag.iter().map(|p| ("error flag", p)))
        .chain(
            config
                .kept_token_fields
                .iter()
                .map(|p| ("kept token field", p)),
        );
    for (what, path) in paths {
        if path.split('.').any(|segment| segment.trim().is_empty()) {
            return Err(Error::Config(format!(
                "the {what} {path:?} is not a dotted path of field names such as `authed_user` or `team.id`"
            )));
        }
    }
    for path in &config.kept_token_fields {
        if path.split('.').any(is_sensitive_key) {
            return Err(Error::Config(format!(
                "the kept token field `{path}` looks like a secret, and kept values are shown on \
                 the instance page: remove it from the kept fields"
            )));
        }
    }
    Ok(())
}

/// The value at a dotted path (`team.id`) of a JSON object.
pub(crate) fn at_path<'a>(fields: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut value = fields.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// The kept fields of a response: a string as is, a number or boolean as its JSON text.
/// A path that is absent, null, or holds an object or an array is left out (an object may
/// hold tokens).
pub(crate) fn kept_fields(
    fields: &Map<String, Value>,
    paths: &[String],
) -> BTreeMap<String, String> {
    let mut kept = BTreeMap::new();
    for path in paths {
        let text = match at_path(fields, path) {
            Some(Value::String(s)) => s.clone(),
            Some(value @ (Value::Number(_) | Value::Bool(_))) => value.to_string(),
            Some(Value::Object(_) | Value::Array(_)) => {
                tracing::warn!(
                    path = path.as_str(),
                    "the kept token field holds an object or a list, not a value: not kept"
                );
                continue;
            }
            Some(Value::Null) | None => continue,
        };
        kept.insert(path.clone(), text);
    }
    kept
}

/// Whether the configured error flag says the answer failed: `false` at its path (a
/// boolean, or the text `false`). An absent flag says nothing.
pub(crate) fn flagged_as_error(fields: &Map<String, Value>, flag: Option<&str>) -> bool {
    flag.and_then(|path| at_path(fields, path))
        .is_some_and(|value| match value {
            Value::Bool(ok) => !ok,
            Value::String(text) => text.eq_ignore_ascii_case("false"),
            _ => false,
        })
}
