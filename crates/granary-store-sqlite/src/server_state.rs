//! The server's state in SQLite: admin sessions (with their one-time banner) and API keys.

use granary_store::{AdminSession, ApiKeyRecord, Error, Result, Timestamp};
use rusqlite::{OptionalExtension, Row, params};

use crate::SqliteStore;
use crate::store::immediate;

const SESSION_COLUMNS: &str = "digest, csrf, created, expires";
const API_KEY_COLUMNS: &str = "id, name, role, digest, created";

fn session(row: &Row<'_>) -> rusqlite::Result<AdminSession> {
    Ok(AdminSession {
        digest: row.get(0)?,
        csrf: row.get(1)?,
        created: Timestamp::from_unix_millis(row.get(2)?),
        expires: Timestamp::from_unix_millis(row.get(3)?),
    })
}

fn api_key(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get(2)?,
        digest: row.get(3)?,
        created: Timestamp::from_unix_millis(row.get(4)?),
    })
}

impl SqliteStore {
    pub(crate) async fn sessions_create(&self, session: &AdminSession) -> Result<()> {
        let session = session.clone();
        self.call("creating an admin session", move |connection| {
            // One statement: a taken digest inserts nothing.
            let inserted = connection
                .prepare_cached(&format!(
                    "INSERT INTO admin_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING"
                ))?
                .execute(params![
                    session.digest,
                    session.csrf,
                    session.created.as_unix_millis(),
                    session.expires.as_unix_millis(),
                ])?;
            if inserted == 0 {
                return Err(Error::already_exists("admin session with this digest").into());
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn sessions_get(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<AdminSession>> {
        let digest = digest.to_string();
        self.call("reading an admin session", move |connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM admin_sessions WHERE digest = ?1 AND expires > ?2"
                ))?
                .query_row(params![digest, now.as_unix_millis()], session)
                .optional()?)
        })
        .await
    }

    pub(crate) async fn sessions_delete(&self, digest: &str) -> Result<bool> {
        let digest = digest.to_string();
        self.call("removing an admin session", move |connection| {
            let removed = connection
                .prepare_cached("DELETE FROM admin_sessions WHERE digest = ?1")?
                .execute([digest])?;
            Ok(removed > 0)
        })
        .await
    }

    pub(crate) async fn sessions_set_banner(
        &self,
        digest: &str,
        banner: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (digest, banner) = (digest.to_string(), banner.to_string());
        self.call("keeping a banner", move |connection| {
            let changed = connection
                .prepare_cached(
                    "UPDATE admin_sessions SET banner = ?2 WHERE digest = ?1 AND expires > ?3",
                )?
                .execute(params![digest, banner, now.as_unix_millis()])?;
            Ok(changed > 0)
        })
        .await
    }

    pub(crate) async fn sessions_take_banner(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let digest = digest.to_string();
        self.call("taking a banner", move |connection| {
            // The write lock is taken before the read: of concurrent takers (in any process)
            // one reads the banner, the others read it cleared.
            let tx = immediate(connection)?;
            let banner: Option<String> = tx
                .prepare_cached(
                    "SELECT banner FROM admin_sessions \
                     WHERE digest = ?1 AND expires > ?2 AND banner IS NOT NULL",
                )?
                .query_row(params![digest, now.as_unix_millis()], |row| row.get(0))
                .optional()?;
            if banner.is_some() {
                tx.prepare_cached("UPDATE admin_sessions SET banner = NULL WHERE digest = ?1")?
                    .execute([&digest])?;
            }
            tx.commit()?;
            Ok(banner)
        })
        .await
    }

    pub(crate) async fn sessions_purge(&self, now: Timestamp) -> Result<u64> {
        self.call("purging expired admin sessions", move |connection| {
            let removed = connection
                .prepare_cached("DELETE FROM admin_sessions WHERE expires <= ?1")?
                .execute([now.as_unix_millis()])?;
            Ok(u64::try_from(removed).unwrap_or(u64::MAX))
        })
        .await
    }

    pub(crate) async fn api_keys_create(&self, key: &ApiKeyRecord) -> Result<()> {
        let key = key.clone();
        self.call("creating an API key", move |connection| {
            // One statement: a taken id or digest inserts nothing.
            let inserted = connection
                .prepare_cached(&format!(
                    "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT DO NOTHING"
                ))?
                .execute(params![
                    key.id,
                    key.name,
                    key.role,
                    key.digest,
                    key.created.as_unix_millis(),
                ])?;
            if inserted == 0 {
                return Err(Error::already_exists(format!(
                    "API key `{}` (its id or its digest is taken)",
                    key.id
                ))
                .into());
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn api_keys_list(&self) -> Result<Vec<ApiKeyRecord>> {
        self.call("listing the API keys", move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id"
            ))?;
            let keys = statement
                .query_map([], api_key)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
        })
        .await
    }

    pub(crate) async fn api_keys_find(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        let digest = digest.to_string();
        self.call("finding an API key", move |connection| {
            Ok(connection
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE digest = ?1"
                ))?
                .query_row([digest], api_key)
                .optional()?)
        })
        .await
    }

    pub(crate) async fn api_keys_revoke(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.call("revoking an API key", move |connection| {
            let removed = connection
                .prepare_cached("DELETE FROM api_keys WHERE id = ?1")?
                .execute([id])?;
            Ok(removed > 0)
        })
        .await
    }
}
