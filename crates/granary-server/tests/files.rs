//! The data directory's files are private (0600) whatever the directory's mode, and a
//! directory others can read is reported.

use std::os::unix::fs::PermissionsExt as _;

use granary_server::open::{STORE_FILE, data_dir_warning, granary};
use granary_server::settings::{CommonArgs, ServeArgs, Settings};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn store_files_are_0600_in_a_0755_directory() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(data_dir_warning(&data).unwrap().contains("chmod 700"));

    let common = CommonArgs {
        data_dir: Some(data.clone()),
        public_url: Some("http://127.0.0.1:8080".parse().unwrap()),
        ..CommonArgs::default()
    };
    let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
    let opened = granary(&settings).await.unwrap();
    // A write, so that the WAL exists.
    let document = br#"{"openapi":"3.0.0","info":{"title":"t","version":"1"},"paths":{},
        "components":{"securitySchemes":{"o":{"type":"oauth2","flows":{"authorizationCode":{
        "authorizationUrl":"https://p.example/a","tokenUrl":"https://p.example/t","scopes":{}}}}}}}"#;
    opened
        .engine()
        .import_integration("files", document)
        .await
        .unwrap();
    let mut seen = 0;
    for suffix in ["", "-wal", "-shm", ".key"] {
        let path = data.join(format!("{STORE_FILE}{suffix}"));
        if suffix.is_empty() || suffix == "-wal" || path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 2);
    assert_eq!(mode(&data), 0o755, "the directory itself is left as it was");
    drop(opened);

    // Files left world-readable by an older granary are narrowed at the next open.
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join(format!("{STORE_FILE}{suffix}"));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let opened = granary(&settings).await.unwrap();
    assert_eq!(mode(&data.join(STORE_FILE)), 0o600);
    for suffix in ["-wal", "-shm"] {
        let path = data.join(format!("{STORE_FILE}{suffix}"));
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    drop(opened);

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(data_dir_warning(&data), None);
}
