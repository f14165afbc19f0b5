//! The HTTP client of the protocol and one bounded request: timeouts, no redirects, a body limit.

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use url::Url;

use super::Timeouts;
use crate::error::{Endpoint, EndpointProblem, Error, Result};

/// The largest response body read, in bytes; a longer one is an error.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Builds the HTTP client every protocol function expects: the given connect and total
/// timeouts, no redirects followed (a token endpoint never redirects, and following one could
/// replay credentials elsewhere), rustls for TLS.
pub fn http_client(timeouts: &Timeouts) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .use_rustls_tls()
        .user_agent(concat!("granary/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::HttpClient(source_chain(&e)))
}

/// A response read in full, at most [`MAX_BODY`] bytes.
pub(crate) struct RawResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
    pub too_large: bool,
}

impl RawResponse {
    /// The content type for messages.
    pub fn content_type_text(&self) -> String {
        self.content_type
            .clone()
            .unwrap_or_else(|| "no content type".to_string())
    }

    /// Whether the body is an HTML page.
    pub fn is_html(&self) -> bool {
        let by_type = self
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"));
        let by_body =
            String::from_utf8_lossy(self.body.get(..self.body.len().min(64)).unwrap_or_default())
                .trim_start()
                .starts_with('<');
        by_type || by_body
    }
}

/// Sends a request and reads the answer, mapping transport failures to typed errors.
pub(crate) async fn send(
    client: &reqwest::Client,
    request: reqwest::Request,
    endpoint: Endpoint,
    url: &Url,
) -> Result<RawResponse> {
    let mut response = client
        .execute(request)
        .await
        .map_err(|e| transport_error(&e, endpoint, url))?;
    let status = response.status().as_u16();
    let headers = response.headers();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(CONTENT_TYPE);
    let location = header(LOCATION);
    let retry_after = header(RETRY_AFTER).and_then(|v| parse_retry_after(&v, SystemTime::now()));
    let mut body = Vec::new();
    let mut too_large = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, endpoint, url))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            too_large = true;
            let room = MAX_BODY - body.len();
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(RawResponse {
        status,
        content_type,
        location,
        retry_after,
        body,
        too_large,
    })
}

/// A transport failure as a typed error: timeouts are transient, connect failures mean the
/// URL may not be an endpoint at all (and are transient too).
fn transport_error(error: &reqwest::Error, endpoint: Endpoint, url: &Url) -> Error {
    let reason = source_chain(error);
    if error.is_timeout() {
        Error::Transient {
            endpoint,
            url: url.to_string(),
            reason: format!("no answer in time ({reason})"),
            status: None,
            retry_after: None,
            details: None,
        }
    } else if error.is_connect() {
        Error::NotAnEndpoint {
            endpoint,
            url: url.to_string(),
            problem: EndpointProblem::Unreachable(reason),
        }
    } else {
        Error::Transient {
            endpoint,
            url: url.to_string(),
            reason: format!("the connection failed ({reason})"),
            status: None,
            retry_after: None,
            details: None,
        }
    }
}

/// The innermost cause of an error (such as `Connection refused (os error 111)`), without
/// the URL that reqwest puts in its own text.
pub(crate) fn source_chain(error: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    innermost.unwrap_or_else(|| {
        if error.is_timeout() {
            "timed out".to_string()
        } else {
            "request failed".to_string()
        }
    })
}

/// `Retry-After` as delay-seconds or an IMF-fixdate (RFC 9110 10.2.3).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_imf_fixdate(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` to seconds since the epoch.
fn parse_imf_fixdate(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    let seconds = days.checked_mul(86_400)? + (hour * 3600 + minute * 60 + second) as i64;
    u64::try_from(seconds).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 CET", now),
            None
        );
    }
}
