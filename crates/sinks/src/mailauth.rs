//! What the mail authentication sinks share: the `mail-auth` authenticator on the `[dns] servers`
//! resolver, the one `Authentication-Results:` field they all write, the policy a result maps
//! to, signing keys, and turning `mail-auth`'s folded header text into fields.
//!
//! One field for all results: each sink appends its result (RFC 8601 `resinfo`, such as
//! `dkim=pass header.d=example.org`) to the message property [`RESULTS`] and rewrites the field
//! from it, so the last sink that ran leaves the field with every result. The SPF results, found
//! at `inbound:MAIL` before there is a message, wait in the session's bag ([`SPF_MAILFROM`] and
//! friends) and are copied in by the first sink that writes the field.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::{MessageAuthenticator, SpfOutput, SpfResult};
use postern_mailmsg::{Fate, Value};
use postern_sink_api::{Change, Context, Outcome, Reply, Scope, SinkError, Verdict};

use crate::props;

/// The header field every sink writes, once per message.
pub(crate) const FIELD: &str = "Authentication-Results";
/// Message property: the results so far, `resinfo` joined by `; `.
pub(crate) const RESULTS: &str = "mailauth.results";
/// Session properties left by `builtin:spf` at `inbound:MAIL`, for the sinks of end-of-data.
pub(crate) const SPF_SENDER: &str = "spf.sender";
pub(crate) const SPF_MAILFROM: &str = "spf.mailfrom";
pub(crate) const SPF_HELO: &str = "spf.helo";
pub(crate) const SPF_DOMAIN: &str = "spf.domain";

/// What the sinks need of the server: its name and the resolver's servers. Made once from the
/// configuration; the authenticator is built on first use, so a command that only checks
/// bindings never opens a socket.
pub struct Env {
    /// The server's name: the `authserv-id` of the `Authentication-Results:` field.
    pub hostname: String,
    /// The name servers of `[dns] servers`; empty means the system's configuration.
    pub dns_servers: Vec<SocketAddr>,
    authenticator: OnceLock<Result<MessageAuthenticator, String>>,
}

impl Env {
    /// The environment of a server called `hostname` that resolves through `dns_servers`.
    pub fn new(hostname: impl Into<String>, dns_servers: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            hostname: hostname.into(),
            dns_servers,
            authenticator: OnceLock::new(),
        })
    }

    /// The shared authenticator (its resolver caches answers for every sink).
    pub(crate) fn authenticator(&self) -> Result<&MessageAuthenticator, SinkError> {
        self.authenticator
            .get_or_init(|| build_authenticator(&self.dns_servers))
            .as_ref()
            .map_err(|why| SinkError::Failed(format!("DNS resolver: {why}")))
    }
}

fn build_authenticator(servers: &[SocketAddr]) -> Result<MessageAuthenticator, String> {
    let mut options = ResolverOpts::default();
    options.timeout = Duration::from_secs(5);
    options.attempts = 2;
    // Mail domains are absolute names; a search list would only add wrong answers.
    options.ndots = 0;
    if servers.is_empty() {
        let (config, _) = mail_auth::hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| e.to_string())?;
        return MessageAuthenticator::new(config, options).map_err(|e| e.to_string());
    }
    let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
    for server in servers {
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        for connection in &mut ns.connections {
            connection.port = server.port();
        }
        config.add_name_server(ns);
    }
    MessageAuthenticator::new(config, options).map_err(|e| e.to_string())
}

/// What a sink does with a result its policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Accept,
    Reject,
    TempFail,
    Quarantine,
}

impl Action {
    /// Reads a policy property (`accept`, `reject`, `tempfail`, `quarantine`), default accept.
    pub(crate) fn read(
        p: &postern_mailmsg::Properties,
        key: &str,
        quarantine: bool,
    ) -> Result<Self, SinkError> {
        let Some(text) = props::text(p, key)? else {
            return Ok(Self::Accept);
        };
        match text.as_ref() {
            "accept" => Ok(Self::Accept),
            "reject" => Ok(Self::Reject),
            "tempfail" => Ok(Self::TempFail),
            "quarantine" if quarantine => Ok(Self::Quarantine),
            other => Err(SinkError::Config(format!(
                "property `{key}`: {other:?} (accept, reject, tempfail{})",
                if quarantine { ", quarantine" } else { "" }
            ))),
        }
    }

    /// Applies the action to `outcome`: a refusal with `reject`/`tempfail` (the texts given),
    /// or the quarantine fate.
    pub(crate) fn apply(self, outcome: Outcome, reject: Reply, tempfail: Reply) -> Outcome {
        match self {
            Self::Accept => outcome,
            Self::Reject => outcome.with_verdict(Verdict::Reply(reject)),
            Self::TempFail => outcome.with_verdict(Verdict::Reply(tempfail)),
            Self::Quarantine => {
                let mut outcome = outcome;
                outcome.changes.push(Change::SetFate(Fate::Quarantine));
                outcome
            }
        }
    }
}

/// The changes that add `resinfo` (none: only copy the SPF results in) to the one field.
///
/// The field goes on top, where RFC 8601 §4 puts it. Fields of other `authserv-id`s are kept,
/// in their order, just below it; one that claims this server's name did not come from it and
/// is dropped (RFC 8601 §5).
pub(crate) fn record(ctx: &Context, env: &Env, resinfo: &[String]) -> Vec<Change> {
    let msg = &ctx.message;
    let mut results: Vec<String> = match msg.properties.get_str(RESULTS) {
        Some(text) if !text.is_empty() => text.split("; ").map(str::to_owned).collect(),
        Some(_) => Vec::new(),
        None => spf_resinfo(ctx),
    };
    results.extend(resinfo.iter().cloned());
    let joined = results.join("; ");
    let mut changes = vec![
        Change::SetProperty {
            scope: Scope::Message,
            key: RESULTS.into(),
            value: Value::from(joined.as_str()),
        },
        Change::RemoveHeader(FIELD.into()),
    ];
    let foreign: Vec<String> = msg
        .content
        .header_values(FIELD)
        .into_iter()
        .map(|v| unfold(&v))
        .filter(|v| authserv_id(v) != Some(env.hostname.as_str()))
        .collect();
    for value in foreign.into_iter().rev() {
        changes.push(Change::PrependHeader {
            name: FIELD.into(),
            value,
        });
    }
    let value = if joined.is_empty() {
        format!("{}; none", env.hostname)
    } else {
        format!("{}; {joined}", env.hostname)
    };
    changes.push(Change::PrependHeader {
        name: FIELD.into(),
        value,
    });
    changes
}

/// The `authserv-id` of a field's value: what comes before the first `;`, without a version.
fn authserv_id(value: &str) -> Option<&str> {
    let id = value.split(';').next()?.split_whitespace().next()?;
    Some(id)
}

/// The session's SPF results for this message's sender, as `resinfo`.
fn spf_resinfo(ctx: &Context) -> Vec<String> {
    let Some(stored) = stored_spf(ctx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(helo) = stored.helo {
        out.push(format!(
            "spf={helo} smtp.helo={}",
            pvalue(ctx.message.info.helo.as_str())
        ));
    }
    let sender = ctx.message.sender_address();
    let from = if sender.is_empty() {
        "<>".to_owned()
    } else {
        pvalue(sender)
    };
    out.push(format!("spf={} smtp.mailfrom={from}", stored.mailfrom));
    out
}

/// The SPF results `builtin:spf` left in the session for the current sender.
pub(crate) struct StoredSpf {
    pub(crate) mailfrom: String,
    pub(crate) helo: Option<String>,
    pub(crate) domain: String,
}

pub(crate) fn stored_spf(ctx: &Context) -> Option<StoredSpf> {
    let bag = ctx.session_props.as_ref()?;
    let sender = bag.get(SPF_SENDER)?;
    if sender.as_str() != Some(ctx.message.sender_address()) {
        return None;
    }
    let text = |key: &str| bag.get(key).and_then(|v| v.as_str().map(str::to_owned));
    Some(StoredSpf {
        mailfrom: text(SPF_MAILFROM)?,
        helo: text(SPF_HELO),
        domain: text(SPF_DOMAIN).unwrap_or_default(),
    })
}

/// The SPF result of the MAIL FROM identity as `mail-auth` needs it for DMARC and ARC.
pub(crate) fn spf_output(stored: &StoredSpf) -> SpfOutput {
    SpfOutput::new(stored.domain.clone()).with_result(spf_parse(&stored.mailfrom))
}

/// An SPF result by its RFC 8601 name.
pub(crate) fn spf_name(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

pub(crate) fn spf_parse(name: &str) -> SpfResult {
    match name {
        "pass" => SpfResult::Pass,
        "fail" => SpfResult::Fail,
        "softfail" => SpfResult::SoftFail,
        "neutral" => SpfResult::Neutral,
        "temperror" => SpfResult::TempError,
        "permerror" => SpfResult::PermError,
        _ => SpfResult::None,
    }
}

/// An RFC 8601 `pvalue`: quoted when it holds characters a token may not.
pub(crate) fn pvalue(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>,;:\\\"[]?=".contains(&b) || b == b'@');
    if plain {
        value.to_owned()
    } else {
        let escaped: String = value
            .chars()
            .filter(|c| !c.is_control())
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    }
}

/// The `resinfo` parts of a field `mail-auth` built (`host;\r\n\tdkim=pass …`), one a string.
pub(crate) fn resinfo_of(field_value: &str) -> Vec<String> {
    unfold(field_value)
        .split("; ")
        .skip(1)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One line from a folded value: each line break with its indentation becomes one space, which
/// relaxed header canonicalization (RFC 6376 §3.4.2) treats as the folded text, so a signature
/// over the folded field still holds over the unfolded one.
pub(crate) fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut lines = value.split("\r\n").flat_map(|l| l.split('\n'));
    if let Some(first) = lines.next() {
        out.push_str(first.trim_end());
    }
    for line in lines {
        let line = line.trim();
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
    }
    out
}

/// Splits header text (`Name: value\r\n\tmore\r\nOther: …`) into one-line fields.
pub(crate) fn fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// A signing key read from a PEM file: RSA (PKCS #1 or PKCS #8) or Ed25519 (PKCS #8).
pub(crate) enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl Key {
    pub(crate) fn load(path: &str) -> Result<Self, SinkError> {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject;
        let bad = |why: String| SinkError::Config(format!("property `key`: {path}: {why}"));
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
        if let PrivateKeyDer::Pkcs8(pkcs8) = &der
            && let Ok(key) = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
        {
            return Ok(Self::Ed25519(key));
        }
        RsaKey::<Sha256>::from_key_der(der)
            .map(Self::Rsa)
            .map_err(|e| bad(format!("neither an RSA nor an Ed25519 private key ({e})")))
    }
}

/// The header names to sign from a `headers` property (`From:To:Subject` or `From, To`).
pub(crate) fn header_list(
    p: &postern_mailmsg::Properties,
    default: &[&str],
) -> Result<Vec<String>, SinkError> {
    let Some(text) = props::text(p, "headers")? else {
        return Ok(default.iter().map(|s| (*s).to_owned()).collect());
    };
    let names: Vec<String> = text
        .split([':', ',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(SinkError::Config(
            "property `headers` names no field".into(),
        ));
    }
    if let Some(bad) = names.iter().find(|n| !postern_mailmsg::is_header_name(n)) {
        return Err(SinkError::Config(format!(
            "property `headers`: {bad:?} is not a field name"
        )));
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case("From")) {
        return Err(SinkError::Config(
            "property `headers` must include From (RFC 6376 §5.4)".into(),
        ));
    }
    Ok(names)
}

/// The domain of the `From:` field, for DMARC and the results of DKIM.
pub(crate) fn header_from(message: &mail_auth::AuthenticatedMessage<'_>) -> String {
    message.from.first().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_come_apart_one_line_each() {
        let text = "ARC-Seal: i=1; a=rsa-sha256;\r\n\tb=abc\r\n\tdef\r\nARC-Message-Signature: i=1;\r\n d=x\r\n";
        assert_eq!(
            fields(text),
            vec![
                ("ARC-Seal".into(), "i=1; a=rsa-sha256; b=abc def".into()),
                ("ARC-Message-Signature".into(), "i=1; d=x".into()),
            ]
        );
    }

    #[test]
    fn resinfo_is_what_follows_the_authserv_id() {
        assert_eq!(
            resinfo_of("mx.test;\r\n\tdkim=pass header.d=a.test;\r\n\tarc=none"),
            vec!["dkim=pass header.d=a.test", "arc=none"]
        );
        assert_eq!(authserv_id("mx.test 1; spf=pass"), Some("mx.test"));
    }

    #[test]
    fn pvalues_are_quoted_only_when_needed() {
        assert_eq!(pvalue("a@b.test"), "a@b.test");
        assert_eq!(pvalue("a b"), "\"a b\"");
    }
}
