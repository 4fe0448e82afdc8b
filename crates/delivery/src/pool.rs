//! Open connections per remote address: at most `connections_per_host` at once (the delivery
//! queue of a host is the line of tasks waiting for one), and an idle connection kept for
//! `idle_connection_time` so the next message to the same host reuses it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::smtp::conn::Connection;

/// A connection with the right to be open (its host's permit).
pub(crate) struct Leased {
    pub(crate) conn: Connection,
    pub(crate) permit: OwnedSemaphorePermit,
}

struct Idle {
    id: u64,
    conn: Connection,
    permit: OwnedSemaphorePermit,
}

/// The pool.
pub(crate) struct Pool {
    per_host: usize,
    idle_time: Duration,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    limits: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
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
    pub(crate) fn take_idle(&self, address: SocketAddr) -> Option<Leased> {
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

    /// Waits for the right to open a connection to `address` (`None` only if the pool were
    /// shut, which it never is while deliveries run).
    pub(crate) async fn permit(&self, address: SocketAddr) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            limits
                .entry(address)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
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

    /// Idle connections now open (for tests and metrics).
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}
