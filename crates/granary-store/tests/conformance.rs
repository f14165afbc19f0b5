//! The conformance suite on [`MemoryStore`] (not durable, not shared: those checks skip).

use std::path::Path;
use std::sync::Arc;

use granary_store::{MemoryStore, Store};
use granary_store_testkit::Backend;

struct Memory;

#[async_trait::async_trait]
impl Backend for Memory {
    fn name(&self) -> &str {
        "memory"
    }

    async fn open(&self, _dir: &Path) -> granary_store::Result<Arc<dyn Store>> {
        Ok(Arc::new(MemoryStore::new()))
    }
}

fn main() -> std::process::ExitCode {
    granary_store_testkit::main(Memory)
}
