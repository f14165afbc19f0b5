//! Fuzz target: an answer of the token endpoint, read as the code exchange and the refresh
//! read it (`TokenResponse::read_answer`: the classification, then the token fields).
//!
//! Input: a first line `STATUS [CONTENT-TYPE]` (a status that does not parse is 200), then
//! the body. Beyond "no panic":
//! - what a response prints with `Debug` does not depend on its access, refresh or ID token
//!   (so it never prints them);
//! - an error never shows what the request sent (the code, the refresh token, the PKCE
//!   verifier) when the provider's body echoes it, neither in `Display` nor in `Debug`;
//! - a success answers a 2xx with a non-empty access token and an expiry under 10^12 s,
//!   whatever the scope separator, which changes only the scopes;
//! - redirects and 404/405/410 are "not an endpoint", 429 and 5xx transient.
#![no_main]

use granary_flow::Error;
use granary_flow::protocol::{ClientConfig, ExposeSecret, SecretString, TokenResponse};
use libfuzzer_sys::fuzz_target;
use url::Url;

/// What the request sent: a code, a refresh token, a verifier (also in `token_response.dict`,
/// so the fuzzer puts them into bodies).
const SENT: [&str; 3] = [
    "c0de-Fuzz-7Q1x",
    "rt-Fuzz-Secret-9f3a",
    "vErIfIeR-fuzz-4k2p",
];

fn config(separator: &str) -> ClientConfig {
    let authorize = Url::parse("https://as.example/authorize").expect("a fixed URL");
    let token = Url::parse("https://as.example/token").expect("a fixed URL");
    ClientConfig::new("fuzz-client", authorize, token).with_scope_separator(separator)
}

fn no_sent_secret(error: &Error) {
    let shown = format!("{error} / {error:?}");
    for secret in SENT {
        assert!(
            !shown.contains(secret),
            "an error shows `{secret}` that the request sent: {shown}"
        );
    }
}

fn debug_ignores_secrets(tokens: &TokenResponse) {
    let mut other = tokens.clone();
    other.access_token = SecretString::from("other access token");
    other.refresh_token = other
        .refresh_token
        .as_ref()
        .map(|_| SecretString::from("other refresh token"));
    other.id_token = other
        .id_token
        .as_ref()
        .map(|_| SecretString::from("other id token"));
    assert_eq!(
        format!("{tokens:?}"),
        format!("{other:?}"),
        "Debug depends on a token's value"
    );
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut words = head.trim().splitn(2, ' ');
    let status = words
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .unwrap_or(200);
    // Errors show the content type as sent: a provider is not expected to echo what the
    // request sent in a header, so the property below covers the body and the content type
    // stays free of those values.
    let content_type = words
        .next()
        .map(str::trim)
        .filter(|ct| !ct.is_empty() && !SENT.iter().any(|s| ct.contains(s)));

    for refresh in [false, true] {
        let spaced =
            TokenResponse::read_answer(&config(" "), status, content_type, body, refresh, &SENT);
        let commas =
            TokenResponse::read_answer(&config(","), status, content_type, body, refresh, &SENT);
        match (&spaced, &commas) {
            (Ok(a), Ok(b)) => {
                for tokens in [a, b] {
                    assert!((200..300).contains(&status), "a success from HTTP {status}");
                    assert!(!tokens.access_token.expose_secret().is_empty());
                    assert!(tokens.expires_in.is_none_or(|d| d.as_secs_f64() < 1e12));
                    debug_ignores_secrets(tokens);
                }
                assert_eq!(
                    a.access_token.expose_secret(),
                    b.access_token.expose_secret()
                );
                assert_eq!(
                    a.refresh_token.as_ref().map(ExposeSecret::expose_secret),
                    b.refresh_token.as_ref().map(ExposeSecret::expose_secret)
                );
                assert_eq!(a.token_type, b.token_type);
                assert_eq!(a.expires_in, b.expires_in);
                assert_eq!(a.raw, b.raw);
            }
            (Err(a), Err(b)) => {
                no_sent_secret(a);
                no_sent_secret(b);
                match status {
                    300..=399 | 404 | 405 | 410 => {
                        assert!(
                            matches!(a, Error::NotAnEndpoint { .. }),
                            "HTTP {status}: {a:?}"
                        );
                    }
                    429 | 500.. => assert!(a.is_transient(), "HTTP {status}: {a:?}"),
                    _ => {}
                }
            }
            _ => panic!("the scope separator decided success: {spaced:?} / {commas:?}"),
        }
    }
});
