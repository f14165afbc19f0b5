//! The conformance suite on [`SqliteStore`]: every check, including the ones with child
//! processes (racing for a lease and a compare-and-swap, and SIGKILL in mid-write).

use std::path::Path;
use std::sync::Arc;

use granary_store::Store;
use granary_store_sqlite::SqliteStore;
use granary_store_testkit::Backend;

struct Sqlite;

#[async_trait::async_trait]
impl Backend for Sqlite {
    fn name(&self) -> &str {
        "sqlite"
    }

    async fn open(&self, dir: &Path) -> granary_store::Result<Arc<dyn Store>> {
        Ok(Arc::new(SqliteStore::open(dir.join("granary.db")).await?))
    }
}

fn main() -> std::process::ExitCode {
    granary_store_testkit::main(Sqlite)
}
