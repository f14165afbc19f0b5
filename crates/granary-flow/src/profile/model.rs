//! The provider profile: declarative data saying how one provider departs from RFC 6749.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::{ClientAuth, ExchangeMethod, TokenBody};

/// How one provider departs from the standard, as data.
///
/// Every member is optional: a profile is a *layer*, and the profile that applies to an
/// instance is the catalogue's (or none), then the OpenAPI document's, then the instance's
/// own, each overriding the one before ([`ProviderProfile::merged_with`]). `None` and empty
/// mean "as the standard says" (or as the layer below says).
///
/// A catalogue file (`crates/granary-flow/providers/<id>.toml`) is one of these, with `id`,
/// `title` and `hosts` set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderProfile {
    /// The catalogue id (`google`, `stripe-connect`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provider's name as people write it (`Google`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// In a document's or an instance's layer: the catalogue profile to start from, by id,
    /// or `none` for no catalogue profile at all (not even one recognised by host).
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Hosts whose authorization or token URL recognises this catalogue profile: a host
    /// equal to one of these or ending in `.` + one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Why the profile is needed, in one or two sentences an admin reads on the integration
    /// page ("without access_type=offline Google issues no refresh token").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Values of the connection that the admin enters (a subdomain, a tenant) or that the
    /// provider sends to the callback, used in URL templates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<ConnectionField>,
    /// The authorization request and the callback.
    #[serde(skip_serializing_if = "AuthorizationQuirks::is_empty")]
    pub authorization: AuthorizationQuirks,
    /// The token endpoint: code exchange, and what every token answer looks like.
    #[serde(skip_serializing_if = "TokenQuirks::is_empty")]
    pub token: TokenQuirks,
    /// How tokens are renewed.
    #[serde(skip_serializing_if = "RefreshQuirks::is_empty")]
    pub refresh: RefreshQuirks,
    /// Token revocation (RFC 7009).
    #[serde(skip_serializing_if = "RevocationQuirks::is_empty")]
    pub revocation: RevocationQuirks,
    /// How the API takes the token (used by the server's proxy and the authorized client).
    #[serde(skip_serializing_if = "ApiQuirks::is_empty")]
    pub api: ApiQuirks,
}

/// A named value of one connection, used in URL templates as `{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionField {
    /// The name used in templates (`subdomain`, `tenant`, `accounts-server`).
    pub name: String,
    /// What the admin sees next to the input (`Shop subdomain (acme in acme.myshopify.com)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What a value must look like.
    pub kind: FieldKind,
    /// The value used when none is given (the provider's default host); without one the
    /// field is required. It may name fields listed before it (`https://accounts.zoho.{extension}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The value comes from the callback's query parameter of this name (Zoho's
    /// `accounts-server`), not from the admin; it is kept with the connection.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_callback: bool,
    /// For [`FieldKind::Origin`]: the hosts the value may name (a host equal to one or
    /// ending in `.` + one), so that a callback cannot send the client secret elsewhere.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// What a connection field's value must look like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// One DNS label: letters, digits and `-`, 1 to 63 characters, not starting or ending
    /// with `-` (a Shopify shop, a Zendesk subdomain).
    #[default]
    Label,
    /// A host name of labels joined by `.` (a Salesforce My Domain, an Okta org).
    Hostname,
    /// A top-level domain or a suffix of labels (`com`, `eu`, `com.au`).
    DomainSuffix,
    /// An identifier: letters, digits, `-`, `_` and `.` (a tenant id, an account id).
    Identifier,
    /// An origin `https://host[:port]` whose host is one of the field's `hosts`.
    Origin,
}

/// How the authorization request and the callback depart from the standard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationQuirks {
    /// The authorization endpoint, a URL template (`https://{shop}.myshopify.com/...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Parameters added to the request (values may hold `{field}`): `access_type=offline`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Standard parameters sent under another name: `client_id = "client_key"`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    /// Standard parameters not sent at all (`response_type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
    /// What joins scopes (`,`, `+`); a space by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_separator: Option<String>,
    /// Whether the scope value is percent-encoded (`false`: sent as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encode_scopes: Option<bool>,
    /// Scopes added to whatever the admin chose (`offline_access`): without them the
    /// provider issues no refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_scopes: Option<Vec<String>>,
    /// Whether PKCE is sent (`false` for providers that reject it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkce: Option<bool>,
    /// The callback's parameter that holds the code (`spapi_oauth_code`); `code` by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_param: Option<String>,
    /// Callback parameters kept with the connection (`realmId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<Vec<String>>,
}

/// How the token endpoint departs from the standard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenQuirks {
    /// The token endpoint, a URL template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How the client authenticates (`client_secret_basic`, `client_secret_post`, `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuth>,
    /// The request body's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<TokenBody>,
    /// Parameters of every token request, code exchange and refresh (`expires_in=1800`).
    /// Values may name connection values and `{client_id}` (TikTok `client_key`), as may
    /// `exchange_params` and `refresh.params`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Parameters of the code exchange only (`type=web_server`, `expiring=1`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exchange_params: BTreeMap<String, String>,
    /// Headers of every token request.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The dotted path of the object holding `access_token`, `refresh_token`,
    /// `expires_in` (`authed_user`); the answer's top level by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Dotted paths of answer fields kept with the connection (`instance_url`, `team.id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<Vec<String>>,
    /// The dotted path of a boolean that, when `false` in an HTTP 200, makes the answer an
    /// error whose code is its `error` member (`ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_flag: Option<String>,
    /// The access token's lifetime in seconds when the answer states none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u64>,
}

/// How tokens are renewed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshQuirks {
    /// How: with the refresh token (the standard), by exchanging the access token, or never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RefreshKind>,
    /// Where refresh requests go when not the token endpoint, a URL template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Parameters of refresh requests only (`type=refresh`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// For [`RefreshKind::AccessTokenExchange`]: the request that trades the access token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<ExchangeRequest>,
    /// Whether the provider rotates refresh tokens (each is single use). The engine always
    /// stores the refresh token returned and refreshes one at a time; this is shown to the
    /// admin and checked by the conformance suite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotating: Option<bool>,
}

/// How tokens are renewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshKind {
    /// `grant_type=refresh_token` (RFC 6749 section 6).
    #[default]
    RefreshToken,
    /// The access token itself is traded for a new one (Facebook, Instagram).
    AccessTokenExchange,
    /// Tokens never expire and are never renewed (GitHub OAuth Apps).
    None,
}

/// The request that trades an access token for a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeRequest {
    /// Where it goes, a URL template; the token endpoint when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `GET` (parameters in the query) or `POST` (a form).
    pub method: ExchangeMethod,
    /// The `grant_type` sent (`fb_exchange_token`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// The parameter holding the access token (`fb_exchange_token`, `access_token`).
    pub token_param: String,
    /// Whether `client_id` and `client_secret` are sent too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub client_credentials: bool,
}

/// How token revocation departs from the standard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationQuirks {
    /// The revocation endpoint, a URL template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Parameters of revocation requests; values may name `{client_id}` (TikTok
    /// `client_key = "{client_id}"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// How the provider's API takes the access token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiQuirks {
    /// The API's base URL, a URL template that may name kept token fields
    /// (`{instance_url}/services/data`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The header that carries the token (`X-Shopify-Access-Token`); `Authorization` by
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_header: Option<String>,
    /// What precedes the token in that header: `Bearer ` for `Authorization`, nothing for
    /// any other header, unless set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_prefix: Option<String>,
}

impl AuthorizationQuirks {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl TokenQuirks {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl RefreshQuirks {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl RevocationQuirks {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl ApiQuirks {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}
