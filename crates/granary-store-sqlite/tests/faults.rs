//! Bad input and faults: every one is a clear error, never a panic, never silent loss.

use std::io::Write;

use granary_store::{
    ClientAuth, Error, Instance, InstanceStatus, Integration, Sealed, Store, Timestamp, TokenRecord,
};
use granary_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};

fn integration() -> Integration {
    Integration {
        name: "api".to_string(),
        source_digest: "sha256:0".to_string(),
        flows: serde_json::json!({}),
        created: Timestamp::EPOCH,
    }
}

fn instance(id: &str) -> Instance {
    Instance {
        id: id.to_string(),
        integration: "api".to_string(),
        scheme: "oauth".to_string(),
        client_id: "client".to_string(),
        client_secret: Some(Sealed::new(vec![1, 2, 3])),
        scopes: vec!["read".to_string()],
        redirect_uri: "http://127.0.0.1/admin/oauth/".to_string(),
        authorization_url: None,
        token_url: None,
        extra_authorization_params: Vec::new(),
        extra_token_params: Vec::new(),
        extra_token_headers: Vec::new(),
        client_auth: ClientAuth::ClientSecretPost,
        token_lifetime: None,
        connection: Default::default(),
        profile: None,
        status: InstanceStatus::New,
        created: Timestamp::EPOCH,
        updated: Timestamp::EPOCH,
        version: 0,
    }
}

fn token(size: usize) -> TokenRecord {
    TokenRecord {
        access_token: Sealed::new(vec![7; size]),
        refresh_token: None,
        token_type: "Bearer".to_string(),
        scope: None,
        expires_at: None,
        obtained_at: Timestamp::EPOCH,
        last_refresh: None,
        kept: Default::default(),
        version: 0,
    }
}

async fn open_error(path: &std::path::Path) -> Error {
    match SqliteStore::open(path).await {
        Ok(_) => panic!("{} opened", path.display()),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.db");
    let text = "this is a config file, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("is not a granary database"), "{message}");
    assert!(
        message.contains("point the data directory elsewhere"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file was changed"
    );
}

#[tokio::test]
async fn a_sqlite_database_of_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE photos (id INTEGER PRIMARY KEY); INSERT INTO photos VALUES (1);",
        )
        .unwrap();
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("not a granary one"), "{error}");
    let count: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM photos", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1);

    let path = dir.path().join("app-id.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA application_id = 1234;")
        .unwrap();
    let error = open_error(&path).await;
    assert!(error.to_string().contains("another application"), "{error}");
}

#[tokio::test]
async fn a_database_from_a_newer_granary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("schema version {newer}")),
        "{message}"
    );
    assert!(message.contains("upgrade granary"), "{message}");
}

#[tokio::test]
async fn a_damaged_database_gives_corrupt_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.put_integration(&integration()).await.unwrap();
        for n in 0..200 {
            store
                .create_instance(&instance(&format!("instance-{n:03}")))
                .await
                .unwrap();
        }
    }
    // Fold the WAL into the file, then overwrite every page but the first with garbage.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "the database is too small to damage");
    for (n, byte) in bytes.iter_mut().enumerate().skip(4096) {
        *byte = (n % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    let outcome = async {
        let store = SqliteStore::open(&path).await?;
        store.list_instances().await
    }
    .await;
    match outcome {
        Err(Error::Corrupt { message }) => assert!(
            message.contains("damaged") || message.contains("not a granary"),
            "{message}"
        ),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unwritable_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A folder that cannot exist: its parent is a file.
    let file = dir.path().join("not-a-folder");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    let error = open_error(&file.join("granary.db")).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        error.to_string().contains("check that its folder exists"),
        "{error}"
    );

    // /proc refuses new files even to root, which ignores permission bits.
    let error = open_error(std::path::Path::new("/proc/granary-test.db")).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/proc/granary-test.db"),
        "{error}"
    );
}

#[tokio::test]
async fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let mut options = SqliteOptions::default();
    options.max_page_count = Some(40);
    let store = SqliteStore::open_with(&path, options).await.unwrap();
    store.put_integration(&integration()).await.unwrap();
    store.create_instance(&instance("full")).await.unwrap();
    let mut version = None;
    let mut fillers = 0;
    let error = loop {
        match store.put_token("full", &token(2048), version).await {
            Ok(v) => version = Some(v),
            Err(error) => break error,
        }
        let mut filler = instance(&format!("filler-{fillers}"));
        filler.client_secret = Some(Sealed::new(vec![9; 16 * 1024]));
        match store.create_instance(&filler).await {
            Ok(_) => fillers += 1,
            Err(error) => break error,
        }
        assert!(fillers < 1_000, "the size cap never hit");
    };
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(error.to_string().contains("is full"), "{error}");
    let stored = store.get_token("full").await.unwrap().unwrap();
    assert_eq!(
        Some(stored.version),
        version,
        "the last committed token is gone or a failed write landed"
    );
    let instances = store.list_instances().await.unwrap();
    assert_eq!(
        instances.len(),
        fillers + 1,
        "an instance was lost or a failed write landed"
    );
}
