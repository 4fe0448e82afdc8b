//! What XCLIENT and XFORWARD share: the trusted networks, the xtext-encoded `NAME=VALUE`
//! attributes of Postfix's XCLIENT_README and XFORWARD_README, and their replies.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use postern_mailmsg::Properties;
use postern_sink_api::{Change, Context, EnhancedCode, Event, Outcome, Reply, SinkError};

use crate::props;

/// The value a proxy sends for an attribute it does not know.
pub(crate) const UNAVAILABLE: &str = "[UNAVAILABLE]";
/// The value a proxy sends for an attribute it could not look up for now.
pub(crate) const TEMPUNAVAIL: &str = "[TEMPUNAVAIL]";

/// A client outside `networks` (Postfix: `550 5.7.0 Error: insufficient authorization`).
pub(crate) fn not_authorized() -> Reply {
    Reply::new(
        550,
        Some(EnhancedCode::new(5, 7, 0)),
        "Authorization required",
    )
}

/// What both verbs answer before their attributes are read: at EHLO, `VERB NAMES…` advertised to
/// trusted clients only; at the verb, the refusal of an untrusted client or of one inside a
/// transaction. `None` when the attributes are to be read.
pub(crate) fn screen(
    networks: &Networks,
    ctx: &Context,
    verb: &str,
    names: &[&str],
) -> Option<Outcome> {
    let trusted = networks.trusts(ctx);
    if matches!(&ctx.event, Event::Inbound(Some(v)) if v.as_str() == "EHLO") {
        return Some(if trusted {
            let keyword = format!("{verb} {}", names.join(" "));
            Outcome::changes(vec![Change::AddEhloKeyword(keyword)])
        } else {
            Outcome::next()
        });
    }
    if !trusted {
        return Some(Outcome::reply(not_authorized()));
    }
    if ctx.message.sender.is_some() {
        return Some(Outcome::reply(in_transaction()));
    }
    None
}

/// A malformed command.
pub(crate) fn syntax(text: String) -> Reply {
    Reply::new(501, Some(EnhancedCode::new(5, 5, 4)), text)
}

/// The command inside a mail transaction.
pub(crate) fn in_transaction() -> Reply {
    Reply::new(
        503,
        Some(EnhancedCode::new(5, 5, 1)),
        "Error: MAIL transaction in progress",
    )
}

/// The clients allowed to forward: property `networks`, CIDR blocks or addresses separated by
/// commas or spaces.
pub(crate) struct Networks(Vec<IpNet>);

impl Networks {
    pub(crate) fn from_props(properties: &Properties) -> Result<Self, SinkError> {
        let text = props::required(properties, "networks")?;
        let mut nets = Vec::new();
        for item in text.split([',', ' ']).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    SinkError::Config(format!(
                        "property `networks`: {item:?} is not a network (192.0.2.0/24) or an address"
                    ))
                })?;
            nets.push(net);
        }
        if nets.is_empty() {
            return Err(SinkError::Config("property `networks` is empty".into()));
        }
        Ok(Self(nets))
    }

    /// Whether the session's client is trusted; an IPv4-mapped IPv6 address compares as IPv4.
    pub(crate) fn trusts(&self, ctx: &Context) -> bool {
        let Some(session) = ctx.session.as_ref() else {
            return false;
        };
        let ip = session.remote.ip();
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4)))
    }
}

/// Splits the arguments into `(NAME, decoded value)` pairs; `names` are the attributes the
/// command knows (matched without regard to case, returned upper case).
pub(crate) fn attributes(
    args: &str,
    names: &[&'static str],
) -> Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    for item in args.split_ascii_whitespace() {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!("Bad attribute syntax: {item}"));
        };
        let Some(known) = names.iter().find(|n| n.eq_ignore_ascii_case(name)) else {
            return Err(format!("Bad attribute name: {name}"));
        };
        let value = xtext(value).ok_or_else(|| format!("Bad {known} syntax: {value}"))?;
        out.push((*known, value));
    }
    if out.is_empty() {
        return Err(format!("Syntax: {} attribute=value...", names.join(" ")));
    }
    Ok(out)
}

/// Decodes xtext (RFC 3461 §4): `+XX` is the octet XX in hex; other octets are printable
/// ASCII other than `+` and `=`. The result must be UTF-8.
pub(crate) fn xtext(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
                {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'=' => return None,
            b @ 33..=126 => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a value says the proxy does not know it.
pub(crate) fn unknown(value: &str) -> bool {
    value == UNAVAILABLE || value == TEMPUNAVAIL
}

/// An `ADDR` value: IPv4, or IPv6 with its `IPV6:` prefix (also taken without it).
pub(crate) fn address(value: &str) -> Option<IpAddr> {
    let v6 = value
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPV6:"))
        .map(|_| &value[5..]);
    match v6 {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => value.parse().ok(),
    }
}

/// A `PORT` value.
pub(crate) fn port(value: &str) -> Option<u16> {
    value.parse().ok()
}

/// `addr` with its address or port replaced.
pub(crate) fn with(addr: SocketAddr, ip: Option<IpAddr>, port: Option<u16>) -> SocketAddr {
    SocketAddr::new(ip.unwrap_or(addr.ip()), port.unwrap_or(addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_decodes_and_refuses() {
        assert_eq!(xtext("a+2Bb+3D").as_deref(), Some("a+b="));
        assert_eq!(xtext("[UNAVAILABLE]").as_deref(), Some("[UNAVAILABLE]"));
        for bad in ["a=b", "+2", "+zz", "+2b", "caf\u{e9}"] {
            assert_eq!(xtext(bad), None, "{bad}");
        }
    }

    #[test]
    fn attributes_parse() {
        let names = ["ADDR", "NAME"];
        let got = attributes("addr=192.0.2.7 NAME=mx+2Eexample", &names).unwrap();
        assert_eq!(
            got,
            vec![("ADDR", "192.0.2.7".into()), ("NAME", "mx.example".into())]
        );
        assert!(attributes("", &names).unwrap_err().starts_with("Syntax"));
        assert!(
            attributes("FOO=1", &names)
                .unwrap_err()
                .contains("name: FOO")
        );
        assert!(attributes("ADDR", &names).unwrap_err().contains("syntax"));
    }

    #[test]
    fn addresses() {
        assert_eq!(address("192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(
            address("IPV6:2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            address("ipv6:2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(address("bogus"), None);
    }
}
