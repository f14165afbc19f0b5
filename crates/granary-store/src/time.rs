//! [`Timestamp`]: the one time representation of every record (unix milliseconds, UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time: milliseconds since the unix epoch (UTC), as the caller's clock gave it.
///
/// Stores never read the clock themselves; every time-dependent method takes `now` from the
/// caller, so that the engine (and tests) can inject a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The unix epoch.
    pub const EPOCH: Self = Self(0);

    /// The timestamp `millis` milliseconds after the unix epoch (negative: before it).
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the unix epoch.
    pub const fn as_unix_millis(self) -> i64 {
        self.0
    }

    /// Converts a clock reading; times outside the `i64` millisecond range saturate.
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => Self(
                i64::try_from(before.duration().as_millis())
                    .map(|m| -m)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// This time plus `duration`, saturating at the end of the representable range.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This time minus `duration`, saturating at the start of the representable range.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_millis(i64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(10)).as_unix_millis(),
            i64::MAX
        );
        let t = Timestamp::from_unix_millis(1_000);
        assert_eq!(
            t.saturating_add(Duration::from_millis(500))
                .as_unix_millis(),
            1_500
        );
        assert_eq!(
            t.saturating_sub(Duration::from_secs(2)).as_unix_millis(),
            -1_000
        );
    }

    #[test]
    fn system_time_round_trip() {
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            Timestamp::from_system_time(time).as_unix_millis(),
            1_700_000_000_123
        );
        let before = UNIX_EPOCH - Duration::from_millis(5);
        assert_eq!(Timestamp::from_system_time(before).as_unix_millis(), -5);
    }
}
