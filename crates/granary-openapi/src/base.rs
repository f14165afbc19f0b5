//! The base URL that relative OAuth URLs are resolved against.
//!
//! OpenAPI 3.x: the first server URL, with `{variables}` replaced by their defaults; a
//! relative server URL is itself resolved against the caller's base URL (the place the
//! document came from, as the specification says). Swagger 2.0: `scheme://host/basePath`,
//! with `https` preferred among `schemes`. With no such URL in the document the caller's
//! base URL is used as it is. Resolution follows RFC 3986 (`Url::join`).

use url::Url;

use crate::node::Node;

/// A base URL and where it came from, or why there is none.
#[derive(Debug, Clone)]
pub(crate) enum Base {
    /// An absolute URL, and a phrase saying where it came from.
    Found { url: Url, source: String },
    /// Why no base URL could be found.
    Missing(String),
}

/// The base URL of an OpenAPI 3.x document.
pub(crate) fn openapi3(top: &Node<'_>, caller: Option<&Url>) -> Base {
    let first = match top.get("servers") {
        Some(Node::Seq(servers)) => servers.first(),
        _ => None,
    };
    let Some(server) = first else {
        return from_caller(caller, "the document has no servers");
    };
    let Some(raw) = server.get("url").and_then(Node::as_str) else {
        return from_caller(caller, "the first server has no `url` string");
    };
    let (expanded, substituted) = match substitute(raw, server.get("variables")) {
        Ok(done) => done,
        Err(name) => {
            return from_caller(
                caller,
                &format!(
                    "the first server URL `{raw}` has variable `{{{name}}}` without a default"
                ),
            );
        }
    };
    let what = if substituted {
        format!("the first server URL `{raw}` (variables replaced by their defaults)")
    } else {
        format!("the first server URL `{raw}`")
    };
    match Url::parse(&expanded) {
        Ok(url) if is_http(&url) => Base::Found { url, source: what },
        Ok(_) => from_caller(caller, &format!("{what} is not an http(s) URL")),
        Err(url::ParseError::RelativeUrlWithoutBase) => match caller {
            Some(base) => match base.join(&expanded) {
                Ok(url) => Base::Found {
                    url,
                    source: format!("{what} resolved against the base URL `{base}`"),
                },
                Err(e) => Base::Missing(format!("{what} cannot be resolved against `{base}`: {e}")),
            },
            None => Base::Missing(format!("{what} is relative too")),
        },
        Err(e) => from_caller(caller, &format!("{what} is not a valid URL ({e})")),
    }
}

/// The base URL of a Swagger 2.0 document.
pub(crate) fn swagger2(top: &Node<'_>, caller: Option<&Url>) -> Base {
    let base_path = top.get("basePath").and_then(Node::as_str).unwrap_or("/");
    let Some(host) = top.get("host").and_then(Node::as_str) else {
        return match caller {
            Some(base) => match base.join(base_path) {
                Ok(url) => Base::Found {
                    url,
                    source: format!(
                        "basePath `{base_path}` on the base URL `{base}` (the document has no host)"
                    ),
                },
                Err(e) => Base::Missing(format!(
                    "basePath `{base_path}` cannot be resolved against `{base}`: {e}"
                )),
            },
            None => Base::Missing("the document has no host".to_owned()),
        };
    };
    let schemes: Vec<&str> = match top.get("schemes") {
        Some(Node::Seq(items)) => items.iter().filter_map(Node::as_str).collect(),
        _ => Vec::new(),
    };
    let scheme = if schemes.contains(&"https") || schemes.is_empty() {
        "https"
    } else if schemes.contains(&"http") {
        "http"
    } else {
        return from_caller(
            caller,
            &format!("the document's schemes {schemes:?} include neither https nor http"),
        );
    };
    let path = if base_path.starts_with('/') {
        base_path.to_owned()
    } else {
        format!("/{base_path}")
    };
    let text = format!("{scheme}://{host}{path}");
    match Url::parse(&text) {
        Ok(url) => Base::Found {
            url,
            source: format!("`{text}` (scheme, host and basePath)"),
        },
        Err(e) => from_caller(
            caller,
            &format!("`{text}` (scheme, host and basePath) is not a valid URL ({e})"),
        ),
    }
}

fn from_caller(caller: Option<&Url>, why_not_document: &str) -> Base {
    match caller {
        Some(url) => Base::Found {
            url: url.clone(),
            source: format!("the base URL `{url}` ({why_not_document})"),
        },
        None => Base::Missing(why_not_document.to_owned()),
    }
}

pub(crate) fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "https" | "http")
}

/// Replaces each `{name}` by the default of server variable `name`. Returns the URL and
/// whether anything was replaced, or the name of a variable without a default.
fn substitute(raw: &str, variables: Option<&Node<'_>>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let mut substituted = false;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            // An unmatched brace: keep the text and let URL parsing judge it.
            out.push_str(&rest[open..]);
            return Ok((out, substituted));
        };
        let name = &after[..close];
        let default = variables
            .and_then(|v| v.get(name))
            .and_then(|v| v.get("default"))
            .and_then(Node::scalar_text);
        match default {
            Some(value) => out.push_str(&value),
            None => return Err(name.to_owned()),
        }
        substituted = true;
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok((out, substituted))
}
