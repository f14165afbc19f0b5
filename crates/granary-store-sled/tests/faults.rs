//! Bad input and faults: every one is a clear error, never a panic.

use granary_store::{Error, Integration, Store, Timestamp};
use granary_store_sled::{FORMAT_VERSION, SledStore};

/// `sled::open`, waiting out the lock of a store dropped a moment ago (sled's I/O threads
/// release the folder shortly after the last handle is dropped).
fn raw_open(path: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        match sled::open(path) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    sled::open(path).unwrap()
}

async fn open_error(path: &std::path::Path) -> Error {
    match SledStore::open(path).await {
        Ok(_) => panic!("{} opened", path.display()),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_second_open_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    let first = SledStore::open(&path).await.unwrap();
    let started = std::time::Instant::now();
    let error = open_error(&path).await;
    // A store dropped a moment ago releases the lock a moment later, so an open waits up to
    // 2 s for it before it refuses.
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(2),
        "refused after {waited:?}, without waiting 2 s for the lock"
    );
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("cannot share a database between processes"),
        "{message}"
    );
    assert!(message.contains("use the SQLite backend"), "{message}");
    drop(first);
    SledStore::open(&path)
        .await
        .expect("reopening after the first store closed");
}

#[tokio::test]
async fn a_file_where_the_folder_should_be_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    std::fs::write(&path, "not a folder").unwrap();
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(error.to_string().contains("is a folder"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a folder");
}

#[tokio::test]
async fn an_unwritable_location_is_a_clear_error() {
    // /proc refuses new folders even to root, which ignores permission bits.
    let error = open_error(std::path::Path::new("/proc/granary-test.sled")).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        error.to_string().contains("/proc/granary-test.sled"),
        "{error}"
    );
}

#[tokio::test]
async fn a_folder_of_garbage_is_a_clear_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    std::fs::create_dir(&path).unwrap();
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(path.join("db"), &garbage).unwrap();
    std::fs::write(path.join("conf"), &garbage[..512]).unwrap();
    let error = open_error(&path).await;
    assert!(
        matches!(
            error,
            Error::Corrupt { .. } | Error::Unsupported { .. } | Error::Backend { .. }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn a_sled_database_of_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sled");
    {
        let db = sled::open(&path).unwrap();
        db.insert("photo-1", "jpeg").unwrap();
        db.flush().unwrap();
    }
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("not a granary one"), "{error}");
    let db = raw_open(&path);
    assert!(
        db.get("photo-1").unwrap().is_some(),
        "the other database was changed"
    );
}

/// Trees of another application, even with granary's default tree empty, are refused
/// (and left as they were).
#[tokio::test]
async fn a_sled_database_with_other_trees_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sled");
    {
        let db = sled::open(&path).unwrap();
        db.open_tree("photos")
            .unwrap()
            .insert("photo-1", "jpeg")
            .unwrap();
        db.flush().unwrap();
    }
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("not a granary one"), "{error}");
    let db = raw_open(&path);
    assert!(
        db.open_tree("photos")
            .unwrap()
            .get("photo-1")
            .unwrap()
            .is_some(),
        "the other database was changed"
    );
}

/// `{:?}` names the store and its folder (and nothing of its contents).
#[tokio::test]
async fn debug_shows_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    let store = SledStore::open(&path).await.unwrap();
    assert_eq!(
        format!("{store:?}"),
        format!("SledStore {{ path: {path:?}, .. }}")
    );
}

#[tokio::test]
async fn a_database_from_a_newer_granary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    {
        let store = SledStore::open(&path).await.unwrap();
        let integration = Integration {
            name: "api".to_string(),
            source_digest: "sha256:0".to_string(),
            flows: serde_json::json!({}),
            created: Timestamp::EPOCH,
        };
        store.put_integration(&integration).await.unwrap();
    }
    {
        let db = raw_open(&path);
        let meta = db.open_tree("meta").unwrap();
        meta.insert("format", (FORMAT_VERSION + 1).to_string().as_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let error = open_error(&path).await;
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    assert!(error.to_string().contains("upgrade granary"), "{error}");
}

/// A folder of format 1 (no ordered token keys) gets them built from its tokens at open,
/// and is format 2 from then on.
#[tokio::test]
async fn a_format_1_folder_gets_its_token_keys_at_open() {
    use granary_store::{Sealed, TokenRecord};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    drop(SledStore::open(&path).await.unwrap());
    let token = |expires: Option<i64>, obtained: i64| TokenRecord {
        access_token: Sealed::new(vec![1, 2, 3]),
        refresh_token: None,
        token_type: "Bearer".to_string(),
        scope: None,
        expires_at: expires.map(Timestamp::from_unix_millis),
        obtained_at: Timestamp::from_unix_millis(obtained),
        last_refresh: None,
        kept: Default::default(),
        version: 1,
    };
    {
        let db = raw_open(&path);
        let tokens = db.open_tree("tokens").unwrap();
        for (id, record) in [
            ("late", token(Some(9_000), 3)),
            ("early", token(Some(-5), 2)),
            ("unknown", token(None, 1)),
        ] {
            tokens
                .insert(id, serde_json::to_vec(&record).unwrap())
                .unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .insert("format", b"1".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(&path).await.unwrap();
    let due = store
        .tokens_expiring_before(Timestamp::from_unix_millis(10_000), None, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = due.iter().map(|t| t.instance.as_str()).collect();
    assert_eq!(ids, ["early", "late"]);
    let old = store
        .tokens_obtained_before(Timestamp::from_unix_millis(10), None, 10)
        .await
        .unwrap();
    let ids: Vec<&str> = old.iter().map(|t| t.instance.as_str()).collect();
    assert_eq!(ids, ["unknown", "early", "late"]);
    drop(store);
    let db = raw_open(&path);
    let format = db
        .open_tree("meta")
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap();
    assert_eq!(format.as_ref(), FORMAT_VERSION.to_string().as_bytes());
}

/// Set in the child that [`a_folder_it_may_not_read_is_a_clear_error`] starts as an
/// unprivileged user when the test runs as root: the folder to open.
const UNREADABLE_ENV: &str = "GRANARY_SLED_UNREADABLE_FOLDER";

/// The user and group the child runs as when the test runs as root (`nobody`).
const NOBODY: u32 = 65_534;

#[tokio::test]
async fn a_folder_it_may_not_read_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if let Some(path) = std::env::var_os(UNREADABLE_ENV) {
        // The child: as `nobody`, the permission bits apply.
        return assert_unreadable_is_a_clear_error(std::path::Path::new(&path)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("granary.sled");
    drop(SledStore::open(&path).await.unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&path).is_err() {
        assert_unreadable_is_a_clear_error(&path).await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    // Running as root, which permission bits do not stop: this test runs again in a child
    // process as `nobody`, for whom they do. The child must reach the folder.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_folder_it_may_not_read_is_a_clear_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(UNREADABLE_ENV, &path)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("starting this test again as nobody");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the check as nobody failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Opening `path`, which this process may not read, is a clear error.
async fn assert_unreadable_is_a_clear_error(path: &std::path::Path) {
    assert!(
        std::fs::read_dir(path).is_err(),
        "{} is readable: the fault is not there",
        path.display()
    );
    let error = open_error(path).await;
    assert!(matches!(error, Error::Backend { .. }), "{error:?}");
    assert!(
        error.to_string().contains("may not read or write"),
        "{error}"
    );
}
