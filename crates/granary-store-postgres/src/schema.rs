//! The schema as an ordered list of migrations, run at open under a transaction-scoped
//! advisory lock, so that nodes starting at once migrate one after the other.

use deadpool_postgres::Client;
use granary_store::Error;

use crate::errors::Fault;

/// Every migration, oldest first; migration `n` takes the schema version from `n` to
/// `n + 1`. Never edit one that shipped: append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the five kinds of record and the change feed. Keys are `COLLATE "C"` so that
    // lists are ordered by bytes, as in every other backend, whatever the database's locale.
    r#"
    CREATE TABLE integrations (
        name           text COLLATE "C" PRIMARY KEY,
        source_digest  text NOT NULL,
        flows          text NOT NULL,
        created        bigint NOT NULL
    );
    CREATE TABLE instances (
        id                          text COLLATE "C" PRIMARY KEY,
        integration                 text COLLATE "C" NOT NULL REFERENCES integrations (name),
        scheme                      text NOT NULL,
        client_id                   text NOT NULL,
        client_secret               bytea,
        scopes                      text NOT NULL,
        redirect_uri                text NOT NULL,
        authorization_url           text,
        token_url                   text,
        extra_authorization_params  text NOT NULL,
        extra_token_params          text NOT NULL,
        extra_token_headers         text NOT NULL,
        client_auth                 text NOT NULL,
        status                      text NOT NULL,
        created                     bigint NOT NULL,
        updated                     bigint NOT NULL,
        version                     bigint NOT NULL
    );
    CREATE INDEX instances_by_integration ON instances (integration);
    CREATE TABLE pendings (
        state            text COLLATE "C" PRIMARY KEY,
        instance         text COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
        pkce_verifier    bytea NOT NULL,
        redirect_uri     text NOT NULL,
        expected_issuer  text,
        created          bigint NOT NULL,
        expires          bigint NOT NULL
    );
    CREATE INDEX pendings_by_instance ON pendings (instance);
    CREATE INDEX pendings_by_expiry ON pendings (expires);
    CREATE TABLE tokens (
        instance       text COLLATE "C" PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
        access_token   bytea NOT NULL,
        refresh_token  bytea,
        token_type     text NOT NULL,
        scope          text,
        expires_at     bigint,
        obtained_at    bigint NOT NULL,
        last_refresh   text,
        version        bigint NOT NULL
    );
    CREATE TABLE leases (
        instance  text COLLATE "C" PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
        holder    text NOT NULL,
        expires   bigint NOT NULL
    );
    CREATE TABLE change_counter (
        only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        last      bigint NOT NULL
    );
    INSERT INTO change_counter (last) VALUES (0);
    CREATE TABLE changes (
        seq       bigint PRIMARY KEY,
        instance  text NOT NULL
    );
    "#,
    // 1 -> 2: the key check (`Store::put_key_check`), one row.
    r#"
    CREATE TABLE key_check (
        only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        value     bytea NOT NULL
    );
    "#,
    // 2 -> 3: the server's state every node must see: admin sessions, their one-time
    // banners (a row apart, so that taking one is a single `DELETE ... RETURNING`), and API
    // keys.
    r#"
    CREATE TABLE admin_sessions (
        digest   text COLLATE "C" PRIMARY KEY,
        csrf     text NOT NULL,
        created  bigint NOT NULL,
        expires  bigint NOT NULL
    );
    CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires);
    CREATE TABLE admin_banners (
        digest  text COLLATE "C" PRIMARY KEY
                REFERENCES admin_sessions (digest) ON DELETE CASCADE,
        banner  text NOT NULL
    );
    CREATE TABLE api_keys (
        id       text COLLATE "C" PRIMARY KEY,
        name     text NOT NULL,
        role     text NOT NULL,
        digest   text COLLATE "C" NOT NULL UNIQUE,
        created  bigint NOT NULL
    );
    "#,
    // 3 -> 4: indexes for the queries whose cost must follow what they return, not the
    // number of instances kept: the tokens due by expiry (the background refresher), by the
    // time they were obtained (unknown expiry, `max_idle`), and the counts per status.
    r#"
    CREATE INDEX tokens_by_expiry ON tokens (expires_at, instance);
    CREATE INDEX tokens_by_obtained ON tokens (obtained_at, instance);
    CREATE INDEX instances_by_status ON instances (status);
    "#,
    // 4 -> 5: an instance's lifetime, in seconds, of a token without a stated expiry
    // (`Instance::token_lifetime`); NULL in the rows written before.
    r#"
    ALTER TABLE instances ADD COLUMN token_lifetime bigint;
    "#,
    // 5 -> 6: provider profiles. An instance's connection fields (`Instance::connection`, a
    // JSON object) and its own profile settings (`Instance::profile`, JSON); the values kept
    // with a token (`TokenRecord::kept`, a JSON object). JSON text, as the other JSON
    // columns (the profile is kept byte for byte); NULL (in the rows written before) is
    // empty, or none.
    r#"
    ALTER TABLE instances ADD COLUMN connection text, ADD COLUMN profile text;
    ALTER TABLE tokens ADD COLUMN kept text;
    "#,
    // 6 -> 7: webhooks and reconnect links (issue 16). A delivery's attempts are JSON text;
    // deleting an endpoint cascades to its deliveries. The claim reads
    // `webhook_deliveries_due`, the delivery log `webhook_deliveries_by_endpoint`.
    r#"
    CREATE TABLE webhook_endpoints (
        id       text COLLATE "C" PRIMARY KEY,
        url      text NOT NULL,
        secret   bytea NOT NULL,
        events   text NOT NULL,
        enabled  boolean NOT NULL,
        created  bigint NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        id             text COLLATE "C" PRIMARY KEY,
        endpoint       text COLLATE "C" NOT NULL
                       REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        event_type     text NOT NULL,
        payload        text NOT NULL,
        created        bigint NOT NULL,
        state          text NOT NULL,
        attempts       text NOT NULL,
        next_attempt   bigint NOT NULL,
        claimed_by     text,
        claimed_until  bigint
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt);
    CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint, created);
    CREATE TABLE reconnect_links (
        digest    text COLLATE "C" PRIMARY KEY,
        instance  text NOT NULL,
        created   bigint NOT NULL,
        expires   bigint NOT NULL
    );
    CREATE INDEX reconnect_links_by_expiry ON reconnect_links (expires);
    "#,
];

/// The schema version this granary writes.
pub(crate) fn current_version() -> i32 {
    i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX)
}

/// The first half of the advisory lock key of migrations ("grny"); the second is a hash of
/// the schema name, so stores in different schemas of one database migrate independently.
const LOCK_KEY: i32 = 0x6772_6e79;

/// Brings the schema (`schema`, or the connection's current schema) to [`current_version`]
/// in one transaction that first takes the advisory lock: a second node starting at the
/// same moment waits, then finds the schema current. Refuses a schema that holds tables
/// granary did not create, and one written by a newer granary.
pub(crate) async fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), Fault> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_KEY, &schema.unwrap_or("")],
    )
    .await?;
    if let Some(schema) = schema {
        // The name was checked to be a plain identifier (see `PostgresOptions::schema`).
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
    }
    let row = tx
        .query_one(
            "SELECT to_regclass('granary_schema') IS NOT NULL, \
             to_regclass('integrations') IS NOT NULL, current_schema()",
            &[],
        )
        .await?;
    let (has_meta, has_tables, current): (bool, bool, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    let place = current.unwrap_or_else(|| "the current schema".to_string());
    if !has_meta {
        if has_tables {
            return Err(Error::corrupt(format!(
                "the PostgreSQL schema `{place}` holds a table `integrations` that granary did \
                 not create: give granary a schema of its own (a `schema` option, or \
                 `options=-csearch_path%3Dgranary` in the URL) or another database"
            ))
            .into());
        }
        tx.batch_execute(
            "CREATE TABLE granary_schema (only_row boolean PRIMARY KEY DEFAULT true \
             CHECK (only_row), version integer NOT NULL); \
             INSERT INTO granary_schema (version) VALUES (0);",
        )
        .await?;
    }
    let version: i32 = tx
        .query_one("SELECT version FROM granary_schema", &[])
        .await?
        .get(0);
    if version > current_version() {
        return Err(Error::unsupported(format!(
            "the granary tables in PostgreSQL schema `{place}` have schema version {version}, \
             written by a newer granary (this one knows up to {}): upgrade granary on this node",
            current_version()
        ))
        .into());
    }
    let from = usize::try_from(version.max(0)).unwrap_or(0);
    for migration in &MIGRATIONS[from..] {
        tx.batch_execute(migration).await?;
    }
    if from < MIGRATIONS.len() {
        tx.execute(
            "UPDATE granary_schema SET version = $1",
            &[&current_version()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
