//! An HTTP client that calls an API as an instance: `Authorization: Bearer`, and on a 401 one
//! forced refresh and one retry.

use reqwest::{RequestBuilder, Response, StatusCode};

use super::{Engine, EngineError, EngineResult};

/// Calls an API with the access token of one instance; see [`Engine::authorized_client`].
#[derive(Debug, Clone)]
pub struct AuthorizedClient {
    engine: Engine,
    instance: String,
    http: reqwest::Client,
}

impl Engine {
    /// A client that sends requests with the access token of `instance`, over `http` (use
    /// a client of your own: the engine's client does not follow redirects).
    pub fn authorized_client(&self, instance: &str, http: reqwest::Client) -> AuthorizedClient {
        AuthorizedClient {
            engine: self.clone(),
            instance: instance.to_string(),
            http,
        }
    }
}

impl AuthorizedClient {
    /// The underlying HTTP client, to build requests with (`client.http().get(url)`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The instance whose token is sent.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Sends `request` with `Authorization: Bearer <token>`. On a 401 it reports the token
    /// as rejected, as [`Engine::token_rejected`] does: a refresh only if that token is still
    /// the current one (any number of clients that got the same 401 share one refresh), and
    /// sends the request once more with the token to use now; a request whose body cannot
    /// be repeated (a stream) is not retried and its 401 is returned. This is how a token of
    /// unknown expiry (no `expires_in`) is replaced when the API stops taking it.
    pub async fn send(&self, request: RequestBuilder) -> EngineResult<Response> {
        let token = self.engine.access_token(&self.instance).await?;
        let retry = request.try_clone();
        let response = send(request.bearer_auth(token.secret())).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(retry) = retry else {
            return Ok(response);
        };
        tracing::info!(instance = %self.instance, "the API refused the access token (401): refreshing once");
        let fresh = self.engine.force_refresh(&self.instance, &token).await?;
        send(retry.bearer_auth(fresh.secret())).await
    }
}

async fn send(request: RequestBuilder) -> EngineResult<Response> {
    request.send().await.map_err(|error| EngineError::Request {
        url: error
            .url()
            .map(|u| {
                let mut u = u.clone();
                u.set_query(None);
                u.to_string()
            })
            .unwrap_or_default(),
        reason: error.without_url().to_string(),
    })
}
