//! An HTTP client that calls an instance's API as that instance: requests built under the
//! API's base URL by the one path rule ([`super::api_path`]), the token in the header the
//! provider takes it in, and on a 401 one forced refresh and one retry.

use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::{AccessToken, ApiTarget, Engine, EngineError, EngineResult};

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

    /// A request to the instance's API: `path` (raw, percent-encoded, relative to the API's
    /// base URL, optionally with `?query`) under the base URL of [`Engine::api_target_for`] (the
    /// provider profile's, filled with the connection's kept values, else the document's
    /// server). Send it with [`AuthorizedClient::send`].
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when the path would leave the base URL (`..`, `%2e%2e`,
    /// `//host`, `@`, an absolute URL: see [`super::api_path`]), when there is no base URL,
    /// or when it breaks the provider URL rule (https, or http to loopback); nothing is sent.
    pub async fn request(&self, method: Method, path: &str) -> EngineResult<RequestBuilder> {
        let token = self.engine.access_token(&self.instance).await?;
        let target = self.engine.api_target_for(&self.instance, &token).await?;
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let url = target.url_for(path, query)?;
        if let Some(base) = &target.base_url {
            self.engine.check_provider_url("the API base URL", base)?;
        }
        Ok(self.http.request(method, url))
    }

    /// [`AuthorizedClient::request`] with `GET`.
    ///
    /// # Errors
    /// As [`AuthorizedClient::request`].
    pub async fn get(&self, path: &str) -> EngineResult<RequestBuilder> {
        self.request(Method::GET, path).await
    }

    /// [`AuthorizedClient::request`] with `POST`.
    ///
    /// # Errors
    /// As [`AuthorizedClient::request`].
    pub async fn post(&self, path: &str) -> EngineResult<RequestBuilder> {
        self.request(Method::POST, path).await
    }

    /// Sends `request` with the access token in the header of [`Engine::api_target_for`]
    /// (`Authorization: Bearer <token>` unless a provider profile names another header,
    /// such as Shopify's `X-Shopify-Access-Token`). On a 401 it reports the token as
    /// rejected, as [`Engine::token_rejected`] does: a refresh only if that token is still
    /// the current one (any number of clients that got the same 401 share one refresh), and
    /// sends the request once more with the token to use now; a request whose body cannot
    /// be repeated (a stream) is not retried and its 401 is returned. This is how a token of
    /// unknown expiry (no `expires_in`) is replaced when the API stops taking it.
    ///
    /// # Errors
    /// The engine's (no token, needs authorization, ...), or [`EngineError::Request`] when
    /// the API could not be reached.
    pub async fn send(&self, request: RequestBuilder) -> EngineResult<Response> {
        let token = self.engine.access_token(&self.instance).await?;
        let target = self.engine.api_target_for(&self.instance, &token).await?;
        let retry = request.try_clone();
        let response = send(with_token(request, &target, &token)?).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(retry) = retry else {
            return Ok(response);
        };
        tracing::info!(instance = %self.instance, "the API refused the access token (401): refreshing once");
        let fresh = self.engine.force_refresh(&self.instance, &token).await?;
        let target = self.engine.api_target_for(&self.instance, &fresh).await?;
        send(with_token(retry, &target, &fresh)?).await
    }
}

/// `request` with the token in the target's header (replacing one of that name).
fn with_token(
    request: RequestBuilder,
    target: &ApiTarget,
    token: &AccessToken,
) -> EngineResult<RequestBuilder> {
    let (name, value) = target.token_header_for(token)?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(name, value);
    Ok(request.headers(headers))
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
