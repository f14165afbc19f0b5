//! The backoff after a failed refresh (recorded in the store for every process) and how a
//! failure is read: how many in a row, and whether the provider refused without an OAuth
//! error.

use std::time::Duration;

use granary_store::{RefreshOutcome, RefreshResult, TokenRecord};

/// The backoff after the first failed refresh; it doubles with each failure in a row.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);

/// The longest backoff of the engine's own (a provider's `Retry-After` may ask for more).
pub const BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);

/// The longest `Retry-After` honoured.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(6 * 3600);

/// After this many refreshes in a row refused with an answer that is no OAuth error (an
/// empty or HTML 4xx from an endpoint that issued the token), the instance needs
/// authorization: some providers answer a dead refresh token that way.
pub const DEFINITIVE_FAILURES_BEFORE_REAUTHORIZATION: u32 = 3;

/// The backoff a failed refresh recorded and the reason, if the last refresh failed.
pub(super) fn recorded_backoff(record: &TokenRecord) -> Option<(granary_store::Timestamp, String)> {
    match &record.last_refresh {
        Some(RefreshOutcome {
            result:
                RefreshResult::Failed {
                    retry_at: Some(at),
                    message,
                    ..
                },
            ..
        }) => Some((*at, message.clone())),
        _ => None,
    }
}

/// How many refreshes in a row failed before this one.
pub(super) fn previous_failures(record: &TokenRecord) -> u32 {
    match &record.last_refresh {
        Some(RefreshOutcome {
            result: RefreshResult::Failed { failures, .. },
            ..
        }) => *failures,
        _ => 0,
    }
}

/// The wait after `failures` refreshes in a row failed: [`BACKOFF_BASE`] doubled per failure
/// up to [`BACKOFF_CAP`], and at least the provider's `Retry-After` (up to 6 hours).
pub(crate) fn backoff_after(failures: u32, retry_after: Option<Duration>) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let own = BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP);
    retry_after.map_or(own, |asked| own.max(asked.min(RETRY_AFTER_CAP)))
}

/// For a 4xx answer without an OAuth error (an empty, non-JSON or HTML body, or JSON without
/// an `error` field), what it was, e.g. "HTTP 400 (text/html)"; `None` for anything else.
pub(super) fn unexplained_refusal(error: &crate::Error) -> Option<String> {
    use crate::error::EndpointProblem;
    match error {
        crate::Error::InvalidResponse {
            status,
            content_type,
            excerpt,
            ..
        } if (400..500).contains(status) => Some(describe_answer(*status, content_type, excerpt)),
        crate::Error::NotAnEndpoint {
            problem:
                EndpointProblem::Html {
                    status,
                    content_type,
                    excerpt,
                },
            ..
        } if (400..500).contains(status) => Some(describe_answer(*status, content_type, excerpt)),
        _ => None,
    }
}

fn describe_answer(status: u16, content_type: &str, excerpt: &str) -> String {
    if excerpt.trim().is_empty() {
        format!("HTTP {status} ({content_type}) and an empty body")
    } else {
        format!("HTTP {status} ({content_type}): {excerpt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        assert_eq!(backoff_after(1, None), BACKOFF_BASE);
        assert_eq!(backoff_after(2, None), BACKOFF_BASE * 2);
        assert_eq!(backoff_after(30, None), BACKOFF_CAP);
        assert_eq!(
            backoff_after(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            backoff_after(1, Some(Duration::from_secs(2))),
            BACKOFF_BASE,
            "a short Retry-After does not shorten the engine's own backoff"
        );
        assert_eq!(
            backoff_after(1, Some(Duration::from_secs(100 * 3600))),
            RETRY_AFTER_CAP
        );
    }

    #[test]
    fn the_documented_figures() {
        assert_eq!(BACKOFF_BASE, Duration::from_secs(5));
        assert_eq!(BACKOFF_CAP, Duration::from_secs(300));
        assert_eq!(RETRY_AFTER_CAP, Duration::from_secs(21_600));
    }

    fn invalid_response(status: u16) -> crate::Error {
        crate::Error::InvalidResponse {
            endpoint: crate::error::Endpoint::Token,
            url: "https://provider.test/token".into(),
            status,
            content_type: "text/plain".into(),
            problem: "not JSON".into(),
            excerpt: "nope".into(),
        }
    }

    fn html_page(status: u16) -> crate::Error {
        crate::Error::NotAnEndpoint {
            endpoint: crate::error::Endpoint::Token,
            url: "https://provider.test/token".into(),
            problem: crate::error::EndpointProblem::Html {
                status,
                content_type: "text/html".into(),
                excerpt: String::new(),
            },
        }
    }

    #[test]
    fn only_a_4xx_without_an_oauth_error_is_an_unexplained_refusal() {
        assert_eq!(
            unexplained_refusal(&invalid_response(400)).as_deref(),
            Some("HTTP 400 (text/plain): nope")
        );
        assert_eq!(
            unexplained_refusal(&html_page(401)).as_deref(),
            Some("HTTP 401 (text/html) and an empty body")
        );
        for status in [200, 399, 500, 503] {
            assert_eq!(
                unexplained_refusal(&invalid_response(status)),
                None,
                "{status}"
            );
            assert_eq!(unexplained_refusal(&html_page(status)), None, "{status}");
        }
    }
}
