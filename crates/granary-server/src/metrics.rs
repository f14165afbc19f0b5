//! Prometheus metrics through the Prometheus project's own client (`prometheus-client`):
//! request latency by route, refreshes, failures by cause, instances by status, and the
//! standard process metrics.
//!
//! `/metrics` serves the OpenMetrics text format ([`CONTENT_TYPE`]), which ends with `# EOF`.
//! Counters carry the `_total` suffix on their samples (`granary_refreshes_total 1`), while
//! their `# TYPE` line names the family without it (`# TYPE granary_refreshes counter`).

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The media type of what [`Metrics::render`] writes: OpenMetrics text 1.0.0.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A family whose `# HELP` and `# TYPE` lines are written before its first sample too:
/// prometheus-client leaves out an empty family, and a scraper should see from the start
/// that, say, `granary_failures` exists.
#[derive(Debug)]
struct Declared<M>(M);

impl<M: EncodeMetric> EncodeMetric for Declared<M> {
    fn encode(&self, encoder: MetricEncoder<'_>) -> fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

/// The counters of one server process, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram>,
    refreshes: Counter,
    authorizations: Counter,
    failures: Family<CauseLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let refreshes = Counter::default();
        let authorizations = Counter::default();
        let failures = Family::<CauseLabels, Counter>::default();
        let mut registry = Registry::default();
        // Help texts without their final period: `Registry::register` adds it.
        registry.register(
            "granary_refreshes",
            "Token refreshes that stored a new token",
            refreshes.clone(),
        );
        registry.register(
            "granary_authorizations",
            "Authorizations completed at the callback",
            authorizations.clone(),
        );
        registry.register(
            "granary_failures",
            "Failed refreshes, authorizations and token requests, by cause",
            Declared(failures.clone()),
        );
        registry.register_with_unit(
            "granary_http_request_duration",
            "HTTP request latency by route",
            Unit::Seconds,
            Declared(requests.clone()),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry,
            requests,
            refreshes,
            authorizations,
            failures,
        }
    }
}

impl Metrics {
    /// Records one HTTP request: its method, route template (never the raw path) and status.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a successful refresh.
    pub fn refreshed(&self) {
        self.refreshes.inc();
    }

    /// Counts a completed authorization.
    pub fn authorized(&self) {
        self.authorizations.inc();
    }

    /// Counts a failure (refresh, authorization, token request) by cause, e.g. `invalid_grant`.
    pub fn failed(&self, cause: &str) {
        self.failures
            .get_or_create(&CauseLabels {
                cause: cause.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]), ending with `# EOF`, with the
    /// instance counts by status given by the caller at scrape time.
    pub fn render(&self, instances_by_status: &[(&str, u64)], refresh_failing: u64) -> String {
        // The gauges given by the caller live for this scrape only: concurrent scrapes do not
        // see each other's counts, and a status the caller no longer passes is not shown.
        let mut scrape = Registry::default();
        let instances = Family::<StatusLabels, Gauge<u64, AtomicU64>>::default();
        for (status, count) in instances_by_status {
            instances
                .get_or_create(&StatusLabels {
                    status: (*status).to_string(),
                })
                .set(*count);
        }
        scrape.register(
            "granary_instances",
            "Instances by status",
            Declared(instances),
        );
        let failing = Gauge::<u64, AtomicU64>::default();
        failing.set(refresh_failing);
        scrape.register(
            "granary_instances_refresh_failing",
            "Authorized instances whose last refresh failed",
            failing,
        );
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &scrape))
            .and_then(|()| encode_eof(&mut out))
            .expect("encoding into a String does not fail");
        out
    }
}

/// The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`), read from `/proc/self` at each scrape on Linux. On other
/// systems it emits nothing; on Linux a value that cannot be read is left out.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = ProcessStats::read();
        let seconds = Unit::Seconds;
        let bytes = Unit::Bytes;
        if let Some(value) = stats.cpu_seconds {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&seconds),
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&bytes),
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(&bytes),
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                stats.max_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    unit,
                    gauge.metric_type(),
                )?)?;
            }
        }
        if let Some(value) = stats.start_time_seconds {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
                Some(&seconds),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// What the process collector reads; `None` where it cannot be read.
#[derive(Debug, Default, Clone, PartialEq)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl ProcessStats {
    #[cfg(target_os = "linux")]
    fn read() -> Self {
        let file = |path: &str| std::fs::read_to_string(path).ok();
        let stat = file("/proc/self/stat").and_then(|text| proc_fs::Stat::parse(&text));
        let boot_time = file("/proc/stat").and_then(|text| proc_fs::boot_time(&text));
        let status = file("/proc/self/status");
        Self {
            cpu_seconds: stat.as_ref().map(proc_fs::Stat::cpu_seconds),
            resident_bytes: status
                .as_deref()
                .and_then(|text| proc_fs::status_bytes(text, "VmRSS")),
            virtual_bytes: stat.as_ref().map(|stat| stat.virtual_bytes),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .and_then(|entries| u64::try_from(entries.count()).ok()),
            max_fds: file("/proc/self/limits").and_then(|text| proc_fs::max_open_files(&text)),
            start_time_seconds: stat
                .as_ref()
                .zip(boot_time)
                .map(|(stat, boot)| stat.start_time_seconds(boot)),
        }
    }

    /// Elsewhere than on Linux there is no `/proc/self`: no process metrics.
    #[cfg(not(target_os = "linux"))]
    fn read() -> Self {
        Self::default()
    }
}

/// Parsers of the `/proc` files the process collector reads (`man 5 proc`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod proc_fs {
    /// Clock ticks per second of the times in `/proc/self/stat` (`USER_HZ`, 100 on every
    /// Linux architecture; the Prometheus Go client's procfs takes the same constant).
    const USER_HZ: f64 = 100.0;

    /// The fields of `/proc/self/stat` the collector uses.
    #[derive(Debug, Clone, PartialEq)]
    pub(super) struct Stat {
        /// `utime + stime`, in clock ticks.
        pub cpu_ticks: u64,
        /// Start time after boot, in clock ticks.
        pub start_ticks: u64,
        /// `vsize`, in bytes.
        pub virtual_bytes: u64,
    }

    impl Stat {
        /// Parses `pid (comm) state ...`; `comm` may hold spaces and parentheses, so the
        /// fields are counted from the last `)`.
        pub fn parse(text: &str) -> Option<Self> {
            let rest = &text[text.rfind(')')? + 1..];
            // Field 3 (state) is index 0: utime is field 14, stime 15, starttime 22, vsize 23.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
            Some(Self {
                cpu_ticks: field(14)? + field(15)?,
                start_ticks: field(22)?,
                virtual_bytes: field(23)?,
            })
        }

        pub fn cpu_seconds(&self) -> f64 {
            self.cpu_ticks as f64 / USER_HZ
        }

        /// Seconds since the Unix epoch, given the boot time (`btime` of `/proc/stat`).
        pub fn start_time_seconds(&self, boot_time: u64) -> f64 {
            boot_time as f64 + self.start_ticks as f64 / USER_HZ
        }
    }

    /// `btime` of `/proc/stat`: the boot time, in seconds since the Unix epoch.
    pub fn boot_time(text: &str) -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    }

    /// A `kB` line of `/proc/self/status` (e.g. `VmRSS:  1234 kB`), in bytes.
    pub fn status_bytes(text: &str, key: &str) -> Option<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?;
        let mut words = line.split_whitespace();
        let kilobytes: u64 = words.next()?.parse().ok()?;
        (words.next()? == "kB").then_some(kilobytes.checked_mul(1024)?)
    }

    /// The soft limit of `Max open files` in `/proc/self/limits`; `None` when unlimited.
    pub fn max_open_files(text: &str) -> Option<u64> {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))?;
        line.split_whitespace().next()?.parse().ok()
    }
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
        // OpenMetrics as prometheus-client writes it: `le` first in bucket lines.
        assert!(text.contains(
            "granary_http_request_duration_seconds_bucket{le=\"0.0025\",method=\"GET\",route=\"/healthz\",status=\"200\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "granary_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n"
        ), "{text}");
        assert!(text.ends_with("\n# EOF\n"), "{text}");
    }

    #[test]
    fn families_are_declared_before_their_first_sample() {
        let text = Metrics::default().render(&[], 0);
        for line in [
            "# TYPE granary_refreshes counter\ngranary_refreshes_total 0\n",
            "# TYPE granary_authorizations counter\ngranary_authorizations_total 0\n",
            "# HELP granary_failures Failed refreshes, authorizations and token requests, by cause.\n\
             # TYPE granary_failures counter\n",
            "# TYPE granary_instances gauge\n",
            "# TYPE granary_instances_refresh_failing gauge\ngranary_instances_refresh_failing 0\n",
            "# TYPE granary_http_request_duration_seconds histogram\n\
             # UNIT granary_http_request_duration_seconds seconds\n",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(!text.contains("granary_failures_total"), "{text}");
    }

    #[test]
    fn histogram_keeps_the_buckets() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/healthz", 200, Duration::from_secs(1));
        let text = metrics.render(&[], 0);
        let bounds: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("granary_http_request_duration_seconds_bucket{"))
            .filter_map(|line| line.split("le=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(
            bounds,
            [
                "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.5", "2.5",
                "+Inf"
            ],
            "{text}"
        );
        // One second: above every bound but 2.5.
        assert!(
            text.contains(
                "_bucket{le=\"0.5\",method=\"GET\",route=\"/healthz\",status=\"200\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "_bucket{le=\"2.5\",method=\"GET\",route=\"/healthz\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.failed("a\"b\\c\nd");
        metrics.observe_request("GET", "/x\"\n", 404, Duration::from_millis(1));
        let text = metrics.render(&[("odd\"status\n", 1)], 0);
        assert!(
            text.contains("granary_failures_total{cause=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("granary_instances{status=\"odd\\\"status\\n\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "granary_http_request_duration_seconds_count{method=\"GET\",route=\"/x\\\"\\n\",status=\"404\"} 1\n"
            ),
            "{text}"
        );
        // No raw newline inside a sample line: every line is a comment or a whole sample.
        for line in text.lines() {
            assert!(
                line.starts_with('#')
                    || line
                        .rsplit(' ')
                        .next()
                        .is_some_and(|v| v.parse::<f64>().is_ok()),
                "{line:?} in\n{text}"
            );
        }
    }

    /// The value of the sample line `name value`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))?
            .parse()
            .ok()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_on_linux() {
        let text = Metrics::default().render(&[], 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let value = |name: &str| sample(&text, name).unwrap_or_else(|| panic!("{name}:\n{text}"));
        assert!(value("process_resident_memory_bytes") > 0.0, "{text}");
        assert!(
            value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"),
            "{text}"
        );
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} {now}\n{text}"
        );
        let cpu = value("process_cpu_seconds_total");
        assert!((0.0..1_000_000.0).contains(&cpu), "{text}");
        // This process has at least stdin, stdout and stderr open, and can open more.
        let open = value("process_open_fds");
        assert!(open >= 3.0 && open <= value("process_max_fds"), "{text}");
        for line in [
            "# TYPE process_cpu_seconds counter\n",
            "# TYPE process_resident_memory_bytes gauge\n",
            "# TYPE process_start_time_seconds gauge\n",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn no_process_metrics_elsewhere() {
        let text = Metrics::default().render(&[], 0);
        assert!(!text.contains("process_"), "{text}");
    }

    #[test]
    fn parses_proc_files() {
        // A command name with a space and a parenthesis; fields from state (3) to vsize (23).
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    123456 987654321 2000 18446744073709551615\n";
        let parsed = proc_fs::Stat::parse(stat).unwrap();
        assert_eq!(
            parsed,
            proc_fs::Stat {
                cpu_ticks: 300,
                start_ticks: 123_456,
                virtual_bytes: 987_654_321,
            }
        );
        assert_eq!(parsed.cpu_seconds(), 3.0);
        assert_eq!(parsed.start_time_seconds(1_700_000_000), 1_700_001_234.56);
        assert_eq!(proc_fs::Stat::parse("42 (a) S 1 2"), None);

        let proc_stat = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
        assert_eq!(proc_fs::boot_time(proc_stat), Some(1_700_000_000));
        assert_eq!(proc_fs::boot_time("cpu 1\n"), None);

        let status = "Name:\tgranary\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nVmRSSx:\t 1 kB\n";
        assert_eq!(proc_fs::status_bytes(status, "VmRSS"), Some(1234 * 1024));
        assert_eq!(proc_fs::status_bytes(status, "VmSwap"), None);
        assert_eq!(proc_fs::status_bytes("VmRSS:\t12 pages\n", "VmRSS"), None);

        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(proc_fs::max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(proc_fs::max_open_files(unlimited), None);
    }
}
