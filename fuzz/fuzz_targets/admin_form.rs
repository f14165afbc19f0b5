//! Fuzz target: the admin page's form reading (`granary_server::web::FormData`, which every
//! admin form goes through, and the field parsers of the instance form:
//! `views::parse_pairs`, `parse_client_auth`, and the engine's id rule `is_valid_id`).
//!
//! Input: an `application/x-www-form-urlencoded` body. Beyond "no panic":
//! - the pairs survive encoding again: parsing what `url`'s serializer writes of them gives
//!   the same pairs, in order, repeated names kept;
//! - `get`, `raw`, `all` and `checked` agree with each other and with the pairs (`get` is
//!   the first value trimmed, `raw` the first value as sent);
//! - the extra parameter and header fields (`name=value` and `Name: value` lines) read back
//!   the same after `format_pairs`, with non-empty trimmed names free of the separator;
//! - a valid id is 1 to 64 ASCII characters.
#![no_main]

use granary_flow::engine::is_valid_id as valid_id;
use granary_server::views::{format_pairs, parse_client_auth, parse_pairs};
use granary_server::web::FormData;
use libfuzzer_sys::fuzz_target;

/// The fields of the admin forms (the instance form, sign-in, API keys, discovery).
const FIELDS: &[&str] = &[
    "csrf",
    "next",
    "token",
    "id",
    "integration",
    "scheme",
    "client_id",
    "client_secret",
    "client_auth",
    "scope",
    "extra_scopes",
    "force_scopes",
    "authorization_url",
    "token_url",
    "extra_authorization_params",
    "extra_token_params",
    "extra_token_headers",
    "clear_secret",
    "issuer",
    "role",
    "name",
];

fn check_pairs(text: &str, separator: char) {
    let Ok(pairs) = parse_pairs(text, separator) else {
        return;
    };
    for (name, value) in &pairs {
        assert!(!name.is_empty());
        assert_eq!(name.trim(), name);
        assert_eq!(value.trim(), value);
        assert!(!name.contains(separator) && !name.contains('\n'));
        assert!(!value.contains('\n'));
    }
    let shown = if separator == ':' { ": " } else { "=" };
    let again = parse_pairs(&format_pairs(&pairs, shown), separator);
    assert_eq!(
        again.as_ref(),
        Ok(&pairs),
        "format_pairs does not read back"
    );
}

fuzz_target!(|data: &[u8]| {
    let form = FormData::parse(data);

    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &form.0 {
        encoded.append_pair(name, value);
    }
    let again = FormData::parse(encoded.finish().as_bytes());
    assert_eq!(again.0, form.0, "the pairs do not survive encoding again");

    let mut names: Vec<&str> = FIELDS.to_vec();
    names.extend(form.0.iter().take(8).map(|(name, _)| name.as_str()));
    for name in names {
        let values: Vec<&String> = form
            .0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(form.raw(name), values.first().map(|v| v.as_str()));
        assert_eq!(
            form.get(name),
            values.first().map(|v| v.trim()).unwrap_or_default()
        );
        assert_eq!(form.all(name).iter().collect::<Vec<_>>(), values);
        assert_eq!(form.checked(name), values.iter().any(|v| !v.is_empty()));
    }

    check_pairs(&form.get("extra_authorization_params"), '=');
    check_pairs(&form.get("extra_token_params"), '=');
    check_pairs(&form.get("extra_token_headers"), ':');
    if let Some(raw) = form.0.first().map(|(_, v)| v.as_str()) {
        check_pairs(raw, '=');
        check_pairs(raw, ':');
    }
    let _ = parse_client_auth(&form.get("client_auth"));
    for id in [form.get("id"), form.get("name"), form.get("integration")] {
        if valid_id(&id) {
            assert!((1..=64).contains(&id.len()) && id.is_ascii(), "{id:?}");
        }
    }
});
