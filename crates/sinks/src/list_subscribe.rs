//! Subscribing and unsubscribing by mail, with a confirmation round trip: a message to
//! `LIST-subscribe@DOMAIN` or `LIST-unsubscribe@DOMAIN` becomes the confirmation, mailed back to
//! its sender with a token; a message to `LIST-confirm+TOKEN@DOMAIN` (a reply to the
//! confirmation goes there) carries the change out in the state file.
//!
//! Sinks cannot send mail, and need not here: the request itself is turned into the
//! confirmation (recipients replaced by the requester, the body and header fields rewritten),
//! so it takes the pipeline like any message, is as durable as the request was, and needs no
//! second queue entry. It goes from the null sender, so a confirmation that cannot be delivered
//! goes to badmail instead of bouncing back into the list (never a loop), and it carries
//! `Auto-Submitted: auto-replied` (RFC 3834) so that autoresponders leave it alone.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use postern_sink_api::Change;
use serde::{Deserialize, Serialize};

/// How long a token stays good.
const TOKEN_LIFETIME_SECS: u64 = 3 * 24 * 3600;

/// What a token confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    Subscribe,
    Unsubscribe,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Unsubscribe => "unsubscribe",
        }
    }
}

/// A request waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) address: String,
    pub(crate) action: Action,
    /// Unix seconds after which the token is refused.
    pub(crate) expires: u64,
}

/// The requests of one list waiting for confirmation, by token.
pub(crate) type PendingMap = BTreeMap<String, Pending>;

/// What an address of the list's domain is to the subscription service.
pub(crate) enum Request {
    Ask(Action),
    Confirm(String),
    /// `LIST-request@`: an owner's commands (`approve QUEUEID`).
    Owner,
}

/// `LIST-subscribe@`, `LIST-unsubscribe@` or `LIST-confirm+TOKEN@` of `list`, if `address` is one
/// (compared as RCPT gave it: sub-addressing may have cut the token off since).
pub(crate) fn request_for(list: &str, address: &str) -> Option<Request> {
    let (local, domain) = list.split_once('@')?;
    let (a_local, a_domain) = address.rsplit_once('@')?;
    if !a_domain.eq_ignore_ascii_case(domain) {
        return None;
    }
    let a_local = a_local.to_ascii_lowercase();
    let rest = a_local.strip_prefix(&local.to_ascii_lowercase())?;
    match rest {
        "-subscribe" => Some(Request::Ask(Action::Subscribe)),
        "-unsubscribe" => Some(Request::Ask(Action::Unsubscribe)),
        "-request" => Some(Request::Owner),
        _ => rest
            .strip_prefix("-confirm+")
            .filter(|t| !t.is_empty())
            .map(|t| Request::Confirm(t.to_owned())),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new request: its token (128 random bits, hex) and what to keep until it is confirmed.
pub(crate) fn new_pending(address: &str, action: Action) -> (String, Pending) {
    let token = format!("{:032x}", rand::random::<u128>());
    let pending = Pending {
        address: address.to_ascii_lowercase(),
        action,
        expires: now_secs() + TOKEN_LIFETIME_SECS,
    };
    (token, pending)
}

/// The queue ids an owner's message approves: `approve ID` lines of the subject or the body
/// (quoted lines, `> …`, of a reply are skipped).
pub(crate) fn approvals(raw: &[u8]) -> Vec<String> {
    let Some(message) = mail_parser::MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let subject = message.subject().unwrap_or_default().to_owned();
    let body = message
        .body_text(0)
        .map(|b| b.into_owned())
        .unwrap_or_default();
    let mut ids = Vec::new();
    for line in std::iter::once(subject.as_str()).chain(body.lines()) {
        let line = line.trim();
        if line.starts_with('>') {
            continue;
        }
        let mut words = line.split_whitespace();
        if words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("approve"))
            && let Some(id) = words.next()
            && !ids.iter().any(|i: &String| i.eq_ignore_ascii_case(id))
        {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// Drops the requests whose tokens expired.
pub(crate) fn forget_expired(pending: &mut PendingMap) {
    let now = now_secs();
    pending.retain(|_, p| p.expires > now);
}

/// Header fields of the request that must not survive into the confirmation.
const DROPPED: &[&str] = &[
    "Cc",
    "Bcc",
    "In-Reply-To",
    "References",
    "DKIM-Signature",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The changes that turn the request (recipient `request`, from `requester`) into the
/// confirmation mailed back to the requester.
pub(crate) fn confirmation(
    list: &str,
    request: &str,
    requester: &str,
    action: Action,
    token: &str,
) -> Vec<Change> {
    let (local, domain) = list.split_once('@').unwrap_or((list, ""));
    let confirm = format!("{local}-confirm+{token}@{domain}");
    let word = action.word();
    let body = format!(
        "Someone (you, we hope) asked to {word} <{requester}> to the list <{list}>.\r\n\
         \r\n\
         To confirm, reply to this message, or send any message to\r\n\
         <{confirm}>.\r\n\
         \r\n\
         If you did not ask for this, ignore this message: nothing changes without\r\n\
         a confirmation, and the request expires in three days.\r\n"
    );
    let header = |name: &str, value: String| Change::SetHeader {
        name: name.to_owned(),
        value,
    };
    let mut changes = vec![
        Change::RemoveRecipient(request.to_owned()),
        Change::AddRecipient(requester.to_owned()),
        Change::SetSender(String::new()),
        header("From", format!("<{local}-request@{domain}>")),
        header("To", format!("<{requester}>")),
        header("Reply-To", format!("<{confirm}>")),
        header("Subject", format!("Confirm: {word} {list} ({token})")),
        header("Message-ID", format!("<{token}.{word}@{domain}>")),
        header("Auto-Submitted", "auto-replied".into()),
        header("MIME-Version", "1.0".into()),
        header("Content-Type", "text/plain; charset=utf-8".into()),
    ];
    changes.extend(
        DROPPED
            .iter()
            .map(|n| Change::RemoveHeader((*n).to_owned())),
    );
    changes.push(Change::ReplaceBody(body.into_bytes().into()));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_addresses_are_recognized() {
        let list = "team@example.org";
        assert!(matches!(
            request_for(list, "Team-Subscribe@example.org"),
            Some(Request::Ask(Action::Subscribe))
        ));
        assert!(matches!(
            request_for(list, "team-unsubscribe@example.org"),
            Some(Request::Ask(Action::Unsubscribe))
        ));
        assert!(matches!(
            request_for(list, "team-confirm+abc@example.org"),
            Some(Request::Confirm(t)) if t == "abc"
        ));
        assert!(request_for(list, "team-confirm+@example.org").is_none());
        assert!(request_for(list, "team-subscribe@example.net").is_none());
        assert!(request_for(list, "team@example.org").is_none());
        assert!(matches!(
            request_for(list, "team-request@example.org"),
            Some(Request::Owner)
        ));
    }

    #[test]
    fn approve_lines_name_queue_ids_and_quotes_are_skipped() {
        let raw = b"Subject: Re: held\r\n\r\nApprove ID1\r\n> approve ID2\r\napprove ID1\r\n";
        assert_eq!(approvals(raw), ["ID1"]);
    }
}
