//! The schema as an ordered list of migrations; migration `n` takes `user_version` from `n`
//! to `n + 1`.

/// Every migration, oldest first. Never edit one that shipped: append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the five kinds of record.
    "
    CREATE TABLE integrations (
        name           TEXT PRIMARY KEY NOT NULL,
        source_digest  TEXT NOT NULL,
        flows          TEXT NOT NULL,
        created        INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE instances (
        id                          TEXT PRIMARY KEY NOT NULL,
        integration                 TEXT NOT NULL,
        scheme                      TEXT NOT NULL,
        client_id                   TEXT NOT NULL,
        client_secret               BLOB,
        scopes                      TEXT NOT NULL,
        redirect_uri                TEXT NOT NULL,
        authorization_url           TEXT,
        token_url                   TEXT,
        extra_authorization_params  TEXT NOT NULL,
        extra_token_params          TEXT NOT NULL,
        extra_token_headers         TEXT NOT NULL,
        client_auth                 TEXT NOT NULL,
        status                      TEXT NOT NULL,
        created                     INTEGER NOT NULL,
        updated                     INTEGER NOT NULL,
        version                     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX instances_by_integration ON instances (integration);

    CREATE TABLE pendings (
        state            TEXT PRIMARY KEY NOT NULL,
        instance         TEXT NOT NULL,
        pkce_verifier    BLOB NOT NULL,
        redirect_uri     TEXT NOT NULL,
        expected_issuer  TEXT,
        created          INTEGER NOT NULL,
        expires          INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX pendings_by_instance ON pendings (instance);
    CREATE INDEX pendings_by_expiry ON pendings (expires);

    CREATE TABLE tokens (
        instance       TEXT PRIMARY KEY NOT NULL,
        access_token   BLOB NOT NULL,
        refresh_token  BLOB,
        token_type     TEXT NOT NULL,
        scope          TEXT,
        expires_at     INTEGER,
        obtained_at    INTEGER NOT NULL,
        last_refresh   TEXT,
        version        INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE leases (
        instance  TEXT PRIMARY KEY NOT NULL,
        holder    TEXT NOT NULL,
        expires   INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 1 -> 2: the change feed. AUTOINCREMENT keeps the highest number ever given in
    // `sqlite_sequence`, so numbers are never reused, even once old rows are pruned.
    "
    CREATE TABLE changes (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        instance  TEXT NOT NULL
    );
    ",
    // 2 -> 3: the key check (`Store::put_key_check`), one row.
    "
    CREATE TABLE key_check (
        only_row  INTEGER PRIMARY KEY CHECK (only_row = 1),
        value     BLOB NOT NULL
    );
    ",
    // 3 -> 4: the server's state every node must see: admin sessions (with their one-time
    // banner) and API keys.
    "
    CREATE TABLE admin_sessions (
        digest   TEXT PRIMARY KEY NOT NULL,
        csrf     TEXT NOT NULL,
        created  INTEGER NOT NULL,
        expires  INTEGER NOT NULL,
        banner   TEXT
    ) WITHOUT ROWID;
    CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires);

    CREATE TABLE api_keys (
        id       TEXT PRIMARY KEY NOT NULL,
        name     TEXT NOT NULL,
        role     TEXT NOT NULL,
        digest   TEXT NOT NULL UNIQUE,
        created  INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
    // 4 -> 5: indexes for the queries whose cost must follow what they return, not the
    // number of instances kept: the tokens due by expiry (the background refresher), by the
    // time they were obtained (unknown expiry, `max_idle`), and the counts per status.
    "
    CREATE INDEX tokens_by_expiry ON tokens (expires_at, instance);
    CREATE INDEX tokens_by_obtained ON tokens (obtained_at, instance);
    CREATE INDEX instances_by_status ON instances (status);
    ",
    // 5 -> 6: an instance's lifetime, in seconds, of a token without a stated expiry
    // (`Instance::token_lifetime`); NULL in the rows written before.
    "
    ALTER TABLE instances ADD COLUMN token_lifetime INTEGER;
    ",
    // 6 -> 7: provider profiles. An instance's connection fields (`Instance::connection`, a
    // JSON object) and its own profile settings (`Instance::profile`, JSON); the values kept
    // with a token (`TokenRecord::kept`, a JSON object). NULL (in the rows written before)
    // is empty, or none.
    "
    ALTER TABLE instances ADD COLUMN connection TEXT;
    ALTER TABLE instances ADD COLUMN profile TEXT;
    ALTER TABLE tokens ADD COLUMN kept TEXT;
    ",
    // 7 -> 8: webhooks and reconnect links (issue 16). A delivery's attempts are a JSON
    // array; the claim query reads `webhook_deliveries_due`, the delivery log
    // `webhook_deliveries_by_endpoint`.
    "
    CREATE TABLE webhook_endpoints (
        id       TEXT PRIMARY KEY NOT NULL,
        url      TEXT NOT NULL,
        secret   BLOB NOT NULL,
        events   TEXT NOT NULL,
        enabled  INTEGER NOT NULL,
        created  INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE webhook_deliveries (
        id             TEXT PRIMARY KEY NOT NULL,
        endpoint       TEXT NOT NULL,
        event_type     TEXT NOT NULL,
        payload        TEXT NOT NULL,
        created        INTEGER NOT NULL,
        state          TEXT NOT NULL,
        attempts       TEXT NOT NULL,
        next_attempt   INTEGER NOT NULL,
        claimed_by     TEXT,
        claimed_until  INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt);
    CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint, created);

    CREATE TABLE reconnect_links (
        digest   TEXT PRIMARY KEY NOT NULL,
        instance TEXT NOT NULL,
        created  INTEGER NOT NULL,
        expires  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX reconnect_links_by_expiry ON reconnect_links (expires);
    ",
];

#[cfg(test)]
mod tests {
    use granary_store::{RefreshErrorKind, RefreshResult, Store};

    use super::MIGRATIONS;
    use crate::{APPLICATION_ID, SCHEMA_VERSION, SqliteStore};

    /// A file written by the previous granary (schema version 1, a failed refresh recorded
    /// without `failures` and `retry_at`) opens, is migrated, and its records decode.
    #[tokio::test]
    async fn a_version_1_database_migrates_and_its_records_decode() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("granary.db");
        {
            let old = rusqlite::Connection::open(&path).expect("sqlite opens");
            old.execute_batch(MIGRATIONS[0]).expect("schema version 1");
            old.pragma_update(None, "user_version", 1)
                .expect("user_version");
            old.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("application_id");
            old.execute_batch(
                r#"
                INSERT INTO integrations VALUES ('api', 'sha256:0', '{}', 0);
                INSERT INTO instances VALUES ('old', 'api', 'oauth', 'client', NULL, '[]',
                    'http://127.0.0.1/admin/oauth/', NULL, NULL, '[]', '[]', '[]', 'none',
                    'authorized', 0, 0, 1);
                INSERT INTO tokens VALUES ('old', x'0102', NULL, 'Bearer', NULL, NULL, 5,
                    '{"at":7,"result":{"result":"failed","kind":"transient","message":"timeout"}}',
                    3);
                "#,
            )
            .expect("records of version 1");
        }

        let store = SqliteStore::open(&path)
            .await
            .expect("a version 1 file opens");
        let token = store
            .get_token("old")
            .await
            .expect("the old token decodes")
            .expect("the old token is there");
        assert_eq!(token.version, 3);
        let outcome = token.last_refresh.clone().expect("its last refresh");
        assert_eq!(
            outcome.result,
            RefreshResult::Failed {
                kind: RefreshErrorKind::Transient,
                message: "timeout".to_string(),
                failures: 1,
                retry_at: None,
            }
        );
        assert_eq!(store.latest_change().await.expect("latest_change"), 0);
        store
            .put_token("old", &token_without_version(token), Some(3))
            .await
            .expect("a write after the migration");
        let changes = store.changes_since(0, 10).await.expect("changes_since");
        assert!(!changes.missed);
        assert_eq!(
            changes.changes,
            [granary_store::Change {
                seq: 1,
                instance: "old".to_string()
            }]
        );
        drop(store);

        let check = rusqlite::Connection::open(&path).expect("sqlite opens");
        let version: i64 = check
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A file written before provider profiles (schema version 6, an instance and its token
    /// without connection fields, profile or kept values) opens, is migrated, its records
    /// decode with them empty, and the new fields are kept from then on.
    #[tokio::test]
    async fn a_version_6_database_migrates_and_keeps_profile_fields() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("granary.db");
        {
            let old = rusqlite::Connection::open(&path).expect("sqlite opens");
            for migration in &MIGRATIONS[..6] {
                old.execute_batch(migration)
                    .expect("schema up to version 6");
            }
            old.pragma_update(None, "user_version", 6)
                .expect("user_version");
            old.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("application_id");
            old.execute_batch(
                r#"
                INSERT INTO integrations VALUES ('api', 'sha256:0', '{}', 0);
                INSERT INTO instances VALUES ('old', 'api', 'oauth', 'client', NULL, '["read"]',
                    'http://127.0.0.1/admin/oauth/', NULL, NULL, '[]', '[]', '[]', 'none',
                    'authorized', 0, 0, 4, 600);
                INSERT INTO tokens VALUES ('old', x'0102', NULL, 'Bearer', NULL, NULL, 5, NULL, 3);
                "#,
            )
            .expect("records of version 6");
        }

        let store = SqliteStore::open(&path)
            .await
            .expect("a version 6 file opens");
        let mut instance = store
            .get_instance("old")
            .await
            .expect("the old instance decodes")
            .expect("the old instance is there");
        assert_eq!(instance.version, 4);
        assert_eq!(instance.token_lifetime, Some(600));
        assert!(instance.connection.is_empty());
        assert_eq!(instance.profile, None);
        let mut token = store
            .get_token("old")
            .await
            .expect("the old token decodes")
            .expect("the old token is there");
        assert_eq!(token.version, 3);
        assert!(token.kept.is_empty());

        instance
            .connection
            .insert("subdomain".to_string(), "acme".to_string());
        instance.profile = Some(serde_json::json!({ "pkce": false }));
        assert_eq!(
            store.update_instance(&instance).await.expect("an update"),
            5
        );
        token.kept.insert("realmId".to_string(), "123".to_string());
        store
            .put_token("old", &token_without_version(token.clone()), Some(3))
            .await
            .expect("a token write after the migration");
        drop(store);

        let store = SqliteStore::open(&path).await.expect("it opens again");
        let read = store
            .get_instance("old")
            .await
            .expect("get_instance")
            .expect("the instance");
        assert_eq!(read.connection, instance.connection);
        assert_eq!(read.profile, instance.profile);
        let read = store
            .get_token("old")
            .await
            .expect("get_token")
            .expect("the token");
        assert_eq!(read.kept, token.kept);
        drop(store);

        let check = rusqlite::Connection::open(&path).expect("sqlite opens");
        let version: i64 = check
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(SCHEMA_VERSION, 8);
    }

    fn token_without_version(mut token: granary_store::TokenRecord) -> granary_store::TokenRecord {
        token.version = 0;
        token
    }
}
