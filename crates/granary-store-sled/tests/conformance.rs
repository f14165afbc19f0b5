//! The conformance suite on [`SledStore`]: durable (reopen and SIGKILL checks run), not
//! shared between processes (those checks skip).

use std::path::Path;
use std::sync::Arc;

use granary_store::Store;
use granary_store_sled::SledStore;
use granary_store_testkit::Backend;

struct Sled;

#[async_trait::async_trait]
impl Backend for Sled {
    fn name(&self) -> &str {
        "sled"
    }

    async fn open(&self, dir: &Path) -> granary_store::Result<Arc<dyn Store>> {
        Ok(Arc::new(SledStore::open(dir.join("granary.sled")).await?))
    }
}

fn main() -> std::process::ExitCode {
    granary_store_testkit::main(Sled)
}
