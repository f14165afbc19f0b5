//! Renewal by exchanging the access token itself (Facebook `fb_exchange_token`, Instagram `ig_refresh_token`), for providers that issue no refresh token.

use secrecy::{ExposeSecret as _, SecretString};

use super::quirks::check_token_settings;
use super::request::{Credentials, TokenCall, build};
use super::response::RequestContext;
use super::token::{Refreshed, send_retried};
use super::{ClientConfig, ExchangeMethod, RefreshStrategy, RetryPolicy};
use crate::error::{Endpoint, Error, Operation, Result};

/// Exchanges an access token for a new one, as the configured
/// [`RefreshStrategy::AccessTokenExchange`] says: to its URL (else the token endpoint), by
/// GET (parameters in the query) or POST (in the configured body format), with its
/// `grant_type`, the token under its `token_param`, the client credentials when it sends
/// them (as parameters with GET, by the configured client authentication with POST), the
/// extra token parameters and the refresh-only parameters. Retried on transient faults like
/// [`super::refresh`]; the answer is read like a refresh's (token location, kept fields,
/// error flag), and errors are classified like a refresh's.
///
/// Errors and log lines name the endpoint without the query: with GET, the query holds the
/// access token and the client secret.
///
/// The [`Refreshed`] returned has no refresh token to keep, since the provider issues none:
/// its `refresh_token` is the refresh token the provider sent if it did, else the new access
/// token (what the next exchange presents), and `rotated` is whether the provider sent a
/// refresh token. Store the access token; store `refresh_token` as a refresh token only when
/// `rotated`.
///
/// # Errors
/// [`Error::Config`] when the refresh strategy is not an access-token exchange or its token
/// parameter is empty; otherwise the errors of [`super::refresh`].
pub async fn exchange_access_token(
    client: &reqwest::Client,
    config: &ClientConfig,
    access_token: &SecretString,
    retry: &RetryPolicy,
) -> Result<Refreshed> {
    let RefreshStrategy::AccessTokenExchange(exchange) = &config.refresh_strategy else {
        return Err(Error::Config(
            "the refresh strategy is not an access-token exchange: set one (URL, method, \
             grant_type, token parameter) or refresh with the refresh token"
                .to_string(),
        ));
    };
    if exchange.token_param.trim().is_empty() {
        return Err(Error::Config(
            "the access-token exchange has no token parameter: set the name of the parameter \
             that carries the access token (Facebook: fb_exchange_token, Instagram: access_token)"
                .to_string(),
        ));
    }
    check_token_settings(config)?;
    let url = exchange.url.as_ref().unwrap_or(&config.token_url);
    let mut params = Vec::new();
    if let Some(grant_type) = &exchange.grant_type {
        params.push(("grant_type", grant_type.clone()));
    }
    params.push((
        exchange.token_param.as_str(),
        access_token.expose_secret().to_string(),
    ));
    let credentials = match (exchange.send_client_credentials, exchange.method) {
        (false, _) => Credentials::Omitted,
        (true, ExchangeMethod::Get) => Credentials::AsParams,
        (true, ExchangeMethod::Post) => Credentials::Configured,
    };
    let mut secrets = vec![access_token.expose_secret()];
    if let Some(secret) = &config.client_secret {
        secrets.push(secret.expose_secret());
    }
    let ctx = RequestContext {
        operation: Operation::Refresh,
        endpoint: Endpoint::Token,
        url,
        auth_method: config.auth_method,
        scopes: Vec::new(),
        secrets,
        error_flag: config.error_flag.as_deref(),
    };
    let request = build(
        client,
        config,
        TokenCall {
            url,
            method: exchange.method,
            params,
            call_params: &config.refresh_params,
            extra_params: true,
            credentials,
        },
    )?;
    let tokens = send_retried(
        client,
        &request,
        &ctx,
        config,
        retry,
        "exchanging the access token",
    )
    .await?;
    let (refresh_token, rotated) = match &tokens.refresh_token {
        Some(sent) => (sent.clone(), true),
        None => (tokens.access_token.clone(), false),
    };
    Ok(Refreshed {
        tokens,
        refresh_token,
        rotated,
    })
}
