//! Counters kept per client address or user across sessions: the rate limits of messages and
//! recipients (token buckets) and the AUTH failures that lead to a lockout.
//!
//! Addresses are counted by their network: an IPv4 address alone, an IPv6 address by its /64
//! (a host is given a whole /64; counting each of its addresses would not limit it). The maps
//! are bounded: past [`MAX_ENTRIES`] the idle entries are dropped, and if none is idle a new
//! client is not tracked until some are (the limits fail open rather than grow the memory).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use postern_config::Auth;
use tokio::time::Instant;

/// Most clients tracked in one map.
const MAX_ENTRIES: usize = 100_000;

/// What a limit is counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A client address (its network, see the module doc).
    Client(IpAddr),
    /// An authenticated user.
    User(String),
}

impl Key {
    pub(crate) fn client(ip: IpAddr) -> Key {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
            v4 => v4,
        };
        Key::Client(ip)
    }
}

/// A token bucket: `per_minute` tokens at most, refilled evenly over a minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The token buckets of one kind of rate limit (messages, recipients).
#[derive(Debug, Default)]
pub(crate) struct Rates {
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl Rates {
    /// Takes one token from `key`'s bucket; `false` when it is empty (the limit is reached).
    pub(crate) fn take(&self, key: Key, per_minute: u32) -> bool {
        let now = Instant::now();
        let capacity = f64::from(per_minute);
        let refill = |b: &mut Bucket| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + elapsed * capacity / 60.0).min(capacity);
            b.at = now;
        };
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if !buckets.contains_key(&key) && buckets.len() >= MAX_ENTRIES {
            // A full bucket is one nobody is using: forget it.
            buckets.retain(|_, b| {
                refill(b);
                b.tokens < capacity
            });
            if buckets.len() >= MAX_ENTRIES {
                return true;
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        refill(bucket);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// AUTH failures of one client address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// AUTH failures per client address: a growing delay, then a lockout.
#[derive(Debug, Default)]
pub(crate) struct Lockouts {
    failures: Mutex<HashMap<Key, Failures>>,
}

impl Lockouts {
    /// Whether `key` is locked out now.
    pub(crate) fn locked(&self, key: &Key) -> bool {
        let now = Instant::now();
        self.failures.lock().is_ok_and(|map| {
            map.get(key)
                .and_then(|f| f.locked_until)
                .is_some_and(|until| now < until)
        })
    }

    /// Counts a failure; returns how long to wait before answering it. The failure that
    /// reaches `max_failures` starts a lockout of `lockout`.
    pub(crate) fn fail(&self, key: Key, auth: &Auth) -> Duration {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return auth.failure_delay;
        };
        // Failures are forgotten after a quiet `lockout`, and a lockout when it ends.
        let stale = |f: &Failures| {
            f.locked_until
                .map_or(now >= f.last + auth.lockout, |until| now >= until)
        };
        if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
            map.retain(|_, f| !stale(f));
            if map.len() >= MAX_ENTRIES {
                return auth.failure_delay;
            }
        }
        let entry = map.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if stale(entry) {
            *entry = Failures {
                count: 0,
                last: now,
                locked_until: None,
            };
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count >= auth.max_failures {
            entry.locked_until = Some(now + auth.lockout);
        }
        auth.failure_delay * (1u32 << (entry.count - 1).min(5))
    }

    /// Forgets `key`'s failures after a success.
    pub(crate) fn succeed(&self, key: &Key) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

/// Takes one token for the session's client address and, once authenticated, its user;
/// `Some` is the reply refusing the command when either bucket is empty.
pub(crate) fn over_rate(
    st: &crate::session::State,
    rates: &Rates,
    per_client: Option<u32>,
    per_user: Option<u32>,
    what: &str,
) -> Option<postern_sink_api::Reply> {
    let client_ok =
        per_client.is_none_or(|rate| rates.take(Key::client(st.info.remote.ip()), rate));
    let user_ok = match (per_user, st.info.auth_user.as_ref()) {
        (Some(rate), Some(user)) => rates.take(Key::User(user.clone()), rate),
        _ => true,
    };
    if client_ok && user_ok {
        return None;
    }
    tracing::info!(session = st.info.id, remote = %st.info.remote,
                   user = st.info.auth_user.as_deref().unwrap_or(""), "rate limit of {what} reached");
    Some(crate::reply::rate_limited(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_refills_evenly() {
        let rates = Rates::default();
        let key = || Key::client("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert!(rates.take(key(), 3));
        }
        assert!(!rates.take(key(), 3));
        // Another address has its own bucket.
        assert!(rates.take(Key::client("192.0.2.2".parse().unwrap()), 3));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(rates.take(key(), 3));
        assert!(!rates.take(key(), 3));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = Key::client("2001:db8::1".parse().unwrap());
        let b = Key::client("2001:db8::ffff:1".parse().unwrap());
        let c = Key::client("2001:db8:0:1::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = Key::client("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(mapped, Key::client("192.0.2.1".parse().unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_grow_the_delay_then_lock_out_until_the_lockout_ends() {
        let auth = Auth {
            max_failures: 3,
            failure_delay: Duration::from_secs(1),
            lockout: Duration::from_secs(60),
            ..Auth::default()
        };
        let lockouts = Lockouts::default();
        let key = || Key::client("192.0.2.1".parse().unwrap());
        assert_eq!(lockouts.fail(key(), &auth), Duration::from_secs(1));
        assert_eq!(lockouts.fail(key(), &auth), Duration::from_secs(2));
        assert!(!lockouts.locked(&key()));
        assert_eq!(lockouts.fail(key(), &auth), Duration::from_secs(4));
        assert!(lockouts.locked(&key()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!lockouts.locked(&key()));
        assert_eq!(lockouts.fail(key(), &auth), Duration::from_secs(1));
    }
}
