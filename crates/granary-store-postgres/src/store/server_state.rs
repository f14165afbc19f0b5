//! The server's state in PostgreSQL: admin sessions, their one-time banners and API keys,
//! each method one statement of [`crate::sql`].

use granary_store::{AdminSession, ApiKeyRecord, Error, Result, Timestamp};
use tokio_postgres::Row;

use super::{PostgresStore, undecodable_row};
use crate::sql;

fn session(row: &Row) -> Result<AdminSession> {
    Ok(AdminSession {
        digest: row.try_get(0).map_err(undecodable_row)?,
        csrf: row.try_get(1).map_err(undecodable_row)?,
        created: Timestamp::from_unix_millis(row.try_get(2).map_err(undecodable_row)?),
        expires: Timestamp::from_unix_millis(row.try_get(3).map_err(undecodable_row)?),
    })
}

fn api_key(row: &Row) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get(0).map_err(undecodable_row)?,
        name: row.try_get(1).map_err(undecodable_row)?,
        role: row.try_get(2).map_err(undecodable_row)?,
        digest: row.try_get(3).map_err(undecodable_row)?,
        created: Timestamp::from_unix_millis(row.try_get(4).map_err(undecodable_row)?),
    })
}

impl PostgresStore {
    pub(super) async fn sessions_create(&self, session: &AdminSession) -> Result<()> {
        let rows = self
            .rows(
                "creating an admin session",
                sql::CREATE_SESSION,
                &[
                    &session.digest,
                    &session.csrf,
                    &session.created.as_unix_millis(),
                    &session.expires.as_unix_millis(),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Err(Error::already_exists("admin session with this digest"));
        }
        Ok(())
    }

    pub(super) async fn sessions_get(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<AdminSession>> {
        let rows = self
            .rows(
                "reading an admin session",
                sql::GET_SESSION,
                &[&digest, &now.as_unix_millis()],
            )
            .await?;
        rows.first().map(session).transpose()
    }

    pub(super) async fn sessions_delete(&self, digest: &str) -> Result<bool> {
        let rows = self
            .rows("removing an admin session", sql::DELETE_SESSION, &[&digest])
            .await?;
        Ok(!rows.is_empty())
    }

    pub(super) async fn sessions_set_banner(
        &self,
        digest: &str,
        banner: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let rows = self
            .rows(
                "keeping a banner",
                sql::SET_SESSION_BANNER,
                &[&digest, &banner, &now.as_unix_millis()],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    pub(super) async fn sessions_take_banner(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let rows = self
            .rows(
                "taking a banner",
                sql::TAKE_SESSION_BANNER,
                &[&digest, &now.as_unix_millis()],
            )
            .await?;
        rows.first()
            .map(|row| row.try_get(0).map_err(undecodable_row))
            .transpose()
    }

    pub(super) async fn sessions_purge(&self, now: Timestamp) -> Result<u64> {
        let rows = self
            .rows(
                "purging expired admin sessions",
                sql::PURGE_SESSIONS,
                &[&now.as_unix_millis()],
            )
            .await?;
        let count: i64 = rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(undecodable_row)?
            .unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub(super) async fn api_keys_create(&self, key: &ApiKeyRecord) -> Result<()> {
        let rows = self
            .rows(
                "creating an API key",
                sql::CREATE_API_KEY,
                &[
                    &key.id,
                    &key.name,
                    &key.role,
                    &key.digest,
                    &key.created.as_unix_millis(),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Err(Error::already_exists(format!(
                "API key `{}` (its id or its digest is taken)",
                key.id
            )));
        }
        Ok(())
    }

    pub(super) async fn api_keys_list(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = self
            .rows("listing the API keys", sql::LIST_API_KEYS, &[])
            .await?;
        rows.iter().map(api_key).collect()
    }

    pub(super) async fn api_keys_find(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        let rows = self
            .rows("finding an API key", sql::FIND_API_KEY, &[&digest])
            .await?;
        rows.first().map(api_key).transpose()
    }

    pub(super) async fn api_keys_revoke(&self, id: &str) -> Result<bool> {
        let rows = self
            .rows("revoking an API key", sql::REVOKE_API_KEY, &[&id])
            .await?;
        Ok(!rows.is_empty())
    }
}
