//! The route table file: TOML `[[rule]]` tables tried in order, each with conditions (all must
//! hold) and exactly one action. Parsed once per change of the file; matching does no parsing.

use serde::Deserialize;
use toml::Spanned;

/// A parsed table.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The line of its `[[rule]]`, for logs.
    pub(crate) line: usize,
    /// `example.org` (exact) or `*.example.org` (strict subdomains), lower case.
    pub(crate) domain: Option<String>,
    /// A glob on the whole recipient address.
    pub(crate) recipient: Option<String>,
    /// A glob on the envelope sender (`""` for the null sender).
    pub(crate) sender: Option<String>,
    /// A header name and a glob on its value: holds when any field of the name matches.
    pub(crate) header: Option<(String, String)>,
    pub(crate) action: Action,
}

/// What a matching rule does with the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Set this next hop (`smtp:HOST:PORT`, `lmtp:HOST:PORT`, `lmtp:unix:PATH`).
    NextHop(String),
    /// Deliver into the local Maildir of the recipient's domain.
    Local,
    /// Remove the recipient: nothing is delivered and nothing bounces.
    Drop,
}

/// What a recipient is matched on.
pub(crate) struct Subject<'a> {
    pub(crate) recipient: &'a str,
    pub(crate) sender: &'a str,
    /// The values of a header field by name (read only when a rule asks).
    pub(crate) headers: &'a dyn Fn(&str) -> Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    domain: Option<Spanned<String>>,
    recipient: Option<Spanned<String>>,
    sender: Option<Spanned<String>>,
    header: Option<Spanned<String>>,
    smarthost: Option<Spanned<String>>,
    local: Option<Spanned<bool>>,
    drop: Option<Spanned<bool>>,
}

/// Parses the table; an error names the line (1-based) and what is wrong.
pub(crate) fn parse(text: &str) -> Result<Table, String> {
    let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| format!("line {}: ", line(s.start)));
        format!("{}{}", at.unwrap_or_default(), e.message())
    })?;
    let mut rules = Vec::new();
    for spanned in raw.rule {
        let rule_line = line(spanned.span().start);
        let r = spanned.into_inner();
        let at = |s: &Spanned<String>, why: String| format!("line {}: {why}", line(s.span().start));
        let domain = match r.domain {
            Some(d) => Some(domain_pattern(d.get_ref()).map_err(|why| at(&d, why))?),
            None => None,
        };
        let header = match r.header {
            Some(h) => match h.get_ref().split_once(':') {
                Some((name, value)) if !name.trim().is_empty() => {
                    Some((name.trim().to_owned(), value.trim().to_owned()))
                }
                _ => {
                    return Err(at(
                        &h,
                        format!("`header` must be \"Name: pattern\", not {:?}", h.get_ref()),
                    ));
                }
            },
            None => None,
        };
        let mut actions = Vec::new();
        if let Some(hop) = &r.smarthost {
            actions.push(Action::NextHop(
                next_hop(hop.get_ref()).map_err(|why| at(hop, why))?,
            ));
        }
        if r.local.as_ref().is_some_and(|b| *b.get_ref()) {
            actions.push(Action::Local);
        }
        if r.drop.as_ref().is_some_and(|b| *b.get_ref()) {
            actions.push(Action::Drop);
        }
        let action = match actions.len() {
            1 => actions.remove(0),
            0 => {
                return Err(format!(
                    "line {rule_line}: the rule has no action: give `smarthost`, `local = true` or `drop = true`"
                ));
            }
            _ => {
                return Err(format!(
                    "line {rule_line}: the rule has more than one action: give only one of `smarthost`, `local = true` and `drop = true`"
                ));
            }
        };
        rules.push(Rule {
            line: rule_line,
            domain,
            recipient: r.recipient.map(|g| g.into_inner().to_ascii_lowercase()),
            sender: r.sender.map(|g| g.into_inner().to_ascii_lowercase()),
            header,
            action,
        });
    }
    Ok(Table { rules })
}

fn domain_pattern(text: &str) -> Result<String, String> {
    let bare = text.strip_prefix("*.").unwrap_or(text);
    if bare.is_empty()
        || bare.contains('*')
        || bare
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return Err(format!(
            "invalid domain {text:?}: expected \"example.org\" or \"*.example.org\""
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// `smtp:HOST:PORT`, `HOST:PORT` (SMTP), `lmtp:HOST[:PORT]` or `lmtp:unix:PATH`, as the
/// outbound client parses it.
fn next_hop(text: &str) -> Result<String, String> {
    let invalid = |why: &str| Err(format!("invalid smarthost {text:?}: {why}"));
    if text
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return invalid("blanks are not allowed");
    }
    if let Some(path) = text.strip_prefix("lmtp:unix:") {
        return if path.is_empty() {
            invalid("`lmtp:unix:` needs the socket's path")
        } else {
            Ok(text.to_owned())
        };
    }
    let (kind, rest) = match text.split_once(':') {
        Some(("smtp" | "lmtp", rest)) => (&text[..4], rest),
        _ => ("smtp", text),
    };
    let port_ok = match rest.rsplit_once(':') {
        Some((_, port)) if !rest.ends_with(']') => port.parse::<u16>().is_ok_and(|p| p > 0),
        _ => true,
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    if rest.is_empty() || host.is_empty() || !port_ok {
        return invalid("expected smtp:HOST:PORT, lmtp:HOST:PORT or lmtp:unix:PATH");
    }
    Ok(format!("{kind}:{rest}"))
}

impl Table {
    /// The action of the first rule that matches, with that rule's line.
    pub(crate) fn route(&self, subject: &Subject<'_>) -> Option<(&Action, usize)> {
        let recipient = subject.recipient.to_ascii_lowercase();
        let domain = recipient.rsplit_once('@').map_or("", |(_, d)| d);
        let sender = subject.sender.to_ascii_lowercase();
        self.rules
            .iter()
            .find(|rule| {
                rule.domain
                    .as_deref()
                    .is_none_or(|pattern| domain_matches(pattern, domain))
                    && rule
                        .recipient
                        .as_deref()
                        .is_none_or(|g| glob(g, &recipient))
                    && rule.sender.as_deref().is_none_or(|g| glob(g, &sender))
                    && rule.header.as_ref().is_none_or(|(name, g)| {
                        (subject.headers)(name)
                            .iter()
                            .any(|v| glob(&g.to_ascii_lowercase(), &v.to_ascii_lowercase()))
                    })
            })
            .map(|rule| (&rule.action, rule.line))
    }
}

fn domain_matches(pattern: &str, domain: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => domain
            .strip_suffix(parent)
            .is_some_and(|child| child.len() > 1 && child.ends_with('.')),
        None => pattern == domain,
    }
}

/// `*` (any run, empty too) and `?` (one character); everything else literal. Both sides are
/// already lower case.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
# Partners' mail goes through their own relay.
[[rule]]
domain = "*.partner.test"
smarthost = "smtp:127.0.0.1:2525"

[[rule]]
header = "X-Route: archive*"
smarthost = "lmtp:unix:lmtp.sock"

[[rule]]
recipient = "noreply@*"
drop = true

[[rule]]
domain = "example.org"
sender = "*@localhost"
local = true
"#;

    fn route(table: &Table, rcpt: &str, sender: &str, route: &str) -> Option<usize> {
        let headers = |name: &str| {
            if name.eq_ignore_ascii_case("x-route") && !route.is_empty() {
                vec![route.to_owned()]
            } else {
                Vec::new()
            }
        };
        let subject = Subject {
            recipient: rcpt,
            sender,
            headers: &headers,
        };
        table.route(&subject).map(|(_, line)| line)
    }

    #[test]
    fn rules_match_in_order() {
        let table = parse(TABLE).unwrap();
        let cases: &[(&str, &str, &str, &str, Option<usize>)] = &[
            ("subdomain", "a@eu.partner.test", "x@y", "", Some(3)),
            ("not the parent itself", "a@partner.test", "x@y", "", None),
            (
                "header glob",
                "a@other.test",
                "x@y",
                "Archive-2026",
                Some(7),
            ),
            (
                "first rule wins",
                "a@eu.partner.test",
                "x@y",
                "archive",
                Some(3),
            ),
            ("recipient glob", "NoReply@any.test", "x@y", "", Some(11)),
            (
                "domain and sender",
                "bob@example.org",
                "alice@localhost",
                "",
                Some(15),
            ),
            (
                "sender does not match",
                "bob@example.org",
                "a@remote",
                "",
                None,
            ),
        ];
        for (name, rcpt, sender, header, want) in cases {
            assert_eq!(route(&table, rcpt, sender, header), *want, "{name}");
        }
        assert_eq!(
            table.rules[0].action,
            Action::NextHop("smtp:127.0.0.1:2525".into())
        );
        assert_eq!(table.rules[2].action, Action::Drop);
        assert_eq!(table.rules[3].action, Action::Local);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, &str, &str)] = &[
            ("toml syntax", "[[rule]]\ndomain = \n", "line 2"),
            (
                "no action",
                "\n[[rule]]\ndomain = \"a.test\"\n",
                "line 2: the rule has no action",
            ),
            (
                "two actions",
                "[[rule]]\nlocal = true\ndrop = true\n",
                "line 1: the rule has more than one action",
            ),
            (
                "bad hop",
                "[[rule]]\n\nsmarthost = \"smtp:h:0\"\n",
                "line 3: invalid smarthost",
            ),
            (
                "bad domain",
                "[[rule]]\ndomain = \"a b\"\ndrop = true\n",
                "line 2: invalid domain",
            ),
            (
                "bad header",
                "[[rule]]\nheader = \"novalue\"\ndrop = true\n",
                "line 2: `header`",
            ),
            (
                "unknown key",
                "[[rule]]\ndomian = \"a.test\"\ndrop = true\n",
                "line 2",
            ),
        ];
        for (name, text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(want), "{name}: {err}");
        }
    }

    #[test]
    fn next_hops() {
        let cases: &[(&str, Option<&str>)] = &[
            ("smtp:relay.test:2525", Some("smtp:relay.test:2525")),
            ("relay.test:2525", Some("smtp:relay.test:2525")),
            ("lmtp:127.0.0.1:24", Some("lmtp:127.0.0.1:24")),
            ("lmtp:unix:run/lmtp.sock", Some("lmtp:unix:run/lmtp.sock")),
            ("smtp:[::1]:25", Some("smtp:[::1]:25")),
            ("lmtp:unix:", None),
            ("smtp:", None),
            ("smtp:relay:x", None),
            ("relay test", None),
        ];
        for (text, want) in cases {
            assert_eq!(next_hop(text).ok().as_deref(), *want, "{text}");
        }
    }

    #[test]
    fn globs() {
        for (pattern, text, want) in [
            ("*", "", true),
            ("a*c", "abbc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*@example.org", "bob@example.org", true),
            ("*@example.org", "bob@example.org.evil", false),
            ("a*b*c", "axbyc", true),
        ] {
            assert_eq!(glob(pattern, text), want, "{pattern} {text}");
        }
    }
}
