//! Counters of one binding, kept across registry reloads (so `max_firings` and metrics do not
//! start again when the file changes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the call-duration buckets, in microseconds (the last bucket, `+Inf`, is
/// implied). Fixed so that a call costs one atomic increment and a scrape reads them as they are.
pub const DURATION_BOUNDS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000, 10_000_000,
];

/// Buckets: one per bound and `+Inf`.
const BUCKETS: usize = DURATION_BOUNDS_MICROS.len() + 1;

/// What a binding has done since the server started.
#[derive(Debug, Default)]
pub struct BindingStats {
    /// Times the rule matched and the sink was called.
    pub firings: AtomicU64,
    /// Calls that returned an error.
    pub failures: AtomicU64,
    /// Calls that panicked.
    pub panics: AtomicU64,
    /// Calls that ran past the timeout.
    pub timeouts: AtomicU64,
    /// Outcomes not applied because the binding is in shadow mode.
    pub shadowed: AtomicU64,
    /// Total time spent in the sink, in microseconds.
    pub busy_micros: AtomicU64,
    /// Calls not made because `max_concurrency` calls were in flight until the timeout.
    pub busy: AtomicU64,
    /// Calls not made because the circuit breaker was open.
    pub broken: AtomicU64,
    /// Times the circuit breaker opened.
    pub breaker_opened: AtomicU64,
    /// Calls by duration: `durations[i]` counts calls that took at most
    /// `DURATION_BOUNDS_MICROS[i]` and more than the bound before (not cumulative).
    pub durations: [AtomicU64; BUCKETS],
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`BindingStats::firings`].
    pub firings: u64,
    /// See [`BindingStats::failures`].
    pub failures: u64,
    /// See [`BindingStats::panics`].
    pub panics: u64,
    /// See [`BindingStats::timeouts`].
    pub timeouts: u64,
    /// See [`BindingStats::shadowed`].
    pub shadowed: u64,
    /// See [`BindingStats::busy_micros`].
    pub busy_micros: u64,
    /// See [`BindingStats::busy`].
    pub busy: u64,
    /// See [`BindingStats::broken`].
    pub broken: u64,
    /// See [`BindingStats::breaker_opened`].
    pub breaker_opened: u64,
    /// See [`BindingStats::durations`].
    pub durations: [u64; BUCKETS],
}

impl BindingStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            firings: r(&self.firings),
            failures: r(&self.failures),
            panics: r(&self.panics),
            timeouts: r(&self.timeouts),
            shadowed: r(&self.shadowed),
            busy_micros: r(&self.busy_micros),
            busy: r(&self.busy),
            broken: r(&self.broken),
            breaker_opened: r(&self.breaker_opened),
            durations: std::array::from_fn(|i| r(&self.durations[i])),
        }
    }

    /// Counts one call's time: its total and its bucket.
    pub(crate) fn record_duration(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = DURATION_BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.durations[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}
