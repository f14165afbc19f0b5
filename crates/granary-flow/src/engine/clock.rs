//! The engine's clock: the system clock, or one a test moves by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use granary_store::Timestamp;

/// Where the engine reads the time. Every expiry decision goes through it.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = SystemTime::now();
        // The common case without 128-bit arithmetic: `access_token` reads the clock on
        // every call.
        match now.duration_since(UNIX_EPOCH) {
            Ok(since) => match i64::try_from(since.as_secs()) {
                Ok(secs) => Timestamp::from_unix_millis(
                    secs.saturating_mul(1000)
                        .saturating_add(i64::from(since.subsec_millis())),
                ),
                Err(_) => Timestamp::from_system_time(now),
            },
            Err(_) => Timestamp::from_system_time(now),
        }
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            millis: AtomicI64::new(start.as_unix_millis()),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        self.millis.store(to.as_unix_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_agrees_with_the_store_conversion() {
        let before = Timestamp::from_system_time(SystemTime::now());
        let now = SystemClock.now();
        let after = Timestamp::from_system_time(SystemTime::now());
        assert!(before <= now && now <= after);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_unix_millis(5));
        assert_eq!(clock.now().as_unix_millis(), 5);
        clock.advance(Duration::from_millis(10));
        assert_eq!(clock.now().as_unix_millis(), 15);
        clock.set(Timestamp::from_unix_millis(1));
        assert_eq!(clock.now().as_unix_millis(), 1);
    }
}
