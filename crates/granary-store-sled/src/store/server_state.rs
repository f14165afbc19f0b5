//! The server's state in sled: admin sessions (with their one-time banner) in the `sessions`
//! tree by digest, API keys in the `api_keys` tree by id; every write under the writer mutex.

use granary_store::{AdminSession, ApiKeyRecord, Error, Result, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Inner, SledStore};

/// A session as stored, with its banner.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    session: AdminSession,
    banner: Option<String>,
}

impl Inner {
    fn session(&self, digest: &str) -> Result<Option<StoredSession>> {
        self.read(&self.sessions, digest, || "an admin session".to_string())
    }
}

impl SledStore {
    pub(super) async fn sessions_create(&self, session: &AdminSession) -> Result<()> {
        let session = session.clone();
        self.write("creating an admin session", move |inner| {
            if inner.session(&session.digest)?.is_some() {
                return Err(Error::already_exists("admin session with this digest"));
            }
            let key = session.digest.clone();
            inner.put(
                &inner.sessions,
                &key,
                &StoredSession {
                    session,
                    banner: None,
                },
            )
        })
        .await
    }

    pub(super) async fn sessions_get(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<AdminSession>> {
        let digest = digest.to_string();
        self.run("reading an admin session", move |inner| {
            Ok(inner
                .session(&digest)?
                .map(|stored| stored.session)
                .filter(|session| !session.is_expired(now)))
        })
        .await
    }

    pub(super) async fn sessions_delete(&self, digest: &str) -> Result<bool> {
        let digest = digest.to_string();
        self.write("removing an admin session", move |inner| {
            Ok(inner
                .sessions
                .remove(digest.as_str())
                .map_err(inner.fail("removing an admin session"))?
                .is_some())
        })
        .await
    }

    pub(super) async fn sessions_set_banner(
        &self,
        digest: &str,
        banner: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (digest, banner) = (digest.to_string(), banner.to_string());
        self.write("keeping a banner", move |inner| {
            match inner.session(&digest)? {
                Some(mut stored) if !stored.session.is_expired(now) => {
                    stored.banner = Some(banner);
                    inner.put(&inner.sessions, &digest, &stored)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    pub(super) async fn sessions_take_banner(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let digest = digest.to_string();
        // Under the writer mutex: of concurrent takers one reads the banner, the others read
        // it cleared.
        self.write("taking a banner", move |inner| {
            match inner.session(&digest)? {
                Some(mut stored) if !stored.session.is_expired(now) && stored.banner.is_some() => {
                    let banner = stored.banner.take();
                    inner.put(&inner.sessions, &digest, &stored)?;
                    Ok(banner)
                }
                _ => Ok(None),
            }
        })
        .await
    }

    pub(super) async fn sessions_purge(&self, now: Timestamp) -> Result<u64> {
        self.write("purging expired admin sessions", move |inner| {
            let sessions: Vec<StoredSession> = inner.list(&inner.sessions, "admin session")?;
            let mut purged = 0;
            for stored in sessions.iter().filter(|s| s.session.is_expired(now)) {
                if inner
                    .sessions
                    .remove(stored.session.digest.as_str())
                    .map_err(inner.fail("purging admin sessions"))?
                    .is_some()
                {
                    purged += 1;
                }
            }
            Ok(purged)
        })
        .await
    }

    pub(super) async fn api_keys_create(&self, key: &ApiKeyRecord) -> Result<()> {
        let key = key.clone();
        self.write("creating an API key", move |inner| {
            let keys: Vec<ApiKeyRecord> = inner.list(&inner.api_keys, "API key")?;
            if keys
                .iter()
                .any(|k| k.id == key.id || k.digest == key.digest)
            {
                return Err(Error::already_exists(format!(
                    "API key `{}` (its id or its digest is taken)",
                    key.id
                )));
            }
            inner.put(&inner.api_keys, &key.id, &key)
        })
        .await
    }

    pub(super) async fn api_keys_list(&self) -> Result<Vec<ApiKeyRecord>> {
        // sled keeps keys in byte order: ordered by id.
        self.run("listing the API keys", move |inner| {
            inner.list(&inner.api_keys, "API key")
        })
        .await
    }

    pub(super) async fn api_keys_find(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        let digest = digest.to_string();
        self.run("finding an API key", move |inner| {
            let keys: Vec<ApiKeyRecord> = inner.list(&inner.api_keys, "API key")?;
            Ok(keys.into_iter().find(|k| k.digest == digest))
        })
        .await
    }

    pub(super) async fn api_keys_revoke(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write("revoking an API key", move |inner| {
            Ok(inner
                .api_keys
                .remove(id.as_str())
                .map_err(inner.fail("revoking an API key"))?
                .is_some())
        })
        .await
    }
}
