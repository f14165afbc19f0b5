//! The one rule for where a call to an instance's API may go: a path under its API base URL
//! and nowhere else, for the server's proxy and the library's [`super::AuthorizedClient`]; and
//! the header the token goes in ([`ApiTarget::token_header_for`]).
//!
//! A path that could leave the base (scheme, host, port and base path) is refused before
//! anything is sent ([`refused`]): `.` and `..` segments (also `%2e`), an encoded `/` or `\`
//! (`%2f`, `%5c`), a backslash, an `@` (also `%40`), an absolute URL (`scheme://`,
//! `http:`), a leading `/` (`//host`). The URL built is then checked once more to be under
//! the base ([`url_under`]), so an API key can never send a token elsewhere.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use url::Url;

use super::setup::ApiTarget;
use super::{AccessToken, Engine, EngineError, EngineResult};

/// How long an instance's [`ApiTarget`] is used without being read again from its records
/// (the same bound as a change made by another process).
pub const API_TARGET_FRESH: Duration = Duration::from_secs(1);

/// An instance's [`ApiTarget`] as the proxy and the authorized client last resolved it.
pub(crate) struct CachedTarget {
    /// The token it was resolved with (its kept values fill the base URL).
    token: AccessToken,
    /// When.
    at: Instant,
    target: ApiTarget,
}

impl Engine {
    /// [`Engine::api_target`] for a call made with `token`, without reading the store on
    /// every call: the target resolved for the same token within [`API_TARGET_FRESH`] is
    /// used again. A new token (refreshed: its kept values may move the base URL), a change
    /// of the instance seen by this process (`forget`), or the time passing make it resolve
    /// again, so a change of the instance's profile or of its integration's document is
    /// used within a second.
    ///
    /// # Errors
    /// As [`Engine::api_target`].
    pub async fn api_target_for(
        &self,
        instance: &str,
        token: &AccessToken,
    ) -> EngineResult<ApiTarget> {
        let cached = self
            .inner
            .api_targets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(instance)
            .filter(|c| c.token.same_token(token) && c.at.elapsed() < API_TARGET_FRESH)
            .map(|c| c.target.clone());
        if let Some(target) = cached {
            return Ok(target);
        }
        let target = self.api_target(instance).await?;
        let mut targets = self
            .inner
            .api_targets
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Bounded like the token cache: the stale ones go first, then all.
        if targets.len() >= self.inner.token_cache_capacity && !targets.contains_key(instance) {
            targets.retain(|_, c| c.at.elapsed() < API_TARGET_FRESH);
            if targets.len() >= self.inner.token_cache_capacity {
                targets.clear();
            }
        }
        targets.insert(
            instance.to_string(),
            CachedTarget {
                token: token.clone(),
                at: Instant::now(),
                target: target.clone(),
            },
        );
        Ok(target)
    }

    /// Drops the resolved target of `instance`.
    pub(crate) fn forget_api_target(&self, instance: &str) {
        self.inner
            .api_targets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance);
    }
}

/// A path refused by the rule: the rule's name and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRefused {
    /// The rule's name (`no-dot-segments`, `under-base-url`, ...).
    pub rule: &'static str,
    /// What it says, with the fix.
    pub detail: String,
}

impl std::fmt::Display for PathRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the path would leave the API's base URL: refused by the rule `{}`: {}",
            self.rule, self.detail
        )
    }
}

impl std::error::Error for PathRefused {}

/// Why no URL could be built for a call to an instance's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiUrlError {
    /// Neither the provider profile nor the integration's document names the API's base URL.
    NoBaseUrl,
    /// The path breaks the rule.
    Refused(PathRefused),
}

impl std::fmt::Display for ApiUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoBaseUrl => f.write_str(
                "the instance's API has no base URL: its integration's document names no server \
                 (OpenAPI `servers`, Swagger `host`) and no provider profile gives one; import a \
                 document that names its server, or set the instance's profile \
                 `{\"api\": {\"base_url\": \"...\"}}`",
            ),
            Self::Refused(refused) => refused.fmt(f),
        }
    }
}

impl std::error::Error for ApiUrlError {}

impl From<ApiUrlError> for EngineError {
    fn from(error: ApiUrlError) -> Self {
        EngineError::Invalid(error.to_string())
    }
}

fn refusal(rule: &'static str, detail: &str) -> Option<PathRefused> {
    Some(PathRefused {
        rule,
        detail: detail.to_string(),
    })
}

/// The rule a raw API path (percent-encoded as sent, relative to the base URL) breaks, or
/// `None` when it stays under the base URL.
pub fn refused(path: &str) -> Option<PathRefused> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("://") || lower.starts_with("http:") || lower.starts_with("https:") {
        return refusal(
            "no-absolute-url",
            "the path is an absolute URL: give a path under the API's base URL",
        );
    }
    if path.starts_with('/') {
        return refusal(
            "no-leading-slash",
            "the path starts with `/` (`//host` names another host): give the path without it",
        );
    }
    if path.contains('\\') {
        return refusal("no-backslash", "the path holds a backslash");
    }
    if lower.contains("%2f") || lower.contains("%5c") {
        return refusal(
            "no-encoded-slash",
            "the path holds an encoded `/` or `\\` (%2F, %5C), which an API may read as a \
             separator",
        );
    }
    if path.contains('@') || lower.contains("%40") {
        return refusal(
            "no-at-sign",
            "the path holds an `@` (or %40), which could name a user and host",
        );
    }
    let dot = |segment: &str| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    };
    if path.split('/').any(dot) {
        return refusal(
            "no-dot-segments",
            "the path has a `.` or `..` segment (also as %2E), which would leave the API's \
             base path",
        );
    }
    None
}

/// The URL a raw API path and query go to under `base`: refused when the path breaks a rule
/// of [`refused`], or when the URL built would not be under `base` (same scheme, host, port
/// and credentials, path under the base path).
///
/// # Errors
/// [`PathRefused`] naming the rule.
pub fn url_under(base: &Url, path: &str, query: Option<&str>) -> Result<Url, PathRefused> {
    if let Some(refused) = refused(path) {
        return Err(refused);
    }
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{path}"));
    url.set_query(query);
    url.set_fragment(None);
    let inside = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username() == base.username()
        && url.password() == base.password()
        && url.path().starts_with(&format!("{base_path}/"));
    if inside {
        Ok(url)
    } else {
        Err(PathRefused {
            rule: "under-base-url",
            detail: format!("the path does not stay under the API's base URL {base}"),
        })
    }
}

/// The prefix of the `Authorization` header when the profile names none.
pub(crate) const DEFAULT_PREFIX: &str = "Bearer ";

impl ApiTarget {
    /// The URL of a call to the API: `path` (raw, relative to the base URL) and `query` under
    /// the base URL, by the rule of this module.
    ///
    /// # Errors
    /// [`ApiUrlError::NoBaseUrl`] when there is no base URL, [`ApiUrlError::Refused`] when
    /// the path would leave it.
    pub fn url_for(&self, path: &str, query: Option<&str>) -> Result<Url, ApiUrlError> {
        let base = self.base_url.as_ref().ok_or(ApiUrlError::NoBaseUrl)?;
        url_under(base, path, query).map_err(ApiUrlError::Refused)
    }

    /// The header that carries `token`, marked sensitive. In `Authorization` with the
    /// default prefix, the token's type as the provider gave it (`Bearer` when it gave none
    /// or `bearer`); in any other header, or with a prefix the profile sets, that prefix.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when the profile's header name is no header name;
    /// [`EngineError::Internal`] when the token holds characters a header cannot.
    pub fn token_header_for(
        &self,
        token: &AccessToken,
    ) -> Result<(HeaderName, HeaderValue), EngineError> {
        self.token_header_with(token.token_type(), token.secret())
    }

    /// [`ApiTarget::token_header_for`] of a token of type `token_type` (as the provider
    /// gave it) and value `secret`.
    ///
    /// # Errors
    /// As [`ApiTarget::token_header_for`].
    pub fn token_header_with(
        &self,
        token_type: &str,
        secret: &str,
    ) -> Result<(HeaderName, HeaderValue), EngineError> {
        let name = HeaderName::from_bytes(self.token_header.as_bytes()).map_err(|_| {
            EngineError::Invalid(format!(
                "the provider profile's token header `{}` is no HTTP header name: fix the \
                 profile's `api.token_header`",
                self.token_header
            ))
        })?;
        let text = if name == reqwest::header::AUTHORIZATION && self.token_prefix == DEFAULT_PREFIX
        {
            let kind = match token_type.trim() {
                "" => "Bearer",
                kind if kind.eq_ignore_ascii_case("bearer") => "Bearer",
                kind => kind,
            };
            format!("{kind} {secret}")
        } else {
            self.header_value(secret)
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            EngineError::Internal(
                "the access token cannot be sent in a header (it holds characters a header \
                 cannot, or the profile's token prefix does)"
                    .to_string(),
            )
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str) -> Option<&'static str> {
        refused(path).map(|refused| refused.rule)
    }

    #[test]
    fn paths_that_leave_the_base_are_refused_by_name() {
        for (path, expected) in [
            ("../admin", "no-dot-segments"),
            ("a/../../x", "no-dot-segments"),
            ("a/%2e%2e/x", "no-dot-segments"),
            ("a/.%2E/x", "no-dot-segments"),
            ("./x", "no-dot-segments"),
            ("a%2f..%2fb", "no-encoded-slash"),
            ("a%5Cb", "no-encoded-slash"),
            ("a\\b", "no-backslash"),
            ("http://evil.example/x", "no-absolute-url"),
            ("HTTPS:evil.example", "no-absolute-url"),
            ("x/https://evil.example", "no-absolute-url"),
            ("/evil.example/x", "no-leading-slash"),
            ("user@evil.example", "no-at-sign"),
            ("a%40b", "no-at-sign"),
        ] {
            assert_eq!(rule(path), Some(expected), "{path}");
        }
        for path in [
            "users/me",
            "v1/spreadsheets/x:batchUpdate",
            "a/...",
            "a/.b",
            "a%20b",
        ] {
            assert_eq!(refused(path), None, "{path}");
        }
    }

    #[test]
    fn the_target_stays_under_the_base() {
        let base = Url::parse("https://api.example/v2/").unwrap();
        let url = url_under(&base, "users/me", Some("a=1&b=%2F")).unwrap();
        assert_eq!(url.as_str(), "https://api.example/v2/users/me?a=1&b=%2F");
        let base = Url::parse("https://api.example/v2").unwrap();
        assert_eq!(
            url_under(&base, "x", None).unwrap().as_str(),
            "https://api.example/v2/x"
        );
        // What the rules refuse first is refused here too.
        assert_eq!(
            url_under(&base, "%2e%2e/admin", None).unwrap_err().rule,
            "no-dot-segments"
        );
        assert_eq!(
            url_under(&base, "../admin", None).unwrap_err().rule,
            "no-dot-segments"
        );
        let root = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            url_under(&root, "a/b", None).unwrap().as_str(),
            "http://127.0.0.1:9/a/b"
        );
    }

    #[test]
    fn a_target_without_base_url_says_so() {
        let target = ApiTarget {
            base_url: None,
            token_header: "Authorization".to_string(),
            token_prefix: DEFAULT_PREFIX.to_string(),
        };
        assert_eq!(target.url_for("x", None), Err(ApiUrlError::NoBaseUrl));
        let target = ApiTarget {
            base_url: Some(Url::parse("https://api.example/v1").unwrap()),
            ..target
        };
        assert_eq!(
            target.url_for("a/b", Some("c=d")).unwrap().as_str(),
            "https://api.example/v1/a/b?c=d"
        );
        assert!(matches!(
            target.url_for("//evil.example", None),
            Err(ApiUrlError::Refused(PathRefused {
                rule: "no-leading-slash",
                ..
            }))
        ));
    }

    #[test]
    fn the_token_goes_in_the_header_the_target_names() {
        let mut target = ApiTarget {
            base_url: None,
            token_header: "Authorization".to_string(),
            token_prefix: DEFAULT_PREFIX.to_string(),
        };
        let header = |target: &ApiTarget, kind: &str| {
            let (name, value) = target.token_header_with(kind, "t0k").unwrap();
            assert!(value.is_sensitive());
            (name.to_string(), value.to_str().unwrap().to_string())
        };
        for (kind, sent) in [
            ("", "Bearer t0k"),
            ("bearer", "Bearer t0k"),
            ("BEARER", "Bearer t0k"),
            ("MAC", "MAC t0k"),
        ] {
            assert_eq!(
                header(&target, kind),
                ("authorization".to_string(), sent.to_string()),
                "{kind}"
            );
        }
        target.token_prefix = "token ".to_string();
        assert_eq!(header(&target, "bearer").1, "token t0k");
        target.token_header = "X-Shopify-Access-Token".to_string();
        target.token_prefix = String::new();
        assert_eq!(
            header(&target, "bearer"),
            ("x-shopify-access-token".to_string(), "t0k".to_string())
        );
        target.token_header = "bad header".to_string();
        assert!(matches!(
            target.token_header_with("bearer", "t0k"),
            Err(EngineError::Invalid(_))
        ));
        target.token_header = "X-Token".to_string();
        assert!(matches!(
            target.token_header_with("bearer", "a\nb"),
            Err(EngineError::Internal(_))
        ));
    }
}
