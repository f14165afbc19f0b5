//! Reconnect links outside the web page: the lifetime setting and its parser (`7d`), and
//! `POST /api/v1/instances/{id}/reconnect-link`. The pages are in `web::reconnect`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use granary_flow::engine::MAX_RECONNECT_LINK_TTL;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::problem::Problem;
use crate::views::format_rfc3339;

/// How long a reconnect link lives by default: 7 days (the engine's default).
pub use granary_flow::engine::DEFAULT_RECONNECT_LINK_TTL;

/// `path` as logs may show it: a reconnect link's path without its secret
/// (`/reconnect/{secret}`), any other path as it is.
pub fn loggable_path(path: &str) -> &str {
    if path.starts_with("/reconnect/") {
        "/reconnect/{secret}"
    } else {
        path
    }
}

/// Reads a link lifetime: whole seconds (`3600`), or a number with a unit `s`, `m`, `h` or
/// `d` (`90m`, `3d`); between 1 second and 90 days.
pub fn parse_ttl(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => 0,
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .filter(|_| scale > 0)
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| {
            format!(
                "`{text}` is not a duration: give seconds, or a number with s, m, h or d \
                 (such as 7d)"
            )
        })?;
    let ttl = Duration::from_secs(seconds);
    if ttl.is_zero() || ttl > MAX_RECONNECT_LINK_TTL {
        return Err(format!(
            "`{text}` is outside what a reconnect link may live: give 1 second to 90 days"
        ));
    }
    Ok(ttl)
}

/// The `reconnect_link_ttl` setting: the flag or variable first, then the configuration
/// file (seconds or a text such as `"7d"`), else [`DEFAULT_RECONNECT_LINK_TTL`].
pub(crate) fn ttl_setting(flag: Option<&str>, file: Option<&toml::Value>) -> Result<Duration> {
    let parsed = match (flag, file) {
        (Some(text), _) => parse_ttl(text),
        (None, Some(toml::Value::String(text))) => parse_ttl(text),
        (None, Some(toml::Value::Integer(seconds))) => parse_ttl(&seconds.to_string()),
        (None, Some(other)) => Err(format!(
            "`{other}` is not a duration: give seconds or a text such as \"7d\""
        )),
        (None, None) => Ok(DEFAULT_RECONNECT_LINK_TTL),
    };
    parsed.map_err(|reason| Error::Config(format!("reconnect_link_ttl: {reason}")))
}

/// `POST /api/v1/instances/{id}/reconnect-link`, body optional `{"ttl": "3d"}` (or
/// seconds): a single-use link for whoever owns the account at the provider;
/// `{"url", "expires_at"}`. The URL is shown only in this answer.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ttl = match requested_ttl(&body) {
        Ok(ttl) => ttl.unwrap_or(state.settings.reconnect_link_ttl),
        Err(reason) => return Problem::bad_request(reason).into_response(),
    };
    match state.engine.create_reconnect_link(&id, ttl).await {
        Ok(created) => {
            let mut response = Json(json!({
                "url": created.url.as_str(),
                "expires_at": format_rfc3339(created.expires),
                "note": "the link works once, until it expires; whoever opens it can authorize this instance (and only this one)",
            }))
            .into_response();
            *response.status_mut() = axum::http::StatusCode::CREATED;
            response
        }
        Err(error) => crate::api::engine_problem(&error).into_response(),
    }
}

/// The `ttl` of a request body, if it gives one.
fn requested_ttl(body: &[u8]) -> std::result::Result<Option<Duration>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not JSON ({e}): send nothing, or {{\"ttl\": \"7d\"}}"))?;
    match value.get("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_ttl(text).map(Some),
        Some(Value::Number(n)) => parse_ttl(&n.to_string()).map(Some),
        Some(other) => Err(format!(
            "ttl = {other} is not a duration: give seconds or a text such as \"7d\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_a_links_secret() {
        assert_eq!(
            loggable_path("/reconnect/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "/reconnect/{secret}"
        );
        assert_eq!(loggable_path("/admin/instances/x"), "/admin/instances/x");
    }

    #[test]
    fn durations_read_with_their_unit() {
        for (text, secs) in [
            ("45", 45),
            ("45s", 45),
            ("90m", 5400),
            ("12h", 43_200),
            ("3d", 259_200),
            ("90d", 7_776_000),
        ] {
            assert_eq!(parse_ttl(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in [
            "",
            "0",
            "0d",
            "91d",
            "3w",
            "d",
            "-1",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_setting_defaults_to_seven_days() {
        assert_eq!(ttl_setting(None, None).unwrap(), DEFAULT_RECONNECT_LINK_TTL);
        let file = toml::Value::String("2d".into());
        assert_eq!(
            ttl_setting(None, Some(&file)).unwrap(),
            Duration::from_secs(172_800)
        );
        assert_eq!(
            ttl_setting(Some("1h"), Some(&file)).unwrap(),
            Duration::from_secs(3600)
        );
        let seconds = toml::Value::Integer(60);
        assert_eq!(
            ttl_setting(None, Some(&seconds)).unwrap(),
            Duration::from_secs(60)
        );
        assert!(ttl_setting(None, Some(&toml::Value::Boolean(true))).is_err());
        assert!(ttl_setting(Some("100d"), None).is_err());
    }

    #[test]
    fn the_setting_is_read_and_checked() {
        use crate::settings::{CommonArgs, ServeArgs, Settings};
        let defaults = Settings::resolve(&CommonArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(defaults.reconnect_link_ttl, DEFAULT_RECONNECT_LINK_TTL);
        let serve = ServeArgs {
            reconnect_link_ttl: Some("2d".to_string()),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(&CommonArgs::default(), &serve).unwrap();
        assert_eq!(settings.reconnect_link_ttl, Duration::from_secs(172_800));
        let bad = ServeArgs {
            reconnect_link_ttl: Some("1y".to_string()),
            ..ServeArgs::default()
        };
        let refused = Settings::resolve(&CommonArgs::default(), &bad).unwrap_err();
        assert!(
            refused.to_string().contains("reconnect_link_ttl"),
            "{refused}"
        );
    }

    #[test]
    fn a_body_may_give_a_ttl() {
        assert_eq!(requested_ttl(b""), Ok(None));
        assert_eq!(requested_ttl(b"{}"), Ok(None));
        assert_eq!(
            requested_ttl(br#"{"ttl": "3d"}"#),
            Ok(Some(Duration::from_secs(259_200)))
        );
        assert_eq!(
            requested_ttl(br#"{"ttl": 60}"#),
            Ok(Some(Duration::from_secs(60)))
        );
        assert!(requested_ttl(br#"{"ttl": "soon"}"#).is_err());
        assert!(requested_ttl(b"nope").is_err());
    }
}
