//! The whole granary conformance suite on [`MapStore`]: `cargo test` (or
//! `cargo test -- pending` for the checks whose name contains `pending`).
//!
//! `MapStore` claims no capability, so the checks of durability and of sharing between
//! processes are reported as skipped, each with the capability it needs.

use std::path::Path;
use std::sync::Arc;

use granary_example_backend::MapStore;
use granary_store::Store;
use granary_store_testkit::Backend;

/// How the suite opens a `MapStore`: a new one per check (it keeps nothing in `dir`).
struct Map;

#[async_trait::async_trait]
impl Backend for Map {
    fn name(&self) -> &str {
        "example-map"
    }

    async fn open(&self, _dir: &Path) -> granary_store::Result<Arc<dyn Store>> {
        Ok(Arc::new(MapStore::new()))
    }
}

fn main() -> std::process::ExitCode {
    granary_store_testkit::main(Map)
}
