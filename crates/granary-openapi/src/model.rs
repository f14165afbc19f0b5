//! What the importer returns: the document's OAuth 2.0 schemes, their flows, and warnings.

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::SchemeSummary;
use crate::{Error, Result, ScopeCheck};

/// The OAuth 2.0 side of an OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// `info.title`, when it is a string.
    pub title: Option<String>,
    /// The specification version the document declares.
    pub spec_version: SpecVersion,
    /// The format the content was detected as.
    pub format: Format,
    /// Every security scheme of type `oauth2`, in document order.
    pub schemes: Vec<OAuth2Scheme>,
    /// The other security schemes (name and type only), in document order.
    pub other_schemes: Vec<OtherScheme>,
    /// What the importer tolerated or changed (resolved relative URLs, ignored flows, ...).
    pub warnings: Vec<Warning>,
    /// The API's base URL: OpenAPI 3.x's first server URL with its variables replaced by
    /// their defaults (a relative one resolved against [`crate::ParseOptions::base_url`]),
    /// Swagger 2.0's `scheme://host/basePath`; `None` when the document names none (or one
    /// that is no http(s) URL) and no base URL was given.
    #[serde(default)]
    pub api_base_url: Option<Url>,
}

/// An OpenAPI or Swagger version: the family and the exact string of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecVersion {
    /// Which specification.
    pub family: SpecFamily,
    /// The version exactly as written (`3.0.3`, `2.0`).
    pub exact: String,
}

/// The specifications this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SpecFamily {
    /// Swagger 2.0 (`swagger: "2.0"`).
    #[serde(rename = "swagger-2.0")]
    Swagger2,
    /// OpenAPI 3.0.x.
    #[serde(rename = "openapi-3.0")]
    OpenApi30,
    /// OpenAPI 3.1.x.
    #[serde(rename = "openapi-3.1")]
    OpenApi31,
    /// OpenAPI 3.2.x (read like 3.1; its `deviceAuthorization` flow is skipped with a warning).
    #[serde(rename = "openapi-3.2")]
    OpenApi32,
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            SpecFamily::Swagger2 => write!(f, "Swagger {}", self.exact),
            _ => write!(f, "OpenAPI {}", self.exact),
        }
    }
}

/// The syntax of a document, detected from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON: the first non-whitespace byte is `{` or `[`.
    Json,
    /// YAML: anything else.
    Yaml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// A security scheme of type `oauth2`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth2Scheme {
    /// The scheme's name (its key under `components/securitySchemes` or `securityDefinitions`).
    pub name: String,
    /// Its description, when it has one.
    pub description: Option<String>,
    /// Its flows, in document order.
    pub flows: Vec<Flow>,
    /// The scheme's `x-granary-profile` (on a Swagger 2.0 security definition too): the
    /// provider profile the document asks for, as written: a string naming a profile of
    /// granary's catalogue, or an object in granary's profile format. This crate does not
    /// read it; granary's engine does, and a flow's own [`Flow::profile_extension`] wins over
    /// this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_extension: Option<serde_json::Value>,
}

/// One OAuth 2.0 flow of a scheme.
///
/// The importer guarantees the URLs each kind needs: `authorization_url` for
/// [`FlowKind::AuthorizationCode`] and [`FlowKind::Implicit`], `token_url` for every kind but
/// [`FlowKind::Implicit`]. All URLs are absolute (relative ones were resolved, with a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Which grant this flow is.
    pub kind: FlowKind,
    /// Where the user approves access.
    pub authorization_url: Option<Url>,
    /// Where codes, credentials and refresh tokens are exchanged for tokens.
    pub token_url: Option<Url>,
    /// Where tokens are refreshed, when the document names a separate URL.
    pub refresh_url: Option<Url>,
    /// The scopes, name to description, in document order.
    pub scopes: IndexMap<String, String>,
    /// The flow's `x-granary-profile` (OpenAPI 3.x flow objects only), as written: a string
    /// naming a profile of granary's catalogue, or an object in granary's profile format.
    /// It wins over its scheme's [`OAuth2Scheme::profile_extension`]; see
    /// [`Flow::profile_extension_or`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_extension: Option<serde_json::Value>,
}

impl Flow {
    /// Checks an admin's space-separated scope string against this flow; see [`crate::check_scopes`].
    pub fn check_scopes(&self, input: &str) -> ScopeCheck {
        crate::check_scopes(self, input)
    }

    /// The `x-granary-profile` that applies to this flow: its own, else its scheme's.
    pub fn profile_extension_or<'a>(
        &'a self,
        scheme: &'a OAuth2Scheme,
    ) -> Option<&'a serde_json::Value> {
        self.profile_extension
            .as_ref()
            .or(scheme.profile_extension.as_ref())
    }
}

/// The OAuth 2.0 grants (Swagger 2.0 names in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum FlowKind {
    /// The authorization code grant (`accessCode`).
    AuthorizationCode,
    /// The client credentials grant (`application`).
    ClientCredentials,
    /// The implicit grant.
    Implicit,
    /// The resource owner password grant.
    Password,
}

impl FlowKind {
    /// The OpenAPI 3 name: `authorizationCode`, `clientCredentials`, `implicit`, `password`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::AuthorizationCode => "authorizationCode",
            FlowKind::ClientCredentials => "clientCredentials",
            FlowKind::Implicit => "implicit",
            FlowKind::Password => "password",
        }
    }

    /// Whether a flow of this kind must have an authorization URL.
    pub fn needs_authorization_url(self) -> bool {
        matches!(self, FlowKind::AuthorizationCode | FlowKind::Implicit)
    }

    /// Whether a flow of this kind must have a token URL.
    pub fn needs_token_url(self) -> bool {
        !matches!(self, FlowKind::Implicit)
    }
}

impl fmt::Display for FlowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security scheme that is not OAuth 2.0: its name and `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherScheme {
    /// The scheme's name.
    pub name: String,
    /// Its `type` as written (`apiKey`, `http`, `openIdConnect`, `mutualTLS`, `basic`, ...);
    /// `(none)` when the scheme has no `type` string.
    pub kind: String,
}

/// Something the importer tolerated or changed, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The JSON pointer of the value concerned.
    pub pointer: String,
    /// What was done, in words.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// An authorization-code flow with its scheme, and its two URLs, which such a flow always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizationCodeFlow<'a> {
    /// The scheme the flow belongs to.
    pub scheme: &'a OAuth2Scheme,
    /// The flow itself (kind [`FlowKind::AuthorizationCode`]).
    pub flow: &'a Flow,
    /// Where the user approves access.
    pub authorization_url: &'a Url,
    /// Where the code is exchanged for tokens.
    pub token_url: &'a Url,
}

impl Document {
    /// The authorization-code flows of every scheme, in document order.
    ///
    /// # Errors
    /// [`Error::NoAuthorizationCodeFlow`] naming the schemes and flows the document has.
    pub fn authorization_code_flows(&self) -> Result<Vec<AuthorizationCodeFlow<'_>>> {
        let mut found = Vec::new();
        for scheme in &self.schemes {
            for flow in &scheme.flows {
                if flow.kind != FlowKind::AuthorizationCode {
                    continue;
                }
                if let (Some(authorization_url), Some(token_url)) =
                    (&flow.authorization_url, &flow.token_url)
                {
                    found.push(AuthorizationCodeFlow {
                        scheme,
                        flow,
                        authorization_url,
                        token_url,
                    });
                }
            }
        }
        if found.is_empty() {
            return Err(Error::NoAuthorizationCodeFlow {
                schemes: self.scheme_summaries(),
            });
        }
        Ok(found)
    }

    /// The OAuth 2.0 scheme called `name`.
    pub fn scheme(&self, name: &str) -> Option<&OAuth2Scheme> {
        self.schemes.iter().find(|s| s.name == name)
    }

    /// Every security scheme in brief: the oauth2 ones with their flows, then the others.
    pub fn scheme_summaries(&self) -> Vec<SchemeSummary> {
        let oauth2 = self.schemes.iter().map(|s| SchemeSummary {
            name: s.name.clone(),
            kind: "oauth2".to_owned(),
            flows: s.flows.iter().map(|f| f.kind).collect(),
        });
        let others = self.other_schemes.iter().map(|s| SchemeSummary {
            name: s.name.clone(),
            kind: s.kind.clone(),
            flows: Vec::new(),
        });
        oauth2.chain(others).collect()
    }
}

impl OAuth2Scheme {
    /// The scheme's flow of `kind`.
    pub fn flow(&self, kind: FlowKind) -> Option<&Flow> {
        self.flows.iter().find(|f| f.kind == kind)
    }
}
