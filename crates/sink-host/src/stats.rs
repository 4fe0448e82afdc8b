//! Counters of one binding, kept across registry reloads (so `max_firings` and metrics do not
//! start again when the file changes).

use std::sync::atomic::{AtomicU64, Ordering};

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
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}
