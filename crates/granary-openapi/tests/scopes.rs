//! Tests of `check_scopes`: known and unknown scopes, suggestions, names with spaces.

use granary_openapi::{ScopeCheck, UnknownScope, parse};

fn flow(name: &str) -> granary_openapi::Flow {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let doc = parse(&std::fs::read(path).unwrap()).unwrap();
    doc.authorization_code_flows().unwrap()[0].flow.clone()
}

fn unknown(name: &str, suggestion: Option<&str>) -> UnknownScope {
    UnknownScope {
        name: name.to_owned(),
        suggestion: suggestion.map(str::to_owned),
    }
}

#[test]
fn known_unknown_and_suggestions() {
    let flow = flow("box.json");
    let check = flow.check_scopes(
        "  root_readonly manage_group  Manage_Webhook root_readonly nonsense_entirely ",
    );
    assert_eq!(
        check,
        ScopeCheck {
            known: vec!["root_readonly".into()],
            unknown: vec![
                unknown("manage_group", Some("manage_groups")),
                unknown("Manage_Webhook", Some("manage_webhook")),
                unknown("nonsense_entirely", None),
            ],
        }
    );
    assert!(!check.is_ok());
    assert!(flow.check_scopes("root_readwrite manage_groups").is_ok());
    assert_eq!(flow.check_scopes(""), ScopeCheck::default());
}

#[test]
fn no_absurd_suggestions() {
    let flow = flow("box.json");
    for far in ["admin", "read", "x", "root", "everything_at_once"] {
        let check = flow.check_scopes(far);
        assert_eq!(check.unknown[0].suggestion, None, "{far}: {check:?}");
    }
}

#[test]
fn scope_names_with_spaces() {
    let flow = flow("scope-spaces.json");
    let check = flow.check_scopes("read:LH Open API payments");
    assert_eq!(check.known, ["read:LH Open API", "payments"]);
    assert!(check.is_ok());
    // The longest declared name wins; the scope parameter is the same either way.
    let check = flow.check_scopes("accounts offline_access");
    assert_eq!(check.known, ["accounts offline_access"]);
    let check = flow.check_scopes("offline_access   accounts");
    assert_eq!(check.known, ["offline_access", "accounts"]);
    // Whitespace runs in the input count as one space.
    assert_eq!(
        flow.check_scopes("read:LH   Open\tAPI").known,
        ["read:LH Open API"]
    );
    // A partial multi-word name is unknown word by word.
    let check = flow.check_scopes("read:LH Open");
    assert_eq!(check.known, Vec::<String>::new());
    assert_eq!(check.unknown.len(), 2);
}

#[test]
fn the_split_with_fewest_unknown_words_wins() {
    let doc = parse(
        br#"{"openapi": "3.0.0", "components": {"securitySchemes": {"o": {"type": "oauth2", "flows": {
        "authorizationCode": {"authorizationUrl": "https://a.example/a", "tokenUrl": "https://a.example/t",
        "scopes": {"a": "", "b c": "", "a b": ""}}}}}}}"#,
    )
    .unwrap();
    let flow = &doc.schemes[0].flows[0];
    // Taking `a b` first would leave `c` unknown; `a`, `b c` covers every word.
    let check = flow.check_scopes("a b c");
    assert_eq!(check.known, ["a", "b c"]);
    assert!(check.is_ok());
    // Every declared name, joined as a scope parameter, reads back without unknown words.
    let all: Vec<&str> = flow.scopes.keys().map(String::as_str).collect();
    let check = flow.check_scopes(&all.join(" "));
    assert!(check.is_ok(), "{check:?}");
    assert_eq!(check.known.len(), 3);
}
