//! Small pure helpers shared by the pages, the API and the CLI: time formatting, names, lists.
//! (The rule for ids is the engine's: `granary_flow::engine::validate_id`.)

use granary_store::{ClientAuth, InstanceStatus, RefreshOutcome, RefreshResult, Timestamp};

/// A timestamp as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(time: Timestamp) -> String {
    let millis = time.as_unix_millis();
    let seconds = millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// A timestamp as RFC 3339 in UTC, to the second: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(time: Timestamp) -> String {
    let text = format_time(time);
    let text = text.strip_suffix(" UTC").unwrap_or(&text);
    format!("{}Z", text.replacen(' ', "T", 1))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_unix_seconds(seconds: u64) -> String {
    format_time(Timestamp::from_unix_millis(
        i64::try_from(seconds)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    ))
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The machine name of a status: `new`, `authorized`, `needs_authorization`, `disabled`.
pub fn status_name(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::New => "new",
        InstanceStatus::Authorized => "authorized",
        InstanceStatus::NeedsAuthorization => "needs_authorization",
        InstanceStatus::Disabled => "disabled",
    }
}

/// The machine name of where an instance stands: its status, or `refresh_failing` for an
/// authorized instance whose last refresh failed.
pub fn state_name(status: InstanceStatus, refresh_failing: bool) -> &'static str {
    if refresh_failing && status == InstanceStatus::Authorized {
        "refresh_failing"
    } else {
        status_name(status)
    }
}

/// The words of where an instance stands for people (see [`state_name`]).
pub fn state_text(status: InstanceStatus, refresh_failing: bool) -> &'static str {
    if refresh_failing && status == InstanceStatus::Authorized {
        "connected, but refreshing fails"
    } else {
        status_text(status)
    }
}

/// The words of a status for people.
pub fn status_text(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::New => "not connected yet",
        InstanceStatus::Authorized => "connected",
        InstanceStatus::NeedsAuthorization => "needs authorization",
        InstanceStatus::Disabled => "disabled",
    }
}

/// The wire name of a client authentication method.
pub fn client_auth_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::None => "none",
    }
}

/// Parses a client authentication method name.
pub fn parse_client_auth(name: &str) -> Option<ClientAuth> {
    match name.trim() {
        "client_secret_basic" | "basic" => Some(ClientAuth::ClientSecretBasic),
        "client_secret_post" | "post" => Some(ClientAuth::ClientSecretPost),
        "none" | "public" => Some(ClientAuth::None),
        _ => None,
    }
}

/// How the last refresh ended, in words.
pub fn refresh_outcome_text(outcome: Option<&RefreshOutcome>) -> String {
    match outcome {
        None => "none yet".to_string(),
        Some(outcome) => match &outcome.result {
            RefreshResult::Ok => format!("{}: succeeded", format_time(outcome.at)),
            RefreshResult::Failed {
                kind,
                message,
                failures,
                retry_at,
            } => {
                let next = retry_at.map_or_else(String::new, |at| {
                    format!("; next attempt not before {}", format_time(at))
                });
                format!(
                    "{}: failed ({kind:?}, {failures} in a row{next}): {message}",
                    format_time(outcome.at)
                )
            }
        },
    }
}

/// Parses `name=value` lines (or `Name: value` with `separator` `:`); blank lines are skipped.
pub fn parse_pairs(text: &str, separator: char) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(separator) else {
            return Err(format!(
                "line {} `{line}` has no `{separator}`: write one name{separator}value a line",
                number + 1
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("line {} has an empty name", number + 1));
        }
        pairs.push((name.to_string(), value.trim().to_string()));
    }
    Ok(pairs)
}

/// The inverse of [`parse_pairs`].
pub fn format_pairs(pairs: &[(String, String)], separator: &str) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}{separator}{value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(format_time(Timestamp::EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            format_time(Timestamp::from_unix_millis(1_700_000_000_123)),
            "2023-11-14 22:13:20 UTC"
        );
        assert_eq!(
            format_time(Timestamp::from_unix_millis(951_782_400_000)),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(format_unix_seconds(86_400), "1970-01-02 00:00:00 UTC");
        assert_eq!(
            format_rfc3339(Timestamp::from_unix_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn pairs_round_trip_and_errors_name_the_line() {
        let pairs = parse_pairs("audience=api\n\n prompt = consent \n", '=').unwrap();
        assert_eq!(
            pairs,
            vec![
                ("audience".into(), "api".into()),
                ("prompt".into(), "consent".into())
            ]
        );
        assert_eq!(format_pairs(&pairs, "="), "audience=api\nprompt=consent");
        let error = parse_pairs("ok=1\nbroken", '=').unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        assert_eq!(
            parse_pairs("X-Api: 1:2", ':').unwrap(),
            vec![("X-Api".into(), "1:2".into())]
        );
    }

    #[test]
    fn client_auth_names_round_trip() {
        for auth in [
            ClientAuth::ClientSecretBasic,
            ClientAuth::ClientSecretPost,
            ClientAuth::None,
        ] {
            assert_eq!(parse_client_auth(client_auth_name(auth)), Some(auth));
        }
        assert_eq!(parse_client_auth("bogus"), None);
    }
}
