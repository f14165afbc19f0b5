//! Fuzz target: `granary_openapi::parse` must never panic, whatever the bytes, and what it
//! returns must hold together (flows keep their URLs, documents survive a serde round trip).
#![no_main]

use granary_openapi::{FlowKind, ParseOptions, parse, parse_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = parse(data);
    let base = url::Url::parse("https://fuzz.example/spec/openapi.json").ok();
    let with_base = base.map(|url| parse_with(data, &ParseOptions::with_base_url(url)));
    let Ok(doc) = plain.or_else(|_| with_base.unwrap_or(Err(granary_openapi::Error::Empty))) else {
        return;
    };
    for scheme in &doc.schemes {
        for flow in &scheme.flows {
            assert_eq!(
                flow.kind.needs_authorization_url(),
                flow.authorization_url.is_some()
            );
            assert_eq!(flow.kind.needs_token_url(), flow.token_url.is_some());
            // The scope checker on the document's own names, joined (they must all read back
            // as known), and on raw input.
            let joined: Vec<&str> = flow.scopes.keys().map(String::as_str).collect();
            let check = flow.check_scopes(&joined.join(" "));
            assert!(check.unknown.is_empty(), "{check:?}");
            let text = String::from_utf8_lossy(data);
            let _ = flow.check_scopes(&text);
        }
    }
    match doc.authorization_code_flows() {
        Ok(flows) => assert!(
            flows
                .iter()
                .all(|f| f.flow.kind == FlowKind::AuthorizationCode)
        ),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let json = serde_json::to_string(&doc).expect("a document serialises");
    let back: granary_openapi::Document = serde_json::from_str(&json).expect("and deserialises");
    assert_eq!(back, doc);
});
