//! The step connections open, process-wide, keyed by (milter address, session id), and their
//! reaper: a connection unused for [`IDLE`] is closed, and when [`MAX_OPEN`] are open the least
//! recently used one is, so a session that ends without a `session-end` binding never leaks one.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::address::Address;
use crate::steps::State;

/// How long an unused step connection stays open.
pub(crate) const IDLE: Duration = Duration::from_secs(600);

/// The most step connections open at once; beyond it the least recently used is closed.
pub(crate) const MAX_OPEN: usize = 1024;

type Key = (String, u64);

struct Entry {
    state: Arc<tokio::sync::Mutex<State>>,
    last_used: Instant,
}

/// The step connections open, process-wide.
static OPEN: LazyLock<Mutex<HashMap<Key, Entry>>> = LazyLock::new(Default::default);

fn key(address: &Address, session: u64) -> Key {
    (address.to_string(), session)
}

/// Whether a session already has a step connection to this milter.
pub(crate) fn is_open(address: &Address, session: u64) -> bool {
    table().contains_key(&key(address, session))
}

fn table() -> std::sync::MutexGuard<'static, HashMap<Key, Entry>> {
    // A panic while holding the lock leaves the table itself consistent.
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The session's state, created at its first event; reaps idle connections on the way.
pub(crate) fn entry(address: &Address, session: u64) -> Arc<tokio::sync::Mutex<State>> {
    let now = Instant::now();
    let mut open = table();
    let mut reaped: Vec<Arc<tokio::sync::Mutex<State>>> = Vec::new();
    open.retain(|_, e| {
        let keep = now.duration_since(e.last_used) < IDLE;
        if !keep {
            reaped.push(e.state.clone());
        }
        keep
    });
    let k = key(address, session);
    if !open.contains_key(&k) && open.len() >= MAX_OPEN {
        let oldest = open
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        if let Some(e) = oldest.and_then(|o| open.remove(&o)) {
            reaped.push(e.state);
        }
    }
    let e = open.entry(k).or_insert_with(|| Entry {
        state: Default::default(),
        last_used: now,
    });
    e.last_used = now;
    let state = e.state.clone();
    drop(open);
    for old in reaped {
        tokio::spawn(async move { old.lock().await.close().await });
    }
    state
}

/// Takes a session's connection out of the table (to close it, or after a failure).
pub(crate) fn remove(address: &Address, session: u64) -> Option<Arc<tokio::sync::Mutex<State>>> {
    table().remove(&key(address, session)).map(|e| e.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_and_surplus_connections_are_reaped() {
        let a = Address::parse("inet:1@127.0.0.7").unwrap();
        entry(&a, 1);
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        entry(&a, 2);
        assert!(is_open(&a, 1));
        tokio::time::advance(Duration::from_secs(2)).await;
        entry(&a, 2);
        assert!(!is_open(&a, 1), "idle for longer than IDLE");
        assert!(is_open(&a, 2));

        for id in 3..(MAX_OPEN as u64 + 3) {
            tokio::time::advance(Duration::from_millis(1)).await;
            entry(&a, id);
        }
        assert!(
            !is_open(&a, 2),
            "the least recently used goes beyond MAX_OPEN"
        );
        assert!(is_open(&a, 3) && is_open(&a, MAX_OPEN as u64 + 2));
        assert!(table().len() <= MAX_OPEN);
    }
}
