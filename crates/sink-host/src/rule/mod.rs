//! Binding rules: when a sink fires.
//!
//! The original's protocol rules (`MAIL FROM=*@example.com;RCPT TO=*@example.org`, a bare verb
//! list for inbound bindings), extended with negation and conditions on the remote address,
//! authentication, TLS, size and headers. A rule is parsed once, when the registry loads, and a
//! bad rule is an error then, never a silent no-match later.
//!
//! # Grammar
//! ```text
//! rule       = "" / "*" / condition *( ";" condition )     ; every condition must hold
//! condition  = [ "!" ] ( keyed / verb-list / "*" )          ; "!" negates
//! keyed      = key "=" patterns / "SIZE" cmp size
//! key        = "MAIL FROM" / "MAIL" / "RCPT TO" / "RCPT" / "EHLO" / "HELO" / "REMOTE" / "IP"
//!            / "AUTH" / "TLS" / "HEADER:" field-name / "VERB" / "COMMAND" / "REPLY"
//! patterns   = pattern *( "," pattern )                     ; holds when any pattern matches
//! cmp        = "=" / "<" / ">" / "<=" / ">="
//! size       = 1*DIGIT [ "k" / "M" / "G" ]                  ; 1024-based, any case
//! verb-list  = verb *( ( "," / SP ) verb )                  ; no "=" anywhere
//! ```
//! Keys are case-insensitive, whitespace around conditions, keys, operators and items is
//! ignored. What each key looks at:
//!
//! | key | subject | patterns |
//! |---|---|---|
//! | `MAIL FROM` | the reverse-path: the path of the MAIL command at an inbound MAIL, else the message's sender | address |
//! | `RCPT TO` | any recipient of the message, plus the path of the RCPT command at an inbound RCPT; only the current recipient at a per-recipient event | address |
//! | `EHLO`, `HELO` | the argument of the EHLO/HELO command at an inbound EHLO/HELO, else the session's (or the message's) HELO name | text |
//! | `REMOTE`, `IP` | the client's address (the session's, else the message's) | CIDR or address |
//! | `AUTH` | the authenticated user (`AUTH=*`: authenticated at all) | text |
//! | `TLS` | whether the session (else the message) was encrypted | `yes`/`no`/`true`/`false` |
//! | `SIZE` | the content length, else the size declared with MAIL SIZE= | a size |
//! | `HEADER:Name` | every field of that name in the content | text |
//! | `VERB`, `COMMAND`, a bare list | the verb of the inbound command (of an outbound event: the command sent) | verbs |
//! | `REPLY` | the reply about to be sent, or at `response` the remote's reply, as `CODE X.Y.Z text` (first line; no enhanced code when it has none) | text |
//!
//! A pattern is compared with its whole subject, ignoring ASCII case; `*` stands for any run of
//! characters, the empty run included (there is no `?`). So `*` matches anything, `*x` ends
//! with x, `x*` starts with x, `*x*` contains x and `a*b` starts with a and ends with b.
//! `*@example.com` matches any address at example.com; `*example.com` also matches addresses at
//! its subdomains (and at `otherexample.com`), as in the original. In address conditions `<>` is
//! the null reverse-path (only the empty address matches it) and `<a@b>` is the same as `a@b`.
//! A comma or a semicolon cannot be part of a pattern.
//!
//! A condition whose subject is not known (no sender before MAIL, no content before the end of
//! DATA, no size, no client address, no authenticated user) does not hold, so its negation does.
//! A word that is a key but not a standard verb (`TLS`, `MAIL FROM`) without `=` is an error
//! rather than a verb list; `VERB=…` still names a custom verb of that name.
//!
//! # Design
//! Patterns are lower-cased when parsed and compared in place, so evaluating a rule allocates
//! nothing, except a `HEADER:` condition, which parses the header section of the content; header
//! conditions are therefore evaluated after all the others, and only if those hold.

mod parse;
mod pattern;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use postern_sink_api::{Context, Event, Verb};

pub use parse::{ErrorKind, RuleError};
use pattern::Patterns;

/// A parsed binding rule. `Display` prints it normalized: canonical key names, lower-case
/// patterns, no spaces; the printed text parses to an equal rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// All must hold; empty for a rule that always matches.
    conditions: Vec<Condition>,
}

impl Rule {
    /// Parses a rule; see the module documentation for the grammar.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        parse::rule(text)
    }

    /// The rule that always matches (an empty rule or `*`).
    pub fn always() -> Rule {
        Rule::default()
    }

    /// Whether the rule always matches.
    pub fn is_always(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Whether every condition holds for this event. Allocates nothing unless the rule has a
    /// `HEADER:` condition, and then only once the other conditions hold.
    pub fn matches(&self, ctx: &Context) -> bool {
        self.conditions
            .iter()
            .filter(|c| !c.is_costly())
            .all(|c| c.holds(ctx))
            && self
                .conditions
                .iter()
                .filter(|c| c.is_costly())
                .all(|c| c.holds(ctx))
    }

    /// The verbs the rule is restricted to by its positive verb conditions (bare verb lists and
    /// `VERB=`), in the order first given; `None` when it fires for any verb. Several verb
    /// conditions restrict to the verbs they have in common, which may be none.
    pub fn verbs(&self) -> Option<Vec<Verb>> {
        let mut allowed: Option<Vec<Verb>> = None;
        for condition in self.conditions.iter().filter(|c| !c.negated) {
            if let Test::Verb { verbs, .. } = &condition.test {
                allowed = Some(match allowed {
                    None => verbs.to_vec(),
                    Some(before) => before.into_iter().filter(|v| verbs.contains(v)).collect(),
                });
            }
        }
        allowed
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Rule::parse(text)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conditions.is_empty() {
            return f.write_str("*");
        }
        for (i, condition) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{condition}")?;
        }
        Ok(())
    }
}

/// One condition, possibly negated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    negated: bool,
    test: Test,
}

impl Condition {
    fn holds(&self, ctx: &Context) -> bool {
        self.test.holds(ctx) != self.negated
    }

    /// Whether evaluating it parses the content (and allocates).
    fn is_costly(&self) -> bool {
        matches!(self.test, Test::Header { .. })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("!")?;
        }
        match &self.test {
            Test::MailFrom(p) => write!(f, "MAIL FROM={p}"),
            Test::RcptTo(p) => write!(f, "RCPT TO={p}"),
            Test::Helo(p) => write!(f, "EHLO={p}"),
            Test::Auth(p) => write!(f, "AUTH={p}"),
            Test::Remote(nets) => {
                f.write_str("REMOTE=")?;
                for (i, net) in nets.iter().enumerate() {
                    let sep = if i > 0 { "," } else { "" };
                    if net.prefix_len() == net.max_prefix_len() {
                        write!(f, "{sep}{}", net.addr())?;
                    } else {
                        write!(f, "{sep}{net}")?;
                    }
                }
                Ok(())
            }
            Test::Tls(yes) => write!(f, "TLS={}", if *yes { "yes" } else { "no" }),
            Test::Size(cmp, size) => write!(f, "SIZE{}{}", cmp.symbol(), Size(*size)),
            Test::Header { name, patterns } => write!(f, "HEADER:{name}={patterns}"),
            Test::Reply(p) => write!(f, "REPLY={p}"),
            Test::Verb { verbs, bare } => {
                if !bare {
                    f.write_str("VERB=")?;
                }
                for (i, verb) in verbs.iter().enumerate() {
                    write!(f, "{}{verb}", if i > 0 { "," } else { "" })?;
                }
                Ok(())
            }
        }
    }
}

/// What a condition tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    MailFrom(Patterns),
    RcptTo(Patterns),
    Helo(Patterns),
    Remote(Box<[IpNet]>),
    Auth(Patterns),
    Tls(bool),
    Size(Comparison, u64),
    Reply(Patterns),
    Header {
        name: Box<str>,
        patterns: Patterns,
    },
    Verb {
        verbs: Box<[Verb]>,
        /// Written as a bare list rather than `VERB=` (kept so it prints the way it was written).
        bare: bool,
    },
}

impl Test {
    fn holds(&self, ctx: &Context) -> bool {
        let message = &ctx.message;
        match self {
            Self::MailFrom(patterns) => mail_from(ctx).is_some_and(|a| patterns.matches(a)),
            Self::RcptTo(patterns) => {
                if ctx.recipient.is_some() {
                    return ctx
                        .current_recipient()
                        .is_some_and(|r| patterns.matches(&r.address));
                }
                command_path(ctx, "RCPT").is_some_and(|a| patterns.matches(a))
                    || message
                        .recipients
                        .iter()
                        .any(|r| patterns.matches(&r.address))
            }
            Self::Helo(patterns) => helo(ctx).is_some_and(|h| patterns.matches(h)),
            Self::Remote(nets) => {
                let ip = ctx.session.as_ref().map(|s| s.remote.ip());
                ip.or(message.info.remote_ip)
                    .map(|ip: IpAddr| ip.to_canonical())
                    .is_some_and(|ip| nets.iter().any(|net| net.contains(&ip)))
            }
            Self::Auth(patterns) => ctx
                .session
                .as_ref()
                .and_then(|s| s.auth_user.as_deref())
                .or(message.info.auth_user.as_deref())
                .is_some_and(|user| patterns.matches(user)),
            Self::Tls(want) => {
                let tls = ctx
                    .session
                    .as_ref()
                    .map_or(message.info.tls.is_some(), |s| s.tls);
                tls == *want
            }
            Self::Size(cmp, limit) => {
                let size = if message.content.is_empty() {
                    message.sender.as_ref().and_then(|s| s.params.size)
                } else {
                    u64::try_from(message.content.len()).ok()
                };
                size.is_some_and(|size| cmp.holds(size, *limit))
            }
            Self::Reply(patterns) => ctx.reply.as_ref().is_some_and(|reply| {
                let first = reply.lines.first().map_or("", String::as_str);
                let subject = match reply.enhanced {
                    Some(e) => format!("{} {e} {first}", reply.code),
                    None => format!("{} {first}", reply.code),
                };
                patterns.matches(subject.trim_end())
            }),
            Self::Header { name, patterns } => {
                !message.content.is_empty()
                    && message
                        .content
                        .header_values(name)
                        .iter()
                        .any(|v| patterns.matches(v))
            }
            Self::Verb { verbs, .. } => {
                verb(ctx).is_some_and(|v| verbs.iter().any(|w| w.as_str() == v))
            }
        }
    }
}

/// The verb of the inbound command (or of the event, when the context carries no command).
fn verb(ctx: &Context) -> Option<&str> {
    match (&ctx.command, &ctx.event) {
        (Some(command), _) => Some(command.verb.as_str()),
        (None, Event::Inbound(Some(verb))) => Some(verb.as_str()),
        (None, _) => None,
    }
}

/// The path of the inbound command when it is `verb`.
fn command_path<'a>(ctx: &'a Context, verb: &str) -> Option<&'a str> {
    ctx.command
        .as_deref()
        .filter(|c| c.verb.as_str() == verb)
        .and_then(|c| c.path())
}

/// The reverse-path: the MAIL command's while it is being received, then the message's.
fn mail_from(ctx: &Context) -> Option<&str> {
    command_path(ctx, "MAIL").or_else(|| ctx.message.sender.as_ref().map(|s| s.address.as_str()))
}

/// The EHLO/HELO name: the command's argument while it is being received, then the session's,
/// then the one recorded with the message.
fn helo(ctx: &Context) -> Option<&str> {
    if let Some(command) = ctx.command.as_deref()
        && matches!(command.verb.as_str(), "EHLO" | "HELO")
    {
        return command.args.split_whitespace().next();
    }
    match ctx.session.as_deref() {
        Some(session) => session.helo.as_deref(),
        None => Some(ctx.message.info.helo.as_str()).filter(|h| !h.is_empty()),
    }
}

/// How a SIZE condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    fn holds(self, size: u64, limit: u64) -> bool {
        match self {
            Self::Eq => size == limit,
            Self::Lt => size < limit,
            Self::Le => size <= limit,
            Self::Gt => size > limit,
            Self::Ge => size >= limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// A size printed with the largest unit that divides it.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, factor) in [("G", 1u64 << 30), ("M", 1 << 20), ("k", 1 << 10)] {
            if n != 0 && n.is_multiple_of(factor) {
                return write!(f, "{}{unit}", n / factor);
            }
        }
        write!(f, "{n}")
    }
}
