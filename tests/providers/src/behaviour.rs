//! `Behaviour`: the data that makes the emulator act like one provider (one struct, no code per provider).

use crate::template;

/// How a connection field's value must look (what the real provider's host or path accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// One hostname label: `acme` in `acme.myshopify.com` (letters, digits, `-`).
    Label,
    /// One or more dot-separated labels: a whole hostname (`acme.my.salesforce.com`) or a
    /// domain suffix (`com.au`).
    Labels,
    /// One URL path segment: a tenant (`common`, `contoso.onmicrosoft.com`, a GUID).
    Segment,
}

/// A named part of the provider's URLs that differs per connection (`{shop}`, `{tenant}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name the URL templates use, without braces.
    pub name: &'static str,
    pub kind: FieldKind,
    /// A value that works against the emulator (what a suite puts on the connection).
    pub example: &'static str,
}

/// How scopes are joined in the `scope` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Separator {
    /// RFC 6749: space-delimited.
    Space,
    /// Comma-delimited: a space-joined string is one unknown scope.
    Comma,
    /// Either is accepted.
    Any,
}

/// What the provider does with PKCE (RFC 7636).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pkce {
    /// Accepted when sent (S256 or plain), checked at the exchange; not required.
    Optional,
    /// A `code_challenge` is refused at the authorization endpoint.
    Refused,
    /// An authorization request without an S256 `code_challenge` is refused.
    Required,
}

/// What the provider does with `response_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    /// Must be `code`.
    Required,
    /// Not looked at.
    Ignored,
    /// Must be absent (the provider errors on it).
    Refused,
}

/// How the client authenticates at the token (and refresh, revocation) endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic only: credentials in the body are refused.
    Basic,
    /// `client_id`/`client_secret` in the body only: an `Authorization: Basic` header is refused.
    Post,
    /// Either way (RFC 6749 2.3.1).
    Either,
}

/// The token request body formats the provider accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` only.
    Form,
    /// `application/json` only.
    Json,
    /// Either.
    Either,
}

/// A parameter that makes the issued token expire (and come with a refresh token); without
/// it the provider issues a non-expiring token and no refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiringParam {
    /// Parameter name (`expiring`, `expires_in`).
    pub name: &'static str,
    /// Accepted values.
    pub value: ExpiringValue,
    /// Whether refresh requests must carry it too (else the refreshed token never expires and
    /// no refresh token comes back).
    pub on_refresh: bool,
}

/// The values an [`ExpiringParam`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiringValue {
    /// Exactly this value (`1`).
    Exactly(&'static str),
    /// A number of seconds in this range; it becomes the token lifetime.
    Seconds { min: u64, max: u64 },
}

/// A value the provider adds to the callback next to `code` and `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackValue {
    /// A fixed text (`realmId=9130355555555555`).
    Text(&'static str),
    /// A provider URL, given rewritten to the emulator (`accounts-server=https://accounts.zoho.eu`
    /// becomes `{origin}/accounts.zoho.eu`).
    Url(&'static str),
}

/// A value in the token response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Text(&'static str),
    /// A provider URL, rewritten to the emulator; `{field}` names are replaced by the
    /// connection field values matched on the request.
    Url(&'static str),
    /// The current time in milliseconds since the epoch, as text (Salesforce `issued_at`).
    NowMillis,
}

/// Where the expiry goes in the token response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `expires_in` seconds (RFC 6749).
    ExpiresIn,
    /// `expires_at`, an RFC 3339 time (Square).
    ExpiresAt,
    /// Not sent, although the token expires (Salesforce).
    NotSent,
}

/// How tokens are renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// A refresh token (RFC 6749 section 6).
    RefreshToken {
        /// A refresh returns a new refresh token and the used one stops working.
        rotating: bool,
        /// When not rotating: whether the refresh response repeats the refresh token.
        repeated: bool,
    },
    /// No refresh token: the token never expires (GitHub OAuth Apps).
    NonExpiring,
    /// No refresh token: a still-valid access token is exchanged for a long-lived one at the
    /// token URL (Facebook `grant_type=fb_exchange_token&fb_exchange_token=TOKEN`, GET or POST).
    ExchangeAccessToken {
        grant_type: &'static str,
        param: &'static str,
    },
    /// No refresh token: a still-valid access token is refreshed at the refresh URL with GET
    /// (Instagram `grant_type=ig_refresh_token&access_token=TOKEN`).
    AccessTokenRefresh {
        grant_type: &'static str,
        param: &'static str,
    },
}

/// How the revocation endpoint takes the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// None published.
    None,
    /// RFC 7009: `token` in the body (or query), client authentication as at the token URL
    /// where `authenticated`.
    Token { authenticated: bool },
    /// The token to revoke is the bearer token of the request itself (Dropbox).
    Bearer,
}

/// How the API takes the access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiAuth {
    /// `Authorization: Bearer TOKEN` (RFC 6750).
    Bearer,
    /// `Authorization: SCHEME TOKEN` (Zoho `Zoho-oauthtoken`).
    Scheme(&'static str),
    /// The bare token in this header (Shopify `X-Shopify-Access-Token`, Amazon `x-amz-access-token`).
    Header(&'static str),
}

/// Everything that makes the emulator behave like one provider.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// The catalogue id (`google`).
    pub id: &'static str,
    pub name: &'static str,
    /// Connection fields the URL templates use.
    pub fields: &'static [Field],
    /// Authorization endpoint URL templates; the first is the published default, the others
    /// alternatives the provider also serves (a per-tenant host, a region).
    pub authorization_urls: &'static [&'static str],
    pub token_urls: &'static [&'static str],
    /// A refresh endpoint of its own; empty = refresh at the token URL. When set, the token
    /// URL refuses `grant_type=refresh_token`.
    pub refresh_urls: &'static [&'static str],
    pub revocation_urls: &'static [&'static str],
    pub revocation: Revocation,
    /// Scopes a user would pick (at least two, so that the separator matters).
    pub scopes: &'static [&'static str],

    // --- the authorization request
    /// The name of the client id parameter (`client_key` at TikTok, `application_id` at Amazon).
    pub client_id_param: &'static str,
    pub response_type: ResponseType,
    /// Parameters the request must carry with exactly this value, else it is refused
    /// (`audience=api.atlassian.com`, `owner=user`).
    pub required_params: &'static [(&'static str, &'static str)],
    /// Parameters without which the request succeeds but no refresh token is issued
    /// (`access_type=offline`, `prompt=consent`, `token_access_type=offline`, `duration=permanent`).
    pub offline_params: &'static [(&'static str, &'static str)],
    /// Parameters that, when present, must have one of these values (`response_mode=query`).
    pub constrained_params: &'static [(&'static str, &'static [&'static str])],
    /// The parameters that carry scopes (`scope`; Slack also `user_scope`).
    pub scope_params: &'static [&'static str],
    pub scope_separator: Separator,
    /// Scopes the request must include, else it is refused (Asana `default`).
    pub required_scopes: &'static [&'static str],
    /// Scopes of which one must be requested for a refresh token (`offline_access`); empty = none needed.
    pub offline_scopes: &'static [&'static str],
    pub pkce: Pkce,
    /// The name of the code in the callback (`spapi_oauth_code` at Amazon).
    pub code_param: &'static str,
    /// Values added to the callback next to the code.
    pub callback_values: &'static [(&'static str, CallbackValue)],
    /// The code may be redeemed only at this token host (Zoho: the user's data centre, named
    /// in the callback's `accounts-server`), not the one the authorization went to.
    pub code_host: Option<&'static str>,
    /// Tokens for scopes asked in this parameter are put under this key of the token
    /// response (Slack: `user_scope` -> `authed_user`); other scopes give the top-level token.
    pub nested_token: Option<(&'static str, &'static str)>,

    // --- the token request
    /// The name of the client id in a token request body (`client_key` at TikTok).
    pub token_client_id_param: &'static str,
    pub client_auth: ClientAuth,
    pub body_format: BodyFormat,
    /// The token URL also answers GET with the parameters in the query, and a code exchange
    /// may leave out `grant_type` (Facebook).
    pub token_get: bool,
    /// Parameters the code exchange must carry (`request=token`).
    pub exchange_params: &'static [(&'static str, &'static str)],
    /// Parameters a refresh must carry (`type=refresh`).
    pub refresh_params: &'static [(&'static str, &'static str)],
    pub expiring_param: Option<ExpiringParam>,
    /// The token response is form-encoded unless the request accepts `application/json` (GitHub).
    pub form_response_unless_json_accepted: bool,

    // --- the token response
    /// Errors come as HTTP 200 with `ok: false` (successes carry `ok: true`).
    pub errors_in_200: bool,
    /// Extra fields of the code exchange response, by dotted path (`team.id`).
    pub extra_fields: &'static [(&'static str, FieldValue)],
    pub expiry: Expiry,
    /// `token_type` of the top-level token (`Bearer`; Slack `bot`).
    pub token_type: &'static str,
    /// Access token lifetime in seconds (also when not sent).
    pub lifetime: u64,
    pub refresh: Refresh,
    /// Seconds after which a refresh token not used lapses (Google: 6 months; Box, Xero: 60
    /// days); `None`: it does not.
    pub refresh_token_lapse: Option<u64>,

    // --- the API
    /// A "who am I" API endpoint that answers 200 to a valid token. Its template may name
    /// connection fields and callback values (`{realmId}`); a callback value in the path must
    /// be the one the callback gave. Its host may be one the token response names
    /// (Salesforce `instance_url`, Zoho `api_domain`).
    pub api_urls: &'static [&'static str],
    pub api_auth: ApiAuth,
}

impl Behaviour {
    /// The behaviour with this catalogue id.
    pub fn named(id: &str) -> Option<Behaviour> {
        crate::catalogue::all().into_iter().find(|b| b.id == id)
    }

    /// Every behaviour of the catalogue.
    pub fn all() -> Vec<Behaviour> {
        crate::catalogue::all()
    }

    /// The published authorization URL template (`https://{shop}.myshopify.com/admin/oauth/authorize`).
    pub fn authorization_url(&self) -> &'static str {
        self.authorization_urls.first().copied().unwrap_or("")
    }

    pub fn token_url(&self) -> &'static str {
        self.token_urls.first().copied().unwrap_or("")
    }

    /// The refresh URL template: the provider's own, else the token URL.
    pub fn refresh_url(&self) -> &'static str {
        self.refresh_urls
            .first()
            .copied()
            .unwrap_or_else(|| self.token_url())
    }

    /// The API endpoint template, where the behaviour has one.
    pub fn api_url(&self) -> Option<&'static str> {
        self.api_urls.first().copied()
    }

    pub fn revocation_url(&self) -> Option<&'static str> {
        self.revocation_urls.first().copied()
    }

    /// Connection field values that work against the emulator (`shop = acme`).
    pub fn example_connection(&self) -> Vec<(String, String)> {
        self.fields
            .iter()
            .map(|f| (f.name.to_owned(), f.example.to_owned()))
            .collect()
    }

    /// A template with the example connection's values put in (`https://acme.myshopify.com/...`).
    pub fn example_url(&self, template: &str) -> String {
        template::fill(template, &self.example_connection())
    }

    /// Whether the provider issues a refresh token at all.
    pub fn issues_refresh_tokens(&self) -> bool {
        matches!(self.refresh, Refresh::RefreshToken { .. })
    }

    /// A behaviour with RFC 6749 defaults, for the catalogue to depart from.
    pub(crate) const fn standard(
        id: &'static str,
        name: &'static str,
        authorization_urls: &'static [&'static str],
        token_urls: &'static [&'static str],
        scopes: &'static [&'static str],
    ) -> Behaviour {
        Behaviour {
            id,
            name,
            fields: &[],
            authorization_urls,
            token_urls,
            refresh_urls: &[],
            revocation_urls: &[],
            revocation: Revocation::None,
            scopes,
            client_id_param: "client_id",
            response_type: ResponseType::Required,
            required_params: &[],
            offline_params: &[],
            constrained_params: &[],
            scope_params: &["scope"],
            scope_separator: Separator::Space,
            required_scopes: &[],
            offline_scopes: &[],
            pkce: Pkce::Optional,
            code_param: "code",
            callback_values: &[],
            code_host: None,
            nested_token: None,
            token_client_id_param: "client_id",
            client_auth: ClientAuth::Either,
            body_format: BodyFormat::Form,
            token_get: false,
            exchange_params: &[],
            refresh_params: &[],
            expiring_param: None,
            form_response_unless_json_accepted: false,
            errors_in_200: false,
            extra_fields: &[],
            expiry: Expiry::ExpiresIn,
            token_type: "Bearer",
            lifetime: 3600,
            refresh: Refresh::RefreshToken {
                rotating: false,
                repeated: true,
            },
            refresh_token_lapse: None,
            api_urls: &[],
            api_auth: ApiAuth::Bearer,
        }
    }
}

/// Rewrites a provider URL `https://HOST/PATH` to the emulator's `{origin}/HOST/PATH`.
/// Anything else is returned unchanged.
pub fn rewrite(url: &str, origin: &str) -> String {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return format!("{}/{}", origin.trim_end_matches('/'), rest);
        }
    }
    url.to_owned()
}
