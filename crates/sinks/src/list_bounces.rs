//! Bounces to a list's bounce address (`LIST-bounces@DOMAIN`), counted per member in a state
//! file beside the lists file (`lists.state.toml` for `lists.toml`); a member whose count
//! reaches the list's `bounce_threshold` is removed. The state is written atomically (a
//! temporary file synced, then renamed over the old one, and the folder synced).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

/// What the bounces did to one list.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListState {
    /// Failed deliveries reported so far, per member.
    #[serde(default)]
    pub(crate) bounces: BTreeMap<String, u32>,
    /// Members removed: for bouncing, or by a confirmed unsubscription by mail.
    #[serde(default)]
    pub(crate) removed: BTreeSet<String>,
    /// Members added by a confirmed subscription by mail.
    #[serde(default)]
    pub(crate) subscribed: BTreeSet<String>,
    /// Subscription requests waiting for their confirmation, by token.
    #[serde(default)]
    pub(crate) pending: crate::list_subscribe::PendingMap,
    /// Queue ids of posts held for moderation, which an owner may approve by mail.
    #[serde(default)]
    pub(crate) held: BTreeSet<String>,
}

/// Every list's state, by list address (lower-case).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(default)]
    pub(crate) lists: BTreeMap<String, ListState>,
}

/// The state file beside `lists`: `lists.toml` → `lists.state.toml`.
pub(crate) fn state_path(lists: &Path) -> PathBuf {
    let stem = lists
        .file_stem()
        .map_or_else(|| "lists".into(), |s| s.to_string_lossy().into_owned());
    lists.with_file_name(format!("{stem}.state.toml"))
}

impl State {
    /// The state on disk; none yet is an empty state.
    pub(crate) fn load(path: &Path) -> Result<State, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the state atomically: a crash leaves the old file or the new one, never half.
    pub(crate) fn save(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("toml.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The VERP form of a bounce address for `member`: `team-bounces@example.org` and
/// `carol@example.net` give `team-bounces+carol=example.net@example.org`.
pub(crate) fn verp_address(bounces: &str, member: &str) -> String {
    let (local, domain) = bounces.split_once('@').unwrap_or((bounces, ""));
    format!("{local}+{}@{domain}", member.replacen('@', "=", 1))
}

/// The member a VERP address of `bounces` names (lower-case), if it is one.
pub(crate) fn verp_member(bounces: &str, address: &str) -> Option<String> {
    let (local, domain) = bounces.split_once('@')?;
    let (a_local, a_domain) = address.rsplit_once('@')?;
    if !a_domain.eq_ignore_ascii_case(domain) {
        return None;
    }
    let tag = a_local
        .get(..local.len())
        .filter(|l| l.eq_ignore_ascii_case(local))
        .and_then(|_| a_local.get(local.len()..))?
        .strip_prefix('+')?;
    let (m_local, m_domain) = tag.rsplit_once('=')?;
    (!m_local.is_empty() && !m_domain.is_empty())
        .then(|| format!("{m_local}@{m_domain}").to_ascii_lowercase())
}

/// The recipients a DSN (RFC 3464) reports as failed (`Action: failed`), lower-case; empty when
/// the message is no delivery report.
pub(crate) fn failed_recipients(raw: &[u8]) -> Vec<String> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut failed = Vec::new();
    for part in &message.parts {
        let is_status = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        });
        if !is_status {
            continue;
        }
        let text = String::from_utf8_lossy(part.contents());
        // Per-recipient groups are separated by blank lines (RFC 3464 §2.1).
        for group in text.replace("\r\n", "\n").split("\n\n") {
            let field = |name: &str| {
                group.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_owned())
                })
            };
            let action = field("Action").unwrap_or_default();
            let Some(recipient) = field("Final-Recipient") else {
                continue;
            };
            if action.eq_ignore_ascii_case("failed") {
                let address = recipient
                    .split_once(';')
                    .map_or(recipient.as_str(), |(_, a)| a)
                    .trim()
                    .to_ascii_lowercase();
                failed.push(address);
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_names_its_failed_recipients() {
        let dsn = "From: MAILER-DAEMON@mx.test\r\nTo: team-bounces@example.org\r\n\
            Subject: failure\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
            --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n\
            Final-Recipient: rfc822; Carol@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
            Final-Recipient: rfc822; dave@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n\
            --b--\r\n";
        assert_eq!(failed_recipients(dsn.as_bytes()), ["carol@example.org"]);
        assert!(failed_recipients(b"Subject: hi\r\n\r\nnot a report\r\n").is_empty());
        let verp = verp_address("team-bounces@example.org", "Carol@example.net");
        assert_eq!(verp, "team-bounces+Carol=example.net@example.org");
        assert_eq!(
            verp_member("team-bounces@example.org", &verp).as_deref(),
            Some("carol@example.net")
        );
        assert_eq!(
            verp_member("team-bounces@example.org", "team-bouncesx+a=b@example.org"),
            None
        );
        assert_eq!(
            state_path(Path::new("data/lists.toml")),
            Path::new("data/lists.state.toml")
        );
    }
}
