//! [`PostgresStore`]: each [`Store`] method as one statement of [`crate::sql`] on a pooled
//! connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use granary_store::{
    AdminSession, ApiKeyRecord, Capabilities, Change, Changes, ClientAuth, DeliveryAttempt,
    DeliveryOutcome, Error, Instance, InstanceCounts, InstanceFilter, InstanceStatus,
    InstanceToken, InstanceWithToken, Integration, Lease, PendingAuthorization, ReconnectLink,
    RefreshOutcome, Result, Sealed, Store, Timestamp, TokenRecord, WebhookDelivery,
    WebhookEndpoint,
};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::errors::{Fault, map};
use crate::{PostgresOptions, connect, schema, sql};

mod server_state;
mod webhooks;

/// A granary store in a PostgreSQL database, shared by every node that opens it.
///
/// Open it once per process and share it as `Arc<dyn Store>`; it keeps a pool of
/// connections (at most [`PostgresOptions::max_connections`]). Every method is one
/// statement, so PostgreSQL makes it atomic, and no transaction stays open between calls.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    server: Arc<str>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// How many times a statement aborted by a deadlock or a serialization failure is run
/// again (it changed nothing).
const RETRIES: usize = 5;

impl PostgresStore {
    /// Opens the granary store in the database named by `url` (libpq style:
    /// `postgres://user:password@host:port/database?sslmode=verify-full`), with default
    /// options, and brings its schema up to date.
    ///
    /// `sslmode` is `disable`, `prefer` (the default), `require` or `verify-full`
    /// (`sslrootcert=PATH` names a PEM file of root certificates; without it the Mozilla
    /// roots are used). Fails with [`Error::Backend`] when the server cannot be reached or
    /// refuses the login (the message says what to check), [`Error::Corrupt`] when the
    /// schema holds tables that are not granary's, [`Error::Unsupported`] when a newer
    /// granary wrote them.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, PostgresOptions::default()).await
    }

    /// Opens the store at `url` with `options`.
    pub async fn open_with(url: &str, options: PostgresOptions) -> Result<Self> {
        if let Some(schema) = &options.schema {
            connect::check_schema(schema)?;
        }
        let target = connect::parse(url)?;
        let server: Arc<str> = connect::describe(&target.config).into();
        let pool = connect::pool(target, &options)?;
        let store = Self { pool, server };
        let doing = "opening the store";
        let result: std::result::Result<(), Fault> = async {
            let mut client = store.pool.get().await?;
            schema::migrate(&mut client, options.schema.as_deref()).await
        }
        .await;
        result.map_err(|fault| map(fault, doing, &store.server))?;
        Ok(store)
    }

    /// Host, port and database of the server, for messages (no password).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Runs `statement` (prepared once per connection) and returns its rows; a deadlock or
    /// serialization failure runs it again.
    async fn query(
        &self,
        statement: &str,
        params: &Params<'_>,
    ) -> std::result::Result<Vec<Row>, Fault> {
        let mut attempt = 0;
        loop {
            let client = self.pool.get().await?;
            let prepared = client.prepare_cached(statement).await?;
            match client.query(&prepared, params).await.map_err(Fault::from) {
                Err(fault) if fault.is_retryable() && attempt < RETRIES => attempt += 1,
                result => return result,
            }
        }
    }

    /// The rows of a due query (`statement`: [`sql::TOKENS_EXPIRING_BEFORE`] or
    /// [`sql::TOKENS_OBTAINED_BEFORE`]), token columns then the instance.
    async fn due_tokens(
        &self,
        statement: &str,
        doing: &str,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        let (after_at, after_id) =
            after.map_or((i64::MIN, ""), |(at, id)| (at.as_unix_millis(), id));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                doing,
                statement,
                &[&before.as_unix_millis(), &after_at, &after_id, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let instance: String = row.try_get(8).map_err(undecodable_row)?;
                let token = token(row, &instance)?;
                Ok(InstanceToken { instance, token })
            })
            .collect()
    }

    /// [`Self::query`] with faults mapped to store errors.
    async fn rows(&self, doing: &str, statement: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        self.query(statement, params)
            .await
            .map_err(|fault| map(fault, doing, &self.server))
    }

    fn fail(&self, doing: &str, fault: Fault) -> Error {
        map(fault, doing, &self.server)
    }

    /// Why a token write that wrote nothing wrote nothing: `NotFound` or `Conflict`.
    async fn token_refusal(&self, instance: &str, expected: Option<u64>) -> Result<Error> {
        let rows = self
            .rows("reading a token version", sql::TOKEN_VERSION, &[&instance])
            .await?;
        let what = format!("token of instance `{instance}`");
        let (version, exists): (Option<i64>, bool) = match rows.first() {
            Some(row) => (row.get(0), row.get(1)),
            None => (None, false),
        };
        if !exists {
            return Ok(Error::not_found(format!("instance `{instance}`")));
        }
        let found = version.map(|v| version_from(v, &what)).transpose()?;
        if found == expected {
            // The record changed and changed back between the write and this read.
            return Ok(Error::conflict(what, "it changed concurrently"));
        }
        Ok(Error::version_conflict(what, expected, found))
    }
}

fn version_from(raw: i64, what: &str) -> Result<u64> {
    u64::try_from(raw).map_err(|_| Error::undecodable(what, format!("negative version {raw}")))
}

fn version_to(version: u64) -> Result<i64> {
    i64::try_from(version)
        .map_err(|_| Error::unsupported("a record version beyond 2^63 cannot be stored"))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend("cannot serialize a record field", e))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::undecodable(what, e))
}

/// The JSON text of a map of a nullable column: NULL when it is empty (as in the rows
/// written before the column existed).
fn map_json(map: &BTreeMap<String, String>) -> Result<Option<String>> {
    if map.is_empty() {
        Ok(None)
    } else {
        json(map).map(Some)
    }
}

/// The JSON text column `column` of `row` (read by name, wherever the query put it) decoded;
/// NULL is `None`.
fn nullable_json<T: serde::de::DeserializeOwned>(
    row: &Row,
    column: &str,
    what: &str,
) -> Result<Option<T>> {
    row.try_get::<_, Option<String>>(column)
        .map_err(undecodable_row)?
        .map(|text| from_json(&text, what))
        .transpose()
}

fn client_auth_text(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::None => "none",
    }
}

fn status_from(text: &str) -> Option<InstanceStatus> {
    [
        InstanceStatus::New,
        InstanceStatus::Authorized,
        InstanceStatus::NeedsAuthorization,
        InstanceStatus::Disabled,
    ]
    .into_iter()
    .find(|status| status_text(*status) == text)
}

fn status_text(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::New => "new",
        InstanceStatus::Authorized => "authorized",
        InstanceStatus::NeedsAuthorization => "needs_authorization",
        InstanceStatus::Disabled => "disabled",
    }
}

fn integration(row: &Row) -> Result<Integration> {
    let name: String = row.try_get(0).map_err(undecodable_row)?;
    let what = format!("integration `{name}`");
    let flows: String = row.try_get(2).map_err(undecodable_row)?;
    Ok(Integration {
        flows: from_json(&flows, &what)?,
        source_digest: row.try_get(1).map_err(undecodable_row)?,
        created: Timestamp::from_unix_millis(row.try_get(3).map_err(undecodable_row)?),
        name,
    })
}

fn undecodable_row(error: tokio_postgres::Error) -> Error {
    Error::undecodable("a row of granary's tables", error)
}

fn instance(row: &Row) -> Result<Instance> {
    let get = |i: usize| -> Result<String> { row.try_get(i).map_err(undecodable_row) };
    let id = get(0)?;
    let what = format!("instance `{id}`");
    let client_auth = get(12)?;
    let status = get(13)?;
    Ok(Instance {
        integration: get(1)?,
        scheme: get(2)?,
        client_id: get(3)?,
        client_secret: row
            .try_get::<_, Option<Vec<u8>>>(4)
            .map_err(undecodable_row)?
            .map(Sealed::new),
        scopes: from_json(&get(5)?, &what)?,
        redirect_uri: get(6)?,
        authorization_url: row.try_get(7).map_err(undecodable_row)?,
        token_url: row.try_get(8).map_err(undecodable_row)?,
        extra_authorization_params: from_json(&get(9)?, &what)?,
        extra_token_params: from_json(&get(10)?, &what)?,
        extra_token_headers: from_json(&get(11)?, &what)?,
        client_auth: match client_auth.as_str() {
            "client_secret_basic" => ClientAuth::ClientSecretBasic,
            "client_secret_post" => ClientAuth::ClientSecretPost,
            "none" => ClientAuth::None,
            other => {
                return Err(Error::undecodable(
                    &what,
                    format!("unknown client_auth `{other}`"),
                ));
            }
        },
        status: match status.as_str() {
            "new" => InstanceStatus::New,
            "authorized" => InstanceStatus::Authorized,
            "needs_authorization" => InstanceStatus::NeedsAuthorization,
            "disabled" => InstanceStatus::Disabled,
            other => {
                return Err(Error::undecodable(
                    &what,
                    format!("unknown status `{other}`"),
                ));
            }
        },
        created: Timestamp::from_unix_millis(row.try_get(14).map_err(undecodable_row)?),
        updated: Timestamp::from_unix_millis(row.try_get(15).map_err(undecodable_row)?),
        version: version_from(row.try_get(16).map_err(undecodable_row)?, &what)?,
        // By name: the page query joins the token's columns before it.
        token_lifetime: row
            .try_get::<_, Option<i64>>("token_lifetime")
            .map_err(undecodable_row)?
            .map(|secs| {
                u64::try_from(secs).map_err(|_| {
                    Error::undecodable(&what, format!("negative token_lifetime {secs}"))
                })
            })
            .transpose()?,
        connection: nullable_json(row, "connection", &what)?.unwrap_or_default(),
        profile: nullable_json(row, "profile", &what)?,
        id,
    })
}

fn pending(row: &Row) -> Result<PendingAuthorization> {
    let d = undecodable_row;
    Ok(PendingAuthorization {
        state: row.try_get(0).map_err(d)?,
        instance: row.try_get(1).map_err(d)?,
        pkce_verifier: Sealed::new(row.try_get::<_, Vec<u8>>(2).map_err(d)?),
        redirect_uri: row.try_get(3).map_err(d)?,
        expected_issuer: row.try_get(4).map_err(d)?,
        created: Timestamp::from_unix_millis(row.try_get(5).map_err(d)?),
        expires: Timestamp::from_unix_millis(row.try_get(6).map_err(d)?),
    })
}

fn token(row: &Row, instance: &str) -> Result<TokenRecord> {
    token_at(row, 0, instance)
}

/// The token columns of `row` from column `first` on (in the order of [`sql::GET_TOKEN`]).
fn token_at(row: &Row, first: usize, instance: &str) -> Result<TokenRecord> {
    let d = undecodable_row;
    let what = format!("token of instance `{instance}`");
    let last_refresh: Option<String> = row.try_get(first + 6).map_err(d)?;
    let last_refresh: Option<RefreshOutcome> = match &last_refresh {
        Some(text) => Some(from_json(text, &what)?),
        None => None,
    };
    Ok(TokenRecord {
        access_token: Sealed::new(row.try_get::<_, Vec<u8>>(first).map_err(d)?),
        refresh_token: row
            .try_get::<_, Option<Vec<u8>>>(first + 1)
            .map_err(d)?
            .map(Sealed::new),
        token_type: row.try_get(first + 2).map_err(d)?,
        scope: row.try_get(first + 3).map_err(d)?,
        expires_at: row
            .try_get::<_, Option<i64>>(first + 4)
            .map_err(d)?
            .map(Timestamp::from_unix_millis),
        obtained_at: Timestamp::from_unix_millis(row.try_get(first + 5).map_err(d)?),
        last_refresh,
        version: version_from(row.try_get(first + 7).map_err(d)?, &what)?,
        // By name: the due queries put the instance before it, the page query the
        // instance's columns.
        kept: nullable_json(row, "kept", &what)?.unwrap_or_default(),
    })
}

fn lease(row: &Row) -> Result<Lease> {
    let d = undecodable_row;
    Ok(Lease {
        instance: row.try_get(0).map_err(d)?,
        holder: row.try_get(1).map_err(d)?,
        expires: Timestamp::from_unix_millis(row.try_get(2).map_err(d)?),
    })
}

/// The version in the first column of the first row, if any.
fn returned_version(rows: &[Row], what: &str) -> Result<Option<u64>> {
    rows.first()
        .map(|row| version_from(row.try_get(0).map_err(undecodable_row)?, what))
        .transpose()
}

/// The columns of a token write after the instance (`$2` to `$8`, then `kept`).
struct TokenColumns {
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
    token_type: String,
    scope: Option<String>,
    expires_at: Option<i64>,
    obtained_at: i64,
    last_refresh: Option<String>,
    kept: Option<String>,
}

impl TokenColumns {
    fn of(token: &TokenRecord) -> Result<Self> {
        Ok(Self {
            access_token: token.access_token.as_bytes().to_vec(),
            refresh_token: token.refresh_token.as_ref().map(|s| s.as_bytes().to_vec()),
            token_type: token.token_type.clone(),
            scope: token.scope.clone(),
            expires_at: token.expires_at.map(Timestamp::as_unix_millis),
            obtained_at: token.obtained_at.as_unix_millis(),
            last_refresh: token.last_refresh.as_ref().map(json).transpose()?,
            kept: map_json(&token.kept)?,
        })
    }
}

/// The columns of an instance after the id (`$2` to `$16`, then `token_lifetime`,
/// `connection` and `profile`).
struct InstanceColumns {
    client_secret: Option<Vec<u8>>,
    scopes: String,
    extra_authorization_params: String,
    extra_token_params: String,
    extra_token_headers: String,
    client_auth: &'static str,
    status: &'static str,
    created: i64,
    updated: i64,
    token_lifetime: Option<i64>,
    connection: Option<String>,
    profile: Option<String>,
}

impl InstanceColumns {
    fn of(instance: &Instance) -> Result<Self> {
        Ok(Self {
            client_secret: instance
                .client_secret
                .as_ref()
                .map(|s| s.as_bytes().to_vec()),
            scopes: json(&instance.scopes)?,
            extra_authorization_params: json(&instance.extra_authorization_params)?,
            extra_token_params: json(&instance.extra_token_params)?,
            extra_token_headers: json(&instance.extra_token_headers)?,
            client_auth: client_auth_text(instance.client_auth),
            status: status_text(instance.status),
            created: instance.created.as_unix_millis(),
            updated: instance.updated.as_unix_millis(),
            token_lifetime: instance
                .token_lifetime
                .map(|secs| i64::try_from(secs).unwrap_or(i64::MAX)),
            connection: map_json(&instance.connection)?,
            profile: instance.profile.as_ref().map(json).transpose()?,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.durable().shared_between_processes()
    }

    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        let flows = json(&integration.flows)?;
        self.rows(
            "writing an integration",
            sql::PUT_INTEGRATION,
            &[
                &integration.name,
                &integration.source_digest,
                &flows,
                &integration.created.as_unix_millis(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        let rows = self
            .rows("reading an integration", sql::GET_INTEGRATION, &[&name])
            .await?;
        rows.first().map(integration).transpose()
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        let rows = self
            .rows("listing integrations", sql::LIST_INTEGRATIONS, &[])
            .await?;
        rows.iter().map(integration).collect()
    }

    async fn delete_integration(&self, name: &str) -> Result<bool> {
        let doing = "deleting an integration";
        match self.query(sql::DELETE_INTEGRATION, &[&name]).await {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(Error::conflict(
                    format!("integration `{name}`"),
                    "instances still belong to it: delete them first",
                ))
            }
            Err(fault) => Err(self.fail(doing, fault)),
        }
    }

    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        let c = InstanceColumns::of(instance)?;
        let result = self
            .query(
                sql::CREATE_INSTANCE,
                &[
                    &instance.id,
                    &instance.integration,
                    &instance.scheme,
                    &instance.client_id,
                    &c.client_secret,
                    &c.scopes,
                    &instance.redirect_uri,
                    &instance.authorization_url,
                    &instance.token_url,
                    &c.extra_authorization_params,
                    &c.extra_token_params,
                    &c.extra_token_headers,
                    &c.client_auth,
                    &c.status,
                    &c.created,
                    &c.updated,
                    &c.token_lifetime,
                    &c.connection,
                    &c.profile,
                ],
            )
            .await;
        let what = format!("instance `{}`", instance.id);
        match result {
            Ok(rows) => returned_version(&rows, &what)?
                .ok_or_else(|| Error::backend("creating an instance", "no row returned")),
            Err(fault) if fault.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(Error::already_exists(what))
            }
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Err(
                Error::not_found(format!("integration `{}`", instance.integration)),
            ),
            Err(fault) => Err(self.fail("creating an instance", fault)),
        }
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        let rows = self
            .rows("reading an instance", sql::GET_INSTANCE, &[&id])
            .await?;
        rows.first().map(instance).transpose()
    }

    async fn list_instances(&self) -> Result<Vec<Instance>> {
        let rows = self
            .rows("listing instances", sql::LIST_INSTANCES, &[])
            .await?;
        rows.iter().map(instance).collect()
    }

    async fn tokens_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        self.due_tokens(
            sql::TOKENS_EXPIRING_BEFORE,
            "listing the tokens due",
            before,
            after,
            limit,
        )
        .await
    }

    async fn tokens_obtained_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        self.due_tokens(
            sql::TOKENS_OBTAINED_BEFORE,
            "listing the tokens by age",
            before,
            after,
            limit,
        )
        .await
    }

    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        // Every id is longer than '', so '' is the cursor of the first page.
        let after = after.unwrap_or("");
        let status = filter.status.map(status_text);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                "listing a page of instances",
                sql::LIST_INSTANCES_PAGE,
                &[&after, &status, &filter.integration, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let instance = instance(row)?;
                let joined: Option<String> = row.try_get(25).map_err(undecodable_row)?;
                let token = match joined {
                    Some(_) => Some(token_at(row, 17, &instance.id)?),
                    None => None,
                };
                Ok(InstanceWithToken { instance, token })
            })
            .collect()
    }

    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        let rows = self
            .rows("counting instances", sql::COUNT_INSTANCES_BY_STATUS, &[])
            .await?;
        let mut counts = InstanceCounts::default();
        for row in &rows {
            let status: String = row.try_get(0).map_err(undecodable_row)?;
            let count: i64 = row.try_get(1).map_err(undecodable_row)?;
            let status = status_from(&status).ok_or_else(|| {
                Error::undecodable("the instance counts", format!("unknown status `{status}`"))
            })?;
            counts.add(status, u64::try_from(count).unwrap_or(0));
        }
        Ok(counts)
    }

    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        let c = InstanceColumns::of(instance)?;
        let expected = version_to(instance.version)?;
        let what = format!("instance `{}`", instance.id);
        let result = self
            .query(
                sql::UPDATE_INSTANCE,
                &[
                    &instance.id,
                    &instance.integration,
                    &instance.scheme,
                    &instance.client_id,
                    &c.client_secret,
                    &c.scopes,
                    &instance.redirect_uri,
                    &instance.authorization_url,
                    &instance.token_url,
                    &c.extra_authorization_params,
                    &c.extra_token_params,
                    &c.extra_token_headers,
                    &c.client_auth,
                    &c.status,
                    &c.created,
                    &c.updated,
                    &expected,
                    &c.token_lifetime,
                    &c.connection,
                    &c.profile,
                ],
            )
            .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                return Err(Error::not_found(format!(
                    "integration `{}`",
                    instance.integration
                )));
            }
            Err(fault) => return Err(self.fail("updating an instance", fault)),
        };
        if let Some(version) = returned_version(&rows, &what)? {
            return Ok(version);
        }
        let rows = self
            .rows(
                "reading an instance version",
                sql::INSTANCE_VERSION,
                &[&instance.id],
            )
            .await?;
        match returned_version(&rows, &what)? {
            None => Err(Error::not_found(what)),
            Some(found) if found == instance.version => {
                Err(Error::conflict(what, "it changed concurrently"))
            }
            found => Err(Error::version_conflict(what, Some(instance.version), found)),
        }
    }

    async fn delete_instance(&self, id: &str) -> Result<bool> {
        let rows = self
            .rows("deleting an instance", sql::DELETE_INSTANCE, &[&id])
            .await?;
        Ok(!rows.is_empty())
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        let result = self
            .query(
                sql::PUT_PENDING,
                &[
                    &pending.state,
                    &pending.instance,
                    &pending.pkce_verifier.as_bytes(),
                    &pending.redirect_uri,
                    &pending.expected_issuer,
                    &pending.created.as_unix_millis(),
                    &pending.expires.as_unix_millis(),
                ],
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(fault) if fault.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(
                Error::already_exists("pending authorization with this state".to_string()),
            ),
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(Error::not_found(format!("instance `{}`", pending.instance)))
            }
            Err(fault) => Err(self.fail("storing a pending authorization", fault)),
        }
    }

    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        let rows = self
            .rows(
                "taking a pending authorization",
                sql::TAKE_PENDING,
                &[&state],
            )
            .await?;
        let taken = rows.first().map(pending).transpose()?;
        Ok(taken.filter(|pending| !pending.is_expired(now)))
    }

    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        let client_rows = self
            .query(sql::PURGE_PENDINGS, &[&now.as_unix_millis()])
            .await
            .map_err(|fault| self.fail("purging expired pending authorizations", fault))?;
        let count: i64 = client_rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(undecodable_row)?
            .unwrap_or(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        let rows = self
            .rows("reading a token", sql::GET_TOKEN, &[&instance])
            .await?;
        rows.first().map(|row| token(row, instance)).transpose()
    }

    async fn put_token(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        let c = TokenColumns::of(token)?;
        let what = format!("token of instance `{instance}`");
        let result = match expected_version {
            None => {
                self.query(
                    sql::PUT_TOKEN_NEW,
                    &[
                        &instance,
                        &c.access_token,
                        &c.refresh_token,
                        &c.token_type,
                        &c.scope,
                        &c.expires_at,
                        &c.obtained_at,
                        &c.last_refresh,
                        &c.kept,
                    ],
                )
                .await
            }
            Some(expected) => {
                let expected = version_to(expected)?;
                self.query(
                    sql::PUT_TOKEN_CAS,
                    &[
                        &instance,
                        &c.access_token,
                        &c.refresh_token,
                        &c.token_type,
                        &c.scope,
                        &c.expires_at,
                        &c.obtained_at,
                        &c.last_refresh,
                        &expected,
                        &c.kept,
                    ],
                )
                .await
            }
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                return Err(Error::not_found(format!("instance `{instance}`")));
            }
            Err(fault) => return Err(self.fail("writing a token", fault)),
        };
        match returned_version(&rows, &what)? {
            Some(version) => Ok(version),
            None => Err(self.token_refusal(instance, expected_version).await?),
        }
    }

    async fn put_token_fenced(
        &self,
        instance: &str,
        token: &TokenRecord,
        expected_version: u64,
        holder: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let c = TokenColumns::of(token)?;
        let what = format!("token of instance `{instance}`");
        let expected = version_to(expected_version)?;
        let rows = self
            .rows(
                "writing a token under the lease",
                sql::PUT_TOKEN_FENCED,
                &[
                    &instance,
                    &c.access_token,
                    &c.refresh_token,
                    &c.token_type,
                    &c.scope,
                    &c.expires_at,
                    &c.obtained_at,
                    &c.last_refresh,
                    &expected,
                    &holder,
                    &now.as_unix_millis(),
                    &c.kept,
                ],
            )
            .await?;
        if let Some(version) = returned_version(&rows, &what)? {
            return Ok(version);
        }
        // Nothing written: say why, the version first, then the lease.
        let refusal = self.token_refusal(instance, Some(expected_version)).await?;
        if !matches!(&refusal, Error::Conflict { detail, .. } if detail == "it changed concurrently")
        {
            return Err(refusal);
        }
        let lease = self.get_lease(instance).await?;
        match Lease::check_fence(lease.as_ref(), instance, holder, now) {
            Err(error) => Err(error),
            Ok(()) => Err(refusal),
        }
    }

    async fn delete_token(&self, instance: &str, expected_version: Option<u64>) -> Result<bool> {
        let rows = match expected_version {
            None => {
                self.rows("deleting a token", sql::DELETE_TOKEN_ANY, &[&instance])
                    .await?
            }
            Some(expected) => {
                let expected = version_to(expected)?;
                self.rows(
                    "deleting a token",
                    sql::DELETE_TOKEN_VERSION,
                    &[&instance, &expected],
                )
                .await?
            }
        };
        if !rows.is_empty() {
            return Ok(true);
        }
        let what = format!("token of instance `{instance}`");
        let rows = self
            .rows("reading a token version", sql::TOKEN_VERSION, &[&instance])
            .await?;
        let version: Option<i64> = rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(undecodable_row)?
            .flatten();
        match version.map(|v| version_from(v, &what)).transpose()? {
            None => Ok(false),
            found => Err(Error::version_conflict(what, expected_version, found)),
        }
    }

    async fn try_acquire_lease(
        &self,
        instance: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool> {
        let expires = now.saturating_add(ttl).as_unix_millis();
        let result = self
            .query(
                sql::TRY_ACQUIRE_LEASE,
                &[&instance, &holder, &expires, &now.as_unix_millis()],
            )
            .await;
        match result {
            Ok(rows) => Ok(!rows.is_empty()),
            Err(fault) if fault.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(Error::not_found(format!("instance `{instance}`")))
            }
            Err(fault) => Err(self.fail("acquiring a lease", fault)),
        }
    }

    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        let rows = self
            .rows(
                "releasing a lease",
                sql::RELEASE_LEASE,
                &[&instance, &holder],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        let rows = self
            .rows("reading a lease", sql::GET_LEASE, &[&instance])
            .await?;
        rows.first().map(lease).transpose()
    }

    async fn latest_change(&self) -> Result<u64> {
        let rows = self
            .rows("reading the change counter", sql::LATEST_CHANGE, &[])
            .await?;
        Ok(returned_version(&rows, "the change counter")?.unwrap_or(0))
    }

    async fn put_key_check(&self, check: &Sealed, replace: bool) -> Result<Sealed> {
        let value = check.as_bytes();
        let rows = self
            .rows(
                "writing the key check",
                sql::PUT_KEY_CHECK,
                &[&value, &replace],
            )
            .await?;
        let stored: Vec<u8> = rows
            .first()
            .ok_or_else(|| Error::corrupt("writing the key check returned no row"))?
            .get(0);
        Ok(Sealed::new(stored))
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes> {
        let cursor = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                "reading the change feed",
                sql::CHANGES_SINCE,
                &[&cursor, &limit],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(Error::corrupt(
                "the change counter row of granary's PostgreSQL schema is missing: restore the \
                 schema from a backup",
            ));
        };
        let d = undecodable_row;
        let latest = version_from(row.try_get(0).map_err(d)?, "the change counter")?;
        let oldest: Option<i64> = row.try_get(1).map_err(d)?;
        let seqs: Vec<i64> = row.try_get(2).map_err(d)?;
        let instances: Vec<String> = row.try_get(3).map_err(d)?;
        let changes = seqs
            .into_iter()
            .zip(instances)
            .map(|(seq, instance)| {
                Ok(Change {
                    seq: version_from(seq, "a change number")?,
                    instance,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Numbers are given one after the other (a rolled-back write gives its number back
        // with the counter row) and pruning drops the oldest: every number above the cursor
        // and below the oldest kept row was dropped.
        let oldest = match oldest {
            Some(raw) => version_from(raw, "a change number")?,
            None => latest + 1,
        };
        let missed = after < latest && after + 1 < oldest;
        Ok(Changes { changes, missed })
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
