//! URL templates with `{field}` parts: matching a request against them, and filling them in.

use crate::behaviour::{Field, FieldKind};

/// A template taken apart: `HOST/PATH` without the scheme, and the query parameters it fixes
/// (`token.php?request=token` fixes `request=token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub host_path: String,
    pub query: Vec<(String, String)>,
}

/// Splits `https://HOST/PATH?QUERY` into `HOST/PATH` and the query pairs.
pub fn parse(template: &str) -> Parsed {
    let rest = template
        .strip_prefix("https://")
        .or_else(|| template.strip_prefix("http://"))
        .unwrap_or(template);
    let (host_path, query) = match rest.split_once('?') {
        Some((hp, q)) => (hp, q),
        None => (rest, ""),
    };
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect();
    Parsed {
        host_path: host_path.trim_end_matches('/').to_owned(),
        query,
    }
}

/// Replaces each `{name}` by its value.
pub fn fill(template: &str, values: &[(String, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The host part of `HOST/PATH`.
pub fn host(host_path: &str) -> &str {
    host_path.split('/').next().unwrap_or("")
}

/// Matches `actual` (`HOST/PATH`, raw, as it came in the request path) against a template's
/// `HOST/PATH`; on success the field values, in template order. A path segment like `v21.0`
/// in the template matches any version segment (`v19.0`, `v2`).
pub fn matches(template: &str, actual: &str, fields: &[Field]) -> Option<Vec<(String, String)>> {
    let template = normalise_versions(template.trim_end_matches('/'));
    let actual = normalise_versions(actual.trim_end_matches('/'));
    let tokens = tokenise(&template, fields);
    let mut values = Vec::new();
    if match_tokens(&tokens, actual.as_bytes(), &mut values) {
        Some(values)
    } else {
        None
    }
}

#[derive(Debug)]
enum Token {
    Literal(String),
    Field(String, FieldKind),
}

fn tokenise(template: &str, fields: &[Field]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            tokens.push(Token::Literal(rest[..open].to_owned()));
        }
        let name = &rest[open + 1..open + close];
        let kind = fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.kind)
            .unwrap_or(FieldKind::Segment);
        tokens.push(Token::Field(name.to_owned(), kind));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Literal(rest.to_owned()));
    }
    tokens
}

fn match_tokens(tokens: &[Token], actual: &[u8], values: &mut Vec<(String, String)>) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return actual.is_empty();
    };
    match first {
        Token::Literal(lit) => {
            let lit = lit.as_bytes();
            actual.len() >= lit.len()
                && actual[..lit.len()].eq_ignore_ascii_case(lit)
                && match_tokens(rest, &actual[lit.len()..], values)
        }
        Token::Field(name, kind) => {
            // A hostname is at most 253 characters, a path segment here at most 255: the cap
            // keeps a hostile long path from making the backtracking quadratic.
            let allowed = actual
                .iter()
                .take_while(|b| allowed(*kind, **b))
                .take(255)
                .count();
            // Longest first, so that `{hostname}` takes all of `acme.my.salesforce.com`.
            for end in (1..=allowed).rev() {
                let candidate = &actual[..end];
                let Ok(text) = std::str::from_utf8(candidate) else {
                    continue;
                };
                if !valid(*kind, text) {
                    continue;
                }
                if let Some((_, earlier)) = values.iter().find(|(n, _)| n == name) {
                    if earlier != text {
                        continue;
                    }
                }
                values.push((name.clone(), text.to_owned()));
                if match_tokens(rest, &actual[end..], values) {
                    return true;
                }
                values.pop();
            }
            false
        }
    }
}

fn allowed(kind: FieldKind, b: u8) -> bool {
    match kind {
        FieldKind::Label => b.is_ascii_alphanumeric() || b == b'-',
        FieldKind::Labels => b.is_ascii_alphanumeric() || b == b'-' || b == b'.',
        FieldKind::Segment => b.is_ascii_alphanumeric() || b"-._~".contains(&b),
    }
}

fn valid(kind: FieldKind, text: &str) -> bool {
    let label =
        |l: &str| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-');
    match kind {
        FieldKind::Label => label(text),
        FieldKind::Labels => text.split('.').all(label),
        FieldKind::Segment => !text.is_empty() && text != "." && text != "..",
    }
}

fn normalise_versions(host_path: &str) -> String {
    host_path
        .split('/')
        .enumerate()
        .map(|(i, seg)| if i > 0 && is_version(seg) { "v*" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_version(seg: &str) -> bool {
    let Some(rest) = seg.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.split('.');
    let major_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    major_ok && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &[Field] = &[Field {
        name: "shop",
        kind: FieldKind::Label,
        example: "acme",
    }];

    #[test]
    fn a_label_field_matches_a_label_only() {
        let t = "{shop}.myshopify.com/admin/oauth/authorize";
        assert_eq!(
            matches(t, "acme.myshopify.com/admin/oauth/authorize", SHOP),
            Some(vec![("shop".into(), "acme".into())])
        );
        assert_eq!(
            matches(t, "%7Bshop%7D.myshopify.com/admin/oauth/authorize", SHOP),
            None
        );
        assert_eq!(
            matches(t, "{shop}.myshopify.com/admin/oauth/authorize", SHOP),
            None
        );
        assert_eq!(
            matches(t, "a.b.myshopify.com/admin/oauth/authorize", SHOP),
            None
        );
        assert_eq!(
            matches(t, ".myshopify.com/admin/oauth/authorize", SHOP),
            None
        );
    }

    #[test]
    fn a_long_hostile_path_is_refused_quickly() {
        let long = format!("{}.auth0.com/authorize", "a".repeat(1 << 20));
        let fields = [Field {
            name: "subdomain",
            kind: FieldKind::Labels,
            example: "acme.us",
        }];
        assert_eq!(
            matches("{subdomain}.auth0.com/authorize", &long, &fields),
            None
        );
    }

    #[test]
    fn versions_match_any_version() {
        let t = "graph.facebook.com/v21.0/oauth/access_token";
        assert!(matches(t, "graph.facebook.com/v19.0/oauth/access_token", &[]).is_some());
        assert!(matches(t, "graph.facebook.com/oauth/access_token", &[]).is_none());
    }

    #[test]
    fn the_query_of_a_template_is_kept() {
        let p = parse("https://{subdomain}.bamboohr.com/token.php?request=token");
        assert_eq!(p.host_path, "{subdomain}.bamboohr.com/token.php");
        assert_eq!(p.query, vec![("request".into(), "token".into())]);
    }
}
