//! Fuzz target: the callback query (`protocol::callback_state`, `protocol::parse_callback`).
//!
//! Input: the query string as the provider's redirect brings it. Beyond "no panic":
//! - the state `callback_state` finds is the one `parse_callback` checks: with a pending
//!   authorization of that state the answer is never a state mismatch, with another state
//!   always (or the query is malformed, a parameter twice);
//! - a success has a non-empty code and an `iss` equal to the expected issuer (present when
//!   required);
//! - the state, code and issuer the query carries round-trip through a query built from
//!   them: `parse_callback` gives back the same code and issuer;
//! - `Debug` of a code does not depend on the code.
#![no_main]

use std::time::SystemTime;

use granary_flow::Error;
use granary_flow::protocol::{
    AuthorizationCode, ExposeSecret, IssuerParameter, PendingAuthorization, SecretString,
    callback_state, parse_callback,
};
use libfuzzer_sys::fuzz_target;
use url::Url;
use url::form_urlencoded::{Serializer, parse};

const ISSUER: &str = "https://as.example";

fn pending(state: &str, issuer: Option<&str>) -> PendingAuthorization {
    PendingAuthorization {
        state: state.to_string(),
        code_verifier: Some(SecretString::from("verifier")),
        redirect_uri: Url::parse("https://granary.example/admin/oauth/").expect("a fixed URL"),
        scopes: vec!["read".to_string()],
        expected_issuer: issuer.map(str::to_string),
        created: SystemTime::UNIX_EPOCH,
    }
}

fn check_success(code: &AuthorizationCode, expected: Option<&str>, required: bool) {
    assert!(!code.code.expose_secret().is_empty(), "an empty code");
    if let (Some(got), Some(expected)) = (&code.issuer, expected) {
        assert_eq!(got, expected, "an issuer other than the expected one");
    }
    if required {
        assert!(code.issuer.is_some(), "no iss though required");
    }
    let other = AuthorizationCode {
        code: SecretString::from("another code"),
        issuer: code.issuer.clone(),
        kept: code.kept.clone(),
    };
    assert_eq!(
        format!("{code:?}"),
        format!("{other:?}"),
        "Debug shows the code"
    );
}

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let query = query.as_ref();
    let state = callback_state(query);
    let duplicated = {
        let names: Vec<_> = parse(query.trim_start_matches('?').as_bytes())
            .map(|(name, _)| name)
            .collect();
        names
            .iter()
            .enumerate()
            .any(|(i, n)| names[..i].contains(n))
    };

    for issuer in [None, Some(ISSUER)] {
        for rule in [IssuerParameter::IfPresent, IssuerParameter::Required] {
            let required = rule == IssuerParameter::Required;
            if let Some(state) = &state {
                match parse_callback(query, &pending(state, issuer), rule) {
                    Ok(code) => check_success(&code, issuer, required),
                    Err(Error::StateMismatch) => {
                        panic!("callback_state found `{state}` but parse_callback refused it")
                    }
                    Err(Error::MalformedCallback(_)) => assert!(duplicated),
                    Err(error) => {
                        let _ = error.to_string();
                    }
                }
            }
            let other = format!("{}x", state.as_deref().unwrap_or_default());
            match parse_callback(query, &pending(&other, issuer), rule) {
                Err(Error::StateMismatch) => {}
                Err(Error::MalformedCallback(_)) => assert!(duplicated),
                answer => panic!("a state other than the query's passed: {answer:?}"),
            }
        }
    }

    // The round trip: a query built from the values this one carries.
    let value = |name: &str| {
        parse(query.trim_start_matches('?').as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    let state = state.unwrap_or_else(|| "s".to_string());
    let code = value("code")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "c".to_string());
    let iss = value("iss");
    let mut built = Serializer::new(String::new());
    built
        .append_pair("code", &code)
        .append_pair("state", &state);
    if let Some(iss) = &iss {
        built.append_pair("iss", iss);
    }
    let built = built.finish();
    assert_eq!(callback_state(&built).as_deref(), Some(state.as_str()));
    let answer = parse_callback(
        &built,
        &pending(&state, iss.as_deref()),
        IssuerParameter::Required,
    );
    match (answer, &iss) {
        (Ok(got), Some(iss)) => {
            assert_eq!(got.code.expose_secret(), code);
            assert_eq!(got.issuer.as_deref(), Some(iss.as_str()));
            check_success(&got, Some(iss), true);
        }
        (Err(Error::IssuerMissing { .. }), None) => {}
        (answer, _) => panic!("the query {built:?} did not round-trip: {answer:?}"),
    }
    let answer = parse_callback(&built, &pending(&state, None), IssuerParameter::IfPresent);
    match answer {
        Ok(got) => {
            assert_eq!(got.code.expose_secret(), code);
            assert_eq!(got.issuer, iss);
        }
        Err(error) => panic!("the query {built:?} did not round-trip: {error:?}"),
    }
});
