//! Requests to the token, revocation and introspection endpoints as the provider wants them: client authentication, extra and per-call parameters, a form or JSON body, or a GET with the parameters in the query.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};
use url::Url;

use super::{ClientAuth, ClientConfig, ExchangeMethod, TokenBody};
use crate::error::{Error, Result};

/// Parameters the protocol sets itself; extra and per-call token parameters may not
/// override them.
const RESERVED_TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
    "token",
    "token_type_hint",
];

/// How a request authenticates the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// By the configured method: the `Authorization` header for `client_secret_basic`,
    /// members of the body for `client_secret_post` and `none`.
    Configured,
    /// `client_id` and, when set, `client_secret` as parameters whatever the method (a GET
    /// has no body, and the providers that exchange by GET read them from the query).
    AsParams,
    /// Not at all.
    Omitted,
}

/// One request to an endpoint of the provider.
pub(crate) struct TokenCall<'a> {
    /// The endpoint, without the parameters of this request.
    pub url: &'a Url,
    /// POST (body in the configured format) or GET (parameters in the query).
    pub method: ExchangeMethod,
    /// The parameters the protocol sets, in order.
    pub params: Vec<(&'a str, String)>,
    /// The parameters of this kind of call only (exchange or refresh).
    pub call_params: &'a [(String, String)],
    /// Whether the extra token parameters are sent.
    pub extra_params: bool,
    /// How the client authenticates.
    pub credentials: Credentials,
}

/// A POST with the configured client authentication, the extra token headers, the extra
/// token parameters when `extra_params`, and `Accept: application/json`; the body in the
/// configured [`TokenBody`] format.
pub(crate) fn form_request(
    client: &reqwest::Client,
    config: &ClientConfig,
    url: &Url,
    params: Vec<(&str, String)>,
    extra_params: bool,
) -> Result<reqwest::Request> {
    build(
        client,
        config,
        TokenCall {
            url,
            method: ExchangeMethod::Post,
            params,
            call_params: &[],
            extra_params,
            credentials: Credentials::Configured,
        },
    )
}

/// Builds the request of a call. Fails, before anything is sent, when an extra or per-call
/// parameter would override one the protocol sets, when a JSON body would hold a member
/// twice, when a secret method has no secret, and on a header that HTTP cannot carry.
pub(crate) fn build(
    client: &reqwest::Client,
    config: &ClientConfig,
    call: TokenCall<'_>,
) -> Result<reqwest::Request> {
    let own: Vec<&str> = call.params.iter().map(|(name, _)| *name).collect();
    let quirk_params = config
        .extra_token_params
        .iter()
        .chain(&config.exchange_params)
        .chain(&config.refresh_params);
    for (name, _) in quirk_params {
        if RESERVED_TOKEN_PARAMS.contains(&name.as_str()) || own.contains(&name.as_str()) {
            return Err(Error::Config(format!(
                "the extra token parameter `{name}` would override one that granary sets itself: remove it"
            )));
        }
    }
    let secret = || {
        config.client_secret.as_ref().ok_or_else(|| {
            Error::Config(format!(
                "the authentication method {} needs a client secret: set client_secret, or use \
                 the method `none` for a public client",
                config.auth_method
            ))
        })
    };
    let mut pairs: Vec<(String, String)> = call
        .params
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    let mut basic = None;
    match (call.credentials, config.auth_method) {
        (Credentials::Omitted, _) => {}
        (Credentials::AsParams, _) => {
            pairs.push(("client_id".into(), config.client_id.clone()));
            if let Some(secret) = &config.client_secret {
                pairs.push(("client_secret".into(), secret.expose_secret().to_string()));
            }
        }
        (Credentials::Configured, ClientAuth::ClientSecretBasic) => {
            basic = Some(basic_header(&config.client_id, secret()?.expose_secret())?);
        }
        (Credentials::Configured, ClientAuth::ClientSecretPost) => {
            pairs.push(("client_id".into(), config.client_id.clone()));
            pairs.push((
                "client_secret".into(),
                secret()?.expose_secret().to_string(),
            ));
        }
        (Credentials::Configured, ClientAuth::None) => {
            pairs.push(("client_id".into(), config.client_id.clone()));
        }
    }
    if call.extra_params {
        pairs.extend(config.extra_token_params.iter().cloned());
    }
    pairs.extend(call.call_params.iter().cloned());

    let mut builder = match call.method {
        ExchangeMethod::Get => {
            let mut url = call.url.clone();
            url.query_pairs_mut().extend_pairs(&pairs);
            client.get(url)
        }
        ExchangeMethod::Post => {
            let (content_type, body) = match config.token_body {
                TokenBody::Form => {
                    let mut body = url::form_urlencoded::Serializer::new(String::new());
                    body.extend_pairs(&pairs);
                    ("application/x-www-form-urlencoded", body.finish())
                }
                TokenBody::Json => ("application/json", json_body(pairs)?),
            };
            client
                .post(call.url.clone())
                .header(CONTENT_TYPE, content_type)
                .body(body)
        }
    };
    builder = builder.header(ACCEPT, "application/json");
    if let Some(value) = basic {
        builder = builder.header(AUTHORIZATION, value);
    }
    for (name, value) in &config.extra_token_headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::Config(format!(
                "the extra token header name `{name}` is not a valid HTTP header name"
            ))
        })?;
        if header == AUTHORIZATION && config.auth_method == ClientAuth::ClientSecretBasic {
            return Err(Error::Config(
                "the extra token header `Authorization` would replace client_secret_basic: remove it or \
                 choose another authentication method"
                    .to_string(),
            ));
        }
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            Error::Config(format!(
                "the value of the extra token header `{name}` is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        builder = builder.header(header, value);
    }
    builder.build().map_err(|e| {
        Error::Config(format!(
            "the request to {} cannot be built: {}",
            call.url,
            super::http::source_chain(&e)
        ))
    })
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 2.3.1), marked sensitive.
fn basic_header(client_id: &str, secret: &str) -> Result<HeaderValue> {
    let id: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut value = HeaderValue::from_str(&format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    ))
    .map_err(|_| Error::Config("the client credentials cannot form a header".to_string()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// A JSON object of string members; a name twice cannot be held.
fn json_body(pairs: Vec<(String, String)>) -> Result<String> {
    let mut object = Map::new();
    for (name, value) in pairs {
        if object.contains_key(&name) {
            return Err(Error::Config(format!(
                "the token parameter `{name}` would be sent twice, which a JSON body cannot hold: \
                 remove one, or send a form body"
            )));
        }
        object.insert(name, Value::String(value));
    }
    Ok(Value::Object(object).to_string())
}
