//! Prometheus metrics: request latency by route, refreshes, failures by cause, instances by status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The counters of one server process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    refreshes: AtomicU64,
    authorizations: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Records one HTTP request: its method, route template (never the raw path) and status.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let histogram = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Counts a successful refresh.
    pub fn refreshed(&self) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a completed authorization.
    pub fn authorized(&self) {
        self.authorizations.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure (refresh, authorization, token request) by cause, e.g. `invalid_grant`.
    pub fn failed(&self, cause: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(cause.to_string()).or_default() += 1;
    }

    /// The Prometheus text exposition, with the instance counts by status given by the caller.
    pub fn render(&self, instances_by_status: &[(&str, u64)], refresh_failing: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP granary_refreshes_total Token refreshes that stored a new token."
        );
        let _ = writeln!(out, "# TYPE granary_refreshes_total counter");
        let _ = writeln!(
            out,
            "granary_refreshes_total {}",
            self.refreshes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP granary_authorizations_total Authorizations completed at the callback."
        );
        let _ = writeln!(out, "# TYPE granary_authorizations_total counter");
        let _ = writeln!(
            out,
            "granary_authorizations_total {}",
            self.authorizations.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP granary_failures_total Failed refreshes, authorizations and token requests, by cause."
        );
        let _ = writeln!(out, "# TYPE granary_failures_total counter");
        for (cause, count) in self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "granary_failures_total{{cause=\"{}\"}} {count}",
                label(cause)
            );
        }
        let _ = writeln!(out, "# HELP granary_instances Instances by status.");
        let _ = writeln!(out, "# TYPE granary_instances gauge");
        for (status, count) in instances_by_status {
            let _ = writeln!(
                out,
                "granary_instances{{status=\"{}\"}} {count}",
                label(status)
            );
        }
        let _ = writeln!(
            out,
            "# HELP granary_instances_refresh_failing Authorized instances whose last refresh failed."
        );
        let _ = writeln!(out, "# TYPE granary_instances_refresh_failing gauge");
        let _ = writeln!(out, "granary_instances_refresh_failing {refresh_failing}");
        let _ = writeln!(
            out,
            "# HELP granary_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(
            out,
            "# TYPE granary_http_request_duration_seconds histogram"
        );
        let map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((method, route, status), histogram) in map.iter() {
            let labels = format!(
                "method=\"{}\",route=\"{}\",status=\"{status}\"",
                label(method),
                label(route)
            );
            for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "granary_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "granary_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "granary_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "granary_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/healthz", 200, Duration::from_millis(2));
        metrics.observe_request("GET", "/healthz", 200, Duration::from_millis(200));
        metrics.refreshed();
        metrics.failed("invalid_grant");
        metrics.failed("invalid_grant");
        let text = metrics.render(&[("authorized", 3)], 1);
        assert!(
            text.contains("granary_instances_refresh_failing 1\n"),
            "{text}"
        );
        assert!(text.contains("granary_refreshes_total 1\n"), "{text}");
        assert!(
            text.contains("granary_failures_total{cause=\"invalid_grant\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("granary_instances{status=\"authorized\"} 3\n"),
            "{text}"
        );
        assert!(text.contains(
            "granary_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",status=\"200\",le=\"0.0025\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "granary_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n"
        ), "{text}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
