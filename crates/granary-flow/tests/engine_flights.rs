//! The single-flight map does not grow with every unknown instance id asked for.

use std::sync::Arc;

use granary_flow::engine::{Engine, EngineError, Keyring, MasterKey};
use granary_store::MemoryStore;

#[tokio::test]
async fn unknown_instances_leave_no_flight_behind() {
    let keyring = Keyring::new(MasterKey::generate().0, Vec::new());
    let engine = Engine::builder(
        Arc::new(MemoryStore::new()),
        keyring,
        "http://127.0.0.1:8080".parse().unwrap(),
    )
    .build()
    .unwrap();
    for i in 0..200 {
        let id = format!("missing-{i}");
        let error = engine.access_token(&id).await.unwrap_err();
        assert!(matches!(error, EngineError::NotFound { .. }), "{error}");
    }
    // Many callers of one unknown id at once: each gets its answer, none is left behind.
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.access_token("missing-together").await })
        })
        .collect();
    for caller in callers {
        assert!(matches!(
            caller.await.unwrap(),
            Err(EngineError::NotFound { .. })
        ));
    }
    assert_eq!(engine.flight_entries(), 0);
}
