//! Sign-in throttling per client address: after [`FREE_FAILURES`] wrong admin tokens from one
//! address, sign-ins from it are refused with 429 and `Retry-After` for a time that doubles
//! with every further failure (1 s, 2 s, 4 s, ... up to [`MAX_BLOCK`]); a right token clears
//! the address. Refusals are logged as one line per [`LOG_EVERY`], not one per attempt.
//!
//! A small bounded map (at most [`MAX_ADDRESSES`] entries, idle ones forgotten after
//! [`FORGET_AFTER`]) rather than `governor`: governor limits the rate of requests, while
//! this counts failures only and grows the wait with each one, which is what a sign-in needs.
//! IPv6 addresses count by their /64 prefix (one host usually holds a whole /64).
//! Behind a reverse proxy every client has the proxy's address: all share one count.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// Wrong tokens an address may send before it must wait.
pub const FREE_FAILURES: u32 = 10;
/// The first wait, doubled with every further failure.
pub const FIRST_BLOCK: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// An address without a failure for this long starts again from zero.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The most addresses remembered (the oldest is dropped beyond).
pub const MAX_ADDRESSES: usize = 10_000;
/// How often refused sign-ins are logged, as one line.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// The peer address of a request, when the server was started with connect info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

#[derive(Debug, Default)]
struct Report {
    started: Option<Instant>,
    refused: u64,
    throttled: u64,
    addresses: HashSet<IpAddr>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<IpAddr, Entry>,
    report: Report,
}

/// The failed sign-ins of one server process.
#[derive(Debug, Default)]
pub struct SignInThrottle {
    inner: Mutex<Inner>,
}

/// What was refused in one logging interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Wrong tokens.
    pub refused: u64,
    /// Attempts refused with 429 before the token was looked at.
    pub throttled: u64,
    /// Distinct addresses (up to 1000 counted).
    pub addresses: usize,
}

/// The key of an address: itself, or its /64 for IPv6.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl SignInThrottle {
    /// `Err(wait)` when `address` must wait before it may try again (counted for the log).
    pub fn check(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(address, Instant::now())
    }

    /// Records a wrong token from `address`.
    pub fn failed(&self, address: Option<IpAddr>) {
        self.failed_at(address, Instant::now());
    }

    /// Records a right token: the address starts again from zero.
    pub fn succeeded(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            self.lock().entries.remove(&key(address));
        }
    }

    /// Logs the refusals of the interval that ended, as one line (called every second).
    pub fn log_due(&self) {
        if let Some(summary) = self.take_due(Instant::now()) {
            tracing::warn!(
                refused = summary.refused,
                throttled = summary.throttled,
                addresses = summary.addresses,
                "sign-ins with a wrong admin token were refused (one line per minute)"
            );
        }
    }

    /// The refusals of the logging interval that ended, if any, for a caller that logs them
    /// in its own words (the reconnect links' throttle).
    pub fn take_summary(&self) -> Option<Summary> {
        self.take_due(Instant::now())
    }

    fn check_at(&self, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Some(address) = address else {
            return Ok(());
        };
        let mut inner = self.lock();
        let blocked = inner
            .entries
            .get(&key(address))
            .and_then(|e| e.blocked_until)
            .filter(|until| *until > now);
        match blocked {
            Some(until) => {
                inner.note(address, now, false);
                Err(until - now)
            }
            None => Ok(()),
        }
    }

    fn failed_at(&self, address: Option<IpAddr>, now: Instant) {
        let mut inner = self.lock();
        let Some(address) = address else {
            inner.note(IpAddr::from([0, 0, 0, 0]), now, true);
            return;
        };
        let slot = key(address);
        if !inner.entries.contains_key(&slot) && inner.entries.len() >= MAX_ADDRESSES {
            inner.prune(now);
        }
        let entry = inner.entries.entry(slot).or_insert(Entry {
            failures: 0,
            blocked_until: None,
            last: now,
        });
        if now.duration_since(entry.last) > FORGET_AFTER {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        if entry.failures >= FREE_FAILURES {
            let doublings = (entry.failures - FREE_FAILURES).min(20);
            let wait = FIRST_BLOCK.saturating_mul(1 << doublings).min(MAX_BLOCK);
            entry.blocked_until = Some(now + wait);
        }
        inner.note(address, now, true);
    }

    /// The summary of the interval that ended by `now`, if anything was refused in it.
    fn take_due(&self, now: Instant) -> Option<Summary> {
        let mut inner = self.lock();
        let started = inner.report.started?;
        if now.duration_since(started) < LOG_EVERY {
            return None;
        }
        let report = std::mem::take(&mut inner.report);
        Some(Summary {
            refused: report.refused,
            throttled: report.throttled,
            addresses: report.addresses.len(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Inner {
    fn note(&mut self, address: IpAddr, now: Instant, refused: bool) {
        let report = &mut self.report;
        report.started.get_or_insert(now);
        if refused {
            report.refused += 1;
        } else {
            report.throttled += 1;
        }
        if report.addresses.len() < 1000 {
            report.addresses.insert(address);
        }
    }

    /// Forgets idle addresses; when none is idle, the one whose last failure is oldest.
    fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, e| {
            now.duration_since(e.last) <= FORGET_AFTER
                || e.blocked_until.is_some_and(|until| until > now)
        });
        if self.entries.len() >= MAX_ADDRESSES {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn ten_failures_are_free_then_the_wait_doubles() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..FREE_FAILURES - 1 {
            assert!(throttle.check_at(a, t0).is_ok());
            throttle.failed_at(a, t0);
        }
        assert!(throttle.check_at(a, t0).is_ok());
        throttle.failed_at(a, t0);
        assert_eq!(throttle.check_at(a, t0), Err(FIRST_BLOCK));
        // Another address is not affected.
        assert!(throttle.check_at(ip("192.0.2.2"), t0).is_ok());
        // After the wait, one more failure waits twice as long, then four times.
        let t1 = t0 + FIRST_BLOCK;
        assert!(throttle.check_at(a, t1).is_ok());
        throttle.failed_at(a, t1);
        assert_eq!(throttle.check_at(a, t1), Err(FIRST_BLOCK * 2));
        let t2 = t1 + FIRST_BLOCK * 2;
        throttle.failed_at(a, t2);
        assert_eq!(throttle.check_at(a, t2), Err(FIRST_BLOCK * 4));
        // Many more: capped.
        for _ in 0..40 {
            throttle.failed_at(a, t2);
        }
        assert_eq!(throttle.check_at(a, t2), Err(MAX_BLOCK));
        // The right token clears the address.
        throttle.succeeded(a);
        assert!(throttle.check_at(a, t2).is_ok());
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES {
            throttle.failed_at(ip(&format!("2001:db8::{:x}", i + 1)), t0);
        }
        assert!(throttle.check_at(ip("2001:db8::ffff"), t0).is_err());
        assert!(throttle.check_at(ip("2001:db8:0:1::1"), t0).is_ok());
    }

    #[test]
    fn the_map_is_bounded() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            throttle.failed_at(Some(IpAddr::from(i.to_be_bytes())), t0);
        }
        assert!(throttle.len() <= MAX_ADDRESSES, "{}", throttle.len());
        // Idle addresses are forgotten when room is needed.
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        throttle.failed_at(ip("198.51.100.7"), later);
        assert_eq!(throttle.len(), 1);
    }

    #[test]
    fn refusals_are_summarised_once_per_interval() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        assert_eq!(throttle.take_due(t0), None);
        for i in 0..30u8 {
            let address = Some(IpAddr::from([10, 0, 0, i % 3]));
            if throttle.check_at(address, t0).is_ok() {
                throttle.failed_at(address, t0);
            }
        }
        assert_eq!(throttle.take_due(t0 + LOG_EVERY / 2), None);
        let summary = throttle.take_due(t0 + LOG_EVERY).unwrap();
        assert_eq!(summary.refused + summary.throttled, 30);
        assert_eq!(summary.addresses, 3);
        // Nothing new: no line.
        assert_eq!(throttle.take_due(t0 + LOG_EVERY * 3), None);
    }
}
