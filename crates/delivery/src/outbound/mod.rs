//! Delivery to one remote next hop: the `dns-resolve` event for its hosts, then the hosts in
//! order, each address in turn, until one takes the transaction; a connection from the pool when
//! one is idle, otherwise a new session (greeting, EHLO, STARTTLS; in `open`).

use std::net::SocketAddr;
use std::sync::Arc;

use postern_config::{Config, RouteTls};
use postern_mailmsg::MailMsg;
use postern_sink_api::{Change, Context, Event, OutboundStep, Outcome, Peer, Verdict};
use postern_sink_host::{DefaultSink, Host, Snapshot, TransportVerdict};
use tracing::{debug, warn};

mod lmtp;
mod open;

use crate::dns::{DnsError, Resolver};
use crate::pool::{Leased, Pool, Slot};
use crate::smtp::conn::{Connection, Timeouts};
use crate::smtp::stream::TlsClients;
use crate::smtp::transaction::{self, Events, RcptOutcome};

/// What a delivery to one next hop did.
#[derive(Debug, Clone, Default)]
pub struct HopReport {
    /// The outcome of each recipient (index into the message's recipients).
    pub outcomes: Vec<(usize, RcptOutcome)>,
    /// The host that answered, as `name[address]`, when one did.
    pub remote: Option<String>,
    /// Whether the next hop took over DSN duty (it offered the DSN extension).
    pub remote_dsn: bool,
}

/// The outbound SMTP client of the server.
pub struct Outbound {
    config: Arc<Config>,
    host: Arc<Host>,
    resolver: Resolver,
    tls: TlsClients,
    pool: Arc<Pool>,
    timeouts: Timeouts,
}

/// A next hop, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hop {
    /// `mx:DOMAIN`: the domain's MX hosts.
    Mx(String),
    /// `smtp:HOST:PORT` (a smarthost; `[IPv6]:PORT` for IPv6 literals).
    Host(String, u16),
    /// `lmtp:HOST:PORT` or `lmtp:unix:PATH`: an LMTP store.
    Lmtp(lmtp::Target),
}

fn parse_hop(hop: &str, default_port: u16) -> Option<Hop> {
    if let Some(domain) = hop.strip_prefix("mx:") {
        return (!domain.is_empty()).then(|| Hop::Mx(domain.to_ascii_lowercase()));
    }
    if let Some(rest) = hop.strip_prefix("lmtp:") {
        return lmtp::parse(rest).map(Hop::Lmtp);
    }
    let rest = hop.strip_prefix("smtp:")?;
    let (host, port) = split_host_port(rest, default_port)?;
    Some(Hop::Host(host, port))
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT`, or a bare IPv6 address.
fn split_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((text.to_owned(), default_port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((text.to_owned(), default_port)),
    }
}

/// The default sink of `dns-resolve`: MX hosts of an `mx:` hop, the host of an `smtp:` hop.
struct DnsDefault<'a> {
    resolver: &'a Resolver,
    hop: &'a Hop,
}

impl DefaultSink for DnsDefault<'_> {
    async fn run(&mut self, ctx: &Context) -> Outcome {
        if ctx.hosts.is_some() {
            // A sink before this one supplied the hosts.
            return Outcome::next();
        }
        match self.hop {
            // An LMTP hop is delivered without this event (see `lmtp`).
            Hop::Lmtp(_) => Outcome::next(),
            Hop::Host(host, port) => {
                Outcome::changes(vec![Change::SetHosts(vec![join_host_port(host, *port)])])
            }
            Hop::Mx(domain) => {
                match self.resolver.mx_hosts(domain).await {
                    Ok(hosts) => Outcome::changes(vec![Change::SetHosts(hosts)]),
                    Err(e @ DnsError::NullMx(_)) => Outcome::next()
                        .with_verdict(Verdict::Reject(Some(format!("556 5.1.10 {e}")))),
                    Err(e @ DnsError::NoSuchDomain(_)) => Outcome::next()
                        .with_verdict(Verdict::Reject(Some(format!("550 5.1.2 {e}")))),
                    Err(e) => Outcome::next()
                        .with_verdict(Verdict::TempFail(Some(format!("451 4.4.3 {e}")))),
                }
            }
        }
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The TLS policy for one hop.
struct Policy {
    required: bool,
    ca_file: Option<std::path::PathBuf>,
}

impl Outbound {
    /// A client resolving through `[dns] servers` (or the system's resolvers).
    pub fn new(config: Arc<Config>, host: Arc<Host>) -> Result<Self, DnsError> {
        let resolver = Resolver::new(&config.dns.servers)?;
        let pool = Pool::new(
            config.delivery.connections_per_host,
            config.delivery.idle_connection_time,
        );
        Ok(Self {
            config,
            host,
            resolver,
            tls: TlsClients::new(),
            pool,
            timeouts: Timeouts::default(),
        })
    }

    /// Delivers `msg` to `recipients` (indices) through the next hop `hop`.
    pub async fn deliver(
        &self,
        snapshot: &Snapshot,
        msg: &Arc<MailMsg>,
        hop: &str,
        recipients: &[usize],
    ) -> HopReport {
        let all = |outcome: RcptOutcome| HopReport {
            outcomes: recipients.iter().map(|&i| (i, outcome.clone())).collect(),
            ..HopReport::default()
        };
        let Some(parsed) = parse_hop(hop, self.config.delivery.smtp_port) else {
            return all(RcptOutcome::Failed(format!(
                "554 5.4.6 invalid next hop {hop:?}"
            )));
        };
        let mut base = Context::new(Event::DnsResolve, self.host.server_props.clone());
        base.message = msg.clone();
        base.peer = Some(Arc::new(Peer {
            next_hop: hop.to_owned(),
            ..Peer::default()
        }));
        if let Hop::Lmtp(target) = &parsed {
            return self
                .deliver_lmtp(snapshot, &base, msg, target, recipients)
                .await;
        }
        let hosts = {
            let mut ctx = base.clone();
            let mut default = DnsDefault {
                resolver: &self.resolver,
                hop: &parsed,
            };
            let d = snapshot.dispatch(&mut ctx, &mut default).await;
            match d.transport {
                TransportVerdict::Fail(reason) => return all(RcptOutcome::Failed(reason)),
                TransportVerdict::Defer(reason) => return all(RcptOutcome::Deferred(reason)),
                TransportVerdict::Continue => ctx.hosts.unwrap_or_default(),
            }
        };
        if hosts.is_empty() {
            return all(RcptOutcome::Deferred(format!(
                "451 4.4.4 no host to deliver to for {hop}"
            )));
        }
        let policy = self.policy(&parsed);
        let mut last = RcptOutcome::Deferred(format!("451 4.4.1 no answer from {hop}"));
        for host in &hosts {
            let Some((name, port)) = split_host_port(host, self.config.delivery.smtp_port) else {
                last = RcptOutcome::Deferred(format!("451 4.4.4 invalid host {host:?}"));
                continue;
            };
            let ips = match self.resolver.addresses(&name).await {
                Ok(ips) => ips,
                Err(e) => {
                    warn!(next_hop = hop, host = %name, "cannot resolve: {e}");
                    last = RcptOutcome::Deferred(format!("451 4.4.3 {e}"));
                    continue;
                }
            };
            for ip in ips {
                let address = SocketAddr::new(ip, port);
                match self
                    .attempt(snapshot, &base, msg, recipients, &name, address, &policy)
                    .await
                {
                    Attempt::Done(mut report) => {
                        report.remote = Some(format!("{name}[{ip}]"));
                        return report;
                    }
                    Attempt::NextHost(outcome) => last = outcome,
                }
            }
        }
        all(last)
    }

    fn policy(&self, hop: &Hop) -> Policy {
        let route = match hop {
            Hop::Host(host, port) => self
                .config
                .routes
                .iter()
                .find(|r| r.host.eq_ignore_ascii_case(host) && r.port == *port),
            Hop::Mx(_) | Hop::Lmtp(_) => None,
        };
        Policy {
            required: route.is_some_and(|r| r.tls == RouteTls::Required),
            ca_file: route.and_then(|r| r.ca_file.as_ref()).map(|f| {
                if f.is_absolute() {
                    f.clone()
                } else {
                    self.config.data_dir.join(f)
                }
            }),
        }
    }

    /// One address: a pooled or new connection and the transaction over it.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        snapshot: &Snapshot,
        base: &Context,
        msg: &Arc<MailMsg>,
        recipients: &[usize],
        name: &str,
        address: SocketAddr,
        policy: &Policy,
    ) -> Attempt {
        // A pooled connection may have been closed by the remote meanwhile; only a fresh one
        // that fails counts as this address failing.
        loop {
            let (mut leased, reused) = match self.pool.acquire(address).await {
                Some(Slot::Idle(leased)) => (*leased, true),
                Some(Slot::New(permit)) => {
                    match self
                        .open(snapshot, base, name, address, policy, permit)
                        .await
                    {
                        Ok(leased) => (leased, false),
                        Err(outcome) => return Attempt::NextHost(outcome),
                    }
                }
                None => {
                    return Attempt::NextHost(RcptOutcome::Deferred(
                        "451 4.3.0 delivery is shutting down".into(),
                    ));
                }
            };
            let events = Events {
                snapshot,
                base: self.peer_context(base, name, address, &leased.conn),
            };
            match transaction::send(&mut leased.conn, &events, msg, recipients).await {
                Ok(outcomes) => {
                    let remote_dsn = leased.conn.extensions.dsn();
                    self.release(snapshot, events.base, address, leased).await;
                    return Attempt::Done(HopReport {
                        outcomes,
                        remote: None,
                        remote_dsn,
                    });
                }
                Err((e, done)) if reused && done.is_empty() => {
                    debug!(%address, "pooled connection failed ({e}); opening a new one");
                    continue;
                }
                Err((e, done)) => {
                    warn!(%address, "delivery broke off: {e}");
                    let reason = format!("451 4.4.2 {name}[{}]: {e}", address.ip());
                    let mut outcomes = done;
                    for &i in recipients {
                        if !outcomes.iter().any(|(j, _)| *j == i) {
                            outcomes.push((i, RcptOutcome::Deferred(reason.clone())));
                        }
                    }
                    return Attempt::Done(HopReport {
                        outcomes,
                        remote: None,
                        remote_dsn: false,
                    });
                }
            }
        }
    }

    fn peer_context(
        &self,
        base: &Context,
        name: &str,
        address: SocketAddr,
        conn: &Connection,
    ) -> Context {
        let mut ctx = base.clone();
        let next_hop = base
            .peer
            .as_ref()
            .map(|p| p.next_hop.clone())
            .unwrap_or_default();
        ctx.peer = Some(Arc::new(Peer {
            next_hop,
            host: Some(name.to_owned()),
            address: Some(address),
            tls: conn.tls,
            extensions: conn.extensions.keywords.clone(),
        }));
        ctx
    }

    /// After a transaction: keep the connection for the next message, or end the session.
    async fn release(
        &self,
        snapshot: &Snapshot,
        base: Context,
        address: SocketAddr,
        leased: Leased,
    ) {
        if self.pool.keeps_idle() {
            let host = self.host.clone();
            self.pool.put_idle(address, leased, move |conn| async move {
                let snapshot = host.snapshot();
                close(&snapshot, base, conn).await;
            });
        } else {
            close(snapshot, base, leased.conn).await;
        }
    }
}

/// A refusal at the greeting or the hello: permanent for a 5xx, else temporary.
fn refusal_of(reply: &postern_sink_api::Reply, name: &str) -> RcptOutcome {
    let text = format!(
        "{} (from {name})",
        crate::smtp::transaction::reply_text(reply)
    );
    if reply.code / 100 == 5 {
        RcptOutcome::Failed(text)
    } else {
        RcptOutcome::Deferred(text)
    }
}

/// Ends a session through `outbound:session-end`.
async fn close(snapshot: &Snapshot, base: Context, conn: Connection) {
    let events = Events { snapshot, base };
    match events
        .session_command(OutboundStep::SessionEnd, "QUIT".to_owned())
        .await
    {
        Ok((line, _extra)) => conn.quit(&line).await,
        Err(_) => drop(conn),
    }
}

enum Attempt {
    /// The transaction ran: its outcomes stand.
    Done(HopReport),
    /// This address did not take it; try the next (with this outcome if none does).
    NextHost(RcptOutcome),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_parse() {
        let cases = [
            ("mx", "mx:Example.ORG", Some(Hop::Mx("example.org".into()))),
            (
                "smarthost",
                "smtp:relay.example:587",
                Some(Hop::Host("relay.example".into(), 587)),
            ),
            (
                "default port",
                "smtp:relay.example",
                Some(Hop::Host("relay.example".into(), 25)),
            ),
            (
                "ipv6",
                "smtp:[2001:db8::1]:2525",
                Some(Hop::Host("2001:db8::1".into(), 2525)),
            ),
            ("bad port", "smtp:relay:x", None),
            (
                "lmtp",
                "lmtp:127.0.0.1:2400",
                Some(Hop::Lmtp(lmtp::Target::Tcp("127.0.0.1".into(), 2400))),
            ),
            (
                "lmtp default port",
                "lmtp:store.example",
                Some(Hop::Lmtp(lmtp::Target::Tcp("store.example".into(), 24))),
            ),
            (
                "lmtp unix",
                "lmtp:unix:run/lmtp.sock",
                Some(Hop::Lmtp(lmtp::Target::Unix("run/lmtp.sock".into()))),
            ),
            ("lmtp unix without path", "lmtp:unix:", None),
            ("unknown kind", "uucp:x", None),
            ("empty mx", "mx:", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_hop(text, 25), want, "{name}");
        }
    }
}
