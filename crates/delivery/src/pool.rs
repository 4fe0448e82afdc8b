//! Open connections per remote address: at most `connections_per_host` at once (the delivery
//! queue of a host is the line of tasks waiting for one), and an idle connection kept for
//! `idle_connection_time` so the next message to the same host reuses it.
//!
//! An idle connection keeps its permit, so a delivery waits for whichever comes first: a permit
//! or a connection put back idle. Waiting for a permit alone would wait out the idle time while
//! the connections it could reuse sit unused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::smtp::conn::Connection;

/// A connection with the right to be open (its host's permit).
pub(crate) struct Leased {
    pub(crate) conn: Connection,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// What a delivery gets from the pool.
pub(crate) enum Slot {
    /// A connection that was idle, already past its greeting and EHLO.
    Idle(Box<Leased>),
    /// The right to open a new connection.
    New(OwnedSemaphorePermit),
}

struct Idle {
    id: u64,
    conn: Connection,
    permit: OwnedSemaphorePermit,
}

/// The limit of one address, and the signal that a connection to it was put back idle.
struct Limit {
    open: Arc<Semaphore>,
    idled: Notify,
}

/// The pool.
pub(crate) struct Pool {
    per_host: usize,
    idle_time: Duration,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    limits: Mutex<HashMap<SocketAddr, Arc<Limit>>>,
    /// Addresses whose TLS handshake failed, and when: opportunistic TLS then goes in clear
    /// text to them for an hour rather than failing every attempt the same way.
    no_tls: Mutex<HashMap<SocketAddr, Instant>>,
    next_id: AtomicU64,
}

/// How long a failed handshake keeps an address in clear text.
const NO_TLS_FOR: Duration = Duration::from_secs(3600);

impl Pool {
    pub(crate) fn new(per_host: usize, idle_time: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_host: per_host.max(1),
            idle_time,
            idle: Mutex::default(),
            limits: Mutex::default(),
            no_tls: Mutex::default(),
            next_id: AtomicU64::new(1),
        })
    }

    /// An idle connection to `address`, if one is waiting.
    fn take_idle(&self, address: SocketAddr) -> Option<Leased> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&address)?;
        let found = list.pop();
        if list.is_empty() {
            idle.remove(&address);
        }
        found.map(|i| Leased {
            conn: i.conn,
            permit: i.permit,
        })
    }

    /// An idle connection to `address`, or else the right to open one, whichever is free first
    /// (`None` only if the pool were shut, which it never is while deliveries run).
    pub(crate) async fn acquire(&self, address: SocketAddr) -> Option<Slot> {
        let limit = self.limit(address);
        loop {
            if let Some(leased) = self.take_idle(address) {
                return Some(Slot::Idle(Box::new(leased)));
            }
            // A connection put back between `take_idle` and here leaves a stored notification,
            // so it is not missed; another delivery may take it first, then this one waits on.
            tokio::select! {
                permit = limit.open.clone().acquire_owned() => return permit.ok().map(Slot::New),
                () = limit.idled.notified() => {}
            }
        }
    }

    fn limit(&self, address: SocketAddr) -> Arc<Limit> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(address)
            .or_insert_with(|| {
                Arc::new(Limit {
                    open: Arc::new(Semaphore::new(self.per_host)),
                    idled: Notify::new(),
                })
            })
            .clone()
    }

    /// Whether idle connections are kept at all.
    pub(crate) fn keeps_idle(&self) -> bool {
        !self.idle_time.is_zero()
    }

    /// Keeps `leased` for the next message to `address`; after the idle time it is handed to
    /// `close` (which sends QUIT) unless a delivery took it first.
    pub(crate) fn put_idle<F, Fut>(self: &Arc<Self>, address: SocketAddr, leased: Leased, close: F)
    where
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.entry(address).or_default().push(Idle {
                id,
                conn: leased.conn,
                permit: leased.permit,
            });
        }
        self.limit(address).idled.notify_one();
        let pool = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(pool.idle_time).await;
            let expired = {
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.get_mut(&address);
                let found = list.and_then(|l| {
                    let at = l.iter().position(|i| i.id == id)?;
                    Some(l.remove(at))
                });
                if idle.get(&address).is_some_and(Vec::is_empty) {
                    idle.remove(&address);
                }
                found
            };
            if let Some(i) = expired {
                close(i.conn).await;
                drop(i.permit);
            }
        });
    }

    /// Whether opportunistic TLS should be skipped for `address`.
    pub(crate) fn skip_tls(&self, address: SocketAddr) -> bool {
        let no_tls = self.no_tls.lock().unwrap_or_else(|e| e.into_inner());
        no_tls
            .get(&address)
            .is_some_and(|since| since.elapsed() < NO_TLS_FOR)
    }

    /// Records a failed TLS handshake with `address`.
    pub(crate) fn tls_failed(&self, address: SocketAddr) {
        let mut no_tls = self.no_tls.lock().unwrap_or_else(|e| e.into_inner());
        no_tls.insert(address, Instant::now());
    }

    /// Idle connections now open.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::conn::Timeouts;

    fn connection() -> Connection {
        Connection::new(Box::new(tokio::io::duplex(64).0), Timeouts::default())
    }

    /// Regression: with every permit of a host held, a delivery waited for a permit alone, so a
    /// connection put back idle sat unused until its idle time ran out (5 s at the default) and
    /// relaying to one smarthost crawled.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_delivery_takes_a_connection_put_back_idle_at_once() {
        let pool = Pool::new(1, Duration::from_secs(5));
        let address: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let Some(Slot::New(permit)) = pool.acquire(address).await else {
            panic!("the first delivery opens a connection");
        };
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(address).await }
        });
        tokio::task::yield_now().await;
        let start = tokio::time::Instant::now();
        let leased = Leased {
            conn: connection(),
            permit,
        };
        pool.put_idle(address, leased, |_conn| async {});
        let slot = waiting.await.unwrap();
        assert!(matches!(slot, Some(Slot::Idle(_))));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permit_comes_back_when_an_idle_connection_expires() {
        let pool = Pool::new(1, Duration::from_secs(5));
        let address: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let Some(Slot::New(permit)) = pool.acquire(address).await else {
            panic!("the first delivery opens a connection");
        };
        let leased = Leased {
            conn: connection(),
            permit,
        };
        pool.put_idle(address, leased, |_conn| async {});
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(pool.idle_count(), 0);
        assert!(matches!(pool.acquire(address).await, Some(Slot::New(_))));
    }
}
