//! Layering profiles: the catalogue's, then the document's, then the instance's own.

use std::collections::BTreeMap;

use super::model::{
    ApiQuirks, AuthorizationQuirks, ConnectionField, ProviderProfile, RefreshQuirks,
    RevocationQuirks, TokenQuirks,
};

impl ProviderProfile {
    /// This profile with `over` laid on top: every member `over` sets wins, parameter maps
    /// are merged name by name (an empty value in `over` removes the name), connection
    /// fields are merged by name.
    pub fn merged_with(&self, over: &ProviderProfile) -> ProviderProfile {
        ProviderProfile {
            id: over.id.clone().or_else(|| self.id.clone()),
            title: over.title.clone().or_else(|| self.title.clone()),
            base: over.base.clone().or_else(|| self.base.clone()),
            hosts: if over.hosts.is_empty() {
                self.hosts.clone()
            } else {
                over.hosts.clone()
            },
            why: over.why.clone().or_else(|| self.why.clone()),
            fields: merge_fields(&self.fields, &over.fields),
            authorization: merge_authorization(&self.authorization, &over.authorization),
            token: merge_token(&self.token, &over.token),
            refresh: merge_refresh(&self.refresh, &over.refresh),
            revocation: RevocationQuirks {
                url: pick(&over.revocation.url, &self.revocation.url),
                params: merge_map(&self.revocation.params, &over.revocation.params),
            },
            api: ApiQuirks {
                base_url: pick(&over.api.base_url, &self.api.base_url),
                token_header: pick(&over.api.token_header, &self.api.token_header),
                token_prefix: pick(&over.api.token_prefix, &self.api.token_prefix),
            },
        }
    }
}

fn pick<T: Clone>(over: &Option<T>, under: &Option<T>) -> Option<T> {
    over.clone().or_else(|| under.clone())
}

/// `under` with `over`'s names set; a name set to the empty string in `over` is removed.
fn merge_map(
    under: &BTreeMap<String, String>,
    over: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut merged = under.clone();
    for (name, value) in over {
        if value.is_empty() {
            merged.remove(name);
        } else {
            merged.insert(name.clone(), value.clone());
        }
    }
    merged
}

fn merge_fields(under: &[ConnectionField], over: &[ConnectionField]) -> Vec<ConnectionField> {
    let mut merged: Vec<ConnectionField> = under.to_vec();
    for field in over {
        match merged.iter_mut().find(|f| f.name == field.name) {
            Some(existing) => *existing = field.clone(),
            None => merged.push(field.clone()),
        }
    }
    merged
}

fn merge_authorization(
    under: &AuthorizationQuirks,
    over: &AuthorizationQuirks,
) -> AuthorizationQuirks {
    AuthorizationQuirks {
        url: pick(&over.url, &under.url),
        params: merge_map(&under.params, &over.params),
        rename: merge_map(&under.rename, &over.rename),
        drop: pick(&over.drop, &under.drop),
        scope_separator: pick(&over.scope_separator, &under.scope_separator),
        encode_scopes: pick(&over.encode_scopes, &under.encode_scopes),
        always_scopes: pick(&over.always_scopes, &under.always_scopes),
        pkce: pick(&over.pkce, &under.pkce),
        code_param: pick(&over.code_param, &under.code_param),
        keep: pick(&over.keep, &under.keep),
    }
}

fn merge_token(under: &TokenQuirks, over: &TokenQuirks) -> TokenQuirks {
    TokenQuirks {
        url: pick(&over.url, &under.url),
        client_auth: pick(&over.client_auth, &under.client_auth),
        body: pick(&over.body, &under.body),
        params: merge_map(&under.params, &over.params),
        exchange_params: merge_map(&under.exchange_params, &over.exchange_params),
        headers: merge_map(&under.headers, &over.headers),
        location: pick(&over.location, &under.location),
        keep: pick(&over.keep, &under.keep),
        error_flag: pick(&over.error_flag, &under.error_flag),
        lifetime: pick(&over.lifetime, &under.lifetime),
    }
}

fn merge_refresh(under: &RefreshQuirks, over: &RefreshQuirks) -> RefreshQuirks {
    RefreshQuirks {
        strategy: pick(&over.strategy, &under.strategy),
        url: pick(&over.url, &under.url),
        params: merge_map(&under.params, &over.params),
        exchange: pick(&over.exchange, &under.exchange),
        rotating: pick(&over.rotating, &under.rotating),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_param(name: &str, value: &str) -> ProviderProfile {
        let mut profile = ProviderProfile::default();
        profile
            .authorization
            .params
            .insert(name.to_string(), value.to_string());
        profile
    }

    #[test]
    fn the_upper_layer_wins_and_maps_merge_by_name() {
        let mut under = with_param("access_type", "offline");
        under.authorization.pkce = Some(false);
        under.token.lifetime = Some(3600);
        let mut over = with_param("prompt", "consent");
        over.token.lifetime = Some(60);
        let merged = under.merged_with(&over);
        assert_eq!(merged.authorization.params.len(), 2);
        assert_eq!(merged.authorization.pkce, Some(false));
        assert_eq!(merged.token.lifetime, Some(60));
    }

    #[test]
    fn an_empty_value_removes_a_parameter_of_the_layer_below() {
        let under = with_param("prompt", "consent");
        let over = with_param("prompt", "");
        assert!(under.merged_with(&over).authorization.params.is_empty());
    }

    #[test]
    fn fields_merge_by_name() {
        let field = |name: &str, default: Option<&str>| ConnectionField {
            name: name.to_string(),
            default: default.map(str::to_string),
            ..ConnectionField::default()
        };
        let under = ProviderProfile {
            fields: vec![field("tenant", Some("common")), field("region", None)],
            ..ProviderProfile::default()
        };
        let over = ProviderProfile {
            fields: vec![field("tenant", Some("organizations"))],
            ..ProviderProfile::default()
        };
        let merged = under.merged_with(&over);
        assert_eq!(merged.fields.len(), 2);
        assert_eq!(merged.fields[0].default.as_deref(), Some("organizations"));
    }
}
