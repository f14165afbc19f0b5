//! The CLI's side of provider profiles: `--connection` and `--profile` of `granary instance
//! create/update`, what `granary instance show` prints of the applied profile and the kept
//! values, and `granary providers` (the catalogue).

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use crate::profiles::{catalogue_entries, parse_connection, parse_profile_text};
use crate::{Error, Result};

/// The connection fields of `--connection NAME=VALUE` flags.
pub(crate) fn connection_arg(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    parse_connection(pairs).map_err(Error::Config)
}

/// The instance's own profile layer of `--profile`: a JSON object, `@FILE` holding one, a
/// catalogue id, or `none`; an empty value is none of its own (on update: removes it).
pub(crate) fn profile_arg(text: &str) -> Result<Option<Value>> {
    let text = match text.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("cannot read the --profile file {file}"), e))?,
        None => text.to_string(),
    };
    parse_profile_text(&text).map_err(|e| Error::Config(format!("--profile: {e}")))
}

/// The lines `granary instance show` prints of an instance's JSON: its connection fields,
/// the profile that applies and what it changes, and the values kept with its token.
pub(crate) fn profile_lines(value: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let pairs = |object: Option<&Value>| -> String {
        object
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".to_string())
    };
    lines.push(format!("connection: {}", pairs(value.get("connection"))));
    if let Some(own) = value.get("profile").filter(|p| !p.is_null()) {
        lines.push(format!("own profile settings: {own}"));
    }
    match value.get("provider_profile").filter(|p| !p.is_null()) {
        Some(profile) => {
            let headline = profile
                .get("headline")
                .and_then(Value::as_str)
                .unwrap_or("none: the standard applies");
            lines.push(format!("provider profile: {headline}"));
            for change in profile
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                lines.push(format!("  - {}", change.as_str().unwrap_or_default()));
            }
        }
        None => lines.push(format!(
            "provider profile: cannot be applied: {}",
            value
                .get("provider_profile_error")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
        )),
    }
    let kept = value.get("token").and_then(|t| t.get("kept"));
    lines.push(format!("kept: {}", pairs(kept)));
    lines
}

/// `granary providers`: the built-in catalogue, one profile a line (`id`, title, what it
/// changes), or as JSON; with `--server`, the server's (`GET /api/v1/providers`).
pub async fn providers(remote: &crate::cli::RemoteArgs, json: bool) -> Result<()> {
    let list = match &remote.server {
        Some(_) => {
            let target = crate::cli::remote(remote)?;
            target
                .call(Method::GET, "/providers", None)
                .await?
                .get("providers")
                .cloned()
                .unwrap_or(Value::Array(Vec::new()))
        }
        None => serde_json::to_value(catalogue_entries())
            .map_err(|e| Error::Config(format!("the catalogue cannot be listed: {e}")))?,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return Ok(());
    }
    for entry in list.as_array().into_iter().flatten() {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or_default();
        let changes: Vec<&str> = entry
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!("{}\t{}\t{}", text("id"), text("title"), changes.join("; "));
    }
    Ok(())
}
