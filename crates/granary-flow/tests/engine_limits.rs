//! The engine's import limits and URL rule: documents over the size limit are refused before
//! they are copied, deep ones before they are parsed; provider URLs (instance overrides,
//! document URLs, issuers) must be https, or http to loopback unless allowed.

use std::sync::Arc;

use granary_flow::engine::{Engine, EngineError, Keyring, MasterKey, NewInstance};
use granary_store::MemoryStore;
use url::Url;

fn engine(allow_insecure_http: bool, limits: granary_openapi::Limits) -> Engine {
    let keyring = Keyring::new(MasterKey::generate().0, Vec::new());
    Engine::builder(
        Arc::new(MemoryStore::new()),
        keyring,
        Url::parse("http://127.0.0.1:8080").unwrap(),
    )
    .import_limits(limits)
    .allow_insecure_http(allow_insecure_http)
    .build()
    .unwrap()
}

fn document(authorize: &str, token: &str) -> String {
    format!(
        r#"{{"openapi": "3.0.0", "info": {{"title": "T"}}, "paths": {{}}, "components": {{"securitySchemes": {{"o": {{"type": "oauth2", "flows": {{"authorizationCode": {{"authorizationUrl": "{authorize}", "tokenUrl": "{token}", "scopes": {{"read": "r"}}}}}}}}}}}}}}"#
    )
}

#[tokio::test]
async fn imports_keep_the_limits_and_the_url_rule() {
    let small = granary_openapi::Limits::new(4096, 16);
    let engine = engine(false, small);
    let ok = document("https://as.example/a", "http://127.0.0.1:9/t");
    engine
        .import_integration("ok", ok.as_bytes())
        .await
        .unwrap();
    let big = format!("{ok}{}", " ".repeat(5000));
    let err = engine
        .import_integration("big", big.as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Import(granary_openapi::Error::TooLarge { limit: 4096, .. })
        ),
        "{err:?}"
    );
    let deep = format!("{{\"openapi\": \"3.0.0\", \"x\": {}}}", "[".repeat(1000));
    let err = engine
        .import_integration("deep", deep.as_bytes())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit of 16 levels"), "{err}");
    for (authorize, token, expected) in [
        (
            "javascript:alert(1)",
            "https://as.example/t",
            "not an http(s) URL",
        ),
        ("https://as.example/a", "http://as.example/t", "plain http"),
        (
            "https://as.example/a",
            "file:///etc/passwd",
            "not an http(s) URL",
        ),
    ] {
        let err = engine
            .import_integration("bad", document(authorize, token).as_bytes())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let allowing = engine_allowing();
    allowing
        .import_integration(
            "plain",
            document("http://as.example/a", "http://as.example/t").as_bytes(),
        )
        .await
        .unwrap();
}

fn engine_allowing() -> Engine {
    engine(true, granary_openapi::Limits::default())
}

#[tokio::test]
async fn overrides_and_issuers_follow_the_url_rule() {
    let engine = engine(false, granary_openapi::Limits::default());
    let doc = document("https://as.example/a", "https://as.example/t");
    engine
        .import_integration("api", doc.as_bytes())
        .await
        .unwrap();
    for (field, url, expected) in [
        ("authorization", "javascript:alert(1)", "only https URLs"),
        ("token", "file:///etc/passwd", "only https URLs"),
        ("token", "http://evil.example/t", "allow_insecure_http"),
    ] {
        let mut new = NewInstance::new("one", "api", "client");
        let url = Some(Url::parse(url).unwrap());
        if field == "token" {
            new.token_url = url;
        } else {
            new.authorization_url = url;
        }
        let err = engine.create_instance(new).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{field}: {err}");
    }
    let mut new = NewInstance::new("one", "api", "client");
    new.token_url = Some(Url::parse("http://localhost:9/t").unwrap());
    engine.create_instance(new).await.unwrap();
    let err = engine
        .set_integration_endpoints("api", Some("http://idp.example".into()), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the issuer"), "{err}");
    let err = engine
        .discover_integration_endpoints("api", "file:///etc")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("scheme `file:`"), "{err}");
}
