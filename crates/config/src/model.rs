//! The validated configuration: plain values that the rest of the server reads.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The server's configuration, validated. Made by [`Config::parse`], [`Config::load`] or
/// [`Config::embedded_default`]; the binary then applies its command-line
/// [`Overrides`](crate::Overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The name the server gives itself (greeting, EHLO, `Received:`). From `hostname`, else the
    /// system host name, else `localhost`.
    pub hostname: String,
    /// The data folder (spool, mailboxes, bindings). A relative path is relative to the working
    /// directory of the process, not to the configuration file.
    pub data_dir: PathBuf,
    /// The addresses to listen on; never empty.
    pub listeners: Vec<Listener>,
    /// The local domains, in file order; names are lower-case and unique.
    pub domains: Vec<LocalDomain>,
    /// Client networks allowed to relay to non-local domains (host bits cleared).
    pub relay_networks: Vec<ipnet::IpNet>,
    /// Smarthost routes for non-local domains, in file order; see [`Config::route_for`].
    pub routes: Vec<Route>,
    /// Protocol and resource limits.
    pub limits: Limits,
    /// The bindings registry file, already resolved against `data_dir`.
    pub bindings_file: PathBuf,
    /// Logging.
    pub log: Log,
    /// The DNS resolver (delivery, and any sink that looks names up).
    pub dns: Dns,
    /// Remote delivery and retries.
    pub delivery: Delivery,
    /// The spool (`[queue]`).
    pub queue: Queue,
    /// The server's certificate (`[tls]`).
    pub tls: crate::Tls,
    /// SMTP AUTH (`[auth]`).
    pub auth: crate::Auth,
    /// The default categorizer (`[categorizer]`).
    pub categorizer: Categorizer,
    /// `[admin]`: the admin API's listener.
    pub admin: crate::Admin,
    /// Where this configuration came from.
    pub source: Source,
}

/// One address to accept SMTP connections on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The socket address to bind.
    pub address: SocketAddr,
    /// What the listener is for (`mode`; default `smtp`).
    pub mode: crate::ListenerMode,
}

/// A domain whose mail is delivered to local mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDomain {
    /// The domain, lower-case.
    pub name: String,
    /// Which local parts the domain accepts.
    pub users: Users,
    /// The aliases file (`aliases`), shared with every copy of the configuration so that its
    /// last good table is read once per change.
    pub aliases: Option<std::sync::Arc<crate::AliasFile>>,
    /// A copy of `[categorizer] recipient_delimiter`, so that `accepts` knows `bob+tag`; empty
    /// when sub-addressing is off.
    pub recipient_delimiter: String,
}

impl LocalDomain {
    /// Whether the domain accepts mail for `local_part`, compared case-insensitively.
    pub fn accepts(&self, local_part: &str) -> bool {
        // RFC 5321 §4.5.1: every domain the server delivers for has a postmaster.
        if local_part.eq_ignore_ascii_case("postmaster") {
            return true;
        }
        self.is_name(local_part)
            || self
                .base_of(local_part)
                .is_some_and(|base| self.is_name(base))
    }

    /// `local_part` without its sub-address (`bob` for `bob+tag`), when it has one.
    pub fn base_of<'a>(&self, local_part: &'a str) -> Option<&'a str> {
        if self.recipient_delimiter.is_empty() {
            return None;
        }
        local_part
            .split_once(self.recipient_delimiter.as_str())
            .map(|(base, _)| base)
            .filter(|base| !base.is_empty())
    }

    /// A user of the domain or one of its aliases.
    fn is_name(&self, local_part: &str) -> bool {
        if local_part.eq_ignore_ascii_case("postmaster") {
            return true;
        }
        let user = match &self.users {
            Users::Any => true,
            Users::List(users) => {
                if local_part.chars().any(char::is_uppercase) {
                    users.contains(&local_part.to_lowercase())
                } else {
                    users.contains(local_part)
                }
            }
        };
        user || self
            .aliases
            .as_ref()
            .is_some_and(|file| file.table().get(local_part).is_some())
    }
}

/// `[categorizer]`: the default sink of `categorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categorizer {
    /// How many aliases deep an expansion may go before it fails (`max_depth`).
    pub max_depth: usize,
    /// Separates a local part from its sub-address (`recipient_delimiter`, Postfix's name);
    /// empty turns sub-addressing off.
    pub recipient_delimiter: String,
}

impl Default for Categorizer {
    fn default() -> Categorizer {
        Categorizer {
            max_depth: 20,
            recipient_delimiter: "+".to_owned(),
        }
    }
}

/// The local parts a local domain accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Users {
    /// Any local part (`users = "*"`).
    Any,
    /// Only these local parts, stored lower-case; never empty.
    List(BTreeSet<String>),
}

/// Which recipient domains a [`Route`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// `*`: any domain.
    Any,
    /// One domain, lower-case.
    Exact(String),
    /// `*.parent`: the strict subdomains of `parent` (lower-case), not `parent` itself.
    Subdomains(String),
}

impl DomainPattern {
    /// Whether `domain` matches, compared case-insensitively; one trailing dot is ignored.
    pub fn matches(&self, domain: &str) -> bool {
        let domain = without_root(domain).as_bytes();
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(name) => domain.eq_ignore_ascii_case(name.as_bytes()),
            DomainPattern::Subdomains(parent) => {
                let parent = parent.as_bytes();
                domain.len() > parent.len() + 1 && {
                    let (child, tail) = domain.split_at(domain.len() - parent.len());
                    child.ends_with(b".") && tail.eq_ignore_ascii_case(parent)
                }
            }
        }
    }

    /// Orders patterns from most to least specific: exact, then the longest parent, then `*`.
    pub(crate) fn specificity(&self) -> (u8, std::cmp::Reverse<usize>) {
        match self {
            DomainPattern::Exact(_) => (0, std::cmp::Reverse(0)),
            DomainPattern::Subdomains(parent) => (1, std::cmp::Reverse(parent.len())),
            DomainPattern::Any => (2, std::cmp::Reverse(0)),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Exact(name) => f.write_str(name),
            DomainPattern::Subdomains(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// A smarthost for the domains that match a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The recipient domains this route applies to.
    pub domain: DomainPattern,
    /// The smarthost: a lower-case domain name, or an IP address without brackets.
    pub host: String,
    /// The smarthost's port (25 unless given; 24 for LMTP). Unused for an LMTP Unix socket.
    pub port: u16,
    /// How the smarthost is spoken to: SMTP, or LMTP over TCP or a Unix socket.
    pub protocol: HopProtocol,
    /// Whether STARTTLS is required (with certificate verification) or used when offered.
    pub tls: RouteTls,
    /// PEM certificates trusted for this route besides the system's roots (`ca_file`).
    pub ca_file: Option<PathBuf>,
}

/// The protocol of a route's smarthost (`smtp:`, the default, or `lmtp:`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HopProtocol {
    /// SMTP to `host:port`.
    #[default]
    Smtp,
    /// LMTP (RFC 2033) to `host:port`.
    Lmtp,
    /// LMTP over this Unix socket (relative to the data folder unless absolute).
    LmtpUnix(PathBuf),
}

impl Route {
    /// The next hop this route gives a recipient: `smtp:HOST:PORT`, `lmtp:HOST:PORT` or
    /// `lmtp:unix:PATH`, in the form the outbound client parses.
    pub fn next_hop(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.protocol {
            HopProtocol::Smtp => format!("smtp:{host}:{}", self.port),
            HopProtocol::Lmtp => format!("lmtp:{host}:{}", self.port),
            HopProtocol::LmtpUnix(path) => format!("lmtp:unix:{}", path.display()),
        }
    }
}

/// The TLS policy of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteTls {
    /// STARTTLS when the next hop offers it, without verifying its certificate (RFC 7435); the
    /// message goes in clear text when it is not offered or the handshake fails.
    #[default]
    Opportunistic,
    /// STARTTLS must succeed and the certificate must verify for the smarthost's name;
    /// otherwise the message is deferred.
    Required,
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dns {
    /// Name servers to ask; empty means the system's resolver configuration.
    pub servers: Vec<SocketAddr>,
}

/// `[delivery]`: remote delivery, retries and DSNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The port of MX and address hosts (25; tests use another).
    pub smtp_port: u16,
    /// Waits between attempts; the last one repeats. Never empty.
    pub retry_intervals: Vec<Duration>,
    /// How long a recipient is retried before it fails with a DSN.
    pub max_age: Duration,
    /// When a delay DSN is sent (once); `None` sends none.
    pub delay_warning: Option<Duration>,
    /// Most connections open at once to one host.
    pub connections_per_host: usize,
    /// How long an idle connection is kept for the next message to the same host; zero closes
    /// it after each message.
    pub idle_connection_time: Duration,
}

impl Default for Delivery {
    fn default() -> Delivery {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Delivery {
            smtp_port: 25,
            retry_intervals: vec![
                minutes(5),
                minutes(10),
                minutes(20),
                minutes(40),
                minutes(60),
            ],
            max_age: Duration::from_secs(5 * 24 * 3600),
            delay_warning: Some(Duration::from_secs(4 * 3600)),
            connections_per_host: 10,
            idle_connection_time: Duration::from_secs(5),
        }
    }
}

/// Protocol and resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted, in octets (advertised with EHLO `SIZE`).
    pub max_message_size: u64,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// Protocol errors in one session before the server answers 421 and closes.
    pub max_errors: u32,
    /// How long the server waits for a command (RFC 5321 §4.5.3.2 asks for 5 minutes).
    pub command_timeout: Duration,
    /// How long the whole DATA or BDAT transfer of one message may take.
    pub data_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one IP address.
    pub max_connections_per_ip: usize,
    /// How long SIGTERM waits for transactions in flight before closing them; zero does not wait.
    pub shutdown_grace: Duration,
    /// Most octets of message content held in memory at once, across all sessions; past it a
    /// new DATA or BDAT transfer is answered 452 4.3.1.
    pub memory_budget: u64,
    /// A message being received moves from memory to a file in the data folder once its
    /// content passes this many octets.
    pub spill_threshold: u64,
    /// Messages per minute from one client address (token bucket: a burst of this many, then
    /// refilled evenly over the minute); `None`: no limit. Past it MAIL gets 450 4.7.1.
    pub message_rate_per_ip: Option<u32>,
    /// Recipients per minute from one client address; past it RCPT gets 450 4.7.1.
    pub recipient_rate_per_ip: Option<u32>,
    /// Messages per minute from one authenticated user, whatever the address.
    pub message_rate_per_user: Option<u32>,
    /// Recipients per minute from one authenticated user.
    pub recipient_rate_per_user: Option<u32>,
    /// How long the greeting waits; a client that talks before it gets 554 and is closed.
    /// Zero (the default) still refuses a client whose commands are already waiting.
    pub greeting_delay: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 25 << 20,
            max_recipients: 100,
            max_errors: 10,
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            max_connections: 10_000,
            max_connections_per_ip: 200,
            shutdown_grace: Duration::from_secs(30),
            memory_budget: 512 << 20,
            spill_threshold: 1 << 20,
            message_rate_per_ip: None,
            recipient_rate_per_ip: None,
            message_rate_per_user: None,
            recipient_rate_per_user: None,
            greeting_delay: Duration::ZERO,
        }
    }
}

/// The spool's layout and the free space it leaves on its file system (`[queue]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queue {
    /// The size of one segment file of the spool's log, and of each pre-written spare: the
    /// spool's disk use is a few of these plus the live mail.
    pub segment_size: u64,
    /// The free space below which the server accepts no new mail (and writes no spare);
    /// `None` is the default, the larger of 1 GiB and 5% of the file system.
    pub disk_reserve: Option<DiskReserve>,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            segment_size: 32 << 20,
            disk_reserve: None,
        }
    }
}

/// How much free space the spool keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskReserve {
    /// A number of octets.
    Octets(u64),
    /// A percentage (0 to 100) of the file system's size.
    Percent(u8),
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The line format.
    pub format: LogFormat,
    /// A `tracing` `EnvFilter` directive such as `info` or `postern_smtp_in=debug,info`; the
    /// binary parses it.
    pub level: String,
    /// The decision log (`DATA/log/decisions.jsonl`) is rotated when a line would take it past
    /// this many octets.
    pub decisions_max_size: u64,
    /// How many rotated decision logs are kept.
    pub decisions_keep: usize,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            format: LogFormat::Text,
            level: "info".to_owned(),
            decisions_max_size: 64 << 20,
            decisions_keep: 5,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a configuration came from; it names the file in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The default compiled into the binary ([`EMBEDDED`](crate::EMBEDDED)).
    Embedded,
    /// A file, as named when it was loaded.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Embedded => f.write_str("<embedded default>"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Command-line settings that take precedence over the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces `data_dir`; a bindings file inside the old data folder moves with it.
    pub data_dir: Option<PathBuf>,
    /// When not empty, replaces all the listeners.
    pub listen: Vec<SocketAddr>,
    /// Replaces `hostname`; checked as the file's `hostname` is.
    pub hostname: Option<String>,
    /// Replaces `[admin] address` (`Some(None)` turns the admin API off).
    pub admin: Option<Option<SocketAddr>>,
}

impl Config {
    /// The local domain named `domain`, compared case-insensitively; one trailing dot is ignored.
    pub fn local_domain(&self, domain: &str) -> Option<&LocalDomain> {
        let domain = without_root(domain);
        self.domains
            .iter()
            .find(|local| local.name.eq_ignore_ascii_case(domain))
    }

    /// Whether a client at `ip` may relay to non-local domains. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`) is also checked as the IPv4 address it carries.
    pub fn is_relay_client(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.relay_networks
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4)))
    }

    /// The smarthost route for a non-local `domain`: the most specific matching pattern wins —
    /// an exact domain, then `*.parent` with the longest parent, then `*`; among equals, the first
    /// in the file. `None` for a local domain (it is delivered locally) or when no route matches
    /// (the domain's MX is used).
    pub fn route_for(&self, domain: &str) -> Option<&Route> {
        if self.local_domain(domain).is_some() {
            return None;
        }
        self.routes
            .iter()
            .filter(|route| route.domain.matches(domain))
            .min_by_key(|route| route.domain.specificity())
    }

    /// The certificate and key files named by `[tls]`, resolved against the data folder (an
    /// absolute path stays as it is); `None` when the self-signed default applies.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        let files = self.tls.files.as_ref()?;
        Some((
            self.data_dir.join(&files.certificate),
            self.data_dir.join(&files.key),
        ))
    }

    /// Applies command-line overrides (see [`Overrides`]). A host name is checked as the file's
    /// `hostname` is; when it is refused the error says why and nothing is changed.
    pub fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), String> {
        if let Some(hostname) = &overrides.hostname {
            crate::names::domain_syntax(hostname)
                .map_err(|why| format!("invalid host name {hostname:?}: {why}"))?;
        }
        if let Some(data_dir) = &overrides.data_dir {
            if let Ok(inside) = self.bindings_file.strip_prefix(&self.data_dir) {
                self.bindings_file = data_dir.join(inside);
            }
            for domain in &mut self.domains {
                if let Some(file) = &domain.aliases {
                    let configured = file.configured.clone();
                    domain.aliases = Some(std::sync::Arc::new(crate::AliasFile::new(
                        data_dir, configured,
                    )));
                }
            }
            self.data_dir = data_dir.clone();
        }
        if !overrides.listen.is_empty() {
            self.listeners = overrides
                .listen
                .iter()
                .map(|&address| Listener {
                    address,
                    mode: crate::ListenerMode::Smtp,
                })
                .collect();
        }
        if let Some(hostname) = &overrides.hostname {
            self.hostname = hostname.clone();
        }
        if let Some(admin) = overrides.admin {
            self.admin.address = admin;
        }
        Ok(())
    }
}

/// Drops the one trailing dot of a fully qualified name (`example.org.`).
fn without_root(domain: &str) -> &str {
    domain.strip_suffix('.').unwrap_or(domain)
}
