//! Short, secret-free excerpts of response bodies for error messages.

use serde_json::Value;

use super::REDACTED;

/// The longest excerpt, in characters.
const EXCERPT_CHARS: usize = 160;

/// Whether a field of that name may hold a secret (tokens, secrets, codes, verifiers).
pub(crate) fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "code"
        || [
            "token",
            "secret",
            "password",
            "verifier",
            "assertion",
            "key",
        ]
        .iter()
        .any(|word| key.contains(word))
}

/// Replaces every string or number under a sensitive key, at any depth. A `code` inside an
/// error (an object under `error` or `errors`, or one that has `error`, `message`,
/// `error_description` or `errors` beside it) is an error code, not an authorization code,
/// and is kept when it reads like one (a number, or a short word without spaces); what the
/// request sent is removed from excerpts separately.
pub(crate) fn redact_json(value: &mut Value) {
    redact_json_in(value, false);
}

fn redact_json_in(value: &mut Value, in_error: bool) {
    match value {
        Value::Object(map) => {
            let error_context = in_error
                || ["error", "message", "error_description", "errors"]
                    .iter()
                    .any(|key| map.contains_key(*key));
            for (key, inner) in map.iter_mut() {
                let error_code =
                    error_context && key.eq_ignore_ascii_case("code") && reads_as_code(inner);
                if is_sensitive_key(key) && !inner.is_null() && !error_code {
                    *inner = Value::String(REDACTED.to_string());
                } else {
                    let nested_error = matches!(key.as_str(), "error" | "errors");
                    redact_json_in(inner, in_error || nested_error);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_json_in(item, in_error)),
        _ => {}
    }
}

/// Whether a value reads as an error code: a number, or up to 64 characters of letters,
/// digits, `_`, `-`, `.` and `:`.
fn reads_as_code(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::String(s) => {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
        }
        _ => false,
    }
}

/// A short excerpt of a body: JSON and form bodies with sensitive fields redacted, other
/// text with whitespace collapsed and `key=value` / `"key": "value"` secrets redacted, and
/// every literal occurrence of `known_secrets` (what the request sent) removed.
pub(crate) fn excerpt(body: &[u8], known_secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out = if let Ok(mut json) = serde_json::from_str::<Value>(trimmed) {
        redact_json(&mut json);
        json.to_string()
    } else if looks_like_form(trimmed) {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in url::form_urlencoded::parse(trimmed.as_bytes()) {
            if is_sensitive_key(&key) {
                serializer.append_pair(&key, REDACTED);
            } else {
                serializer.append_pair(&key, &value);
            }
        }
        serializer.finish()
    } else if trimmed.starts_with('<') {
        redact_text(&collapse(&html_text(trimmed)))
    } else {
        redact_text(&collapse(trimmed))
    };
    for secret in known_secrets {
        if secret.len() >= 4 {
            out = out.replace(secret, REDACTED);
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            if encoded != *secret {
                out = out.replace(&encoded, REDACTED);
            }
        }
    }
    truncate(&out)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of an HTML page: tags, comments, `<script>` and `<style>` contents removed.
/// Attribute values (where forms keep hidden fields) are dropped with their tags.
fn html_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut at = 0;
    while let Some(open) = lower
        .get(at..)
        .and_then(|rest| rest.find('<'))
        .map(|i| at + i)
    {
        out.push_str(html.get(at..open).unwrap_or_default());
        out.push(' ');
        let rest = lower.get(open..).unwrap_or_default();
        let skip_to = if rest.starts_with("<!--") {
            rest.find("-->").map(|i| open + i + 3)
        } else if rest.starts_with("<script") || rest.starts_with("<style") {
            let close = if rest.starts_with("<script") {
                "</script>"
            } else {
                "</style>"
            };
            rest.find(close).map(|i| open + i + close.len())
        } else {
            rest.find('>').map(|i| open + i + 1)
        };
        match skip_to {
            Some(next) => at = next,
            None => return out,
        }
    }
    out.push_str(html.get(at..).unwrap_or_default());
    out
}

/// Whether a body reads as `a=b&c=d`.
pub(crate) fn looks_like_form(body: &str) -> bool {
    !body.is_empty()
        && !body.starts_with('<')
        && !body.starts_with('{')
        && !body.contains(char::is_whitespace)
        && body
            .split('&')
            .all(|pair| pair.contains('=') && !pair.starts_with('='))
}

/// Redacts values after `token`, `secret`, `password`, `verifier`, `code` markers followed by `=` or `:`.
fn redact_text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = ["token", "secret", "password", "verifier", "code"]
        .iter()
        .filter_map(|word| {
            lower
                .get(search..)?
                .find(word)
                .map(|at| (search + at, word.len()))
        })
        .min()
    {
        let (at, len) = found;
        let mut cursor = at + len;
        // Rest of the key (e.g. `_type`), then separators.
        while cursor < bytes.len()
            && (bytes[cursor].is_ascii_alphanumeric() || bytes[cursor] == b'_')
        {
            cursor += 1;
        }
        let separator_start = cursor;
        let mut saw_separator = false;
        while cursor < bytes.len()
            && cursor - separator_start < 4
            && b"\"' :=".contains(&bytes[cursor])
        {
            saw_separator |= bytes[cursor] == b'=' || bytes[cursor] == b':';
            cursor += 1;
        }
        let value_start = cursor;
        while cursor < bytes.len() && is_value_byte(bytes[cursor]) {
            cursor += 1;
        }
        if saw_separator && cursor > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = cursor;
        }
        search = cursor.max(at + len);
    }
    out.push_str(&text[copied..]);
    out
}

fn is_value_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/=%".contains(&byte)
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_token_fields_are_redacted_at_any_depth() {
        let body = br#"{"error":"x","access_token":"AT-123456","authed_user":{"refresh_token":"RT-99999"},"n":1}"#;
        let out = excerpt(body, &[]);
        assert!(
            !out.contains("AT-123456") && !out.contains("RT-99999"),
            "{out}"
        );
        assert!(out.contains("\"error\":\"x\""), "{out}");
    }

    #[test]
    fn a_code_inside_an_error_is_an_error_code_and_stays() {
        let notion = br#"{"object":"error","status":400,"code":"invalid_json","message":"Error parsing JSON body."}"#;
        let out = excerpt(notion, &[]);
        assert!(out.contains("\"code\":\"invalid_json\""), "{out}");
        let facebook = br#"{"error":{"message":"Error validating application.","type":"OAuthException","code":101,"fbtrace_id":"A1"}}"#;
        let out = excerpt(facebook, &[]);
        assert!(out.contains("\"code\":101"), "{out}");
        let listed = br#"{"errors":[{"code":"bad_client","detail":"x"}]}"#;
        assert!(excerpt(listed, &[]).contains("bad_client"));
        // Outside an error, a `code` is an authorization code; inside one, a value that
        // does not read as a code (spaces, slashes) is still redacted, and what the
        // request sent always is.
        let out = excerpt(br#"{"code":"4/0AX4XfWh","state":"s"}"#, &[]);
        assert!(!out.contains("4/0AX4XfWh"), "{out}");
        let out = excerpt(br#"{"message":"m","code":"4/0AX4 XfWh"}"#, &[]);
        assert!(!out.contains("XfWh"), "{out}");
        let out = excerpt(br#"{"message":"m","code":"sent-code-1"}"#, &["sent-code-1"]);
        assert!(!out.contains("sent-code-1"), "{out}");
        let out = excerpt(br#"{"error":{"code":"x","access_token":"AT-1"}}"#, &[]);
        assert!(!out.contains("AT-1"), "{out}");
    }

    #[test]
    fn form_token_fields_are_redacted() {
        let out = excerpt(b"access_token=gho_abcdef&scope=repo&token_type=bearer", &[]);
        assert!(!out.contains("gho_abcdef"), "{out}");
        assert!(out.contains("scope=repo"), "{out}");
    }

    #[test]
    fn text_token_values_are_redacted_and_known_secrets_removed() {
        let out = excerpt(
            b"<html><body>oops access_token=abc.def-ghi and \"client_secret\": \"s3cr3t!!\" sent hunter22</body></html>",
            &["hunter22"],
        );
        assert!(!out.contains("abc.def-ghi"), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains("hunter22"), "{out}");
        assert!(out.contains("oops"), "{out}");
    }

    #[test]
    fn html_pages_are_reduced_to_their_text() {
        let page = b"<!DOCTYPE html><html><head><title>oops! something went wrong</title>\
            <style>body { color: red }</style><script>var token = 'x';</script></head>\
            <body><!-- debug --><h1>Sign in</h1><input type=\"hidden\" name=\"client_secret\" value=\"hidden-1\">\
            <p>access_token=leaked-2</p></body></html>";
        let out = excerpt(page, &[]);
        assert_eq!(
            out,
            "oops! something went wrong Sign in access_token=[redacted]"
        );
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(10_000);
        let out = excerpt(body.as_bytes(), &[]);
        assert!(out.chars().count() <= EXCERPT_CHARS + 1);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn multibyte_text_is_cut_on_a_character_boundary() {
        let body = "é".repeat(500);
        let out = excerpt(body.as_bytes(), &[]);
        assert_eq!(out.chars().count(), EXCERPT_CHARS + 1);
    }
}
