//! [`SqliteStore`]: the [`Store`] methods as SQL run on the connection thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use granary_store::{
    AdminSession, ApiKeyRecord, CHANGES_KEPT, Capabilities, Change, Changes, DeliveryAttempt,
    DeliveryOutcome, Error, Instance, InstanceCounts, InstanceFilter, InstanceToken,
    InstanceWithToken, Integration, Lease, PendingAuthorization, ReconnectLink, Result, Sealed,
    Store, Timestamp, TokenRecord, WebhookDelivery, WebhookEndpoint,
};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::codec::{
    self, INSTANCE_COLUMNS, PENDING_COLUMNS, TOKEN_COLUMNS, client_auth_text, json, map_json,
    status_text, version_to,
};

/// The SQL limit of `limit` (SQLite's is a signed 64-bit integer).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The due tokens by `column` (`expires_at` or `obtained_at`, each with its index on
/// (column, instance)): one index range scan, in (column, instance) order.
fn due_tokens(
    connection: &Connection,
    column: &'static str,
    before: Timestamp,
    after: Option<(Timestamp, String)>,
    limit: usize,
) -> Done<Vec<InstanceToken>> {
    let columns = format!("instance, {TOKEN_COLUMNS}");
    let raws = match after {
        None => {
            let sql = format!(
                "SELECT {columns} FROM tokens WHERE {column} < ?1 \
                 ORDER BY {column}, instance LIMIT ?2"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            statement
                .query_map(
                    params![before.as_unix_millis(), sql_limit(limit)],
                    raw_instance_token,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
        Some((at, instance)) => {
            // A row-value comparison, which SQLite runs as a range on the index.
            let sql = format!(
                "SELECT {columns} FROM tokens WHERE {column} < ?1 AND ({column}, instance) > (?2, ?3) \
                 ORDER BY {column}, instance LIMIT ?4"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            statement
                .query_map(
                    params![
                        before.as_unix_millis(),
                        at.as_unix_millis(),
                        instance,
                        sql_limit(limit)
                    ],
                    raw_instance_token,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(raws
        .into_iter()
        .map(|(instance, raw)| {
            raw.decode(&instance)
                .map(|token| InstanceToken { instance, token })
        })
        .collect::<Result<Vec<_>>>()?)
}

/// An instance id (column 0) and the token columns after it.
fn raw_instance_token(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, codec::RawToken)> {
    Ok((row.get(0)?, codec::raw_token_at(row, 1)?))
}
use crate::connection::{self, Job, ThreadStopped};
use crate::errors::map;

/// How a [`SqliteStore`] opens its file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a write waits for another connection's lock before it fails (default 10 s).
    pub busy_timeout: Duration,
    /// A cap on the database size in pages (`PRAGMA max_page_count`; pages are 4 KiB):
    /// a write that would grow the file beyond it fails like a full disk and writes
    /// nothing. `None` (the default): no cap.
    pub max_page_count: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(10),
            max_page_count: None,
        }
    }
}

/// A granary store in one SQLite file, with its own connection thread.
///
/// Open it once per process and share it as `Arc<dyn Store>`; other processes may open the
/// same file at the same time. Dropping the last handle lets the queued jobs finish, then
/// closes the connection and ends the thread.
#[derive(Debug)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: Arc<PathBuf>,
}

/// A failure inside a job: already a store error, or SQLite's (mapped with what the job was
/// doing).
pub(crate) enum Fault {
    Store(Error),
    Sqlite(rusqlite::Error),
}

impl From<Error> for Fault {
    fn from(error: Error) -> Self {
        Self::Store(error)
    }
}

impl From<rusqlite::Error> for Fault {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

pub(crate) type Done<T> = std::result::Result<T, Fault>;

impl SqliteStore {
    /// Opens (creating when missing) the granary database at `path`, with default options.
    ///
    /// ```
    /// use granary_store::Store;
    /// use granary_store_sqlite::SqliteStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> granary_store::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("granary.sqlite");
    /// let store = SqliteStore::open(&path).await?;
    /// assert!(store.capabilities().shared_between_processes);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Fails with [`Error::Corrupt`] when the file is not a granary database, with
    /// [`Error::Unsupported`] when a newer granary wrote it, and with [`Error::Backend`]
    /// when it cannot be opened or written (missing folder, read-only location, full disk).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database at `path` with `options`.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let jobs = connection::start(path.clone(), options).await?;
        Ok(Self {
            jobs,
            path: Arc::new(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `job` on the connection thread and awaits its result.
    pub(crate) async fn call<T, F>(&self, doing: &'static str, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Done<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let path = Arc::clone(&self.path);
        let job: Job = Box::new(move |connection| {
            let result = job(connection).map_err(|fault| match fault {
                Fault::Store(error) => error,
                Fault::Sqlite(error) => map(error, doing, &path),
            });
            let _ = reply.send(result);
        });
        let stopped = || {
            Error::backend(
                format!("cannot reach the database {}", self.path.display()),
                ThreadStopped,
            )
        };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

pub(crate) fn immediate(connection: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    connection.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn instance_exists(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT 1 FROM instances WHERE id = ?1")?
        .exists([id])
}

fn integration_exists(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT 1 FROM integrations WHERE name = ?1")?
        .exists([name])
}

fn require_instance(tx: &Transaction<'_>, id: &str) -> Done<()> {
    if instance_exists(tx, id)? {
        Ok(())
    } else {
        Err(Error::not_found(format!("instance `{id}`")).into())
    }
}

/// Prune the change feed every this many changes (a batch delete of the oldest rows, at
/// most `PRUNE_EVERY` of them, on the b-tree's first pages).
const PRUNE_EVERY: i64 = 64;

/// Appends the change of `instance` in the write's transaction `tx`, and every
/// [`PRUNE_EVERY`] changes drops those older than the newest [`CHANGES_KEPT`].
fn append_change(tx: &Transaction<'_>, instance: &str) -> Done<()> {
    tx.prepare_cached("INSERT INTO changes (instance) VALUES (?1)")?
        .execute([instance])?;
    let seq = tx.last_insert_rowid();
    let kept = i64::try_from(CHANGES_KEPT).unwrap_or(i64::MAX);
    if seq % PRUNE_EVERY == 0 && seq > kept {
        tx.prepare_cached("DELETE FROM changes WHERE seq <= ?1")?
            .execute([seq - kept])?;
    }
    Ok(())
}

/// The highest change number ever given (`sqlite_sequence` keeps it after pruning), or 0.
fn latest_change(connection: &Connection) -> Done<u64> {
    let raw: Option<i64> = connection
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(raw.map_or(Ok(0), |raw| codec::version_from(raw, "the change counter"))?)
}

/// The version compare-and-swap of `put_token`, with its change, inside `tx`.
fn write_token(
    tx: &Transaction<'_>,
    instance: &str,
    token: &TokenRecord,
    expected_version: Option<u64>,
) -> Done<u64> {
    let what = || format!("token of instance `{instance}`");
    let current: Option<i64> = tx
        .prepare_cached("SELECT version FROM tokens WHERE instance = ?1")?
        .query_row([instance], |row| row.get(0))
        .optional()?;
    let current = current
        .map(|raw| codec::version_from(raw, &what()))
        .transpose()?;
    if current != expected_version {
        return Err(Error::version_conflict(what(), expected_version, current).into());
    }
    let version = current.map_or(1, |v| v + 1);
    let last_refresh = token.last_refresh.as_ref().map(json).transpose()?;
    let sql = format!(
        "INSERT OR REPLACE INTO tokens (instance, {TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    );
    tx.prepare_cached(&sql)?.execute(params![
        instance,
        token.access_token.as_bytes(),
        token.refresh_token.as_ref().map(|s| s.as_bytes()),
        token.token_type,
        token.scope,
        token.expires_at.map(Timestamp::as_unix_millis),
        token.obtained_at.as_unix_millis(),
        last_refresh,
        version_to(version)?,
        map_json(&token.kept)?,
    ])?;
    append_change(tx, instance)?;
    Ok(version)
}

/// Writes every column of `instance` with `version` (insert or replace).
fn write_instance(tx: &Transaction<'_>, instance: &Instance, version: u64) -> Done<()> {
    let sql = format!(
        "INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
    );
    tx.prepare_cached(&sql)?.execute(params![
        instance.id,
        instance.integration,
        instance.scheme,
        instance.client_id,
        instance.client_secret.as_ref().map(|s| s.as_bytes()),
        json(&instance.scopes)?,
        instance.redirect_uri,
        instance.authorization_url,
        instance.token_url,
        json(&instance.extra_authorization_params)?,
        json(&instance.extra_token_params)?,
        json(&instance.extra_token_headers)?,
        client_auth_text(instance.client_auth),
        status_text(instance.status),
        instance.created.as_unix_millis(),
        instance.updated.as_unix_millis(),
        version_to(version)?,
        instance
            .token_lifetime
            .map(|secs| i64::try_from(secs).unwrap_or(i64::MAX)),
        map_json(&instance.connection)?,
        instance.profile.as_ref().map(json).transpose()?,
    ])?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.durable().shared_between_processes()
    }

    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        let integration = integration.clone();
        self.call("writing an integration", move |connection| {
            let flows = json(&integration.flows)?;
            connection
                .prepare_cached(
                    "INSERT OR REPLACE INTO integrations (name, source_digest, flows, created) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    integration.name,
                    integration.source_digest,
                    flows,
                    integration.created.as_unix_millis()
                ])?;
            Ok(())
        })
        .await
    }

    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        let name = name.to_string();
        self.call("reading an integration", move |connection| {
            let raw = connection
                .prepare_cached(
                    "SELECT name, source_digest, flows, created FROM integrations WHERE name = ?1",
                )?
                .query_row([&name], codec::raw_integration)
                .optional()?;
            Ok(raw.map(codec::RawIntegration::decode).transpose()?)
        })
        .await
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        self.call("listing integrations", |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT name, source_digest, flows, created FROM integrations ORDER BY name",
            )?;
            let raws = statement
                .query_map([], codec::raw_integration)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(raws
                .into_iter()
                .map(codec::RawIntegration::decode)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_integration(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.call("deleting an integration", move |connection| {
            let tx = immediate(connection)?;
            let user: Option<String> = tx
                .prepare_cached(
                    "SELECT id FROM instances WHERE integration = ?1 ORDER BY id LIMIT 1",
                )?
                .query_row([&name], |row| row.get(0))
                .optional()?;
            if let Some(user) = user {
                return Err(Error::conflict(
                    format!("integration `{name}`"),
                    format!("instance `{user}` still belongs to it; delete its instances first"),
                )
                .into());
            }
            let removed = tx
                .prepare_cached("DELETE FROM integrations WHERE name = ?1")?
                .execute([&name])?;
            tx.commit()?;
            Ok(removed > 0)
        })
        .await
    }

    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        let instance = instance.clone();
        self.call("creating an instance", move |connection| {
            let tx = immediate(connection)?;
            if instance_exists(&tx, &instance.id)? {
                return Err(Error::already_exists(format!("instance `{}`", instance.id)).into());
            }
            if !integration_exists(&tx, &instance.integration)? {
                return Err(
                    Error::not_found(format!("integration `{}`", instance.integration)).into(),
                );
            }
            write_instance(&tx, &instance, 1)?;
            append_change(&tx, &instance.id)?;
            tx.commit()?;
            Ok(1)
        })
        .await
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        let id = id.to_string();
        self.call("reading an instance", move |connection| {
            let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1");
            let raw = connection
                .prepare_cached(&sql)?
                .query_row([&id], codec::raw_instance)
                .optional()?;
            Ok(raw.map(codec::RawInstance::decode).transpose()?)
        })
        .await
    }

    async fn list_instances(&self) -> Result<Vec<Instance>> {
        self.call("listing instances", |connection| {
            let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY id");
            let mut statement = connection.prepare_cached(&sql)?;
            let raws = statement
                .query_map([], codec::raw_instance)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(raws
                .into_iter()
                .map(codec::RawInstance::decode)
                .collect::<Result<Vec<_>>>()?)
        })
        .await
    }

    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        let after = after.map(|(at, id)| (at, id.to_string()));
        self.call("listing the tokens due", move |connection| {
            due_tokens(connection, "expires_at", before, after, limit)
        })
        .await
    }

    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        let after = after.map(|(at, id)| (at, id.to_string()));
        self.call("listing the tokens by age", move |connection| {
            due_tokens(connection, "obtained_at", before, after, limit)
        })
        .await
    }

    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        let after = after.map(str::to_string);
        let status = filter.status.map(status_text);
        let integration = filter.integration.clone();
        self.call("listing a page of instances", move |connection| {
            let instance_columns = INSTANCE_COLUMNS
                .split(", ")
                .map(|column| format!("i.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            let token_columns = TOKEN_COLUMNS
                .split(", ")
                .map(|column| format!("t.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            // One query: the primary key range of the page, each instance's token joined.
            // Only the conditions given are written, so that SQLite walks the key from the
            // cursor on (an `?1 IS NULL OR` would scan from the first row).
            let mut conditions = Vec::new();
            let mut values: Vec<rusqlite::types::Value> = Vec::new();
            for (condition, value) in [
                ("i.id >", after),
                ("i.status =", status.map(str::to_string)),
                ("i.integration =", integration),
            ] {
                if let Some(value) = value {
                    values.push(value.into());
                    conditions.push(format!("{condition} ?{}", values.len()));
                }
            }
            values.push(sql_limit(limit).into());
            let filter = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            let sql = format!(
                "SELECT {instance_columns}, t.instance, {token_columns} \
                 FROM instances i LEFT JOIN tokens t ON t.instance = i.id \
                 {filter} ORDER BY i.id LIMIT ?{}",
                values.len()
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), |row| {
                    let instance = codec::raw_instance(row)?;
                    let has_token: Option<String> = row.get(20)?;
                    let token = match has_token {
                        Some(_) => Some(codec::raw_token_at(row, 21)?),
                        None => None,
                    };
                    Ok((instance, token))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut page = Vec::with_capacity(rows.len());
            for (instance, token) in rows {
                let instance = instance.decode()?;
                let token = token.map(|raw| raw.decode(&instance.id)).transpose()?;
                page.push(InstanceWithToken { instance, token });
            }
            Ok(page)
        })
        .await
    }

    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        self.call("counting instances", |connection| {
            let mut statement = connection
                .prepare_cached("SELECT status, count(*) FROM instances GROUP BY status")?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut counts = InstanceCounts::default();
            for (status, count) in rows {
                let status = codec::status_from(&status).ok_or_else(|| {
                    Error::undecodable("the instance counts", format!("unknown status `{status}`"))
                })?;
                counts.add(status, u64::try_from(count).unwrap_or(0));
            }
            Ok(counts)
        })
        .await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        let instance = instance.clone();
        self.call("updating an instance", move |connection| {
            let tx = immediate(connection)?;
            let what = || format!("instance `{}`", instance.id);
            let current: Option<i64> = tx
                .prepare_cached("SELECT version FROM instances WHERE id = ?1")?
                .query_row([&instance.id], |row| row.get(0))
                .optional()?;
            let current = match current {
                Some(raw) => codec::version_from(raw, &what())?,
                None => return Err(Error::not_found(what()).into()),
            };
            if current != instance.version {
                return Err(
                    Error::version_conflict(what(), Some(instance.version), Some(current)).into(),
                );
            }
            if !integration_exists(&tx, &instance.integration)? {
                return Err(
                    Error::not_found(format!("integration `{}`", instance.integration)).into(),
                );
            }
            write_instance(&tx, &instance, current + 1)?;
            append_change(&tx, &instance.id)?;
            tx.commit()?;
            Ok(current + 1)
        })
        .await
    }

    async fn delete_instance(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.call("deleting an instance", move |connection| {
            let tx = immediate(connection)?;
            let removed = tx
                .prepare_cached("DELETE FROM instances WHERE id = ?1")?
                .execute([&id])?;
            if removed == 0 {
                return Ok(false);
            }
            for sql in [
                "DELETE FROM tokens WHERE instance = ?1",
                "DELETE FROM leases WHERE instance = ?1",
                "DELETE FROM pendings WHERE instance = ?1",
            ] {
                tx.prepare_cached(sql)?.execute([&id])?;
            }
            append_change(&tx, &id)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        let pending = pending.clone();
        self.call("writing a pending authorization", move |connection| {
            let tx = immediate(connection)?;
            let taken = tx
                .prepare_cached("SELECT 1 FROM pendings WHERE state = ?1")?
                .exists([&pending.state])?;
            if taken {
                return Err(Error::already_exists("pending authorization with this state").into());
            }
            require_instance(&tx, &pending.instance)?;
            let sql = format!(
                "INSERT INTO pendings ({PENDING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            );
            tx.prepare_cached(&sql)?.execute(params![
                pending.state,
                pending.instance,
                pending.pkce_verifier.as_bytes(),
                pending.redirect_uri,
                pending.expected_issuer,
                pending.created.as_unix_millis(),
                pending.expires.as_unix_millis(),
            ])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        let state = state.to_string();
        self.call("taking a pending authorization", move |connection| {
            let tx = immediate(connection)?;
            // One statement removes and returns the row: at most one taker ever sees it.
            let sql = format!("DELETE FROM pendings WHERE state = ?1 RETURNING {PENDING_COLUMNS}");
            let taken = tx
                .prepare_cached(&sql)?
                .query_row([&state], codec::pending)
                .optional()?;
            tx.commit()?;
            Ok(taken.filter(|pending| !pending.is_expired(now)))
        })
        .await
    }

    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        self.call(
            "purging expired pending authorizations",
            move |connection| {
                let removed = connection
                    .prepare_cached("DELETE FROM pendings WHERE expires <= ?1")?
                    .execute([now.as_unix_millis()])?;
                Ok(u64::try_from(removed).unwrap_or(u64::MAX))
            },
        )
        .await
    }

    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        let instance = instance.to_string();
        self.call("reading a token", move |connection| {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE instance = ?1");
            let raw = connection
                .prepare_cached(&sql)?
                .query_row([&instance], codec::raw_token)
                .optional()?;
            Ok(raw.map(|raw| raw.decode(&instance)).transpose()?)
        })
        .await
    }

    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        let instance = instance.to_string();
        let token = token.clone();
        self.call("writing a token", move |connection| {
            let tx = immediate(connection)?;
            require_instance(&tx, &instance)?;
            let version = write_token(&tx, &instance, &token, expected_version)?;
            tx.commit()?;
            Ok(version)
        })
        .await
    }

    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let instance = instance.to_string();
        let token = token.clone();
        let holder = holder.to_string();
        self.call("writing a token under a lease", move |connection| {
            // The lease and the version are read in the write's transaction, which holds the
            // write lock from its start: no other process can take the lease over between
            // the check and the write.
            let tx = immediate(connection)?;
            require_instance(&tx, &instance)?;
            let lease = tx
                .prepare_cached("SELECT instance, holder, expires FROM leases WHERE instance = ?1")?
                .query_row([&instance], codec::lease)
                .optional()?;
            Lease::check_fence(lease.as_ref(), &instance, &holder, now)?;
            let version = write_token(&tx, &instance, &token, Some(expected_version))?;
            tx.commit()?;
            Ok(version)
        })
        .await
    }

    async fn delete_token(&self, instance: &str, expected_version: Option<u64>) -> Result<bool> {
        let instance = instance.to_string();
        self.call("deleting a token", move |connection| {
            let tx = immediate(connection)?;
            let removed = match expected_version {
                None => tx
                    .prepare_cached("DELETE FROM tokens WHERE instance = ?1")?
                    .execute([&instance])?,
                Some(expected) => tx
                    .prepare_cached("DELETE FROM tokens WHERE instance = ?1 AND version = ?2")?
                    .execute(params![instance, version_to(expected)?])?,
            };
            if removed > 0 {
                append_change(&tx, &instance)?;
                tx.commit()?;
                return Ok(true);
            }
            // Nothing removed: tell a missing record from one with another version (read in
            // the same transaction, so the answer matches what the DELETE saw).
            let what = || format!("token of instance `{instance}`");
            let current: Option<i64> = tx
                .prepare_cached("SELECT version FROM tokens WHERE instance = ?1")?
                .query_row([&instance], |row| row.get(0))
                .optional()?;
            let current = current
                .map(|raw| codec::version_from(raw, &what()))
                .transpose()?;
            match current {
                None => Ok(false),
                Some(_) => Err(Error::version_conflict(what(), expected_version, current).into()),
            }
        })
        .await
    }

    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        let instance = instance.to_string();
        let holder = holder.to_string();
        self.call("acquiring a lease", move |connection| {
            let tx = immediate(connection)?;
            require_instance(&tx, &instance)?;
            let current = tx
                .prepare_cached("SELECT instance, holder, expires FROM leases WHERE instance = ?1")?
                .query_row([&instance], codec::lease)
                .optional()?;
            if current.is_some_and(|lease| !lease.can_be_taken_by(&holder, now)) {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO leases (instance, holder, expires) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                instance,
                holder,
                now.saturating_add(ttl).as_unix_millis()
            ])?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        let instance = instance.to_string();
        let holder = holder.to_string();
        self.call("releasing a lease", move |connection| {
            let removed = connection
                .prepare_cached("DELETE FROM leases WHERE instance = ?1 AND holder = ?2")?
                .execute([&instance, &holder])?;
            Ok(removed > 0)
        })
        .await
    }

    async fn latest_change(&self) -> Result<u64> {
        self.call("reading the change counter", |connection| {
            latest_change(connection)
        })
        .await
    }

    async fn put_key_check(&self, check: &Sealed, replace: bool) -> Result<Sealed> {
        let check = check.as_bytes().to_vec();
        self.call("writing the key check", move |connection| {
            // One statement: insert, or keep (or replace) the stored row, and return it.
            let stored: Vec<u8> = connection
                .prepare_cached(
                    "INSERT INTO key_check (only_row, value) VALUES (1, ?1) \
                     ON CONFLICT (only_row) DO UPDATE SET \
                     value = CASE WHEN ?2 THEN excluded.value ELSE key_check.value END \
                     RETURNING value",
                )?
                .query_row(params![check, replace], |row| row.get(0))?;
            Ok(Sealed::new(stored))
        })
        .await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes> {
        self.call("reading the change feed", move |connection| {
            // One read transaction: the rows, the oldest kept row and the counter come from
            // one snapshot.
            let tx = connection.transaction()?;
            let cursor = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut statement = tx.prepare_cached(
                "SELECT seq, instance FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![cursor, limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(statement);
            let changes = rows
                .into_iter()
                .map(|(seq, instance)| {
                    Ok(Change {
                        seq: codec::version_from(seq, "a change number")?,
                        instance,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let oldest: Option<i64> = tx
                .prepare_cached("SELECT min(seq) FROM changes")?
                .query_row([], |row| row.get(0))?;
            let latest = latest_change(&tx)?;
            // Numbers are given one after the other (a rolled-back insert gives its number
            // back) and pruning drops the oldest: every number below the oldest kept row,
            // and above the cursor, was dropped.
            let oldest = match oldest {
                Some(raw) => codec::version_from(raw, "a change number")?,
                None => latest + 1,
            };
            let missed = after < latest && after + 1 < oldest;
            Ok(Changes { changes, missed })
        })
        .await
    }

    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        let instance = instance.to_string();
        self.call("reading a lease", move |connection| {
            Ok(connection
                .prepare_cached("SELECT instance, holder, expires FROM leases WHERE instance = ?1")?
                .query_row([&instance], codec::lease)
                .optional()?)
        })
        .await
    }

    async fn create_session(&self, session: &AdminSession) -> Result<()> {
        self.sessions_create(session).await
    }

    async fn get_session(&self, digest: &str, now: Timestamp) -> Result<Option<AdminSession>> {
        self.sessions_get(digest, now).await
    }

    async fn delete_session(&self, digest: &str) -> Result<bool> {
        self.sessions_delete(digest).await
    }

    async fn set_session_banner(&self, digest: &str, banner: &str, now: Timestamp) -> Result<bool> {
        self.sessions_set_banner(digest, banner, now).await
    }

    async fn take_session_banner(&self, digest: &str, now: Timestamp) -> Result<Option<String>> {
        self.sessions_take_banner(digest, now).await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        self.sessions_purge(now).await
    }

    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.api_keys_create(key).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.api_keys_list().await
    }

    async fn find_api_key(&self, digest: &str) -> Result<Option<ApiKeyRecord>> {
        self.api_keys_find(digest).await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        self.api_keys_revoke(id).await
    }

    async fn put_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        self.webhook_endpoint_put(endpoint).await
    }

    async fn list_webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.webhook_endpoints_list().await
    }

    async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool> {
        self.webhook_endpoint_delete(id).await
    }

    async fn enqueue_deliveries(&self, deliveries: &[WebhookDelivery]) -> Result<()> {
        self.deliveries_enqueue(deliveries).await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        holder: &str,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<WebhookDelivery>> {
        self.deliveries_claim(now, holder, until, limit).await
    }

    async fn finish_delivery_attempt(
        &self,
        id: &str,
        holder: &str,
        now: Timestamp,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        self.delivery_finish_attempt(id, holder, now, attempt, outcome)
            .await
    }

    async fn list_deliveries(&self, endpoint: &str, limit: usize) -> Result<Vec<WebhookDelivery>> {
        self.deliveries_list(endpoint, limit).await
    }

    async fn purge_finished_deliveries(&self, before: Timestamp) -> Result<u64> {
        self.deliveries_purge(before).await
    }

    async fn create_reconnect_link(&self, link: &ReconnectLink) -> Result<()> {
        self.reconnect_link_create(link).await
    }

    async fn find_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        self.reconnect_link_find(digest, now).await
    }

    async fn take_reconnect_link(
        &self,
        digest: &str,
        now: Timestamp,
    ) -> Result<Option<ReconnectLink>> {
        self.reconnect_link_take(digest, now).await
    }

    async fn purge_expired_reconnect_links(&self, now: Timestamp) -> Result<u64> {
        self.reconnect_links_purge(now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::MIGRATIONS;

    fn count(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT count(*) FROM changes", [], |row| row.get(0))
            .expect("count")
    }

    /// Every PRUNE_EVERY changes the feed drops those older than the newest CHANGES_KEPT,
    /// and only those (so it holds between CHANGES_KEPT and CHANGES_KEPT + PRUNE_EVERY
    /// rows), and its counter never goes back, even once every row is gone.
    #[test]
    fn the_feed_is_pruned_and_its_numbers_never_go_back() {
        let mut connection = Connection::open_in_memory().expect("sqlite opens");
        for sql in MIGRATIONS {
            connection.execute_batch(sql).expect("migrations");
        }
        let kept = i64::try_from(CHANGES_KEPT).expect("small");
        let total = kept * 2 + 10;
        let tx = immediate(&mut connection).expect("a transaction");
        for _ in 0..total {
            assert!(append_change(&tx, "x").is_ok());
        }
        tx.commit().expect("commit");
        // Pruned last at the 2048th change, to its newest 1024: 1025..=2058 are kept.
        let oldest = total / PRUNE_EVERY * PRUNE_EVERY - kept + 1;
        let first: i64 = connection
            .query_row("SELECT min(seq) FROM changes", [], |row| row.get(0))
            .expect("the oldest row");
        assert_eq!((first, count(&connection)), (oldest, total - oldest + 1));
        let latest = u64::try_from(kept * 2 + 10).expect("small");
        assert!(matches!(latest_change(&connection), Ok(n) if n == latest));
        connection
            .execute("DELETE FROM changes", [])
            .expect("delete every row");
        assert!(matches!(latest_change(&connection), Ok(n) if n == latest));
        let tx = immediate(&mut connection).expect("a transaction");
        assert!(append_change(&tx, "y").is_ok());
        tx.commit().expect("commit");
        let seq: i64 = connection
            .query_row("SELECT seq FROM changes", [], |row| row.get(0))
            .expect("the new row");
        assert_eq!(u64::try_from(seq).ok(), Some(latest + 1));
    }

    /// A reader is told `missed` exactly when a change after its cursor is gone: with
    /// changes 1 and 2 pruned of 1..=5, and then with every row gone (the counter at 5).
    #[tokio::test]
    async fn readers_are_told_exactly_what_they_missed() {
        let dir = tempfile::tempdir().expect("a folder");
        let path = dir.path().join("granary.sqlite");
        let store = SqliteStore::open(&path).await.expect("the store opens");
        let since = |after: u64| {
            let store = &store;
            async move {
                let read = store
                    .changes_since(after, 10)
                    .await
                    .expect("the feed reads");
                let seqs: Vec<u64> = read.changes.iter().map(|c| c.seq).collect();
                (read.missed, seqs)
            }
        };
        let connection = Connection::open(&path).expect("a second connection");
        for _ in 0..5 {
            connection
                .execute("INSERT INTO changes (instance) VALUES ('x')", [])
                .expect("a change");
        }
        connection
            .execute("DELETE FROM changes WHERE seq <= 2", [])
            .expect("pruning");
        assert_eq!(since(0).await, (true, vec![3, 4, 5]));
        assert_eq!(since(1).await, (true, vec![3, 4, 5]));
        assert_eq!(since(2).await, (false, vec![3, 4, 5]));
        assert_eq!(since(4).await, (false, vec![5]));
        assert_eq!(since(5).await, (false, vec![]));
        assert_eq!(since(u64::MAX).await, (false, vec![]));
        connection
            .execute("DELETE FROM changes", [])
            .expect("pruning every row");
        assert_eq!(since(3).await, (true, vec![]));
        assert_eq!(since(4).await, (true, vec![]));
        assert_eq!(since(5).await, (false, vec![]));
    }
}
