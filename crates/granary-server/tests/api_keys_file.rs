//! An `api-keys.json` left in the data directory by an older granary moves into the store
//! when the store is opened (as `granary serve` and every CLI command open it), and the keys
//! work on a server of that store.

use std::sync::Arc;

use granary_server::api_keys::{ApiKeys, FILE, Role};
use granary_server::open::granary;
use granary_server::settings::{CommonArgs, ServeArgs, Settings};

#[tokio::test]
async fn opening_the_store_moves_the_api_keys_file_into_it() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join(FILE);
    // The digest of `granary_old-key`, written before roles existed.
    let old_key = "granary_old-key";
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(old_key.as_bytes()))
    };
    std::fs::write(
        &file,
        format!(
            r#"{{"keys":[{{"id":"old","name":"before roles","sha256":"{digest}","created":1}}]}}"#
        ),
    )
    .unwrap();
    let common = CommonArgs {
        data_dir: Some(data.path().to_path_buf()),
        public_url: Some("http://127.0.0.1:8080".parse().unwrap()),
        ..CommonArgs::default()
    };
    let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();

    let opened = granary(&settings).await.unwrap();
    assert!(
        !file.exists(),
        "the file is removed once its keys are in the store"
    );
    let keys = ApiKeys::open(Arc::clone(opened.store())).await.unwrap();
    let found = keys.verify(old_key).await.expect("the old key works");
    assert_eq!((found.id.as_str(), found.role), ("old", Role::Admin));
    drop(keys);
    drop(opened);

    // The next open finds no file and keeps the one key.
    let opened = granary(&settings).await.unwrap();
    assert_eq!(opened.store().list_api_keys().await.unwrap().len(), 1);
}
