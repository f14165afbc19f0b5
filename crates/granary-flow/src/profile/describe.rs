//! What an applied profile changes, in sentences for the integration and instance pages.

use super::model::{ProviderProfile, RefreshKind};
use super::resolve::{ProfileSource, ResolvedProfile};
use crate::protocol::{ExchangeMethod, TokenBody};

impl ResolvedProfile {
    /// One line on where the profile came from and why it is needed
    /// ("Recognised Google (accounts.google.com): ..."); `None` when the standard applies.
    pub fn headline(&self) -> Option<String> {
        let mut parts = Vec::new();
        for source in &self.sources {
            parts.push(match source {
                ProfileSource::Catalogue {
                    title,
                    recognised_by: Some(host),
                    ..
                } => format!("Recognised {title} (by the host {host})"),
                ProfileSource::Catalogue { title, .. } => format!("Provider profile {title}"),
                ProfileSource::Document => {
                    "settings from the OpenAPI document (x-granary-profile)".to_string()
                }
                ProfileSource::Instance => "the instance's own settings".to_string(),
            });
        }
        if parts.is_empty() {
            return None;
        }
        let mut line = parts.join(", then ");
        if let Some(why) = &self.profile.why {
            line.push_str(": ");
            line.push_str(why);
        }
        Some(line)
    }
}

impl ProviderProfile {
    /// Each departure from the standard, one sentence each, in the order requests happen.
    pub fn changes(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let a = &self.authorization;
        if let Some(url) = &a.url {
            lines.push(format!("authorization URL {url}"));
        }
        if !a.params.is_empty() {
            lines.push(format!(
                "adds {} to the authorization request",
                pairs(&a.params)
            ));
        }
        for (from, to) in &a.rename {
            lines.push(format!("sends `{from}` as `{to}`"));
        }
        if let Some(drop) = a.drop.as_ref().filter(|d| !d.is_empty()) {
            lines.push(format!("leaves out {}", drop.join(", ")));
        }
        if let Some(scopes) = a.always_scopes.as_ref().filter(|s| !s.is_empty()) {
            lines.push(format!("always asks for the scopes {}", scopes.join(" ")));
        }
        if let Some(separator) = &a.scope_separator {
            lines.push(format!("joins scopes with `{separator}`"));
        }
        if a.encode_scopes == Some(false) {
            lines.push("sends scopes unencoded".to_string());
        }
        match a.pkce {
            Some(false) => lines.push("no PKCE (the provider rejects it)".to_string()),
            Some(true) => lines.push("PKCE (the provider requires it)".to_string()),
            None => {}
        }
        if let Some(code) = &a.code_param {
            lines.push(format!("reads the code from `{code}`"));
        }
        if let Some(keep) = a.keep.as_ref().filter(|k| !k.is_empty()) {
            lines.push(format!("keeps {} from the callback", keep.join(", ")));
        }
        let t = &self.token;
        if let Some(url) = &t.url {
            lines.push(format!("token URL {url}"));
        }
        if let Some(auth) = t.client_auth {
            lines.push(format!("client authentication {auth}"));
        }
        if t.body == Some(TokenBody::Json) {
            lines.push("JSON token requests".to_string());
        }
        if !t.params.is_empty() {
            lines.push(format!("adds {} to token requests", names(&t.params)));
        }
        if !t.exchange_params.is_empty() {
            lines.push(format!(
                "adds {} to the code exchange",
                names(&t.exchange_params)
            ));
        }
        if !t.headers.is_empty() {
            lines.push(format!(
                "adds the headers {} to token requests",
                names(&t.headers)
            ));
        }
        if let Some(location) = &t.location {
            lines.push(format!("reads the token from `{location}` of the answer"));
        }
        if let Some(keep) = t.keep.as_ref().filter(|k| !k.is_empty()) {
            lines.push(format!("keeps {} from the token answer", keep.join(", ")));
        }
        if let Some(flag) = &t.error_flag {
            lines.push(format!("an HTTP 200 with `{flag}: false` is an error"));
        }
        if let Some(lifetime) = t.lifetime {
            lines.push(format!(
                "a token without a stated expiry lives {lifetime} s"
            ));
        }
        let r = &self.refresh;
        match r.strategy {
            Some(RefreshKind::None) => {
                lines.push("tokens never expire: never refreshed".to_string());
            }
            Some(RefreshKind::AccessTokenExchange) => {
                let how = r.exchange.as_ref().map(|e| {
                    let method = match e.method {
                        ExchangeMethod::Get => "GET",
                        ExchangeMethod::Post => "POST",
                    };
                    format!(" ({method} with `{}`)", e.token_param)
                });
                lines.push(format!(
                    "renews by exchanging the access token{}",
                    how.unwrap_or_default()
                ));
            }
            Some(RefreshKind::RefreshToken) | None => {}
        }
        if let Some(url) = &r.url {
            lines.push(format!("refreshes at {url}"));
        }
        if !r.params.is_empty() {
            lines.push(format!("adds {} to refresh requests", pairs(&r.params)));
        }
        if r.rotating == Some(true) {
            lines.push("rotates refresh tokens (each is used once)".to_string());
        }
        if let Some(url) = &self.revocation.url {
            lines.push(format!("revokes at {url}"));
        }
        if let Some(base) = &self.api.base_url {
            lines.push(format!("API base URL {base}"));
        }
        if let Some(header) = &self.api.token_header {
            lines.push(format!("sends the token to the API in `{header}`"));
        }
        lines
    }
}

/// `name=value, name=value`: for parameters that end up in a URL anyway.
fn pairs(map: &std::collections::BTreeMap<String, String>) -> String {
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(", ")
}

/// Names only: token parameters and headers may hold keys.
fn names(map: &std::collections::BTreeMap<String, String>) -> String {
    let parts: Vec<&str> = map.keys().map(String::as_str).collect();
    parts.join(", ")
}
