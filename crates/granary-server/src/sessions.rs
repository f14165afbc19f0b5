//! Admin sessions (in memory), their CSRF tokens, and the cookies of the admin page.
//!
//! A session is created by signing in with the admin token. The browser holds a random id in
//! an HttpOnly, SameSite=Lax cookie (Secure when the public URL is https); the server keeps
//! only its SHA-256 digest, with the session's CSRF token and expiry. Sessions do not survive
//! a restart: sign in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

use crate::secrets::{constant_time_eq, random_token, sha256_hex};

/// The session cookie.
pub const SESSION_COOKIE: &str = "granary_session";
/// The cookie of the sign-in form's CSRF token (double submit, before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "granary_login_csrf";
/// The cookie that binds an authorization's state to the browser that started it.
pub const STATE_COOKIE: &str = "granary_oauth_state";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long the state cookie lives (the engine's pending authorizations live 10 minutes).
pub const STATE_TTL: Duration = Duration::from_secs(15 * 60);

/// A signed-in admin.
#[derive(Clone)]
pub struct Session {
    /// The token every form of this session must carry.
    pub csrf: String,
    expires: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("csrf", &"[redacted]")
            .field("expires", &self.expires)
            .finish()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        constant_time_eq(&self.csrf, presented)
    }
}

/// A message shown once at the top of the next page (success, failure, information).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// `success`, `warning`, `error` or `info` (a CSS class).
    pub kind: &'static str,
    /// The headline.
    pub title: String,
    /// What happened (may be empty).
    pub cause: String,
    /// What to do about it (may be empty).
    pub fix: String,
}

impl Banner {
    /// A success banner.
    pub fn success(title: impl Into<String>) -> Self {
        Self {
            kind: "success",
            title: title.into(),
            cause: String::new(),
            fix: String::new(),
        }
    }

    /// An information banner.
    pub fn info(title: impl Into<String>) -> Self {
        Self {
            kind: "info",
            title: title.into(),
            cause: String::new(),
            fix: String::new(),
        }
    }

    /// An information banner with what happened.
    pub fn info_with(title: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            ..Self::info(title)
        }
    }

    /// A warning banner: it worked, but something needs the admin's attention.
    pub fn warning(
        title: impl Into<String>,
        cause: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            kind: "warning",
            title: title.into(),
            cause: cause.into(),
            fix: fix.into(),
        }
    }

    /// A failure banner with its cause and fix.
    pub fn error(
        title: impl Into<String>,
        cause: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            kind: "error",
            title: title.into(),
            cause: cause.into(),
            fix: fix.into(),
        }
    }
}

/// The sessions of one server process.
#[derive(Debug, Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<String, Session>>,
    flashes: Mutex<HashMap<String, Banner>>,
}

impl Sessions {
    /// Starts a session; returns the cookie value (the browser's id) and the session.
    pub fn create(&self) -> (String, Session) {
        let id = random_token(32);
        let session = Session {
            csrf: random_token(32),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(sha256_hex(&id), session.clone());
        // Banners of sessions that ended (expired, or signed out elsewhere) go with them.
        self.flashes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|digest, _| map.contains_key(digest));
        (id, session)
    }

    /// The live session of the request's session cookie, if any.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let map = self.lock();
        let session = map.get(&sha256_hex(&id))?;
        (session.expires > Instant::now()).then(|| session.clone())
    }

    /// Ends the session of the request's cookie.
    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.lock().remove(&sha256_hex(&id));
            self.flashes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&sha256_hex(&id));
        }
    }

    /// Keeps `banner` for the next page this session shows.
    /// Only a live session keeps one (a forged or expired cookie keeps nothing), at most one
    /// each, and those of ended sessions are dropped when the next session starts: the map
    /// never holds more banners than there are sessions.
    pub fn set_flash(&self, headers: &HeaderMap, banner: Banner) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            let digest = sha256_hex(&id);
            let live = self
                .lock()
                .get(&digest)
                .is_some_and(|s| s.expires > Instant::now());
            if live {
                self.flashes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(digest, banner);
            }
        }
    }

    /// The banner kept for this session, removed.
    pub fn take_flash(&self, headers: &HeaderMap) -> Option<Banner> {
        let id = cookie(headers, SESSION_COOKIE)?;
        self.flashes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&sha256_hex(&id))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when asked.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> String {
    let mut text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax",
        max_age.as_secs()
    );
    if secure {
        text.push_str("; Secure");
    }
    text
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    set_cookie(name, "", path, Duration::ZERO, secure)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_removed() {
        let sessions = Sessions::default();
        let (id, session) = sessions.create();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={id}")).unwrap(),
        );
        let found = sessions.from_headers(&headers).unwrap();
        assert!(found.csrf_ok(&session.csrf));
        assert!(!found.csrf_ok("forged"));
        sessions.remove(&headers);
        assert!(sessions.from_headers(&headers).is_none());
    }

    #[test]
    fn banners_are_kept_for_live_sessions_only_and_pruned() {
        let sessions = Sessions::default();
        let forged = {
            let mut headers = HeaderMap::new();
            headers.insert(
                COOKIE,
                HeaderValue::from_str(&format!("{SESSION_COOKIE}=forged")).unwrap(),
            );
            headers
        };
        for _ in 0..100 {
            sessions.set_flash(&forged, Banner::info("x"));
        }
        assert_eq!(sessions.flashes.lock().unwrap().len(), 0);
        let (id, _) = sessions.create();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={id}")).unwrap(),
        );
        sessions.set_flash(&headers, Banner::info("kept"));
        assert_eq!(sessions.take_flash(&headers).unwrap().title, "kept");
        sessions.set_flash(&headers, Banner::info("left behind"));
        // The session ends without taking its banner (expiry): the next sign-in prunes it.
        sessions.lock().clear();
        sessions.create();
        assert_eq!(sessions.flashes.lock().unwrap().len(), 0);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let text = set_cookie("a", "b", "/admin", Duration::from_secs(5), true);
        assert_eq!(
            text,
            "a=b; Path=/admin; Max-Age=5; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!set_cookie("a", "b", "/", Duration::ZERO, false).contains("Secure"));
    }
}
