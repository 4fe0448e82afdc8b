//! Delivery to an LMTP store (RFC 2033), such as Dovecot's: a next hop `lmtp:HOST:PORT` or
//! `lmtp:unix:PATH`. The dialogue is the SMTP client's own — the same transaction code and the
//! same `outbound:*` and `response` events — with LHLO for EHLO and one reply per recipient
//! after the content, so each recipient is delivered, deferred or failed on its own.
//!
//! A store is near and cheap to connect to, and a Unix socket has no address for the pool to
//! key on, so every delivery opens its own session and ends it with QUIT; there is no STARTTLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use postern_mailmsg::MailMsg;
use postern_sink_api::{Context, OutboundStep, Peer};
use postern_sink_host::Snapshot;
use tokio::net::{TcpStream, UnixStream};
use tracing::{info, warn};

use super::{HopReport, Outbound, close, refusal_of};
use crate::smtp::conn::Connection;
use crate::smtp::stream::BoxStream;
use crate::smtp::transaction::{self, Events, RcptOutcome};

/// Where an LMTP store listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// `lmtp:HOST:PORT` (port 24 unless given).
    Tcp(String, u16),
    /// `lmtp:unix:PATH` (relative to the data folder unless absolute).
    Unix(PathBuf),
}

/// The well-known LMTP port (RFC 2033 §5 leaves it to the site; 24 is "any private mail").
const LMTP_PORT: u16 = 24;

/// Parses what follows `lmtp:`.
pub(super) fn parse(rest: &str) -> Option<Target> {
    if let Some(path) = rest.strip_prefix("unix:") {
        return (!path.is_empty()).then(|| Target::Unix(PathBuf::from(path)));
    }
    let (host, port) = super::split_host_port(rest, LMTP_PORT)?;
    (!host.is_empty()).then_some(Target::Tcp(host, port))
}

impl Outbound {
    /// Delivers `recipients` of `msg` to the LMTP store at `target`.
    pub(super) async fn deliver_lmtp(
        &self,
        snapshot: &Snapshot,
        base: &Context,
        msg: &Arc<MailMsg>,
        target: &Target,
        recipients: &[usize],
    ) -> HopReport {
        let all = |outcome: RcptOutcome| HopReport {
            outcomes: recipients.iter().map(|&i| (i, outcome.clone())).collect(),
            ..HopReport::default()
        };
        let (name, stream, address) = match self.connect_lmtp(target).await {
            Ok(opened) => opened,
            Err(reason) => {
                warn!(next_hop = ?target, "LMTP store unreachable: {reason}");
                return all(RcptOutcome::Deferred(reason));
            }
        };
        let mut conn = Connection::new(stream, self.timeouts);
        conn.lmtp = true;
        let mut ctx = base.clone();
        ctx.peer = Some(Arc::new(Peer {
            next_hop: base
                .peer
                .as_ref()
                .map(|p| p.next_hop.clone())
                .unwrap_or_default(),
            host: Some(name.clone()),
            address,
            ..Peer::default()
        }));
        let events = Events {
            snapshot,
            base: ctx,
        };
        let deferred = |e: &dyn std::fmt::Display| {
            RcptOutcome::Deferred(format!("451 4.4.1 LMTP {name}: {e}"))
        };
        let greeting = match conn.greeting().await {
            Ok(reply) => events.response(None, reply, None).await,
            Err(e) => return all(deferred(&e)),
        };
        if greeting.code != 220 {
            return all(refusal_of(&greeting, &name));
        }
        let line = format!("LHLO {}", self.config.hostname);
        let reply = match events
            .session_command(OutboundStep::SessionStart, line)
            .await
        {
            Ok((line, _extra)) => match conn.hello(&line, &self.config.hostname).await {
                Ok(reply) => events.response(Some(&line), reply, None).await,
                Err(e) => return all(deferred(&e)),
            },
            Err(reply) => reply,
        };
        if reply.code / 100 != 2 {
            return all(refusal_of(&reply, &name));
        }
        info!(host = %name, "connected (LMTP)");
        match transaction::send(&mut conn, &events, msg, recipients).await {
            Ok(outcomes) => {
                close(snapshot, events.base, conn).await;
                HopReport {
                    outcomes,
                    remote: Some(name),
                    remote_dsn: false,
                }
            }
            Err((e, mut outcomes)) => {
                warn!(host = %name, "LMTP delivery broke off: {e}");
                for &i in recipients {
                    if !outcomes.iter().any(|(j, _)| *j == i) {
                        outcomes.push((i, deferred(&e)));
                    }
                }
                HopReport {
                    outcomes,
                    remote: Some(name),
                    remote_dsn: false,
                }
            }
        }
    }

    /// Opens the stream: each address of the host in turn, or the Unix socket. Returns the
    /// store's name as it goes into logs and the track log (`host[ip]` or the socket's path).
    async fn connect_lmtp(
        &self,
        target: &Target,
    ) -> Result<(String, BoxStream, Option<SocketAddr>), String> {
        match target {
            Target::Unix(path) => {
                let path = if path.is_absolute() {
                    path.clone()
                } else {
                    self.config.data_dir.join(path)
                };
                let name = path.display().to_string();
                let stream =
                    tokio::time::timeout(self.timeouts.connect, UnixStream::connect(&path))
                        .await
                        .map_err(|_| format!("451 4.4.1 LMTP {name}: connection timed out"))?
                        .map_err(|e| format!("451 4.4.1 LMTP {name}: {e}"))?;
                Ok((name, Box::new(stream), None))
            }
            Target::Tcp(host, port) => {
                let ips = self
                    .resolver
                    .addresses(host)
                    .await
                    .map_err(|e| format!("451 4.4.3 {e}"))?;
                let mut last = format!("451 4.4.4 no address for {host}");
                for ip in ips {
                    let address = SocketAddr::new(ip, *port);
                    let name = format!("{host}[{ip}]");
                    match tokio::time::timeout(self.timeouts.connect, TcpStream::connect(address))
                        .await
                    {
                        Ok(Ok(tcp)) => {
                            let _ = tcp.set_nodelay(true);
                            return Ok((name, Box::new(tcp), Some(address)));
                        }
                        Ok(Err(e)) => last = format!("451 4.4.1 LMTP {name}: {e}"),
                        Err(_) => last = format!("451 4.4.1 LMTP {name}: connection timed out"),
                    }
                }
                Err(last)
            }
        }
    }
}
