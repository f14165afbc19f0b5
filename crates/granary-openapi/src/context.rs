//! The state of one import: the kept tree, warnings, `$ref` resolution and URL resolution.

use std::cell::{OnceCell, RefCell};

use indexmap::IndexMap;
use url::Url;

use crate::base::{self, Base};
use crate::node::{Members, Node};
use crate::read::{self, Keep};
use crate::{Error, Format, Result, SpecFamily, Warning, pointer};

/// One import in progress.
pub(crate) struct Context<'a> {
    body: &'a [u8],
    format: Format,
    /// The parts kept by the fast pass.
    pub(crate) top: &'a Node<'a>,
    /// The whole document, read only when a `$ref` points outside the kept parts.
    full: OnceCell<Result<Node<'a>>>,
    family: SpecFamily,
    /// The caller's base URL ([`crate::ParseOptions::base_url`]).
    caller: Option<&'a Url>,
    /// The base URL of relative URLs, found on the first relative URL: most documents have
    /// none, and finding it parses a URL.
    base: OnceCell<Base>,
    warnings: RefCell<Vec<Warning>>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        body: &'a [u8],
        format: Format,
        top: &'a Node<'a>,
        family: SpecFamily,
        caller: Option<&'a Url>,
    ) -> Self {
        Self {
            body,
            format,
            top,
            full: OnceCell::new(),
            family,
            caller,
            base: OnceCell::new(),
            warnings: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn warn(&self, pointer: impl Into<String>, message: impl Into<String>) {
        self.warnings.borrow_mut().push(Warning {
            pointer: pointer.into(),
            message: message.into(),
        });
    }

    /// The warnings collected so far.
    pub(crate) fn into_warnings(self) -> Vec<Warning> {
        self.warnings.into_inner()
    }

    /// Follows `$ref`s from `node` (found at `at`) to a value that is not a reference.
    /// Returns the pointer of that value and the value.
    pub(crate) fn resolve<'s>(
        &'s self,
        at: &str,
        node: &'s Node<'a>,
    ) -> Result<(String, &'s Node<'a>)> {
        let mut chain = vec![at.to_owned()];
        let mut here = at.to_owned();
        let mut node = node;
        while let Some(reference) = node.get("$ref") {
            let ref_pointer = pointer::join(&here, "$ref");
            let Some(reference) = reference.as_str() else {
                return Err(Error::Invalid {
                    pointer: ref_pointer,
                    problem: format!("expected a reference string, found {}", reference.kind()),
                });
            };
            let Some(target) = pointer::local_target(reference) else {
                return Err(Error::Reference {
                    pointer: ref_pointer,
                    reference: reference.to_owned(),
                    problem: "only references inside the document (`#/...`) are followed; granary reads no other file"
                        .to_owned(),
                });
            };
            if chain.contains(&target) {
                chain.push(target);
                return Err(Error::ReferenceCycle {
                    pointer: pointer::join(at, "$ref"),
                    chain,
                });
            }
            node = self.lookup(&target).map_err(|problem| Error::Reference {
                pointer: ref_pointer,
                reference: reference.to_owned(),
                problem,
            })?;
            chain.push(target.clone());
            here = target;
        }
        Ok((here, node))
    }

    /// The value at `target`: from the kept parts when it is there, else from the whole
    /// document (read once, on demand).
    fn lookup(&self, target: &str) -> Result<&Node<'a>, String> {
        if !target.is_empty() && !target.starts_with('/') {
            return Err(format!(
                "`{target}` is not a JSON pointer (it must start with `/`)"
            ));
        }
        if let Some(found) = pointer::lookup(self.top, target) {
            return Ok(found);
        }
        let full = self
            .full
            .get_or_init(|| read::read(self.body, self.format, Keep::All))
            .as_ref()
            .map_err(|e| format!("the document could not be read whole: {e}"))?;
        pointer::lookup(full, target)
            .ok_or_else(|| format!("nothing at `{target}` in the document"))
    }

    /// Reads the URL in member `key` of the object at `parent` (it must be a string),
    /// resolving a relative one against the base URL.
    pub(crate) fn url(&self, parent: &str, key: &str, node: &Node<'_>) -> Result<Url> {
        match node.as_str() {
            Some(raw) => self.url_text(&|| pointer::join(parent, key), raw),
            None => Err(Error::Invalid {
                pointer: pointer::join(parent, key),
                problem: format!("expected a URL string, found {}", node.kind()),
            }),
        }
    }

    /// Like [`Context::url`], for a value already known to be a string; `at` builds its
    /// pointer, which only a warning or an error needs.
    pub(crate) fn url_text(&self, at: &dyn Fn() -> String, raw: &str) -> Result<Url> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(Error::Invalid {
                pointer: at(),
                problem: "empty URL".to_owned(),
            });
        }
        if let Some(variable) = template_variable(text) {
            return Err(Error::Invalid {
                pointer: at(),
                problem: format!(
                    "`{text}` has the template variable `{variable}`, which OpenAPI does not define for OAuth URLs; write the URL out (an instance can also override it)"
                ),
            });
        }
        match Url::parse(text) {
            Ok(url) if base::is_http(&url) => Ok(url),
            Ok(url) => Err(Error::Invalid {
                pointer: at(),
                problem: format!(
                    "`{text}` is not an http(s) URL (its scheme is `{}`)",
                    url.scheme()
                ),
            }),
            Err(url::ParseError::RelativeUrlWithoutBase) => self.relative(&at(), text),
            Err(e) => Err(Error::Invalid {
                pointer: at(),
                problem: format!("`{text}` is not a valid URL: {e}"),
            }),
        }
    }

    fn relative(&self, at: &str, text: &str) -> Result<Url> {
        let base = self.base.get_or_init(|| match self.family {
            SpecFamily::Swagger2 => base::swagger2(self.top, self.caller),
            _ => base::openapi3(self.top, self.caller),
        });
        let (base, source) = match base {
            Base::Found { url, source } => (url.clone(), source.clone()),
            Base::Missing(reason) => {
                return Err(Error::RelativeUrl {
                    pointer: at.to_owned(),
                    url: text.to_owned(),
                    reason: reason.clone(),
                });
            }
        };
        let resolved = base.join(text).map_err(|e| Error::Invalid {
            pointer: at.to_owned(),
            problem: format!("relative URL `{text}` cannot be resolved against `{base}`: {e}"),
        })?;
        self.warn(
            at,
            format!("relative URL `{text}` resolved against {source} to `{resolved}`"),
        );
        Ok(resolved)
    }

    /// Reads a scopes object: name to description, moved out of `node`. Missing scopes read
    /// as none, with a warning; a description that is not a string is read as text, with a
    /// warning. `at` builds the pointer of the scopes object, which only a warning or an
    /// error needs.
    pub(crate) fn scopes(
        &self,
        at: &dyn Fn() -> String,
        node: Option<Node<'_>>,
    ) -> Result<IndexMap<String, String>> {
        let members = match node {
            None | Some(Node::Null) => {
                self.warn(at(), "missing; read as no scopes");
                return Ok(IndexMap::new());
            }
            Some(Node::Map(members)) => members,
            Some(other) => {
                return Err(Error::Invalid {
                    pointer: at(),
                    problem: format!(
                        "expected an object of scope names to descriptions, found {}",
                        other.kind()
                    ),
                });
            }
        };
        let mut scopes = IndexMap::with_capacity(members.len());
        for (name, description) in members {
            let text = match description {
                Node::Str(text) => text.into_owned(),
                Node::Null => String::new(),
                other => match other.scalar_text() {
                    Some(text) => {
                        self.warn(
                            pointer::join(&at(), &name),
                            format!("description is {}; read as text", other.kind()),
                        );
                        text
                    }
                    None => {
                        return Err(Error::Invalid {
                            pointer: pointer::join(&at(), &name),
                            problem: format!(
                                "expected a description string, found {}",
                                other.kind()
                            ),
                        });
                    }
                },
            };
            scopes.insert(name.into_owned(), text);
        }
        Ok(scopes)
    }
}

/// The member `key` of `members`, where `null` counts as absent.
pub(crate) fn member<'n, 'a>(members: &'n Members<'a>, key: &str) -> Option<&'n Node<'a>> {
    members.get(key).filter(|n| !matches!(n, Node::Null))
}

/// A required member: `missing` when absent.
pub(crate) fn required<'n, 'a>(
    members: &'n Members<'a>,
    at: &str,
    key: &str,
) -> Result<&'n Node<'a>> {
    member(members, key).ok_or_else(|| missing(pointer::join(at, key)))
}

/// The error for a required member that is absent or `null`.
pub(crate) fn missing(pointer: String) -> Error {
    Error::Invalid {
        pointer,
        problem: "missing".to_owned(),
    }
}

/// The first `{name}` in `text`, if any.
fn template_variable(text: &str) -> Option<&str> {
    let open = text.find('{')?;
    let close = open + text.get(open..)?.find('}')?;
    text.get(open..=close)
}
