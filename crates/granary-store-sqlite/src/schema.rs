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
];
