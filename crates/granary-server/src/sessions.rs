//! Admin sessions (in the store), their CSRF tokens and one-time banners, and the cookies of
//! the admin page.
//!
//! A session is created by signing in with the admin token. The browser holds a random id in
//! an HttpOnly, SameSite=Lax cookie (Secure when the public URL is https); the store keeps
//! only its SHA-256 digest, with the session's CSRF token and expiry, so that every server
//! node on the store knows the session, and a session survives a restart. Nothing of a
//! session is kept in a node's memory: a sign-out or expiry is seen by every node at once.
//!
//! A session's banner (the message of the next page) lives in the store too, serialised, and
//! is taken once atomically: whichever node renders the next page shows it, and no two nodes
//! both show it. [`web::require_admin`](crate::web::require_admin) takes it before an admin
//! page is rendered (into the [`Session`] the handler sees) and keeps the banner a handler
//! left on its response ([`NewBanner`]) before the response leaves.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use granary_store::{AdminSession, Store, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Result;
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

/// A signed-in admin, as a handler sees it.
#[derive(Clone)]
pub struct Session {
    /// The token every form of this session must carry.
    pub csrf: String,
    /// The digest of the session id (the store's key).
    digest: String,
    expires: Timestamp,
    /// The banner taken from the store for this request, until a page shows it.
    banner: Arc<Mutex<Option<Banner>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("csrf", &"[redacted]")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn from_record(record: AdminSession) -> Self {
        Self {
            csrf: record.csrf,
            digest: record.digest,
            expires: record.expires,
            banner: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        constant_time_eq(&self.csrf, presented)
    }

    /// The banner taken for this request, removed (the page that calls this shows it).
    pub fn take_banner(&self) -> Option<Banner> {
        self.cell().take()
    }

    fn cell(&self) -> std::sync::MutexGuard<'_, Option<Banner>> {
        self.banner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The banner a handler keeps for the next page, carried on its response (see
/// [`web::flash_to`](crate::web)) until the admin guard stores it.
#[derive(Debug, Clone)]
pub struct NewBanner(pub Banner);

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

/// The banner as stored: the kind by name.
#[derive(Serialize, Deserialize)]
struct StoredBanner {
    kind: String,
    title: String,
    cause: String,
    fix: String,
}

impl Banner {
    /// The banner as the store keeps it (JSON).
    fn to_stored(&self) -> String {
        serde_json::to_string(&StoredBanner {
            kind: self.kind.to_string(),
            title: self.title.clone(),
            cause: self.cause.clone(),
            fix: self.fix.clone(),
        })
        .unwrap_or_default()
    }

    /// The banner the store kept, or `None` when it cannot be read (it is dropped).
    fn from_stored(text: &str) -> Option<Self> {
        let stored: StoredBanner = serde_json::from_str(text).ok()?;
        let kind = match stored.kind.as_str() {
            "success" => "success",
            "warning" => "warning",
            "error" => "error",
            _ => "info",
        };
        Some(Self {
            kind,
            title: stored.title,
            cause: stored.cause,
            fix: stored.fix,
        })
    }
}

/// The admin sessions of the store (every server node on it sees the same ones).
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn store_error(doing: &str, error: granary_store::Error) -> crate::Error {
    crate::Error::store(doing, error)
}

impl Sessions {
    /// The sessions kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Starts a session; returns the cookie value (the browser's id) and the session. Ended
    /// sessions (and their banners) are purged first, so the store never holds many.
    pub async fn create(&self) -> Result<(String, Session)> {
        let now = now();
        if let Err(error) = self.store.purge_expired_sessions(now).await {
            tracing::warn!(%error, "cannot purge the expired admin sessions");
        }
        let id = random_token(32);
        let record = AdminSession {
            digest: sha256_hex(&id),
            csrf: random_token(32),
            created: now,
            expires: now.saturating_add(SESSION_TTL),
        };
        self.store
            .create_session(&record)
            .await
            .map_err(|e| store_error("starting an admin session", e))?;
        Ok((id, Session::from_record(record)))
    }

    /// The live session of the request's session cookie, if any (read from the store).
    pub async fn from_headers(&self, headers: &HeaderMap) -> Result<Option<Session>> {
        let Some(id) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let found = self
            .store
            .get_session(&sha256_hex(&id), now())
            .await
            .map_err(|e| store_error("reading an admin session", e))?;
        Ok(found.map(Session::from_record))
    }

    /// Ends the session of the request's cookie (on every node), with its banner.
    pub async fn remove(&self, headers: &HeaderMap) -> Result<()> {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.store
                .delete_session(&sha256_hex(&id))
                .await
                .map_err(|e| store_error("ending an admin session", e))?;
        }
        Ok(())
    }

    /// Takes the banner kept for `session` from the store (once: no other node gets it), into
    /// the session, for the page of this request ([`Session::take_banner`]).
    pub async fn load_banner(&self, session: &Session) -> Result<()> {
        let taken = self
            .store
            .take_session_banner(&session.digest, now())
            .await
            .map_err(|e| store_error("taking a banner", e))?;
        *session.cell() = taken.as_deref().and_then(Banner::from_stored);
        Ok(())
    }

    /// Keeps `banner` for the next page `session` shows, on whichever node renders it. Only
    /// a live session keeps one, at most one each, removed with the session.
    pub async fn keep_banner(&self, session: &Session, banner: &Banner) -> Result<bool> {
        self.store
            .set_session_banner(&session.digest, &banner.to_stored(), now())
            .await
            .map_err(|e| store_error("keeping a banner", e))
    }

    /// After a handler ran: keeps the banner its response carries, or else gives back the
    /// banner loaded for this request that no page showed.
    pub async fn settle(&self, session: &Session, new: Option<Banner>) -> Result<()> {
        let unshown = session.take_banner();
        if let Some(banner) = new.or(unshown) {
            self.keep_banner(session, &banner).await?;
        }
        Ok(())
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
    use granary_store::MemoryStore;

    use super::*;

    fn headers_of(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={id}")).unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_cookie_on_another_node_and_removed() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b) = (Sessions::new(Arc::clone(&store)), Sessions::new(store));
        let (id, session) = a.create().await.unwrap();
        let headers = headers_of(&id);
        let found = b.from_headers(&headers).await.unwrap().unwrap();
        assert!(found.csrf_ok(&session.csrf));
        assert!(!found.csrf_ok("forged"));
        a.remove(&headers).await.unwrap();
        assert!(b.from_headers(&headers).await.unwrap().is_none());
        assert!(
            b.from_headers(&headers_of("forged"))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_banner_kept_on_one_node_is_shown_once_by_another() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b) = (Sessions::new(Arc::clone(&store)), Sessions::new(store));
        let (id, session) = a.create().await.unwrap();
        let banner = Banner::warning("Saved ✓", "because", "do this");
        a.settle(&session, Some(banner.clone())).await.unwrap();
        let on_b = b.from_headers(&headers_of(&id)).await.unwrap().unwrap();
        b.load_banner(&on_b).await.unwrap();
        assert_eq!(on_b.take_banner(), Some(banner));
        let again = a.from_headers(&headers_of(&id)).await.unwrap().unwrap();
        a.load_banner(&again).await.unwrap();
        assert_eq!(again.take_banner(), None, "shown once");
    }

    #[tokio::test]
    async fn a_banner_no_page_showed_is_kept_for_the_next() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let sessions = Sessions::new(store);
        let (id, session) = sessions.create().await.unwrap();
        sessions
            .keep_banner(&session, &Banner::info("kept"))
            .await
            .unwrap();
        let first = sessions
            .from_headers(&headers_of(&id))
            .await
            .unwrap()
            .unwrap();
        sessions.load_banner(&first).await.unwrap();
        // The handler rendered no page: the banner goes back.
        sessions.settle(&first, None).await.unwrap();
        let next = sessions
            .from_headers(&headers_of(&id))
            .await
            .unwrap()
            .unwrap();
        sessions.load_banner(&next).await.unwrap();
        assert_eq!(next.take_banner().unwrap().title, "kept");
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
