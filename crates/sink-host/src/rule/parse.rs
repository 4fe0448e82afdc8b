//! Parsing rule text into conditions, and the errors a bad rule gives.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use postern_sink_api::Verb;

use super::pattern::Patterns;
use super::{Comparison, Condition, Rule, Test};

/// A rule that cannot be parsed: which condition is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule condition {index} `{condition}`: {kind}")]
pub struct RuleError {
    index: usize,
    condition: String,
    kind: ErrorKind,
}

impl RuleError {
    /// The position of the bad condition in the rule, from 1.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The text of the bad condition, trimmed.
    pub fn condition(&self) -> &str {
        &self.condition
    }

    /// What is wrong with it.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// What is wrong with a rule condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Nothing between two `;`, before the first or after the last one, or after a `!`.
    #[error("the condition is empty (two `;` in a row, or a `;` or `!` with nothing after it)")]
    EmptyCondition,
    /// An operator with no key before it (`=x`).
    #[error("there is no key before the operator")]
    MissingKey,
    /// A key this rule language does not know.
    #[error(
        "unknown key `{0}` (keys: MAIL FROM, RCPT TO, EHLO, HELO, REMOTE, AUTH, TLS, SIZE, \
         HEADER:NAME, VERB)"
    )]
    UnknownKey(String),
    /// A key written without `=PATTERN`, which would otherwise be taken as a verb list.
    #[error("`{0}` needs `=PATTERN` (a condition without `=` is a list of SMTP verbs)")]
    MissingPattern(String),
    /// A comparison operator on a key other than SIZE.
    #[error("`{0}` takes `=`; only SIZE compares with <, >, <= and >=")]
    ComparisonNotAllowed(String),
    /// An empty item in a comma-separated list.
    #[error("a pattern in the list is empty (two `,` in a row, or a `,` at an end)")]
    EmptyPattern,
    /// Not a CIDR network or an IP address.
    #[error("`{0}` is not an IP address or a network (like 192.0.2.0/24 or ::1)")]
    BadNetwork(String),
    /// Not a size.
    #[error("`{0}` is not a size (a whole number with an optional unit k, M or G)")]
    BadSize(String),
    /// Not a boolean.
    #[error("`{0}` is not yes, no, true, false, on, off, 1 or 0")]
    BadBool(String),
    /// Not an SMTP verb.
    #[error("`{0}` is not an SMTP verb (ASCII letters, digits and `-`, at most 32)")]
    BadVerb(String),
    /// Not a header field name.
    #[error("`{0}` is not a header field name (printable ASCII, no space or colon)")]
    BadHeaderName(String),
    /// `!*`, which would never match.
    #[error("`!*` never matches")]
    NegatedAlways,
}

/// Parses a whole rule (see the module documentation for the grammar).
pub(super) fn rule(text: &str) -> Result<Rule, RuleError> {
    let text = text.trim();
    if text.is_empty() || text == "*" {
        return Ok(Rule::always());
    }
    let mut conditions = Vec::new();
    for (i, raw) in text.split(';').enumerate() {
        let raw = raw.trim();
        let parsed = condition(raw).map_err(|kind| RuleError {
            index: i + 1,
            condition: raw.to_owned(),
            kind,
        })?;
        conditions.extend(parsed);
    }
    Ok(Rule { conditions })
}

/// Parses one condition; `None` for `*`, which always holds.
fn condition(raw: &str) -> Result<Option<Condition>, ErrorKind> {
    let (negated, body) = match raw.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, raw),
    };
    if body.is_empty() {
        return Err(ErrorKind::EmptyCondition);
    }
    if body == "*" {
        return if negated {
            Err(ErrorKind::NegatedAlways)
        } else {
            Ok(None)
        };
    }
    let test = match body.find(['=', '<', '>']) {
        None => verb_list(body)?,
        Some(at) => {
            let key = body[..at].trim();
            let (comparison, value) = operator(&body[at..]);
            keyed(key, comparison, value.trim())?
        }
    };
    Ok(Some(Condition { negated, test }))
}

/// Splits `=…`, `<=…`, `<…`, `>=…` or `>…` into the operator and the value after it.
fn operator(text: &str) -> (Comparison, &str) {
    let (comparison, len) = if text.starts_with("<=") {
        (Comparison::Le, 2)
    } else if text.starts_with(">=") {
        (Comparison::Ge, 2)
    } else if text.starts_with('<') {
        (Comparison::Lt, 1)
    } else if text.starts_with('>') {
        (Comparison::Gt, 1)
    } else {
        (Comparison::Eq, 1)
    };
    (comparison, &text[len..])
}

/// The condition of `KEY op VALUE`.
fn keyed(key: &str, comparison: Comparison, value: &str) -> Result<Test, ErrorKind> {
    if key.is_empty() {
        return Err(ErrorKind::MissingKey);
    }
    let kind = Key::parse(key).ok_or_else(|| ErrorKind::UnknownKey(key.to_owned()))?;
    if comparison != Comparison::Eq && kind != Key::Size {
        return Err(ErrorKind::ComparisonNotAllowed(key.to_owned()));
    }
    Ok(match kind {
        Key::MailFrom => Test::MailFrom(Patterns::parse(value, true)?),
        Key::RcptTo => Test::RcptTo(Patterns::parse(value, true)?),
        Key::Helo => Test::Helo(Patterns::parse(value, false)?),
        Key::Auth => Test::Auth(Patterns::parse(value, false)?),
        Key::Reply => Test::Reply(Patterns::parse(value, false)?),
        Key::Remote => Test::Remote(value.split(',').map(network).collect::<Result<_, _>>()?),
        Key::Tls => Test::Tls(boolean(value)?),
        Key::Size => Test::Size(comparison, size(value)?),
        Key::Header => {
            let name = key[HEADER.len()..].trim();
            if !postern_mailmsg::is_header_name(name) {
                return Err(ErrorKind::BadHeaderName(name.to_owned()));
            }
            Test::Header {
                name: name.into(),
                patterns: Patterns::parse(value, false)?,
            }
        }
        Key::Verb => Test::Verb {
            verbs: verbs(value)?,
            bare: false,
        },
    })
}

const HEADER: &str = "HEADER:";

/// The keys, with their aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    MailFrom,
    RcptTo,
    Helo,
    Remote,
    Auth,
    Tls,
    Size,
    Header,
    Verb,
    Reply,
}

impl Key {
    /// Parses a key without case; words may be separated by any run of spaces.
    fn parse(key: &str) -> Option<Self> {
        if key
            .get(..HEADER.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(HEADER))
        {
            return Some(Self::Header);
        }
        let mut words = key.split_whitespace();
        let first = words.next()?;
        let second = words.next();
        if words.next().is_some() {
            return None;
        }
        let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        Some(match second {
            Some(second) if is(first, "MAIL") && is(second, "FROM") => Self::MailFrom,
            Some(second) if is(first, "RCPT") && is(second, "TO") => Self::RcptTo,
            Some(_) => return None,
            None => match first.to_ascii_uppercase().as_str() {
                "MAIL" => Self::MailFrom,
                "RCPT" => Self::RcptTo,
                "EHLO" | "HELO" => Self::Helo,
                "REMOTE" | "IP" => Self::Remote,
                "AUTH" => Self::Auth,
                "TLS" => Self::Tls,
                "SIZE" => Self::Size,
                "VERB" | "COMMAND" => Self::Verb,
                "REPLY" => Self::Reply,
                _ => return None,
            },
        })
    }
}

/// A bare list of verbs (`MAIL,RCPT`, `MAIL RCPT`).
fn verb_list(body: &str) -> Result<Test, ErrorKind> {
    // A key that is not also a standard verb (`TLS`, `MAIL FROM`, `HEADER:X`) is a forgotten `=`,
    // not a custom verb; VERB=… still reaches a custom verb of that name.
    if Key::parse(body).is_some()
        && !Verb::STANDARD
            .iter()
            .any(|verb| verb.eq_ignore_ascii_case(body))
    {
        return Err(ErrorKind::MissingPattern(body.to_owned()));
    }
    // The same for each word of a list: `IP IP` would otherwise pass as the custom verb IP and
    // print as `IP`, which is refused (found by the rule_parser fuzz target).
    if let Some(word) = body
        .split(',')
        .flat_map(str::split_whitespace)
        .find(|word| {
            Key::parse(word).is_some()
                && !Verb::STANDARD.iter().any(|v| v.eq_ignore_ascii_case(word))
        })
    {
        return Err(ErrorKind::MissingPattern(word.to_owned()));
    }
    Ok(Test::Verb {
        verbs: verbs(body)?,
        bare: true,
    })
}

/// A list of verbs separated by `,` (an empty item is an error) or spaces.
fn verbs(list: &str) -> Result<Box<[Verb]>, ErrorKind> {
    let mut out: Vec<Verb> = Vec::new();
    for item in list.split(',') {
        if item.trim().is_empty() {
            return Err(ErrorKind::EmptyPattern);
        }
        for word in item.split_whitespace() {
            let verb = Verb::parse(word).ok_or_else(|| ErrorKind::BadVerb(word.to_owned()))?;
            if !out.contains(&verb) {
                out.push(verb);
            }
        }
    }
    Ok(out.into())
}

/// A network, a single address, or `*` for every address; IPv4-mapped IPv6 becomes IPv4.
fn network(item: &str) -> Result<IpNet, ErrorKind> {
    let item = item.trim();
    if item.is_empty() {
        return Err(ErrorKind::EmptyPattern);
    }
    let net = item
        .parse::<IpNet>()
        .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ErrorKind::BadNetwork(item.to_owned()))?;
    let net = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .map_err(|_| ErrorKind::BadNetwork(item.to_owned()))?,
            None => net,
        },
        _ => net,
    };
    Ok(net.trunc())
}

/// A boolean as properties write it (`yes`, `no`, `true`, `false`, `on`, `off`, `1`, `0`).
fn boolean(value: &str) -> Result<bool, ErrorKind> {
    postern_mailmsg::parse_bool(value).ok_or_else(|| ErrorKind::BadBool(value.to_owned()))
}

/// A size, in the syntax of the configuration (`10M`, `50m`, `1024`).
fn size(value: &str) -> Result<u64, ErrorKind> {
    postern_config::parse_size(value).map_err(|_| ErrorKind::BadSize(value.to_owned()))
}
