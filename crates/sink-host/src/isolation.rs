//! Isolation per binding: a limit on calls in flight and a circuit breaker.
//!
//! Both are kept per binding and outlive a registry reload while the binding's settings stay the
//! same, so editing an unrelated binding neither closes an open breaker nor forgets the calls in
//! flight. Time is tokio's clock, so tests run them on a paused clock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// `--breaker FAILURES/SECONDS`: after `failures` failures within `window`, the binding is
/// skipped (its `on_error` applies) for a cool-down as long as the window, then called again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures (errors, panics, timeouts) that open the breaker.
    pub failures: u32,
    /// The window they must fall in; also the cool-down.
    pub window: Duration,
}

impl BreakerPolicy {
    /// Parses `FAILURES/SECONDS`, both more than zero.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not FAILURES/SECONDS (e.g. 5/60)");
        let (failures, seconds) = text.trim().split_once('/').ok_or_else(bad)?;
        let failures: u32 = failures.trim().parse().map_err(|_| bad())?;
        let seconds: u64 = seconds.trim().parse().map_err(|_| bad())?;
        if failures == 0 || seconds == 0 {
            return Err(format!("{text:?}: both numbers must be more than zero"));
        }
        Ok(Self {
            failures,
            window: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for BreakerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.failures, self.window.as_secs())
    }
}

/// The live state of one binding's limits.
#[derive(Debug)]
pub(crate) struct Isolation {
    /// The settings this state was made for (a changed setting starts a fresh state).
    pub(crate) max_concurrency: Option<u32>,
    pub(crate) breaker_policy: Option<BreakerPolicy>,
    limit: Option<Arc<Semaphore>>,
    breaker: Option<Mutex<Breaker>>,
}

#[derive(Debug, Default)]
struct Breaker {
    /// Times of the failures still inside the window, oldest first.
    failures: VecDeque<Instant>,
    /// While set and in the future, the binding is skipped.
    open_until: Option<Instant>,
}

/// No slot came free before the deadline; holds the limit.
pub(crate) struct Busy(pub(crate) u32);

impl Isolation {
    pub(crate) fn new(max_concurrency: Option<u32>, breaker: Option<BreakerPolicy>) -> Self {
        Self {
            max_concurrency,
            breaker_policy: breaker,
            limit: max_concurrency.map(|n| Arc::new(Semaphore::new(n as usize))),
            breaker: breaker.map(|_| Mutex::new(Breaker::default())),
        }
    }

    /// Whether the breaker is open now (it closes by itself when the cool-down is over).
    pub(crate) fn is_open(&self) -> bool {
        let Some(breaker) = &self.breaker else {
            return false;
        };
        let mut state = breaker.lock().unwrap_or_else(|e| e.into_inner());
        match state.open_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                state.open_until = None;
                false
            }
            None => false,
        }
    }

    /// Waits for a slot until `deadline`; `Ok(None)` when there is no limit.
    pub(crate) async fn admit(
        &self,
        deadline: Instant,
    ) -> Result<Option<OwnedSemaphorePermit>, Busy> {
        let Some(limit) = &self.limit else {
            return Ok(None);
        };
        let max = self.max_concurrency.unwrap_or(0);
        match tokio::time::timeout_at(deadline, limit.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            // The semaphore is never closed; treat it like a full one all the same.
            Ok(Err(_)) | Err(_) => Err(Busy(max)),
        }
    }

    /// Counts a failed call; returns `true` when it opened the breaker.
    pub(crate) fn failed(&self) -> bool {
        let (Some(breaker), Some(policy)) = (&self.breaker, self.breaker_policy) else {
            return false;
        };
        let now = Instant::now();
        let mut state = breaker.lock().unwrap_or_else(|e| e.into_inner());
        while state
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) >= policy.window)
        {
            state.failures.pop_front();
        }
        state.failures.push_back(now);
        if state.failures.len() >= policy.failures as usize {
            state.failures.clear();
            state.open_until = Some(now + policy.window);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_policies_parse() {
        assert_eq!(
            BreakerPolicy::parse("5/60"),
            Ok(BreakerPolicy {
                failures: 5,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(BreakerPolicy::parse("5/60").unwrap().to_string(), "5/60");
        for bad in ["5", "0/10", "3/0", "a/b", "5/60s"] {
            assert!(BreakerPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_open_the_breaker() {
        let iso = Isolation::new(None, BreakerPolicy::parse("2/10").ok());
        assert!(!iso.failed());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!iso.failed(), "the first failure left the window");
        assert!(!iso.is_open());
        assert!(iso.failed(), "two within ten seconds");
        assert!(iso.is_open());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!iso.is_open(), "closed after the cool-down");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_limit_refuses_at_the_deadline() {
        let iso = Isolation::new(Some(1), None);
        let deadline = Instant::now() + Duration::from_secs(1);
        let first = iso.admit(deadline).await.ok().flatten();
        assert!(first.is_some());
        assert!(matches!(iso.admit(deadline).await, Err(Busy(1))));
        drop(first);
        assert!(matches!(iso.admit(deadline).await, Ok(Some(_))));
    }
}
