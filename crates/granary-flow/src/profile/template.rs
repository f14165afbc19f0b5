//! URL templates (`https://{shop}.myshopify.com/admin/oauth/authorize`) and the connection
//! values they are filled with, each checked against its field's kind.

use std::collections::BTreeMap;

use url::Url;

use super::error::ProfileError;
use super::model::{ConnectionField, FieldKind, ProviderProfile};

/// The values a template may name: connection fields (entered, defaulted or kept from the
/// callback) and values kept from token answers.
pub type Values = BTreeMap<String, String>;

/// Fills `{name}` in `template` with `values`; a name without a value is an error.
pub fn expand(template: &str, values: &Values) -> Result<String, ProfileError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return Ok(out);
        };
        let name = &after[..close];
        let value = values.get(name).ok_or_else(|| ProfileError::Template {
            template: template.to_string(),
            name: name.to_string(),
        })?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The values that make `template` expand to `url`, when it does: each `{name}` matches a
/// non-empty run of characters up to the next literal part (and never a `/`, `?` or `#`),
/// and a value holding `{` or `}` (a template left in a document) matches nothing.
pub fn match_template(template: &str, url: &str) -> Option<Values> {
    let mut values = Values::new();
    let mut rest_t = template;
    let mut rest_u = url;
    loop {
        let Some(open) = rest_t.find('{') else {
            return rest_t.eq_ignore_ascii_case(rest_u).then_some(values);
        };
        let literal = &rest_t[..open];
        if !rest_u.get(..literal.len())?.eq_ignore_ascii_case(literal) {
            return None;
        }
        rest_u = &rest_u[literal.len()..];
        let after = &rest_t[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        rest_t = &after[close + 1..];
        let next_literal = &rest_t[..rest_t.find('{').unwrap_or(rest_t.len())];
        let end = if next_literal.is_empty() {
            rest_u.find(['/', '?', '#']).unwrap_or(rest_u.len())
        } else {
            rest_u
                .to_ascii_lowercase()
                .find(&next_literal.to_ascii_lowercase())?
        };
        let value = &rest_u[..end];
        if value.is_empty() || value.contains(['/', '?', '#', '{', '}', '%']) {
            return None;
        }
        values.insert(name.to_string(), value.to_string());
        rest_u = &rest_u[end..];
    }
}

/// Fills a URL template and parses the result.
pub fn expand_url(what: &str, template: &str, values: &Values) -> Result<Url, ProfileError> {
    let expanded = expand(template, values)?;
    Url::parse(&expanded).map_err(|e| ProfileError::InvalidUrl {
        what: what.to_string(),
        url: expanded.clone(),
        reason: e.to_string(),
    })
}

impl ProviderProfile {
    /// The values of one connection: each field's value (from `entered` for the admin's
    /// fields, from `kept` for the callback's, else its default), checked against its kind,
    /// then every other kept value (token-answer fields such as `instance_url`). A field
    /// with no value is left out: it is an error only where a template needs it.
    ///
    /// # Errors
    /// A value not of its field's kind, or an entered name that is not a field of the
    /// profile.
    pub fn connection_values(
        &self,
        entered: &BTreeMap<String, String>,
        kept: &BTreeMap<String, String>,
    ) -> Result<Values, ProfileError> {
        self.check_entered(entered)?;
        let mut values = Values::new();
        for (name, value) in kept {
            values.insert(name.clone(), value.clone());
        }
        for field in &self.fields {
            let given = if field.from_callback {
                kept.get(&field.name)
            } else {
                entered.get(&field.name).filter(|v| !v.is_empty())
            };
            let value = match (given, &field.default) {
                (Some(value), _) => Some(value.clone()),
                // A default may name fields listed before it (`https://accounts.zoho.{extension}`).
                (None, Some(default)) => Some(expand(default, &values)?),
                (None, None) => None,
            };
            // A callback value is only there once the provider sent it; a field without a
            // value is an error where a template needs it ([`ProviderProfile::fill`]).
            if let Some(value) = value {
                field.check(&value)?;
                values.insert(field.name.clone(), value);
            }
        }
        Ok(values)
    }

    /// Fills the URL template `template` (the profile's `what`) with `values`; a name
    /// without a value that is one of the profile's fields is
    /// [`ProfileError::MissingField`], naming the field to set.
    ///
    /// # Errors
    /// A missing value, or a result that is not a URL.
    pub fn fill(&self, what: &str, template: &str, values: &Values) -> Result<Url, ProfileError> {
        expand_url(what, template, values).map_err(|error| match error {
            ProfileError::Template { name, .. } if self.fields.iter().any(|f| f.name == name) => {
                let field = self.fields.iter().find(|f| f.name == name);
                ProfileError::MissingField {
                    label: field
                        .and_then(|f| f.label.clone())
                        .unwrap_or_else(|| name.clone()),
                    field: name,
                }
            }
            other => other,
        })
    }

    /// Checks what an admin entered: every name is a field the admin fills, every value of
    /// its kind. Missing required fields are not checked here (see
    /// [`ProviderProfile::missing_fields`]).
    ///
    /// # Errors
    /// An unknown name or a value not of its field's kind.
    pub fn check_entered(&self, entered: &BTreeMap<String, String>) -> Result<(), ProfileError> {
        for (name, value) in entered {
            let Some(field) = self
                .fields
                .iter()
                .find(|f| &f.name == name && !f.from_callback)
            else {
                let known: Vec<&str> = self
                    .fields
                    .iter()
                    .filter(|f| !f.from_callback)
                    .map(|f| f.name.as_str())
                    .collect();
                return Err(ProfileError::UnknownField {
                    field: name.clone(),
                    known: if known.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("it has {}", known.join(", "))
                    },
                });
            };
            if !value.is_empty() {
                field.check(value)?;
            }
        }
        Ok(())
    }

    /// The fields the admin must fill that `entered` leaves empty and that have no default.
    pub fn missing_fields(&self, entered: &BTreeMap<String, String>) -> Vec<&ConnectionField> {
        self.fields
            .iter()
            .filter(|f| !f.from_callback && f.default.is_none())
            .filter(|f| entered.get(&f.name).is_none_or(String::is_empty))
            .collect()
    }
}

impl ConnectionField {
    /// Checks `value` against the field's kind.
    ///
    /// # Errors
    /// [`ProfileError::InvalidField`] naming what the value must look like.
    pub fn check(&self, value: &str) -> Result<(), ProfileError> {
        let ok = match self.kind {
            FieldKind::Label => is_label(value),
            FieldKind::Hostname => value.split('.').all(is_label) && value.contains('.'),
            FieldKind::DomainSuffix => value.split('.').all(is_label),
            FieldKind::Identifier => {
                !value.is_empty()
                    && value.len() <= 128
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            }
            FieldKind::Origin => self.is_allowed_origin(value),
        };
        if ok {
            return Ok(());
        }
        let expected = match self.kind {
            FieldKind::Label => {
                "one host name label (letters, digits and `-`, such as `acme`), not a URL or a host"
                    .to_string()
            }
            FieldKind::Hostname => {
                "a host name such as `acme.my.salesforce.com`, not a URL".to_string()
            }
            FieldKind::DomainSuffix => "a domain suffix such as `com` or `com.au`".to_string(),
            FieldKind::Identifier => {
                "an identifier of letters, digits, `-`, `_` and `.` (at most 128)".to_string()
            }
            FieldKind::Origin => format!(
                "an origin `https://host` whose host is one of {}",
                self.hosts.join(", ")
            ),
        };
        Err(ProfileError::InvalidField {
            field: self.name.clone(),
            value: value.to_string(),
            expected,
        })
    }

    fn is_allowed_origin(&self, value: &str) -> bool {
        let Ok(url) = Url::parse(value) else {
            return false;
        };
        let loopback = url.scheme() == "http" && crate::protocol::is_loopback(&url);
        // A loopback origin may have a path: a local stand-in serving many hosts under one
        // origin (the providers conformance suite's emulator at `http://127.0.0.1:PORT/HOST`).
        let bare =
            (url.path() == "/" || loopback) && url.query().is_none() && url.fragment().is_none();
        let plain = url.username().is_empty() && url.password().is_none();
        let secure = url.scheme() == "https" || loopback;
        bare && plain
            && secure
            && url
                .host_str()
                .is_some_and(|host| host_matches(host, &self.hosts))
    }
}

/// Whether `host` is one of `hosts` or under one of them (`eu.zoho.com` under `zoho.com`).
pub fn host_matches(host: &str, hosts: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    hosts.iter().any(|allowed| {
        let allowed = allowed.to_ascii_lowercase();
        host == allowed || host.ends_with(&format!(".{allowed}"))
    })
}

fn is_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_concrete_url_gives_the_values_of_its_template() {
        let template = "https://{hostname}/services/oauth2/token";
        let got = match_template(
            template,
            "https://acme.my.salesforce.com/services/oauth2/token",
        )
        .expect("matches");
        assert_eq!(got["hostname"], "acme.my.salesforce.com");
        let shop = match_template(
            "https://{shop}.myshopify.com/admin/oauth/authorize",
            "https://acme.myshopify.com/admin/oauth/authorize",
        )
        .expect("matches");
        assert_eq!(shop["shop"], "acme");
        for unmatched in [
            "https://%7Bshop%7D.myshopify.com/admin/oauth/authorize",
            "https://acme.myshopify.com/admin/oauth/other",
            "https://acme.example.com/admin/oauth/authorize",
            "https://a/b.myshopify.com/admin/oauth/authorize",
        ] {
            assert_eq!(
                match_template(
                    "https://{shop}.myshopify.com/admin/oauth/authorize",
                    unmatched
                ),
                None,
                "{unmatched}"
            );
        }
        let tenant = match_template(
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
        )
        .expect("matches");
        assert_eq!(tenant["tenant"], "contoso.onmicrosoft.com");
    }

    #[test]
    fn expands_every_name_and_refuses_a_missing_one() {
        let v = values(&[("shop", "acme"), ("version", "2024-01")]);
        assert_eq!(
            expand("https://{shop}.myshopify.com/admin/api/{version}", &v).unwrap(),
            "https://acme.myshopify.com/admin/api/2024-01"
        );
        let error = expand("https://{tenant}.example.com", &v).unwrap_err();
        assert!(error.to_string().contains("`tenant`"), "{error}");
    }

    fn field(kind: FieldKind) -> ConnectionField {
        ConnectionField {
            name: "shop".to_string(),
            kind,
            hosts: vec!["zoho.com".to_string()],
            ..ConnectionField::default()
        }
    }

    #[test]
    fn a_label_is_one_label_not_a_url_or_a_host() {
        let label = field(FieldKind::Label);
        assert!(label.check("acme-store").is_ok());
        for bad in [
            "https://acme.myshopify.com",
            "acme.myshopify.com",
            "-acme",
            "",
            "a/b",
            "a@b",
        ] {
            let error = label.check(bad).unwrap_err();
            assert!(error.to_string().contains("not a URL"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_origin_must_name_an_allowed_host() {
        let origin = field(FieldKind::Origin);
        assert!(origin.check("https://accounts.zoho.com").is_ok());
        assert!(origin.check("https://accounts.zoho.eu").is_err());
        assert!(origin.check("https://evil.example/zoho.com").is_err());
        assert!(origin.check("https://evilzoho.com").is_err());
        assert!(origin.check("http://accounts.zoho.com").is_err());
        assert!(origin.check("https://user@accounts.zoho.com").is_err());
    }

    #[test]
    fn connection_values_take_entered_defaults_and_kept() {
        let profile = ProviderProfile {
            fields: vec![
                ConnectionField {
                    name: "tenant".to_string(),
                    kind: FieldKind::Identifier,
                    default: Some("common".to_string()),
                    ..ConnectionField::default()
                },
                ConnectionField {
                    name: "shop".to_string(),
                    kind: FieldKind::Label,
                    ..ConnectionField::default()
                },
            ],
            ..ProviderProfile::default()
        };
        let none = profile
            .connection_values(&BTreeMap::new(), &BTreeMap::new())
            .unwrap();
        let error = profile
            .fill(
                "token URL",
                "https://{shop}.myshopify.com/admin/oauth/access_token",
                &none,
            )
            .unwrap_err();
        assert!(matches!(error, ProfileError::MissingField { ref field, .. } if field == "shop"));
        assert!(
            error.to_string().contains("set it on the instance"),
            "{error}"
        );
        let got = profile
            .connection_values(
                &values(&[("shop", "acme")]),
                &values(&[("instance_url", "https://x")]),
            )
            .unwrap();
        assert_eq!(got["tenant"], "common");
        assert_eq!(got["shop"], "acme");
        assert_eq!(got["instance_url"], "https://x");
        let chained = ProviderProfile {
            fields: vec![
                ConnectionField {
                    name: "extension".to_string(),
                    kind: FieldKind::DomainSuffix,
                    default: Some("com".to_string()),
                    ..ConnectionField::default()
                },
                ConnectionField {
                    name: "accounts-server".to_string(),
                    kind: FieldKind::Origin,
                    from_callback: true,
                    default: Some("https://accounts.zoho.{extension}".to_string()),
                    hosts: vec!["zoho.com".to_string(), "zoho.eu".to_string()],
                    ..ConnectionField::default()
                },
            ],
            ..ProviderProfile::default()
        };
        let eu = chained
            .connection_values(&values(&[("extension", "eu")]), &BTreeMap::new())
            .unwrap();
        assert_eq!(eu["accounts-server"], "https://accounts.zoho.eu");
        let sent = chained
            .connection_values(
                &BTreeMap::new(),
                &values(&[("accounts-server", "https://accounts.zoho.eu")]),
            )
            .unwrap();
        assert_eq!(sent["accounts-server"], "https://accounts.zoho.eu");
        let forged = chained
            .connection_values(
                &BTreeMap::new(),
                &values(&[("accounts-server", "https://evil.example")]),
            )
            .unwrap_err();
        assert!(
            matches!(forged, ProfileError::InvalidField { .. }),
            "{forged}"
        );
        let unknown = profile
            .connection_values(
                &values(&[("shop", "acme"), ("region", "eu")]),
                &BTreeMap::new(),
            )
            .unwrap_err();
        assert!(unknown.to_string().contains("tenant, shop"), "{unknown}");
    }
}
