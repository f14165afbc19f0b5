//! granary-openapi: finds the OAuth 2.0 flows of an API in its OpenAPI document.
//!
//! Reads OpenAPI 3.0, 3.1 (and 3.2) and Swagger 2.0 documents, in JSON or YAML (detected from
//! the content), and returns every security scheme of type `oauth2` with its flows, their
//! URLs and their scopes. No I/O, no async, and no panic on any input.
//!
//! ```
//! let doc = granary_openapi::parse(br#"{"openapi": "3.0.0", "info": {"title": "Box"},
//!   "paths": {}, "components": {"securitySchemes": {"OAuth2Security": {"type": "oauth2",
//!   "flows": {"authorizationCode": {"authorizationUrl": "https://account.box.com/api/oauth2/authorize",
//!   "tokenUrl": "https://api.box.com/oauth2/token", "scopes": {"root_readonly": "Read all files"}}}}}}}"#)?;
//! let flows = doc.authorization_code_flows()?;
//! assert_eq!(flows[0].token_url.as_str(), "https://api.box.com/oauth2/token");
//! let check = flows[0].flow.check_scopes("root_readonly root_readonli");
//! assert_eq!(check.unknown[0].suggestion.as_deref(), Some("root_readonly"));
//! # Ok::<(), granary_openapi::Error>(())
//! ```
//!
//! Speed: the document is read once as a stream and only the members the importer needs
//! are kept (see `read.rs`), so a large document costs about what checking its syntax costs.
//! The kept strings borrow from the input and are copied once, into the result; the 3.x
//! flows are built as openapiv3 values straight from the kept tree; pointers and the base
//! URL are only worked out when a message or a relative URL needs them. On a small document
//! the result itself (its strings, its scope maps, its parsed URLs) costs a few times the
//! syntax check, which the bench reports as the `floor`.
#![warn(missing_docs)]

mod base;
mod context;
mod error;
mod extension;
mod limits;
mod model;
mod node;
mod pointer;
mod read;
mod scopes;
mod v2;
mod v3;

use url::Url;

pub use error::{Error, Result, SchemeSummary};
pub use extension::PROFILE_EXTENSION;
pub use limits::Limits;
pub use model::{
    AuthorizationCodeFlow, Document, Flow, FlowKind, Format, OAuth2Scheme, OtherScheme, SpecFamily,
    SpecVersion, Warning,
};
pub use scopes::{ScopeCheck, UnknownScope, check_scopes};

use context::Context;
use node::{Members, Node};

/// How to read a document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// The URL the document came from. Relative server URLs are resolved against it, and
    /// it is the base of relative OAuth URLs when the document has no server URL (3.x) or
    /// no host (2.0). Without it such URLs are an [`Error::RelativeUrl`].
    pub base_url: Option<Url>,
    /// What the document may cost: checked before any JSON or YAML is built, so a document
    /// over them costs one linear pass over its bytes. See [`Limits`].
    pub limits: Limits,
}

impl ParseOptions {
    /// Options with the URL the document came from.
    pub fn with_base_url(base_url: Url) -> Self {
        Self {
            base_url: Some(base_url),
            limits: Limits::default(),
        }
    }

    /// These options with other limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// Reads an OpenAPI 3.x or Swagger 2.0 document (JSON or YAML) with default options,
/// which include the default [`Limits`] (64 MiB, 128 levels of nesting).
///
/// ```
/// let document = granary_openapi::parse(
///     br#"
/// swagger: "2.0"
/// info: {title: Box, version: "1"}
/// host: api.box.com
/// paths: {}
/// securityDefinitions:
///   OAuth2:
///     type: oauth2
///     flow: accessCode
///     authorizationUrl: https://account.box.com/api/oauth2/authorize
///     tokenUrl: https://api.box.com/oauth2/token
///     scopes: {root_readonly: Read all files}
/// "#,
/// )?;
/// assert_eq!(document.schemes[0].name, "OAuth2");
/// let flows = document.authorization_code_flows()?;
/// assert_eq!(flows[0].token_url.as_str(), "https://api.box.com/oauth2/token");
/// # Ok::<(), granary_openapi::Error>(())
/// ```
///
/// # Errors
/// See [`Error`]: syntax errors carry a line and column, structural ones a JSON pointer.
pub fn parse(input: &[u8]) -> Result<Document> {
    parse_with(input, &ParseOptions::default())
}

/// Reads an OpenAPI 3.x or Swagger 2.0 document (JSON or YAML).
///
/// # Errors
/// See [`Error`]: syntax errors carry a line and column, structural ones a JSON pointer.
pub fn parse_with(input: &[u8], options: &ParseOptions) -> Result<Document> {
    limits::check_size(input, &options.limits)?;
    let (format, body) = read::detect(input)?;
    limits::check_depth(body, format, &options.limits)?;
    let mut top = read::read(body, format, read::TOP)?;
    if !matches!(top, Node::Map(_)) {
        let found = match top {
            Node::Null => "empty (null)".to_owned(),
            other => other.kind().to_owned(),
        };
        return Err(Error::NotAnObject { found });
    }
    let mut early = Vec::new();
    let spec_version = version(&top, &mut early)?;
    let family = spec_version.family;
    let list = take_list(&mut top, family);
    let cx = Context::new(body, format, &top, family, options.base_url.as_ref());
    for warning in early {
        cx.warn(warning.pointer, warning.message);
    }
    let (schemes, other_schemes) = match family {
        SpecFamily::Swagger2 => v2::schemes(&cx, list)?,
        _ => v3::schemes(&cx, list)?,
    };
    let warnings = cx.into_warnings();
    let api_base_url = match family {
        SpecFamily::Swagger2 => base::swagger2(&top, options.base_url.as_ref()),
        _ => base::openapi3(&top, options.base_url.as_ref()),
    };
    let api_base_url = match api_base_url {
        base::Base::Found { url, .. } => Some(url),
        base::Base::Missing(_) => None,
    };
    let title = match top.as_map_mut().and_then(|m| m.get_mut("info")) {
        Some(Node::Map(info)) => match info.get_mut("title") {
            Some(Node::Str(title)) => Some(std::mem::take(title).into_owned()),
            _ => None,
        },
        _ => None,
    };
    Ok(Document {
        title,
        spec_version,
        format,
        schemes,
        other_schemes,
        warnings,
        api_base_url,
    })
}

/// Moves the list of security schemes (`components/securitySchemes` in 3.x,
/// `securityDefinitions` in 2.0) out of the kept tree, so that their names, URLs and scopes
/// are moved into the result rather than copied. `null` when the document has none (or a
/// `components` that is no object, which the caller reports).
///
/// When one of the schemes is a `$ref`, the list is copied instead: the reference may point
/// at another scheme of the list, and is looked up in the tree.
fn take_list<'a>(top: &mut Node<'a>, family: SpecFamily) -> Node<'a> {
    let slot = match family {
        SpecFamily::Swagger2 => top
            .as_map_mut()
            .and_then(|m| m.get_mut("securityDefinitions")),
        _ => top
            .as_map_mut()
            .and_then(|m| m.get_mut("components"))
            .and_then(Node::as_map_mut)
            .and_then(|c| c.get_mut("securitySchemes")),
    };
    let Some(slot) = slot else {
        return Node::Null;
    };
    let has_ref = slot
        .as_map()
        .is_some_and(|list| list.into_iter().any(|(_, n)| n.get("$ref").is_some()));
    if has_ref {
        slot.clone()
    } else {
        std::mem::take(slot)
    }
}

/// Which specification and version the document declares.
fn version(top: &Node<'_>, warnings: &mut Vec<Warning>) -> Result<SpecVersion> {
    let openapi = top.get("openapi").filter(|n| !matches!(n, Node::Null));
    let swagger = top.get("swagger").filter(|n| !matches!(n, Node::Null));
    let (pointer, node) = match (openapi, swagger) {
        (Some(node), other) => {
            if other.is_some() {
                warnings.push(Warning {
                    pointer: "/swagger".to_owned(),
                    message: "the document has both `openapi` and `swagger`; read as OpenAPI 3"
                        .to_owned(),
                });
            }
            ("/openapi", node)
        }
        (None, Some(node)) => ("/swagger", node),
        (None, None) => {
            return match top.get("swaggerVersion").and_then(Node::scalar_text) {
                Some(found) => Err(Error::UnsupportedVersion {
                    pointer: "/swaggerVersion".to_owned(),
                    found,
                }),
                None => Err(Error::NotOpenApi),
            };
        }
    };
    let Some(exact) = node.scalar_text() else {
        return Err(Error::Invalid {
            pointer: pointer.to_owned(),
            problem: format!("expected a version string, found {}", node.kind()),
        });
    };
    if !matches!(node, Node::Str(_)) {
        warnings.push(Warning {
            pointer: pointer.to_owned(),
            message: format!(
                "the version is {}, not a string; read as `{exact}`",
                node.kind()
            ),
        });
    }
    let family = if pointer == "/swagger" {
        (exact == "2.0").then_some(SpecFamily::Swagger2)
    } else {
        openapi3_family(&exact)
    };
    match family {
        Some(family) => Ok(SpecVersion { family, exact }),
        None => Err(Error::UnsupportedVersion {
            pointer: pointer.to_owned(),
            found: exact,
        }),
    }
}

/// `3.0`, `3.0.N`, `3.1.N`, `3.2.N`, optionally with a `-suffix` (`3.1.0-rc1`).
fn openapi3_family(version: &str) -> Option<SpecFamily> {
    let core = version.split('-').next().unwrap_or(version);
    let mut parts = core.split('.');
    let family = match (parts.next(), parts.next()) {
        (Some("3"), Some("0")) => SpecFamily::OpenApi30,
        (Some("3"), Some("1")) => SpecFamily::OpenApi31,
        (Some("3"), Some("2")) => SpecFamily::OpenApi32,
        _ => return None,
    };
    let patch_ok = match parts.next() {
        None => true,
        Some(patch) => !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()),
    };
    (patch_ok && parts.next().is_none()).then_some(family)
}

/// What a security scheme's `type` says.
pub(crate) enum SchemeType {
    /// `oauth2` (in any case).
    OAuth2,
    /// Another type, as written.
    Other(String),
    /// No `type` string: the scheme is listed as `(none)`.
    Missing,
}

/// The `type` of a security scheme. [`SchemeType::Missing`] (with a warning) when it has
/// none: such a scheme is not needed, so it does not fail the document. `oauth2` in another
/// case is accepted, with a warning.
fn scheme_type(cx: &Context<'_>, at: &str, scheme: &Node<'_>) -> SchemeType {
    let Some(members) = scheme.as_map() else {
        cx.warn(
            at,
            format!(
                "expected a security scheme object, found {}; ignored",
                scheme.kind()
            ),
        );
        return SchemeType::Missing;
    };
    match members.get("type").and_then(Node::as_str) {
        Some("oauth2") => SchemeType::OAuth2,
        Some(kind) if kind.eq_ignore_ascii_case("oauth2") => {
            cx.warn(
                pointer::join(at, "type"),
                format!("`{kind}` read as `oauth2`"),
            );
            SchemeType::OAuth2
        }
        Some(kind) => SchemeType::Other(kind.to_owned()),
        None => {
            cx.warn(
                pointer::join(at, "type"),
                "missing or not a string; the scheme is ignored",
            );
            SchemeType::Missing
        }
    }
}

/// Reads every scheme of `list` (moved out of the kept tree by [`take_list`]; `at` is its
/// pointer): each oauth2 one with `oauth2` (given the scheme's name, its pointer and the
/// scheme, a `$ref` resolved), the others by name and type.
fn read_schemes<'a>(
    cx: &Context<'a>,
    at: &str,
    list: Members<'a>,
    oauth2: impl Fn(&Context<'a>, String, &str, Node<'a>) -> Result<OAuth2Scheme>,
) -> Result<(Vec<OAuth2Scheme>, Vec<OtherScheme>)> {
    let mut schemes = Vec::new();
    let mut others = Vec::new();
    for (name, node) in list {
        let mut here = pointer::join(at, &name);
        let scheme = if node.get("$ref").is_some() {
            let (target, found) = cx.resolve(&here, &node)?;
            here = target;
            found.clone()
        } else {
            node
        };
        match scheme_type(cx, &here, &scheme) {
            SchemeType::OAuth2 => schemes.push(oauth2(cx, name.into_owned(), &here, scheme)?),
            SchemeType::Other(kind) => others.push(OtherScheme {
                name: name.into_owned(),
                kind,
            }),
            SchemeType::Missing => others.push(OtherScheme {
                name: name.into_owned(),
                kind: "(none)".to_owned(),
            }),
        }
    }
    Ok((schemes, others))
}

/// The examples of this crate's README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
