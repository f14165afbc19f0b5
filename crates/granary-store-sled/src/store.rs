//! [`SledStore`]: one sled tree per kind of record, records as JSON, a writer mutex for
//! read-modify-write, a flush before every write returns.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use granary_store::{
    AdminSession, ApiKeyRecord, CHANGES_KEPT, Capabilities, Change, Changes, DeliveryAttempt,
    DeliveryOutcome, Error, Instance, InstanceCounts, InstanceFilter, InstanceToken,
    InstanceWithToken, Integration, Lease, PendingAuthorization, ReconnectLink, Result, Sealed,
    Store, Timestamp, TokenRecord, WebhookDelivery, WebhookEndpoint,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError, Transactional,
    TransactionalTree,
};
use sled::{Db, Tree};

use crate::FORMAT_VERSION;
use crate::errors::{map, panicked};

mod server_state;
mod webhooks;

/// A granary store in a sled folder (experimental; one process at a time).
///
/// Cheap to clone: clones share the database. Dropping the last clone closes it and
/// releases the folder's lock.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    db: Db,
    integrations: Tree,
    instances: Tree,
    pendings: Tree,
    tokens: Tree,
    /// The ordered key of each token record by expiry: [`due_key`] of (`expires_at`,
    /// instance) -> nothing; records of unknown expiry have none. Written in the same
    /// transaction as the token.
    tokens_by_expiry: Tree,
    /// Likewise by `obtained_at`, for every record.
    tokens_by_obtained: Tree,
    leases: Tree,
    /// The change feed: big-endian change number -> instance id.
    changes: Tree,
    /// The format marker and the change counter ([`LAST_CHANGE`]).
    meta: Tree,
    /// Admin sessions by digest, with their banner.
    sessions: Tree,
    /// API keys by id.
    api_keys: Tree,
    /// sled's log file, to fsync after each flush (see [`Inner::sync`]).
    log: std::fs::File,
    /// Serializes read-modify-write methods. Enough for isolation because sled locks the
    /// folder to one process.
    writer: Mutex<()>,
}

const TREES: [&str; 11] = [
    "meta",
    "integrations",
    "instances",
    "pendings",
    "tokens",
    "tokens_by_expiry",
    "tokens_by_obtained",
    "leases",
    "changes",
    "sessions",
    "api_keys",
];

/// The key, in the `meta` tree, of the number of the newest change (big-endian `u64`). It
/// lives apart from the feed so that pruning the feed never lowers it.
const LAST_CHANGE: &str = "last_change";

/// The key, in the `meta` tree, of the key check (`Store::put_key_check`), as given.
const KEY_CHECK: &str = "key_check";

/// Prune the feed every this many changes (at most this many removals, after the commit).
const PRUNE_EVERY: u64 = 64;

type TxResult<T> = ConflictableTransactionResult<T, Error>;

/// The ordered key of (`at`, `instance`): the time as 8 big-endian bytes with the sign bit
/// flipped (so byte order is time order, negative times included), then the id's bytes.
fn due_key(at: Timestamp, instance: &str) -> Vec<u8> {
    let mut key = time_prefix(at).to_vec();
    key.extend_from_slice(instance.as_bytes());
    key
}

fn time_prefix(at: Timestamp) -> [u8; 8] {
    ((at.as_unix_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

/// The instance id of an ordered key.
fn due_key_instance(key: &[u8]) -> Result<String> {
    key.get(8..)
        .and_then(|id| std::str::from_utf8(id).ok())
        .map(str::to_string)
        .ok_or_else(|| Error::undecodable("an ordered token key", "not 8 bytes and an id"))
}

/// Replaces the ordered keys of `instance`'s token record `old` with those of `new` (either
/// may be missing), inside a transaction over the two index trees.
fn reindex(
    by_expiry: &TransactionalTree,
    by_obtained: &TransactionalTree,
    instance: &str,
    old: Option<&TokenRecord>,
    new: Option<&TokenRecord>,
) -> TxResult<()> {
    if let Some(old) = old {
        if let Some(expires) = old.expires_at {
            by_expiry.remove(due_key(expires, instance))?;
        }
        by_obtained.remove(due_key(old.obtained_at, instance))?;
    }
    if let Some(new) = new {
        if let Some(expires) = new.expires_at {
            by_expiry.insert(due_key(expires, instance), &[])?;
        }
        by_obtained.insert(due_key(new.obtained_at, instance), &[])?;
    }
    Ok(())
}

/// The token record in `raw` (a value of the `tokens` tree), for the transaction's abort.
fn decode_token(raw: &[u8], instance: &str) -> TxResult<TokenRecord> {
    serde_json::from_slice(raw).map_err(|e| {
        ConflictableTransactionError::Abort(Error::undecodable(
            format!("token of instance `{instance}`"),
            e,
        ))
    })
}

fn number(raw: &[u8], what: &str) -> Result<u64> {
    <[u8; 8]>::try_from(raw)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::undecodable(what, format!("{} bytes, not 8", raw.len())))
}

/// Appends the change of `instance` in a transaction over the `changes` and `meta` trees,
/// and returns its number.
fn append_change(
    changes: &TransactionalTree,
    meta: &TransactionalTree,
    instance: &str,
) -> TxResult<u64> {
    let last = match meta.get(LAST_CHANGE)? {
        Some(raw) => {
            number(&raw, "the change counter").map_err(ConflictableTransactionError::Abort)?
        }
        None => 0,
    };
    let seq = last + 1;
    meta.insert(LAST_CHANGE, &seq.to_be_bytes())?;
    changes.insert(&seq.to_be_bytes(), instance.as_bytes())?;
    Ok(seq)
}

impl SledStore {
    /// Opens (creating when missing) the granary sled database in the folder `path`.
    ///
    /// ```
    /// use granary_store::Store;
    /// use granary_store_sled::SledStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> granary_store::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("granary.sled");
    /// let store = SledStore::open(&path).await?;
    /// assert!(store.capabilities().durable);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Fails with [`Error::Unsupported`] when another process has it open or a newer
    /// granary wrote it, [`Error::Corrupt`] when the folder holds something else or is
    /// damaged, and [`Error::Backend`] when the folder cannot be read or written.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let panic_path = path.clone();
        let opened = tokio::task::spawn_blocking(move || catch_unwind(move || open_blocking(path)))
            .await
            .map_err(|e| Error::backend("the task opening the sled database failed", e))?;
        let inner = opened.map_err(|_| panicked("opening the database", &panic_path))??;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `job` on the blocking pool, turning a sled panic into an error.
    async fn run<T, F>(&self, doing: &'static str, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let result = tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| job(&inner)))
                .map_err(|_| panicked(doing, &inner.path))?
        })
        .await;
        result.map_err(|e| Error::backend(format!("the task {doing} failed"), e))?
    }

    /// Runs a writing `job` under the writer mutex, then flushes before returning.
    async fn write<T, F>(&self, doing: &'static str, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        self.run(doing, move |inner| {
            let out = {
                let _writer = inner
                    .writer
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                job(inner)?
            };
            inner.sync(doing)?;
            Ok(out)
        })
        .await
    }
}

fn open_blocking(path: PathBuf) -> Result<Inner> {
    let fail = |doing: &str| {
        let path = path.clone();
        let doing = doing.to_string();
        move |e: sled::Error| map(e, &doing, &path)
    };
    let db = open_db(&path).map_err(fail("opening the database"))?;
    let names = db.tree_names();
    let meta = db
        .open_tree("meta")
        .map_err(fail("opening the meta tree"))?;
    match meta.get("format").map_err(fail("reading the format"))? {
        Some(raw) => {
            let format = std::str::from_utf8(&raw).ok().and_then(|s| s.parse::<u64>().ok()).ok_or_else(|| {
                Error::corrupt(format!(
                    "{} has an unreadable format marker: it is not a granary database; move it away",
                    path.display()
                ))
            })?;
            if format > FORMAT_VERSION {
                return Err(Error::unsupported(format!(
                    "{} was written by a newer granary (sled format {format}; this granary knows up to \
                     {FORMAT_VERSION}): upgrade granary",
                    path.display()
                )));
            }
        }
        None => {
            let foreign: Vec<String> = names
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .filter(|n| n != "__sled__default" && !TREES.contains(&n.as_str()))
                .collect();
            if !foreign.is_empty() || !db.is_empty() {
                return Err(Error::corrupt(format!(
                    "{} is a sled database but not a granary one: move it away or point the data \
                     directory elsewhere",
                    path.display()
                )));
            }
            meta.insert("format", FORMAT_VERSION.to_string().as_bytes())
                .map_err(fail("writing the format"))?;
            db.flush().map_err(fail("writing the format"))?;
        }
    }
    let log = std::fs::File::open(path.join("db")).map_err(|e| {
        Error::backend(
            format!("cannot open sled's log file in {}", path.display()),
            e,
        )
    })?;
    let tree = |name: &str| db.open_tree(name).map_err(fail("opening a tree"));
    Inner {
        integrations: tree("integrations")?,
        instances: tree("instances")?,
        pendings: tree("pendings")?,
        tokens: tree("tokens")?,
        tokens_by_expiry: tree("tokens_by_expiry")?,
        tokens_by_obtained: tree("tokens_by_obtained")?,
        leases: tree("leases")?,
        changes: tree("changes")?,
        sessions: tree("sessions")?,
        api_keys: tree("api_keys")?,
        meta,
        writer: Mutex::new(()),
        log,
        path: path.clone(),
        db,
    }
    .upgraded()
}

/// How long an open waits for the folder lock: a store dropped a moment ago in this process
/// releases it only when sled's flusher thread has stopped.
const LOCK_WAIT: Duration = Duration::from_secs(2);

fn open_db(path: &Path) -> sled::Result<Db> {
    let start = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && start.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::backend("cannot serialize a record", e))
}

impl Inner {
    /// Makes every write so far durable: `Db::flush` writes sled's buffers to its log, but
    /// on Linux it syncs them with `sync_file_range`, which flushes neither the disk's
    /// write cache nor the file's size; `fdatasync` on the log file does both (and skips
    /// only the modification time, which recovery does not need).
    fn sync(&self, doing: &str) -> Result<()> {
        self.db.flush().map_err(|e| map(e, doing, &self.path))?;
        self.log.sync_data().map_err(|e| {
            Error::backend(
                format!(
                    "cannot sync {} while {doing}: check the disk, then retry",
                    self.path.display()
                ),
                e,
            )
        })
    }

    fn fail(&self, doing: &str) -> impl Fn(sled::Error) -> Error + '_ {
        let doing = doing.to_string();
        move |e| map(e, &doing, &self.path)
    }

    fn read<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        key: &str,
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>> {
        match tree.get(key).map_err(self.fail("reading"))? {
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| Error::undecodable(what(), e)),
            None => Ok(None),
        }
    }

    fn list<T: DeserializeOwned>(&self, tree: &Tree, kind: &str) -> Result<Vec<T>> {
        tree.iter()
            .map(|entry| {
                let (key, raw) = entry.map_err(self.fail("listing"))?;
                serde_json::from_slice(&raw).map_err(|e| {
                    Error::undecodable(format!("{kind} `{}`", String::from_utf8_lossy(&key)), e)
                })
            })
            .collect()
    }

    fn put<T: Serialize>(&self, tree: &Tree, key: &str, record: &T) -> Result<()> {
        tree.insert(key, encode(record)?)
            .map_err(self.fail("writing"))?;
        Ok(())
    }

    /// The result of a transaction: sled's errors mapped, a store error passed on.
    fn committed<T>(&self, doing: &str, result: Result<T, TransactionError<Error>>) -> Result<T> {
        result.map_err(|e| match e {
            TransactionError::Storage(e) => map(e, doing, &self.path),
            TransactionError::Abort(e) => e,
        })
    }

    /// Writes `record` under `key` in `tree` and appends the change of `instance`, in one
    /// transaction; then prunes the feed now and then.
    fn put_changed<T: Serialize>(
        &self,
        doing: &str,
        tree: &Tree,
        key: &str,
        record: &T,
        instance: &str,
    ) -> Result<()> {
        let bytes = encode(record)?;
        let seq = self.committed(
            doing,
            (tree, &self.changes, &self.meta).transaction(|(tree, changes, meta)| {
                tree.insert(key, bytes.as_slice())?;
                append_change(changes, meta, instance)
            }),
        )?;
        self.prune(seq)
    }

    /// Every [`PRUNE_EVERY`] changes, drops the changes older than the newest
    /// [`CHANGES_KEPT`], oldest first (so a reader sees a dropped prefix, never a hole).
    /// Runs under the writer mutex, after the write committed.
    fn prune(&self, seq: u64) -> Result<()> {
        if seq % PRUNE_EVERY != 0 || seq <= CHANGES_KEPT {
            return Ok(());
        }
        let upto = (seq - CHANGES_KEPT).to_be_bytes();
        for entry in self.changes.range(..=upto) {
            let (key, _) = entry.map_err(self.fail("pruning the change feed"))?;
            self.changes
                .remove(key)
                .map_err(self.fail("pruning the change feed"))?;
        }
        Ok(())
    }

    fn last_change(&self) -> Result<u64> {
        match self
            .meta
            .get(LAST_CHANGE)
            .map_err(self.fail("reading the change counter"))?
        {
            Some(raw) => number(&raw, "the change counter"),
            None => Ok(0),
        }
    }

    fn require_instance(&self, id: &str) -> Result<()> {
        if self
            .instances
            .contains_key(id)
            .map_err(self.fail("reading an instance"))?
        {
            Ok(())
        } else {
            Err(Error::not_found(format!("instance `{id}`")))
        }
    }

    /// The version compare-and-swap of `put_token`, with its change (under the writer
    /// mutex).
    fn write_token(
        &self,
        instance: &str,
        token: &mut TokenRecord,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        self.require_instance(instance)?;
        let what = || format!("token of instance `{instance}`");
        let current_record: Option<TokenRecord> = self.read(&self.tokens, instance, what)?;
        let current = current_record.as_ref().map(|t| t.version);
        if current != expected_version {
            return Err(Error::version_conflict(what(), expected_version, current));
        }
        token.version = current_record.as_ref().map_or(1, |t| t.version + 1);
        let bytes = encode(&*token)?;
        let token = &*token;
        let seq = self.committed(
            "writing a token",
            (
                &self.tokens,
                &self.tokens_by_expiry,
                &self.tokens_by_obtained,
                &self.changes,
                &self.meta,
            )
                .transaction(|(tokens, by_expiry, by_obtained, changes, meta)| {
                    tokens.insert(instance, bytes.as_slice())?;
                    reindex(
                        by_expiry,
                        by_obtained,
                        instance,
                        current_record.as_ref(),
                        Some(token),
                    )?;
                    append_change(changes, meta, instance)
                }),
        )?;
        self.prune(seq)?;
        Ok(token.version)
    }

    /// A folder of format 1 (no ordered token keys) gets them, built from the tokens, and
    /// becomes format [`FORMAT_VERSION`]; a current one is returned as it is.
    fn upgraded(self) -> Result<Self> {
        let format = self
            .meta
            .get("format")
            .map_err(self.fail("reading the format"))?
            .and_then(|raw| std::str::from_utf8(&raw).ok()?.parse::<u64>().ok());
        if format == Some(FORMAT_VERSION) {
            return Ok(self);
        }
        self.tokens_by_expiry
            .clear()
            .map_err(self.fail("building the token keys"))?;
        self.tokens_by_obtained
            .clear()
            .map_err(self.fail("building the token keys"))?;
        for entry in self.tokens.iter() {
            let (key, raw) = entry.map_err(self.fail("building the token keys"))?;
            let instance = String::from_utf8_lossy(&key).into_owned();
            let token: TokenRecord = serde_json::from_slice(&raw)
                .map_err(|e| Error::undecodable(format!("token of instance `{instance}`"), e))?;
            if let Some(expires) = token.expires_at {
                self.tokens_by_expiry
                    .insert(due_key(expires, &instance), &[])
                    .map_err(self.fail("building the token keys"))?;
            }
            self.tokens_by_obtained
                .insert(due_key(token.obtained_at, &instance), &[])
                .map_err(self.fail("building the token keys"))?;
        }
        self.meta
            .insert("format", FORMAT_VERSION.to_string().as_bytes())
            .map_err(self.fail("writing the format"))?;
        self.sync("building the token keys")?;
        Ok(self)
    }

    /// The token records whose ordered key in `index` is below `before`, after the cursor,
    /// at most `limit`, each read from the `tokens` tree.
    fn due(
        &self,
        index: &Tree,
        before: Timestamp,
        after: Option<(Timestamp, String)>,
        limit: usize,
    ) -> Result<Vec<InstanceToken>> {
        use std::ops::Bound;
        let start = match &after {
            Some((at, id)) => Bound::Excluded(due_key(*at, id)),
            None => Bound::Unbounded,
        };
        let end = Bound::Excluded(time_prefix(before).to_vec());
        let mut due = Vec::new();
        for entry in index.range::<Vec<u8>, _>((start, end)) {
            if due.len() >= limit {
                break;
            }
            let (key, _) = entry.map_err(self.fail("listing the tokens due"))?;
            let instance = due_key_instance(&key)?;
            let token: Option<TokenRecord> = self.read(&self.tokens, &instance, || {
                format!("token of instance `{instance}`")
            })?;
            // Written in one transaction with the token, so never missing; a key without
            // its record would be skipped rather than fail the round.
            if let Some(token) = token {
                due.push(InstanceToken { instance, token });
            }
        }
        Ok(due)
    }

    fn require_integration(&self, name: &str) -> Result<()> {
        if self
            .integrations
            .contains_key(name)
            .map_err(self.fail("reading an integration"))?
        {
            Ok(())
        } else {
            Err(Error::not_found(format!("integration `{name}`")))
        }
    }
}

#[async_trait]
impl Store for SledStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.durable()
    }

    async fn put_integration(&self, integration: &Integration) -> Result<()> {
        let integration = integration.clone();
        self.write("writing an integration", move |inner| {
            inner.put(&inner.integrations, &integration.name, &integration)
        })
        .await
    }

    async fn get_integration(&self, name: &str) -> Result<Option<Integration>> {
        let name = name.to_string();
        self.run("reading an integration", move |inner| {
            inner.read(&inner.integrations, &name, || {
                format!("integration `{name}`")
            })
        })
        .await
    }

    async fn list_integrations(&self) -> Result<Vec<Integration>> {
        self.run("listing integrations", |inner| {
            inner.list(&inner.integrations, "integration")
        })
        .await
    }

    async fn delete_integration(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write("deleting an integration", move |inner| {
            let instances: Vec<Instance> = inner.list(&inner.instances, "instance")?;
            if let Some(user) = instances.iter().find(|i| i.integration == name) {
                return Err(Error::conflict(
                    format!("integration `{name}`"),
                    format!(
                        "instance `{}` still belongs to it; delete its instances first",
                        user.id
                    ),
                ));
            }
            Ok(inner
                .integrations
                .remove(&name)
                .map_err(inner.fail("deleting an integration"))?
                .is_some())
        })
        .await
    }

    async fn create_instance(&self, instance: &Instance) -> Result<u64> {
        let mut instance = instance.clone();
        self.write("creating an instance", move |inner| {
            if inner
                .instances
                .contains_key(&instance.id)
                .map_err(inner.fail("reading an instance"))?
            {
                return Err(Error::already_exists(format!("instance `{}`", instance.id)));
            }
            inner.require_integration(&instance.integration)?;
            instance.version = 1;
            inner.put_changed(
                "creating an instance",
                &inner.instances,
                &instance.id,
                &instance,
                &instance.id,
            )?;
            Ok(1)
        })
        .await
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        let id = id.to_string();
        self.run("reading an instance", move |inner| {
            inner.read(&inner.instances, &id, || format!("instance `{id}`"))
        })
        .await
    }

    async fn list_instances(&self) -> Result<Vec<Instance>> {
        self.run("listing instances", |inner| {
            inner.list(&inner.instances, "instance")
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
        self.run("listing the tokens due", move |inner| {
            inner.due(&inner.tokens_by_expiry, before, after, limit)
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
        self.run("listing the tokens by age", move |inner| {
            inner.due(&inner.tokens_by_obtained, before, after, limit)
        })
        .await
    }

    async fn list_instances_page(
        &self,
        after: Option<&str>,
        limit: usize,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceWithToken>> {
        use std::ops::Bound;
        let after = after.map(str::to_string);
        let filter = filter.clone();
        self.run("listing a page of instances", move |inner| {
            let start = match &after {
                Some(id) => Bound::Excluded(id.as_bytes().to_vec()),
                None => Bound::Unbounded,
            };
            let mut page = Vec::new();
            for entry in inner
                .instances
                .range::<Vec<u8>, _>((start, Bound::Unbounded))
            {
                if page.len() >= limit {
                    break;
                }
                let (key, raw) = entry.map_err(inner.fail("listing instances"))?;
                let instance: Instance = serde_json::from_slice(&raw).map_err(|e| {
                    Error::undecodable(format!("instance `{}`", String::from_utf8_lossy(&key)), e)
                })?;
                if !filter.matches(&instance) {
                    continue;
                }
                let token = inner.read(&inner.tokens, &instance.id, || {
                    format!("token of instance `{}`", instance.id)
                })?;
                page.push(InstanceWithToken { instance, token });
            }
            Ok(page)
        })
        .await
    }

    async fn count_instances_by_status(&self) -> Result<InstanceCounts> {
        // sled keeps no counters: one pass over the instances, in one blocking job.
        self.run("counting instances", |inner| {
            let mut counts = InstanceCounts::default();
            for instance in inner.list::<Instance>(&inner.instances, "instance")? {
                counts.add(instance.status, 1);
            }
            Ok(counts)
        })
        .await
    }

    async fn update_instance(&self, instance: &Instance) -> Result<u64> {
        let mut instance = instance.clone();
        self.write("updating an instance", move |inner| {
            let what = || format!("instance `{}`", instance.id);
            let current: Instance = inner
                .read(&inner.instances, &instance.id, what)?
                .ok_or_else(|| Error::not_found(what()))?;
            if current.version != instance.version {
                return Err(Error::version_conflict(
                    what(),
                    Some(instance.version),
                    Some(current.version),
                ));
            }
            inner.require_integration(&instance.integration)?;
            instance.version = current.version + 1;
            inner.put_changed(
                "updating an instance",
                &inner.instances,
                &instance.id,
                &instance,
                &instance.id,
            )?;
            Ok(instance.version)
        })
        .await
    }

    async fn delete_instance(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write("deleting an instance", move |inner| {
            if !inner
                .instances
                .contains_key(&id)
                .map_err(inner.fail("reading an instance"))?
            {
                return Ok(false);
            }
            let pendings: Vec<PendingAuthorization> =
                inner.list(&inner.pendings, "pending authorization")?;
            let states: Vec<String> = pendings
                .into_iter()
                .filter(|p| p.instance == id)
                .map(|p| p.state)
                .collect();
            let trees = (
                &inner.instances,
                &inner.tokens,
                &inner.leases,
                &inner.pendings,
                &inner.changes,
                &inner.meta,
                &inner.tokens_by_expiry,
                &inner.tokens_by_obtained,
            );
            let seq = inner.committed(
                "deleting an instance",
                trees.transaction(
                    |(
                        instances,
                        tokens,
                        leases,
                        pendings,
                        changes,
                        meta,
                        by_expiry,
                        by_obtained,
                    )| {
                        instances.remove(id.as_str())?;
                        if let Some(raw) = tokens.remove(id.as_str())? {
                            let old = decode_token(&raw, &id)?;
                            reindex(by_expiry, by_obtained, &id, Some(&old), None)?;
                        }
                        leases.remove(id.as_str())?;
                        for state in &states {
                            pendings.remove(state.as_str())?;
                        }
                        append_change(changes, meta, &id)
                    },
                ),
            )?;
            inner.prune(seq)?;
            Ok(true)
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<()> {
        let pending = pending.clone();
        self.write("writing a pending authorization", move |inner| {
            if inner
                .pendings
                .contains_key(&pending.state)
                .map_err(inner.fail("reading a pending authorization"))?
            {
                return Err(Error::already_exists(
                    "pending authorization with this state",
                ));
            }
            inner.require_instance(&pending.instance)?;
            inner.put(&inner.pendings, &pending.state, &pending)
        })
        .await
    }

    async fn take_pending(
        &self,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<PendingAuthorization>> {
        let state = state.to_string();
        self.write("taking a pending authorization", move |inner| {
            // `remove` returns the old value atomically: one caller at most gets it.
            let Some(raw) = inner
                .pendings
                .remove(&state)
                .map_err(inner.fail("taking a pending authorization"))?
            else {
                return Ok(None);
            };
            let pending: PendingAuthorization = serde_json::from_slice(&raw)
                .map_err(|e| Error::undecodable("a pending authorization", e))?;
            Ok(Some(pending).filter(|p| !p.is_expired(now)))
        })
        .await
    }

    async fn purge_expired_pendings(&self, now: Timestamp) -> Result<u64> {
        self.write("purging expired pending authorizations", move |inner| {
            let pendings: Vec<PendingAuthorization> =
                inner.list(&inner.pendings, "pending authorization")?;
            let mut purged = 0;
            for pending in pendings.iter().filter(|p| p.is_expired(now)) {
                if inner
                    .pendings
                    .remove(pending.state.as_str())
                    .map_err(inner.fail("purging"))?
                    .is_some()
                {
                    purged += 1;
                }
            }
            Ok(purged)
        })
        .await
    }

    async fn get_token(&self, instance: &str) -> Result<Option<TokenRecord>> {
        let instance = instance.to_string();
        self.run("reading a token", move |inner| {
            inner.read(&inner.tokens, &instance, || {
                format!("token of instance `{instance}`")
            })
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
        let mut token = token.clone();
        self.write("writing a token", move |inner| {
            inner.write_token(&instance, &mut token, expected_version)
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
        let mut token = token.clone();
        let holder = holder.to_string();
        self.write("writing a token under a lease", move |inner| {
            // The writer mutex is held from this read to the write: no lease changes between.
            inner.require_instance(&instance)?;
            let lease: Option<Lease> = inner.read(&inner.leases, &instance, || {
                format!("lease of `{instance}`")
            })?;
            Lease::check_fence(lease.as_ref(), &instance, &holder, now)?;
            inner.write_token(&instance, &mut token, Some(expected_version))
        })
        .await
    }

    async fn delete_token(&self, instance: &str, expected_version: Option<u64>) -> Result<bool> {
        let instance = instance.to_string();
        self.write("deleting a token", move |inner| {
            if let Some(expected) = expected_version {
                let what = || format!("token of instance `{instance}`");
                let current: Option<TokenRecord> = inner.read(&inner.tokens, &instance, what)?;
                let Some(current) = current.map(|t| t.version) else {
                    return Ok(false);
                };
                if current != expected {
                    return Err(Error::version_conflict(
                        what(),
                        expected_version,
                        Some(current),
                    ));
                }
            }
            let removed = inner.committed(
                "deleting a token",
                (
                    &inner.tokens,
                    &inner.changes,
                    &inner.meta,
                    &inner.tokens_by_expiry,
                    &inner.tokens_by_obtained,
                )
                    .transaction(
                        |(tokens, changes, meta, by_expiry, by_obtained)| match tokens
                            .remove(instance.as_str())?
                        {
                            Some(raw) => {
                                let old = decode_token(&raw, &instance)?;
                                reindex(by_expiry, by_obtained, &instance, Some(&old), None)?;
                                append_change(changes, meta, &instance).map(Some)
                            }
                            None => Ok(None),
                        },
                    ),
            )?;
            match removed {
                Some(seq) => inner.prune(seq).map(|()| true),
                None => Ok(false),
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
        self.write("acquiring a lease", move |inner| {
            inner.require_instance(&instance)?;
            let current: Option<Lease> = inner.read(&inner.leases, &instance, || {
                format!("lease of `{instance}`")
            })?;
            if current.is_some_and(|lease| !lease.can_be_taken_by(&holder, now)) {
                return Ok(false);
            }
            let lease = Lease {
                expires: now.saturating_add(ttl),
                instance,
                holder,
            };
            inner.put(&inner.leases, &lease.instance, &lease)?;
            Ok(true)
        })
        .await
    }

    async fn release_lease(&self, instance: &str, holder: &str) -> Result<bool> {
        let instance = instance.to_string();
        let holder = holder.to_string();
        self.write("releasing a lease", move |inner| {
            let current: Option<Lease> = inner.read(&inner.leases, &instance, || {
                format!("lease of `{instance}`")
            })?;
            if current.is_some_and(|lease| lease.holder == holder) {
                inner
                    .leases
                    .remove(&instance)
                    .map_err(inner.fail("releasing a lease"))?;
                Ok(true)
            } else {
                Ok(false)
            }
        })
        .await
    }

    async fn latest_change(&self) -> Result<u64> {
        self.run("reading the change counter", |inner| inner.last_change())
            .await
    }

    async fn put_key_check(&self, check: &Sealed, replace: bool) -> Result<Sealed> {
        let check = check.as_bytes().to_vec();
        // Under the writer mutex, so a read-then-insert is atomic; synced before it returns.
        self.write("writing the key check", move |inner| {
            let stored = inner
                .meta
                .get(KEY_CHECK)
                .map_err(inner.fail("reading the key check"))?;
            match stored {
                Some(stored) if !replace => Ok(Sealed::new(stored.to_vec())),
                _ => {
                    inner
                        .meta
                        .insert(KEY_CHECK, check.as_slice())
                        .map_err(inner.fail("writing the key check"))?;
                    Ok(Sealed::new(check))
                }
            }
        })
        .await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Changes> {
        self.run("reading the change feed", move |inner| {
            // No lock: the rows first, then the oldest kept row, then the counter. Pruning
            // drops a prefix, oldest first, so a row dropped while the rows were read lies
            // below the oldest row read afterwards, and `missed` is set.
            let mut changes = Vec::new();
            if let Some(first) = after.checked_add(1) {
                for entry in inner.changes.range(first.to_be_bytes()..).take(limit) {
                    let (key, value) = entry.map_err(inner.fail("reading the change feed"))?;
                    changes.push(Change {
                        seq: number(&key, "a change number")?,
                        instance: String::from_utf8(value.to_vec())
                            .map_err(|e| Error::undecodable("a change", e))?,
                    });
                }
            }
            let oldest = inner
                .changes
                .first()
                .map_err(inner.fail("reading the change feed"))?;
            let latest = inner.last_change()?;
            let oldest = match oldest {
                Some((key, _)) => number(&key, "a change number")?,
                None => latest + 1,
            };
            let missed = after < latest && after + 1 < oldest;
            Ok(Changes { changes, missed })
        })
        .await
    }

    async fn get_lease(&self, instance: &str) -> Result<Option<Lease>> {
        let instance = instance.to_string();
        self.run("reading a lease", move |inner| {
            inner.read(&inner.leases, &instance, || {
                format!("lease of `{instance}`")
            })
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

    /// A store on a new folder in `dir`, and its `Inner` to write changes without syncing.
    fn store(dir: &tempfile::TempDir) -> SledStore {
        let inner = open_blocking(dir.path().join("granary.sled")).expect("the store opens");
        SledStore {
            inner: Arc::new(inner),
        }
    }

    /// Appends `n` changes, each in its own write (and prune), as the store's writes do.
    fn append(store: &SledStore, n: u64) {
        let inner = &store.inner;
        let scratch = inner.db.open_tree("scratch").expect("a tree");
        for _ in 0..n {
            inner
                .put_changed("testing", &scratch, "x", &"record", "x")
                .expect("a change");
        }
    }

    /// The change numbers in the feed, oldest first.
    fn feed(store: &SledStore) -> Vec<u64> {
        store
            .inner
            .changes
            .iter()
            .map(|entry| number(&entry.expect("a row").0, "a change number").expect("a number"))
            .collect()
    }

    async fn since(store: &SledStore, after: u64) -> Changes {
        store
            .changes_since(after, 10)
            .await
            .expect("the feed reads")
    }

    /// Every [`PRUNE_EVERY`] changes the feed drops the changes older than the newest
    /// [`CHANGES_KEPT`], and only those; the counter keeps counting; a reader is told
    /// `missed` exactly when a change after its cursor is gone.
    #[tokio::test]
    async fn the_feed_keeps_a_suffix_and_readers_see_what_they_missed() {
        let dir = tempfile::tempdir().expect("a folder");
        let store = store(&dir);
        let total = 2 * CHANGES_KEPT + 10;
        append(&store, total);
        assert_eq!(store.inner.last_change().expect("the counter"), total);
        // Pruned last at the 2048th change, to its newest 1024: 1025..=2058 are kept.
        let last_prune = total / PRUNE_EVERY * PRUNE_EVERY;
        let oldest = last_prune - CHANGES_KEPT + 1;
        assert_eq!(feed(&store), (oldest..=total).collect::<Vec<u64>>());

        let missed = since(&store, oldest - 2).await;
        assert!(missed.missed, "change {} is gone", oldest - 1);
        assert_eq!(missed.changes.first().map(|c| c.seq), Some(oldest));
        let whole = since(&store, oldest - 1).await;
        assert!(!whole.missed, "every change after {} is kept", oldest - 1);
        assert_eq!(whole.changes.first().map(|c| c.seq), Some(oldest));
        assert!(since(&store, 0).await.missed);
        for after in [total - 1, total, total + 1, u64::MAX] {
            let tail = since(&store, after).await;
            assert!(!tail.missed, "after {after}");
            assert_eq!(
                tail.changes.len(),
                usize::from(after < total),
                "after {after}"
            );
        }
    }

    /// With every row of the feed gone and the counter at N, every change up to N was
    /// dropped: a reader before N missed one, a reader at N did not.
    #[tokio::test]
    async fn an_empty_feed_after_changes_means_they_were_dropped() {
        let dir = tempfile::tempdir().expect("a folder");
        let store = store(&dir);
        let empty = since(&store, 0).await;
        assert!(!empty.missed && empty.changes.is_empty());
        append(&store, 5);
        store.inner.changes.clear().expect("the feed clears");
        for after in [0, 3, 4] {
            let read = since(&store, after).await;
            assert!(read.missed && read.changes.is_empty(), "after {after}");
        }
        let read = since(&store, 5).await;
        assert!(!read.missed && read.changes.is_empty());
    }
}
