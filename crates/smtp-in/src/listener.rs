//! Listeners: accept connections, enforce the connection limits, run a session per connection,
//! and wind down on shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_config::ListenerMode;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::{Server, reply, session};

/// Counts open connections, in all and per client address.
#[derive(Default)]
pub struct Connections {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection's place; gives it back when dropped.
struct Slot {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.total.fetch_sub(1, Ordering::AcqRel);
        let mut map = self
            .connections
            .per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was turned away.
enum Refusal {
    Total,
    PerIp,
}

impl Connections {
    /// Open connections now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    fn admit(self: &Arc<Self>, ip: IpAddr, total: usize, per_ip: usize) -> Result<Slot, Refusal> {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::Acquire) >= total {
            return Err(Refusal::Total);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::AcqRel);
        Ok(Slot {
            connections: self.clone(),
            ip,
        })
    }
}

/// Binds every listener address; fails naming the address that could not be bound.
pub async fn bind(addresses: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for address in addresses {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Accepts connections until shutdown, then waits for sessions to finish (at most the grace
/// period of the configuration).
pub async fn serve(server: Arc<Server>, listeners: Vec<(TcpListener, ListenerMode)>) {
    let mut tasks = Vec::new();
    for (listener, mode) in listeners {
        tasks.push(tokio::spawn(accept_loop(server.clone(), listener, mode)));
    }
    for task in tasks {
        let _ = task.await;
    }
    let grace = server.config.limits.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    while server.connections.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = server.connections.open();
    if left > 0 {
        warn!(
            sessions = left,
            "shutdown grace period over; closing sessions still open"
        );
    }
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, mode: ListenerMode) {
    let local = listener.local_addr().ok();
    let mut shutdown = server.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = &server.config.limits;
        match server.connections.admit(
            remote.ip(),
            limits.max_connections,
            limits.max_connections_per_ip,
        ) {
            Ok(slot) => {
                let server = server.clone();
                let local = local.unwrap_or(remote);
                let open = server.metrics.connection_opened();
                tokio::spawn(async move {
                    let _slot = slot;
                    let _open = open;
                    session::run_as(server, stream, remote, local, mode).await;
                });
            }
            Err(refusal) => {
                let from_you = matches!(refusal, Refusal::PerIp);
                info!(remote = %remote, per_ip = from_you, "connection refused: too many connections");
                tokio::spawn(refuse(stream, server.hostname.clone(), from_you));
            }
        }
    }
    if let Some(local) = local {
        info!(listener = %local, "listener closed");
    }
}

/// Tells a client there is no room and closes.
async fn refuse(mut stream: TcpStream, host: String, from_you: bool) {
    let mut out = Vec::new();
    reply::too_many_connections(&host, from_you).write_to(&mut out, true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
