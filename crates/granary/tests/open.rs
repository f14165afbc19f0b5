//! Opening a granary from configuration, without a provider: the key file next to the store,
//! reopening, a wrong key, a memory store, and no secret in Debug output.

use granary::{Config, EngineError, Granary, KeySource, NewInstance, StoreConfig};
use secrecy::{SecretBox, SecretString};
use url::Url;

const DOCUMENT: &str = r#"{"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {},
  "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": {"authorizationCode": {
  "authorizationUrl": "https://provider.invalid/authorize", "tokenUrl": "https://provider.invalid/token",
  "scopes": {"read": "Read"}}}}}}}"#;

fn public_url() -> Url {
    Url::parse("https://granary.example").unwrap()
}

async fn seed(granary: &Granary) {
    granary
        .import_integration("api", DOCUMENT.as_bytes())
        .await
        .unwrap();
    let mut new = NewInstance::new("one", "api", "client");
    new.client_secret = Some(SecretString::from("client-secret-in-plain-sight"));
    new.scopes = vec!["read".into()];
    granary.create_instance(new).await.unwrap();
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_with_a_generated_key_file_reopens_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("granary.db");
    let config = || Config::new(StoreConfig::Sqlite(db.clone()), public_url());
    let granary = Granary::open(config()).await.unwrap();
    seed(&granary).await;
    let url = granary.begin_authorization("one").await.unwrap().url;
    assert!(
        url.as_str()
            .contains("redirect_uri=https%3A%2F%2Fgranary.example%2Fadmin%2Foauth%2F")
    );
    drop(granary);

    let key_file = dir.path().join("granary.db.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The secret is sealed: not in the database file.
    let bytes = std::fs::read(&db).unwrap();
    let needle = b"client-secret-in-plain-sight";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));

    // Reopened with the same key file: the sealed client secret opens.
    let granary = Granary::open(config()).await.unwrap();
    granary.begin_authorization("one").await.unwrap();
    drop(granary);

    // Opened with another key: refused at open (the store's key check), not at the first
    // token, and the error says why and what to do.
    let other = config().with_key(KeySource::Bytes(SecretBox::new(Box::new([9u8; 32]))));
    let err = Granary::open(other).await.unwrap_err();
    assert!(matches!(err, granary::Error::Key(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("cannot open this store's secrets") && text.contains("GRANARY_MASTER_KEY"),
        "{text}"
    );

    // Without the key check (a store that keeps none), the wrong key shows at the first
    // secret: the check is what moved the failure to open.
    let store: std::sync::Arc<dyn granary::store::Store> =
        std::sync::Arc::new(granary::sqlite::SqliteStore::open(&db).await.unwrap());
    let no_check = Config::new(
        StoreConfig::Custom(std::sync::Arc::new(NoKeyCheck(store))),
        public_url(),
    )
    .with_key(KeySource::Bytes(SecretBox::new(Box::new([9u8; 32]))));
    let granary = Granary::open(no_check).await.unwrap();
    let err = granary.begin_authorization("one").await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Seal(granary::flow::engine::SealError::UnknownKey(_))
        ),
        "{err}"
    );
}

/// A store that forwards everything but keeps no key check (the trait's default).
struct NoKeyCheck(std::sync::Arc<dyn granary::store::Store>);

#[async_trait::async_trait]
impl granary::store::Store for NoKeyCheck {
    fn capabilities(&self) -> granary::store::Capabilities {
        self.0.capabilities()
    }
    async fn put_integration(&self, i: &granary::store::Integration) -> granary::store::Result<()> {
        self.0.put_integration(i).await
    }
    async fn get_integration(
        &self,
        n: &str,
    ) -> granary::store::Result<Option<granary::store::Integration>> {
        self.0.get_integration(n).await
    }
    async fn list_integrations(&self) -> granary::store::Result<Vec<granary::store::Integration>> {
        self.0.list_integrations().await
    }
    async fn delete_integration(&self, n: &str) -> granary::store::Result<bool> {
        self.0.delete_integration(n).await
    }
    async fn create_instance(&self, i: &granary::store::Instance) -> granary::store::Result<u64> {
        self.0.create_instance(i).await
    }
    async fn get_instance(
        &self,
        id: &str,
    ) -> granary::store::Result<Option<granary::store::Instance>> {
        self.0.get_instance(id).await
    }
    async fn list_instances(&self) -> granary::store::Result<Vec<granary::store::Instance>> {
        self.0.list_instances().await
    }
    async fn update_instance(&self, i: &granary::store::Instance) -> granary::store::Result<u64> {
        self.0.update_instance(i).await
    }
    async fn delete_instance(&self, id: &str) -> granary::store::Result<bool> {
        self.0.delete_instance(id).await
    }
    async fn put_pending(
        &self,
        p: &granary::store::PendingAuthorization,
    ) -> granary::store::Result<()> {
        self.0.put_pending(p).await
    }
    async fn take_pending(
        &self,
        state: &str,
        now: granary::store::Timestamp,
    ) -> granary::store::Result<Option<granary::store::PendingAuthorization>> {
        self.0.take_pending(state, now).await
    }
    async fn purge_expired_pendings(
        &self,
        now: granary::store::Timestamp,
    ) -> granary::store::Result<u64> {
        self.0.purge_expired_pendings(now).await
    }
    async fn get_token(
        &self,
        i: &str,
    ) -> granary::store::Result<Option<granary::store::TokenRecord>> {
        self.0.get_token(i).await
    }
    async fn put_token(
        &self,
        i: &str,
        t: &granary::store::TokenRecord,
        v: Option<u64>,
    ) -> granary::store::Result<u64> {
        self.0.put_token(i, t, v).await
    }
    async fn put_token_fenced(
        &self,
        i: &str,
        t: &granary::store::TokenRecord,
        v: u64,
        holder: &str,
        now: granary::store::Timestamp,
    ) -> granary::store::Result<u64> {
        self.0.put_token_fenced(i, t, v, holder, now).await
    }
    async fn delete_token(&self, i: &str, v: Option<u64>) -> granary::store::Result<bool> {
        self.0.delete_token(i, v).await
    }
    async fn try_acquire_lease(
        &self,
        i: &str,
        holder: &str,
        now: granary::store::Timestamp,
        ttl: std::time::Duration,
    ) -> granary::store::Result<bool> {
        self.0.try_acquire_lease(i, holder, now, ttl).await
    }
    async fn release_lease(&self, i: &str, holder: &str) -> granary::store::Result<bool> {
        self.0.release_lease(i, holder).await
    }
    async fn get_lease(&self, i: &str) -> granary::store::Result<Option<granary::store::Lease>> {
        self.0.get_lease(i).await
    }
    async fn latest_change(&self) -> granary::store::Result<u64> {
        self.0.latest_change().await
    }
    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> granary::store::Result<granary::store::Changes> {
        self.0.changes_since(after, limit).await
    }
}

/// A store built outside the facade opens through `StoreConfig::Custom`, as it is; a second
/// granary on it with another key is refused at open; after a rotation the new key alone
/// opens it and the old one alone is refused.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_custom_store_opens_as_given_and_its_key_check_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn granary::store::Store> = std::sync::Arc::new(
        granary::sqlite::SqliteStore::open(dir.path().join("custom.db"))
            .await
            .unwrap(),
    );
    let key = |byte: u8| KeySource::Bytes(SecretBox::new(Box::new([byte; 32])));
    let config = |byte: u8| {
        Config::new(StoreConfig::Custom(store.clone()), public_url()).with_key(key(byte))
    };
    assert!(matches!(
        Config::new(StoreConfig::Custom(store.clone()), public_url()).key,
        KeySource::Env
    ));
    let granary = Granary::open(config(1)).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(granary.store(), &store));
    seed(&granary).await;
    granary.begin_authorization("one").await.unwrap();

    let err = Granary::open(config(2)).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot open this store's secrets"),
        "{err}"
    );

    granary
        .rotate_key(Some(SecretBox::new(Box::new([3u8; 32]))))
        .await
        .unwrap();
    drop(granary);
    let err = Granary::open(config(1)).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot open this store's secrets"),
        "{err}"
    );
    let granary = Granary::open(config(3)).await.unwrap();
    granary.begin_authorization("one").await.unwrap();
}

#[tokio::test]
async fn memory_store_with_an_ephemeral_key_works_and_debug_shows_no_secret() {
    let key = [7u8; 32];
    let config = Config::new(StoreConfig::Memory, public_url())
        .with_key(KeySource::Bytes(SecretBox::new(Box::new(key))));
    let shown = format!("{config:?}");
    assert!(
        shown.contains("[redacted]") && !shown.contains("7, 7"),
        "{shown}"
    );
    let granary = Granary::open(Config::new(StoreConfig::Memory, public_url()))
        .await
        .unwrap();
    seed(&granary).await;
    let err = granary.access_token("one").await.unwrap_err();
    assert!(matches!(err, EngineError::NotAuthorized { .. }), "{err}");
    assert!(err.to_string().contains("start the authorization"));
    let mut new = NewInstance::new("two", "api", "client");
    new.client_secret = Some(SecretString::from("another-secret-value"));
    assert!(!format!("{new:?}").contains("another-secret-value"));
    assert!(!format!("{granary:?}").contains("secret-value"));
    // Without a key file, a generated rotation key has nowhere to go.
    assert!(granary.rotate_key(None).await.is_err());
    let rotation = granary
        .rotate_key(Some(SecretBox::new(Box::new([8u8; 32]))))
        .await
        .unwrap();
    assert_eq!(rotation.report.client_secrets, 1);
    granary.begin_authorization("one").await.unwrap();
}

/// Whether `needle` occurs in the database file or its WAL.
#[cfg(feature = "sqlite")]
fn in_files(db: &std::path::Path, needle: &str) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_path_buf(), std::path::PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_extra_token_values_are_sealed_and_plaintext_ones_of_an_older_version_sealed_at_open()
 {
    use granary::store::ExtraValue;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("granary.db");
    let config = || Config::new(StoreConfig::Sqlite(db.clone()), public_url());
    let granary = Granary::open(config()).await.unwrap();
    granary
        .import_integration("api", DOCUMENT.as_bytes())
        .await
        .unwrap();
    let mut new = NewInstance::new("one", "api", "client");
    new.extra_token_headers = vec![("X-Api-Key".into(), "header-value-in-plain-sight".into())];
    new.extra_token_params = vec![("audience".into(), "param-value-in-plain-sight".into())];
    new.client_auth = Some(granary::store::ClientAuth::None);
    granary.create_instance(new).await.unwrap();
    assert!(!in_files(&db, "header-value-in-plain-sight"));
    assert!(!in_files(&db, "param-value-in-plain-sight"));
    assert!(
        in_files(&db, "X-Api-Key"),
        "the names are kept in the clear"
    );

    // A record as the previous version wrote it: plaintext values.
    let mut old = granary.store().get_instance("one").await.unwrap().unwrap();
    old.extra_token_headers = vec![(
        "X-Api-Key".into(),
        ExtraValue::Plain("old-value-in-plain-sight".into()),
    )];
    granary.store().update_instance(&old).await.unwrap();
    drop(granary);
    assert!(in_files(&db, "old-value-in-plain-sight"), "the old record");

    // Opened by this version: sealed at once, and gone from the file.
    let granary = Granary::open(config()).await.unwrap();
    let instance = granary.store().get_instance("one").await.unwrap().unwrap();
    assert!(matches!(
        instance.extra_token_headers[0].1,
        ExtraValue::Sealed { .. }
    ));
    drop(granary);
    // The connection thread closes (and checkpoints) after the drop: give it 5 s.
    let gone = (0..50).any(|_| {
        let gone = !in_files(&db, "old-value-in-plain-sight");
        if !gone {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        gone
    });
    assert!(gone, "the plaintext value is still in the database file");
}
