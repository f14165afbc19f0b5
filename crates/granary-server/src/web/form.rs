//! Admin forms: the body as name/value pairs (repeated names kept), checked for the CSRF token.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::sessions::Session;

/// The largest form body accepted (documents are imported through multipart, not here).
const LIMIT: usize = 1024 * 1024;

/// A urlencoded form as pairs, in order.
#[derive(Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

/// Names only: a form carries secrets (the CSRF token, a client secret, the admin token,
/// extra token values).
impl std::fmt::Debug for FormData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| format!("{name}=[redacted]")))
            .finish()
    }
}

impl FormData {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default()
    }

    /// The first value of `name` untrimmed (secrets keep their spaces).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// Whether a checkbox `name` was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(key, value)| key == name && !value.is_empty())
    }
}

/// A form posted by a signed-in admin with the session's CSRF token; anything else is
/// refused with 403 before the handler runs.
#[derive(Debug)]
pub struct AdminForm(pub FormData);

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = request.extensions().get::<Session>().cloned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if body.len() > LIMIT {
            return Err((StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response());
        }
        let form = FormData::parse(&body);
        match session {
            Some(session) if session.csrf_ok(&form.get("csrf")) => Ok(Self(form)),
            _ => Err(csrf_refused()),
        }
    }
}

/// The answer to a form without the session's CSRF token.
pub fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "403 Forbidden: this form has no valid CSRF token (it may come from another site, or \
         from a page older than your session): reload the page and submit it again\n",
    )
        .into_response()
}
