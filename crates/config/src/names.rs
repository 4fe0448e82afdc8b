//! The syntax of the names the configuration holds: domains, domain patterns, local parts,
//! smarthosts and relay networks. Each check returns the value in its stored form or a message.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::model::{DomainPattern, HopProtocol};

/// Checks a domain name (RFC 5321 `Domain`, ASCII letters, digits and hyphens) and returns it
/// in lower case.
pub(crate) fn domain(name: &str) -> Result<String, String> {
    domain_syntax(name).map_err(|why| format!("invalid domain {name:?}: {why}"))?;
    Ok(name.to_ascii_lowercase())
}

/// What is wrong with a domain name, if anything.
pub(crate) fn domain_syntax(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.ends_with('.') {
        return Err("write it without the trailing dot".into());
    }
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    if !name.is_ascii() {
        return Err("internationalized names are written in their A-label form (xn--…)".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters".into());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
        {
            return Err(format!(
                "`{c}` is not allowed (letters, digits, hyphens and dots only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with a hyphen".into());
        }
    }
    Ok(())
}

/// Parses a route's domain: `*`, `*.parent.example` or an exact domain.
pub(crate) fn domain_pattern(pattern: &str) -> Result<DomainPattern, String> {
    if pattern == "*" {
        return Ok(DomainPattern::Any);
    }
    if let Some(parent) = pattern.strip_prefix("*.") {
        return domain(parent).map(DomainPattern::Subdomains);
    }
    if pattern.contains('*') {
        return Err(format!(
            "invalid domain pattern {pattern:?}: `*` is allowed only alone or as `*.` before a domain"
        ));
    }
    domain(pattern).map(DomainPattern::Exact)
}

/// Checks a local part for a domain's user list and returns it in lower case.
pub(crate) fn local_part(user: &str) -> Result<String, String> {
    let invalid = |why: &str| Err(format!("invalid local part {user:?}: {why}"));
    if user.is_empty() {
        return invalid("empty");
    }
    if user == "*" {
        return invalid("`*` must stand alone: users = \"*\"");
    }
    if user.len() > 64 {
        return invalid("longer than 64 octets");
    }
    if user.contains('@') {
        return invalid("write the local part only, without `@` and the domain");
    }
    if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("contains a blank or a control character");
    }
    Ok(user.to_lowercase())
}

/// Parses a smarthost: `host`, `host:port`, `[ip-literal]` or `[ip-literal]:port`. Returns the
/// host (a lower-case domain, or an IP address without brackets) and the port (25 by default).
pub(crate) fn smarthost(text: &str) -> Result<(String, u16), String> {
    smarthost_on(text, 25)
}

/// The route's smarthost with its protocol prefix: `smtp:` or none (SMTP, port 25 by default),
/// `lmtp:HOST[:PORT]` (port 24 by default) or `lmtp:unix:PATH`.
pub(crate) fn route_hop(text: &str) -> Result<(String, u16, HopProtocol), String> {
    if let Some(path) = text.strip_prefix("lmtp:unix:") {
        if path.is_empty() {
            return Err(format!(
                "invalid smarthost {text:?}: `lmtp:unix:` needs the socket's path"
            ));
        }
        return Ok((String::new(), 0, HopProtocol::LmtpUnix(path.into())));
    }
    if let Some(rest) = text.strip_prefix("lmtp:") {
        return smarthost_on(rest, 24).map(|(h, p)| (h, p, HopProtocol::Lmtp));
    }
    let rest = text.strip_prefix("smtp:").unwrap_or(text);
    smarthost(rest).map(|(h, p)| (h, p, HopProtocol::Smtp))
}

fn smarthost_on(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let invalid = |why: &str| Err(format!("invalid smarthost {text:?}: {why}"));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return invalid("missing `]`");
        };
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return invalid("brackets must hold an IP address");
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return invalid("expected `:port` after `]`"),
            },
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return invalid("write an IPv6 address in brackets, such as \"[2001:db8::1]:25\"");
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let host = if let Ok(ip) = host.parse::<Ipv4Addr>() {
            ip.to_string()
        } else if let Err(why) = domain_syntax(host) {
            return invalid(&format!("host {host:?}: {why}"));
        } else {
            host.to_ascii_lowercase()
        };
        (host, port)
    };
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return invalid("the port must be a number from 1 to 65535"),
            Ok(port) => port,
        },
    };
    Ok((host, port))
}

/// Parses a relay network: CIDR notation, or a single address (a network of one host). Host
/// bits are cleared, so `192.168.1.7/16` is `192.168.0.0/16`.
pub(crate) fn network(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "invalid network {text:?}: expected CIDR notation such as \"192.168.0.0/16\" or \
         \"2001:db8::/32\", or a single address"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("plain", "example.org", Some("example.org")),
            ("lower-cased", "Mail.Example.ORG", Some("mail.example.org")),
            ("single label", "localhost", Some("localhost")),
            ("hyphen inside", "my-host.example", Some("my-host.example")),
            (
                "a-label",
                "xn--bcher-kva.example",
                Some("xn--bcher-kva.example"),
            ),
            ("empty", "", None),
            ("trailing dot", "example.org.", None),
            ("empty label", "example..org", None),
            ("leading hyphen", "-x.example", None),
            ("underscore", "a_b.example", None),
            ("blank", "a b.example", None),
            ("u-label", "bücher.example", None),
            ("long label", &format!("{}.example", "a".repeat(64)), None),
        ];
        for (name, input, want) in cases {
            assert_eq!(domain(input).ok().as_deref(), *want, "case {name}");
        }
    }

    #[test]
    fn domain_patterns() {
        let cases: &[(&str, &str, Option<DomainPattern>)] = &[
            ("any", "*", Some(DomainPattern::Any)),
            (
                "exact",
                "Example.org",
                Some(DomainPattern::Exact("example.org".into())),
            ),
            (
                "subdomains",
                "*.example.org",
                Some(DomainPattern::Subdomains("example.org".into())),
            ),
            ("star inside", "a*.example.org", None),
            ("double star", "*.*.example.org", None),
            ("star dot nothing", "*.", None),
        ];
        for (name, input, want) in cases {
            assert_eq!(domain_pattern(input).ok(), *want, "case {name}");
        }
    }

    #[test]
    fn local_parts() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("plain", "alice", Some("alice")),
            ("lower-cased", "Bob", Some("bob")),
            ("dots and plus", "j.doe+tag", Some("j.doe+tag")),
            ("utf-8", "Zoë", Some("zoë")),
            ("empty", "", None),
            ("star", "*", None),
            ("with domain", "alice@example.org", None),
            ("blank", "a b", None),
        ];
        for (name, input, want) in cases {
            assert_eq!(local_part(input).ok().as_deref(), *want, "case {name}");
        }
    }

    #[test]
    fn smarthosts() {
        type Case<'a> = (&'a str, &'a str, Option<(&'a str, u16)>);
        let cases: &[Case] = &[
            ("host", "relay.example.net", Some(("relay.example.net", 25))),
            (
                "host and port",
                "Relay.Example.net:587",
                Some(("relay.example.net", 587)),
            ),
            ("ipv4", "192.0.2.1:2525", Some(("192.0.2.1", 2525))),
            ("bracketed ipv4", "[192.0.2.1]", Some(("192.0.2.1", 25))),
            (
                "bracketed ipv6",
                "[2001:db8::1]:587",
                Some(("2001:db8::1", 587)),
            ),
            ("bare ipv6", "2001:db8::1", None),
            ("port zero", "relay.example.net:0", None),
            ("port too large", "relay.example.net:65536", None),
            ("empty port", "relay.example.net:", None),
            ("name in brackets", "[relay.example.net]:25", None),
            ("unclosed bracket", "[192.0.2.1:25", None),
            ("junk after bracket", "[192.0.2.1]25", None),
            ("bad host", "relay_host:25", None),
            ("empty", "", None),
        ];
        for (name, input, want) in cases {
            let got = smarthost(input).ok();
            let got = got.as_ref().map(|(h, p)| (h.as_str(), *p));
            assert_eq!(got, *want, "case {name}");
        }
    }

    #[test]
    fn route_hops() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "bare",
                "relay.example.net",
                Some("smtp:relay.example.net:25"),
            ),
            (
                "smtp prefix",
                "smtp:relay.example.net:587",
                Some("smtp:relay.example.net:587"),
            ),
            (
                "lmtp tcp",
                "lmtp:127.0.0.1:2400",
                Some("lmtp:127.0.0.1:2400"),
            ),
            (
                "lmtp default port",
                "lmtp:store.example",
                Some("lmtp:store.example:24"),
            ),
            ("lmtp ipv6", "lmtp:[::1]:24", Some("lmtp:[::1]:24")),
            (
                "lmtp unix",
                "lmtp:unix:lmtp.sock",
                Some("lmtp:unix:lmtp.sock"),
            ),
            ("lmtp unix without path", "lmtp:unix:", None),
            ("lmtp bad port", "lmtp:store:0", None),
        ];
        for (name, input, want) in cases {
            let got = route_hop(input).ok().map(|(host, port, protocol)| {
                crate::model::Route {
                    domain: DomainPattern::Any,
                    host,
                    port,
                    protocol,
                    tls: crate::model::RouteTls::Opportunistic,
                    ca_file: None,
                }
                .next_hop()
            });
            assert_eq!(got.as_deref(), *want, "case {name}");
        }
    }

    #[test]
    fn networks() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("ipv4 cidr", "192.168.0.0/16", Some("192.168.0.0/16")),
            (
                "host bits cleared",
                "192.168.1.7/16",
                Some("192.168.0.0/16"),
            ),
            ("ipv6 cidr", "::1/128", Some("::1/128")),
            ("single address", "10.0.0.1", Some("10.0.0.1/32")),
            ("prefix too long", "10.0.0.0/33", None),
            ("not an address", "intranet", None),
        ];
        for (name, input, want) in cases {
            let got = network(input).ok().map(|n| n.to_string());
            assert_eq!(got.as_deref(), *want, "case {name}");
        }
    }
}
