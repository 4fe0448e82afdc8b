//! The retry schedule: when a deferred message runs again, when its recipients expire, and when
//! the delay warning is due. Pure functions of the configuration and the clock, so they are
//! tested without waiting.

use postern_config::Delivery;

/// What follows a pass that left recipients deferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try again at this time (Unix ms).
    RetryAt(u64),
    /// The message is older than `max_age`: its deferred recipients fail.
    Expired,
}

/// After the `attempts`-th attempt (counting from 1) of a message that arrived at `arrival_ms`:
/// the interval of that attempt (the last one repeats), but never past the expiry, so the last
/// attempt runs when the message expires.
pub(crate) fn next_attempt(
    delivery: &Delivery,
    arrival_ms: u64,
    attempts: u64,
    now_ms: u64,
) -> Next {
    let expires = arrival_ms.saturating_add(delivery.max_age.as_millis() as u64);
    if now_ms >= expires {
        return Next::Expired;
    }
    let index = (attempts.max(1) - 1) as usize;
    let interval = delivery
        .retry_intervals
        .get(index)
        .or(delivery.retry_intervals.last())
        .map_or(300_000, |d| d.as_millis() as u64);
    Next::RetryAt(now_ms.saturating_add(interval).min(expires))
}

/// Whether the delay DSN is due now (it is sent once; the caller remembers that it was).
pub(crate) fn delay_warning_due(delivery: &Delivery, arrival_ms: u64, now_ms: u64) -> bool {
    delivery
        .delay_warning
        .is_some_and(|after| now_ms >= arrival_ms.saturating_add(after.as_millis() as u64))
}

/// When a recipient deferred now expires (for the delay DSN's Will-Retry-Until).
pub(crate) fn expiry(delivery: &Delivery, arrival_ms: u64) -> u64 {
    arrival_ms.saturating_add(delivery.max_age.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            retry_intervals: vec![Duration::from_secs(60), Duration::from_secs(600)],
            max_age: Duration::from_secs(3600),
            delay_warning: Some(Duration::from_secs(1800)),
            ..Delivery::default()
        }
    }

    #[test]
    fn retry_times_follow_the_intervals_and_stop_at_expiry() {
        let d = delivery();
        let cases = [
            (
                "first retry after the first interval",
                1,
                0,
                Next::RetryAt(60_000),
            ),
            (
                "second retry after the second",
                2,
                60_000,
                Next::RetryAt(660_000),
            ),
            (
                "the last interval repeats",
                5,
                1_000_000,
                Next::RetryAt(1_600_000),
            ),
            (
                "never past the expiry",
                9,
                3_000_000,
                Next::RetryAt(3_600_000),
            ),
            ("expired at max_age", 10, 3_600_000, Next::Expired),
            ("expired after max_age", 10, 9_000_000, Next::Expired),
        ];
        for (name, attempts, now, want) in cases {
            assert_eq!(next_attempt(&d, 0, attempts, now), want, "{name}");
        }
    }

    #[test]
    fn delay_warning_after_its_time_and_never_when_off() {
        let d = delivery();
        assert!(!delay_warning_due(&d, 0, 1_799_999));
        assert!(delay_warning_due(&d, 0, 1_800_000));
        let off = Delivery {
            delay_warning: None,
            ..delivery()
        };
        assert!(!delay_warning_due(&off, 0, u64::MAX));
    }
}
