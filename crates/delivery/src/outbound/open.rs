//! Opening a session with a next hop: TCP, the greeting, EHLO through
//! `outbound:session-start` (HELO when EHLO is refused), and STARTTLS as the hop's policy asks:
//! opportunistic without checking the certificate, or required and verified.

use std::net::SocketAddr;

use postern_sink_api::{Context, OutboundStep, Reply};
use postern_sink_host::Snapshot;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::info;

use super::{Outbound, Policy};
use crate::pool::Leased;
use crate::smtp::conn::Connection;
use crate::smtp::transaction::{Events, RcptOutcome, reply_text};

impl Outbound {
    /// A new session: TCP, greeting, EHLO, STARTTLS and EHLO again.
    pub(super) async fn open(
        &self,
        snapshot: &Snapshot,
        base: &Context,
        name: &str,
        address: SocketAddr,
        policy: &Policy,
        permit: OwnedSemaphorePermit,
    ) -> Result<Leased, RcptOutcome> {
        let deferred = |e: &dyn std::fmt::Display| {
            RcptOutcome::Deferred(format!("451 4.4.1 {name}[{}]: {e}", address.ip()))
        };
        let tcp = tokio::time::timeout(self.timeouts.connect, TcpStream::connect(address))
            .await
            .map_err(|_| deferred(&"connection timed out"))?
            .map_err(|e| deferred(&e))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection::new(Box::new(tcp), self.timeouts);
        let events = Events {
            snapshot,
            base: self.peer_context(base, name, address, &conn),
        };
        let greeting = conn.greeting().await.map_err(|e| deferred(&e))?;
        let greeting = events.response(None, greeting, None).await;
        if greeting.code != 220 {
            return Err(refusal(&greeting, name, address));
        }
        self.hello(&mut conn, &events, name, address).await?;
        let want_tls =
            policy.required || (conn.extensions.starttls() && !self.pool.skip_tls(address));
        if want_tls {
            if !conn.extensions.starttls() {
                return Err(RcptOutcome::Deferred(format!(
                    "451 4.7.5 TLS is required for {name}[{}], which does not offer STARTTLS",
                    address.ip()
                )));
            }
            let reply = conn
                .command("STARTTLS", conn.timeouts.command)
                .await
                .map_err(|e| deferred(&e))?;
            let reply = events.response(Some("STARTTLS"), reply, None).await;
            if reply.code != 220 || conn.has_unread() {
                if policy.required {
                    return Err(RcptOutcome::Deferred(format!(
                        "451 4.7.5 STARTTLS refused by {name}[{}]: {}",
                        address.ip(),
                        reply_text(&reply)
                    )));
                }
                self.pool.tls_failed(address);
                return Err(deferred(
                    &"STARTTLS refused; the next attempt goes in clear text",
                ));
            }
            let config = if policy.required {
                self.tls
                    .verified(policy.ca_file.as_deref())
                    .map_err(|e| RcptOutcome::Deferred(format!("451 4.7.5 {e}")))?
            } else {
                self.tls.opportunistic()
            };
            let server_name = ServerName::try_from(name.to_owned())
                .unwrap_or_else(|_| ServerName::IpAddress(address.ip().into()));
            if let Err(e) = conn.start_tls(config, server_name).await {
                if !policy.required {
                    // RFC 7435: opportunistic TLS falls back to clear text; the next attempt
                    // to this address skips STARTTLS.
                    self.pool.tls_failed(address);
                }
                return Err(RcptOutcome::Deferred(format!(
                    "451 4.7.5 {name}[{}]: {e}",
                    address.ip()
                )));
            }
            let events = Events {
                snapshot,
                base: self.peer_context(base, name, address, &conn),
            };
            self.hello(&mut conn, &events, name, address).await?;
        }
        info!(%address, host = name, tls = conn.tls, "connected");
        Ok(Leased { conn, permit })
    }

    /// EHLO through `outbound:session-start`, with the HELO fallback.
    pub(super) async fn hello(
        &self,
        conn: &mut Connection,
        events: &Events<'_>,
        name: &str,
        address: SocketAddr,
    ) -> Result<(), RcptOutcome> {
        let deferred = |e: &dyn std::fmt::Display| {
            RcptOutcome::Deferred(format!("451 4.4.1 {name}[{}]: {e}", address.ip()))
        };
        let line = format!("EHLO {}", self.config.hostname);
        let reply = match events
            .session_command(OutboundStep::SessionStart, line)
            .await
        {
            Ok((line, extra)) => {
                let reply = conn
                    .hello(&line, &self.config.hostname)
                    .await
                    .map_err(|e| deferred(&e))?;
                let reply = events.response(Some(&line), reply, None).await;
                for line in extra {
                    let extra_reply = conn
                        .command(&line, conn.timeouts.command)
                        .await
                        .map_err(|e| deferred(&e))?;
                    events.response(Some(&line), extra_reply, None).await;
                }
                reply
            }
            Err(reply) => reply,
        };
        if reply.code / 100 != 2 {
            return Err(refusal(&reply, name, address));
        }
        Ok(())
    }
}

/// A refusal at the greeting or EHLO: permanent for a 5xx, else temporary.
fn refusal(reply: &Reply, name: &str, address: SocketAddr) -> RcptOutcome {
    let text = format!("{} (from {name}[{}])", reply_text(reply), address.ip());
    if reply.code / 100 == 5 {
        RcptOutcome::Failed(text)
    } else {
        RcptOutcome::Deferred(text)
    }
}
