//! The one error type of the crate: every message says where the problem is and what to do.

use std::fmt;

use crate::{FlowKind, Format};

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a document could not be read, or why it cannot serve the purpose asked of it.
///
/// Structural errors carry the JSON pointer of the offending value, as in
/// `/components/securitySchemes/Box/flows/authorizationCode/tokenUrl: missing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input holds nothing but whitespace.
    #[error(
        "the document is empty: give the bytes of an OpenAPI 3.x or Swagger 2.0 document (JSON or YAML)"
    )]
    Empty,

    /// The input is not well-formed JSON or YAML.
    #[error("{format} syntax error{}: {message}; fix the document and import it again", at(*line, *column))]
    Syntax {
        /// The format the content was detected as.
        format: Format,
        /// The line of the error (1-based), where the parser knows it.
        line: Option<usize>,
        /// The column of the error (1-based), where the parser knows it.
        column: Option<usize>,
        /// What the parser found wrong.
        message: String,
    },

    /// The document is larger than [`crate::Limits::max_bytes`].
    #[error(
        "the document is {size} bytes, over the limit of {limit} bytes ({}); import a smaller document or raise the limit (granary server: `import_limit`; library: Limits::max_bytes)", mib(*limit)
    )]
    TooLarge {
        /// The size of the document, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },

    /// The document nests deeper than [`crate::Limits::max_depth`]: refused before it is
    /// parsed, since deep nesting costs the parsers time out of proportion to its size.
    #[error(
        "the document nests deeper than the limit of {limit} levels (arrays, objects and indented blocks) at line {line}; real OpenAPI documents nest a few dozen levels: flatten it (move deep schemas into components and use $ref) or raise the limit (library: Limits::max_depth)"
    )]
    TooDeep {
        /// The line (1-based) where the nesting passes the limit.
        line: usize,
        /// The limit, in levels.
        limit: usize,
    },

    /// The top level of the document is not an object.
    #[error(
        "the document is {found}, not an OpenAPI document: an OpenAPI document is a JSON object or YAML mapping with an `openapi` or `swagger` member"
    )]
    NotAnObject {
        /// What the top level is ("an array", "a string", ...).
        found: String,
    },

    /// The document has neither an `openapi` nor a `swagger` member.
    #[error(
        "this is not an OpenAPI document: it has neither an `openapi` member (OpenAPI 3.x) nor a `swagger` member (Swagger 2.0)"
    )]
    NotOpenApi,

    /// The document declares a version this crate does not read.
    #[error(
        "{pointer}: unsupported version `{found}`; granary reads OpenAPI 3.0, 3.1 and 3.2 and Swagger 2.0 (convert the document first)"
    )]
    UnsupportedVersion {
        /// Where the version is declared (`/openapi`, `/swagger`, `/swaggerVersion`).
        pointer: String,
        /// The version found.
        found: String,
    },

    /// A value the importer needs is missing or has the wrong form.
    #[error("{pointer}: {problem}")]
    Invalid {
        /// The JSON pointer of the value (or of where it should be).
        pointer: String,
        /// What is wrong: `missing`, `expected an object, found a string`, ...
        problem: String,
    },

    /// A `$ref` could not be followed: missing target, external reference, bad pointer.
    #[error("{pointer}: cannot follow $ref `{reference}`: {problem}")]
    Reference {
        /// Where the `$ref` is.
        pointer: String,
        /// The reference as written.
        reference: String,
        /// Why it cannot be followed.
        problem: String,
    },

    /// `$ref`s that lead back to where they started.
    #[error("{pointer}: $ref cycle: {}; make one of them point to a security scheme object", chain.join(" -> "))]
    ReferenceCycle {
        /// Where the first `$ref` is.
        pointer: String,
        /// The pointers visited, ending with the one seen twice.
        chain: Vec<String>,
    },

    /// A relative URL and no base URL to resolve it against.
    #[error(
        "{pointer}: relative URL `{url}` cannot be resolved: {reason}; give the document an absolute server URL, or pass the URL the document came from as the base URL (ParseOptions::base_url, `granary inspect --base-url`)"
    )]
    RelativeUrl {
        /// Where the URL is.
        pointer: String,
        /// The URL as written.
        url: String,
        /// Why no base URL was found.
        reason: String,
    },

    /// The document has no OAuth 2.0 authorization-code flow.
    #[error("{}", no_authorization_code(schemes))]
    NoAuthorizationCodeFlow {
        /// The security schemes the document does have.
        schemes: Vec<SchemeSummary>,
    },
}

/// A security scheme in brief, for [`Error::NoAuthorizationCodeFlow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeSummary {
    /// The scheme's name in the document.
    pub name: String,
    /// Its `type` (`oauth2`, `apiKey`, `http`, ...).
    pub kind: String,
    /// For oauth2 schemes, the flows it has.
    pub flows: Vec<FlowKind>,
}

impl fmt::Display for SchemeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.name, self.kind)?;
        if !self.flows.is_empty() {
            let flows: Vec<&str> = self.flows.iter().map(|k| k.as_str()).collect();
            write!(f, ": {}", flows.join(", "))?;
        }
        f.write_str(")")
    }
}

fn mib(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

fn no_authorization_code(schemes: &[SchemeSummary]) -> String {
    if schemes.is_empty() {
        return "the document has no OAuth 2.0 authorization-code flow: it declares no security schemes at all".to_owned();
    }
    let list: Vec<String> = schemes.iter().map(ToString::to_string).collect();
    format!(
        "the document has no OAuth 2.0 authorization-code flow; its security schemes are: {}",
        list.join("; ")
    )
}
