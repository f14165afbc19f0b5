//! Endpoint management, shared by the admin page, the REST API and the CLI: create (URL
//! checked, a random id, a secret shown once and stored sealed), enable/disable, delete,
//! and the reads (list, one, its delivery log).

use granary_flow::engine::{Engine, EngineError};
use granary_store::{WebhookDelivery, WebhookEndpoint};
use rand::RngCore as _;
use secrecy::SecretString;
use url::Url;

use super::payload::EVENT_TYPES;
use crate::problem::Problem;

/// How many deliveries the delivery log shows.
pub const LOG_LENGTH: usize = 20;

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request cannot work (a bad URL, an unknown event type): the text says what to
    /// change.
    #[error("{0}")]
    Invalid(String),
    /// No endpoint has this id.
    #[error("no webhook endpoint has the id `{0}`: `granary webhook list` shows them")]
    NotFound(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] granary_store::Error),
    /// Sealing or opening the secret failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl WebhookError {
    /// The REST API's problem for it.
    pub fn problem(&self) -> Problem {
        match self {
            Self::Invalid(detail) => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "The request cannot work",
                detail.clone(),
            ),
            Self::NotFound(_) => Problem::not_found(self.to_string()),
            Self::Store(_) | Self::Engine(_) => {
                tracing::error!(error = %self, "a webhook operation failed");
                Problem::internal(self.to_string())
            }
        }
    }
}

/// An endpoint just created, with its secret: the only time the secret is shown.
#[derive(Debug)]
pub struct Created {
    /// The endpoint as stored.
    pub endpoint: WebhookEndpoint,
    /// The signing secret (64 hex digits; the HMAC key is this text).
    pub secret: SecretString,
}

/// Reads event type names (each one of [`EVENT_TYPES`], at least one); returns them in the
/// order of that list, each once.
///
/// # Errors
/// [`WebhookError::Invalid`] naming the unknown name and the list.
pub fn parse_events<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, WebhookError> {
    let names: Vec<&str> = names
        .iter()
        .flat_map(|n| n.as_ref().split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(unknown) = names.iter().find(|n| !EVENT_TYPES.contains(n)) {
        return Err(WebhookError::Invalid(format!(
            "unknown event type `{unknown}`: the event types are {}",
            EVENT_TYPES.join(", ")
        )));
    }
    if names.is_empty() {
        return Err(WebhookError::Invalid(format!(
            "name at least one event type: {}",
            EVENT_TYPES.join(", ")
        )));
    }
    Ok(EVENT_TYPES
        .iter()
        .filter(|t| names.contains(t))
        .map(|t| (*t).to_string())
        .collect())
}

/// Checks a receiver URL by the rule of provider URLs: https, or http to loopback (or
/// anywhere when `allow_insecure_http`).
///
/// # Errors
/// [`WebhookError::Invalid`] saying what to change.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<Url, WebhookError> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| WebhookError::Invalid(format!("the webhook URL `{url}` is not a URL: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::Invalid(format!(
            "the webhook URL `{url}` has no host"
        )));
    }
    granary_flow::protocol::check_provider_url("the webhook URL", &parsed, allow_insecure_http)
        .map_err(WebhookError::Invalid)?;
    Ok(parsed)
}

/// `prefix` and `bytes` random bytes in hex.
pub fn random_id(prefix: &str, bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    format!("{prefix}{}", hex::encode(buffer))
}

/// Registers an endpoint: URL checked, events read, a random id (`wh_` and 16 hex digits)
/// and a random secret (32 bytes, as 64 hex digits) sealed before it is stored.
///
/// # Errors
/// [`WebhookError::Invalid`] for a bad URL or event list; a store or seal failure.
pub async fn create<S: AsRef<str>>(
    engine: &Engine,
    allow_insecure_http: bool,
    url: &str,
    events: &[S],
) -> Result<Created, WebhookError> {
    let url = check_url(url, allow_insecure_http)?;
    let events = parse_events(events)?;
    let id = random_id("wh_", 8);
    let secret = SecretString::from(random_id("", 32));
    let endpoint = WebhookEndpoint {
        secret: engine.seal_webhook_secret(&id, &secret)?,
        id,
        url: url.to_string(),
        events,
        enabled: true,
        created: engine.now(),
    };
    engine.store().put_webhook_endpoint(&endpoint).await?;
    tracing::info!(endpoint = %endpoint.id, url = %endpoint.url, events = ?endpoint.events, "webhook endpoint registered");
    Ok(Created { endpoint, secret })
}

/// Every endpoint, by id.
///
/// # Errors
/// A store failure.
pub async fn list(engine: &Engine) -> Result<Vec<WebhookEndpoint>, WebhookError> {
    Ok(engine.store().list_webhook_endpoints().await?)
}

/// The endpoint `id`.
///
/// # Errors
/// [`WebhookError::NotFound`]; a store failure.
pub async fn get(engine: &Engine, id: &str) -> Result<WebhookEndpoint, WebhookError> {
    list(engine)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| WebhookError::NotFound(id.to_string()))
}

/// Changes whether endpoint `id` receives new events and, when given, its event types.
///
/// # Errors
/// [`WebhookError::NotFound`], [`WebhookError::Invalid`] for a bad event list; a store
/// failure.
pub async fn update(
    engine: &Engine,
    id: &str,
    enabled: Option<bool>,
    events: Option<&[String]>,
) -> Result<WebhookEndpoint, WebhookError> {
    let mut endpoint = get(engine, id).await?;
    if let Some(events) = events {
        endpoint.events = parse_events(events)?;
    }
    if let Some(enabled) = enabled {
        endpoint.enabled = enabled;
    }
    engine.store().put_webhook_endpoint(&endpoint).await?;
    tracing::info!(endpoint = %id, enabled = endpoint.enabled, events = ?endpoint.events, "webhook endpoint changed");
    Ok(endpoint)
}

/// Removes endpoint `id` and its deliveries.
///
/// # Errors
/// [`WebhookError::NotFound`]; a store failure.
pub async fn delete(engine: &Engine, id: &str) -> Result<(), WebhookError> {
    if engine.store().delete_webhook_endpoint(id).await? {
        tracing::info!(endpoint = %id, "webhook endpoint removed");
        Ok(())
    } else {
        Err(WebhookError::NotFound(id.to_string()))
    }
}

/// The delivery log of endpoint `id`: its newest [`LOG_LENGTH`] deliveries.
///
/// # Errors
/// [`WebhookError::NotFound`]; a store failure.
pub async fn deliveries(engine: &Engine, id: &str) -> Result<Vec<WebhookDelivery>, WebhookError> {
    get(engine, id).await?;
    Ok(engine.store().list_deliveries(id, LOG_LENGTH).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_against_the_list() {
        assert_eq!(
            parse_events(&["refreshed,authorized", "refreshed"]).expect("known"),
            vec!["authorized", "refreshed"]
        );
        let error = parse_events(&["refreshed", "expired"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`expired`") && error.contains("needs_authorization"),
            "{error}"
        );
        assert!(parse_events::<&str>(&[]).is_err());
    }

    #[test]
    fn urls_follow_the_provider_rule() {
        assert!(check_url("https://hooks.example/granary", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", false).is_ok());
        assert!(check_url("http://hooks.example/granary", false).is_err());
        assert!(check_url("http://hooks.example/granary", true).is_ok());
        assert!(check_url("ftp://hooks.example/", true).is_err());
        assert!(check_url("not a url", false).is_err());
    }
}
