//! Name resolution for delivery: the MX hosts of a domain (RFC 5321 §5.1) and the addresses of
//! a host, through `hickory-resolver`.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver as HickoryResolver, TokioResolver};
use rand::seq::SliceRandom;

/// Why a lookup gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The domain does not exist: a permanent failure.
    #[error("domain {0} not found")]
    NoSuchDomain(String),
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    #[error("domain {0} accepts no mail (null MX)")]
    NullMx(String),
    /// The name exists but has no address.
    #[error("host {0} has no address")]
    NoAddress(String),
    /// A server failure, a time-out or a network error: try again later.
    #[error("DNS lookup of {name} failed: {reason}")]
    Temporary {
        /// The name looked up.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl DnsError {
    /// Whether trying again later may help.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary { .. })
    }
}

/// The resolver delivery uses: the servers of `[dns] servers`, or the system's configuration.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers), or the system's
    /// resolvers when `servers` is empty.
    pub fn new(servers: &[std::net::SocketAddr]) -> Result<Self, DnsError> {
        let failed = |reason: String| DnsError::Temporary {
            name: "the resolver configuration".into(),
            reason,
        };
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| failed(e.to_string()))?
        } else {
            let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
            for server in servers {
                let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut ns.connections {
                    connection.port = server.port();
                }
                config.add_name_server(ns);
            }
            HickoryResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = Duration::from_secs(5);
        options.attempts = 2;
        // Mail domains are absolute names; a search list would only add wrong answers.
        options.ndots = 0;
        let inner = builder.build().map_err(|e| failed(e.to_string()))?;
        Ok(Self { inner })
    }

    /// The hosts to try for mail to `domain`, most preferred first: MX hosts in preference
    /// order, equals in random order (RFC 5321 §5.1); the domain itself when it has no MX.
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<String>, DnsError> {
        let fqdn = absolute(domain);
        let lookup = match self.inner.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_nx_domain() => return Err(DnsError::NoSuchDomain(domain.to_owned())),
            // No MX record: the domain itself is the implicit MX (RFC 5321 §5.1).
            Err(e) if e.is_no_records_found() => return Ok(vec![domain.to_owned()]),
            Err(e) => return Err(temporary(domain, &e)),
        };
        let mut mx: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect();
        if mx.is_empty() {
            return Ok(vec![domain.to_owned()]);
        }
        // RFC 7505: one MX of preference 0 whose exchange is the root.
        if mx.iter().any(|(_, host)| host == ".") {
            return Err(DnsError::NullMx(domain.to_owned()));
        }
        mx.shuffle(&mut rand::rng());
        mx.sort_by_key(|(preference, _)| *preference);
        Ok(mx
            .into_iter()
            .map(|(_, host)| host.trim_end_matches('.').to_owned())
            .collect())
    }

    /// The addresses of `host` (IPv4 and IPv6); an address literal is returned as it is.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(vec![ip]);
        }
        match self.inner.lookup_ip(absolute(host).as_str()).await {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    Err(DnsError::NoAddress(host.to_owned()))
                } else {
                    Ok(ips)
                }
            }
            Err(e) if e.is_nx_domain() => Err(DnsError::NoSuchDomain(host.to_owned())),
            Err(e) if e.is_no_records_found() => Err(DnsError::NoAddress(host.to_owned())),
            Err(e) => Err(temporary(host, &e)),
        }
    }
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn temporary(name: &str, e: &NetError) -> DnsError {
    DnsError::Temporary {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}
