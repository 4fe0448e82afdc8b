//! Delivery status notifications: the `multipart/report` of RFC 3464 that tells a sender what
//! became of its message, honouring the DSN parameters of RFC 3461 (NOTIFY, RET, ENVID, ORCPT).
//!
//! A DSN is an ordinary [`MailMsg`] from the null reverse-path to the original sender, so it takes
//! the same pipeline as any message and can never cause a DSN of its own.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use postern_mailmsg::{Body, Content, DsnNotify, DsnRet, MailMsg, MailParams, Recipient, Sender};

/// The largest original message a failure DSN returns whole. A larger one is returned as its
/// header section only, so that bouncing a huge message does not queue a second huge message
/// (the sender still learns which message it was from the headers).
pub const MAX_RETURNED_CONTENT: usize = 10 * 1024 * 1024;

/// Subject of a DSN that reports at least one failed recipient.
pub const SUBJECT_FAILED: &str = "Undelivered Mail Returned to Sender";
/// Subject of a DSN that reports delays (and perhaps deliveries) but no failure.
pub const SUBJECT_DELAYED: &str = "Delayed Mail (still being retried)";
/// Subject of a DSN that reports only deliveries.
pub const SUBJECT_DELIVERED: &str = "Successful Mail Delivery Report";

/// The display name of the DSN's `From:` (the mailbox is `MAILER-DAEMON@HOSTNAME`).
const FROM_NAME: &str = "Mail Delivery System";

/// How long a reason or address may be in the report; replies are at most 512 octets a line
/// (RFC 5321 §4.5.3.1.5), so this only cuts pathological multi-line replies.
const MAX_FIELD_CHARS: usize = 4000;

/// Delivery-status fields are folded at this column (RFC 5322 §2.1.1 recommends 78).
const FOLD_AT: usize = 78;

/// What a DSN entry reports about a recipient (RFC 3464 §2.3.3 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnKind {
    /// Delivery failed permanently (`Action: failed`).
    Failure,
    /// Delivery is late and still being tried (`Action: delayed`).
    Delay,
    /// The recipient's mail was delivered (`Action: delivered`).
    Success,
}

impl DsnKind {
    /// The `Action` field's value.
    pub fn action(self) -> &'static str {
        match self {
            Self::Failure => "failed",
            Self::Delay => "delayed",
            Self::Success => "delivered",
        }
    }

    /// The status reported when nothing more precise is known.
    fn default_status(self) -> &'static str {
        match self {
            Self::Failure => "5.0.0",
            Self::Delay => "4.0.0",
            Self::Success => "2.0.0",
        }
    }
}

/// One recipient's line in a DSN.
#[derive(Debug, Clone)]
pub struct DsnEntry<'a> {
    /// The recipient: its address, ORCPT (`params.orcpt`) and NOTIFY (`params.notify`).
    pub recipient: &'a Recipient,
    /// What happened.
    pub kind: DsnKind,
    /// The enhanced status code (`5.1.1`); see [`enhanced_status`]. An invalid one is replaced by
    /// what the diagnostic or the kind implies.
    pub status: String,
    /// The remote's reply as received (`550 5.1.1 <x@y>: user unknown`), or a local reason.
    pub diagnostic: Option<String>,
    /// The host that gave the reply.
    pub remote_mta: Option<String>,
    /// For a delay: when the mail system gives up.
    pub will_retry_until: Option<SystemTime>,
}

/// Whether a recipient with this NOTIFY asked for a DSN of this kind (RFC 3461 §4.1): never
/// with `NEVER`; without NOTIFY, failures and delays but not successes.
pub fn wants_dsn(notify: &DsnNotify, kind: DsnKind) -> bool {
    if notify.never {
        return false;
    }
    if !notify.is_set() {
        return kind != DsnKind::Success;
    }
    match kind {
        DsnKind::Failure => notify.failure,
        DsnKind::Delay => notify.delay,
        DsnKind::Success => notify.success,
    }
}

/// The enhanced status code (RFC 3463) for a recipient: the one in the reply when it has one
/// (`550 5.1.1 …` gives `5.1.1`), else the reply code's class (`451 …` gives `4.0.0`), else the
/// kind's default (`5.0.0`, `4.0.0`, `2.0.0`).
pub fn enhanced_status(kind: DsnKind, reply: Option<&str>) -> String {
    let Some(reply) = reply.map(str::trim) else {
        return kind.default_status().to_owned();
    };
    let code = reply
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
    let class = code
        .and_then(|c| c.chars().next())
        .filter(|c| matches!(c, '2' | '4' | '5'));
    let Some(class) = class else {
        return kind.default_status().to_owned();
    };
    // RFC 2034 §4: the enhanced code follows the reply code and its separator, in the same class.
    let token = reply[3..]
        .trim_start_matches(['-', ' '])
        .split_whitespace()
        .next()
        .unwrap_or("");
    if is_status(token) && token.starts_with(class) {
        token.to_owned()
    } else {
        format!("{class}.0.0")
    }
}

/// Whether `s` is `class.subject.detail` with a class of 2, 4 or 5 (RFC 3463 §2).
fn is_status(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    matches!(class, "2" | "4" | "5") && digits(subject, 3) && digits(detail, 3)
}

/// Builds one DSN for the `entries` of one message, keeping only those whose recipient asked for
/// their kind (see [`wants_dsn`]). `None` when none is left, or when the message's sender is the
/// null reverse-path (RFC 3461 §6.2: a DSN never goes to `<>`, which is also what stops a DSN
/// from bouncing back and forth). `reporting_mta` is this server's host name.
pub fn build_dsn(
    original: &MailMsg,
    entries: &[DsnEntry<'_>],
    reporting_mta: &str,
    now: SystemTime,
) -> Option<MailMsg> {
    let sender = original.sender_address();
    if sender.is_empty() {
        return None;
    }
    let entries: Vec<&DsnEntry<'_>> = entries
        .iter()
        .filter(|e| wants_dsn(&e.recipient.params.notify, e.kind))
        .collect();
    if entries.is_empty() {
        return None;
    }
    let host = clean(reporting_mta);
    let to = clean(sender);
    let has = |kind| entries.iter().any(|e| e.kind == kind);
    let subject = if has(DsnKind::Failure) {
        SUBJECT_FAILED
    } else if has(DsnKind::Delay) {
        SUBJECT_DELAYED
    } else {
        SUBJECT_DELIVERED
    };

    let status = delivery_status(original, &entries, &host, now);
    let mut parts = vec![
        MimePart::new("text/plain", human_readable(&entries, &host)),
        MimePart::new("message/delivery-status", status.as_bytes())
            .transfer_encoding(if status.is_ascii() { "7bit" } else { "8bit" }),
    ];
    if let Some(part) = returned_part(original, has(DsnKind::Failure)) {
        parts.push(part);
    }
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        parts,
    );
    let raw = MessageBuilder::new()
        .from(Address::new_address(
            Some(FROM_NAME),
            format!("MAILER-DAEMON@{host}"),
        ))
        .to(to.as_str())
        .subject(subject)
        .date(Date::new(unix_secs(now)))
        .message_id(message_id(original, &host, now))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        // Writing into a Vec cannot fail; an empty DSN would be refused downstream rather than
        // panicking here.
        .unwrap_or_default();

    let body = if raw.is_ascii() {
        Body::SevenBit
    } else {
        Body::EightBitMime
    };
    let mut dsn = MailMsg {
        sender: Some(Sender {
            address: String::new(),
            params: MailParams {
                body,
                smtputf8: !to.is_ascii(),
                ..MailParams::default()
            },
        }),
        recipients: vec![Recipient::new(to)],
        content: Content::new(raw),
        ..MailMsg::default()
    };
    dsn.info.size = dsn.content.len() as u64;
    Some(dsn)
}

/// The first part: what a person reads.
fn human_readable(entries: &[&DsnEntry<'_>], host: &str) -> String {
    let mut text = format!("This is the mail system at host {host}.\r\n");
    for (kind, heading) in [
        (
            DsnKind::Failure,
            "Your message could not be delivered to the following recipients:",
        ),
        (
            DsnKind::Delay,
            "Your message has not yet been delivered to the following recipients;\r\n\
             the mail system will go on trying:",
        ),
        (
            DsnKind::Success,
            "Your message was delivered to the following recipients:",
        ),
    ] {
        let mut of_kind = entries.iter().filter(|e| e.kind == kind).peekable();
        if of_kind.peek().is_none() {
            continue;
        }
        let _ = write!(text, "\r\n{heading}\r\n\r\n");
        for entry in of_kind {
            let _ = write!(text, "  <{}>", clean(&entry.recipient.address));
            let reason = entry.diagnostic.as_deref().map(clean);
            if let Some(reason) = reason.filter(|r| !r.is_empty()) {
                let _ = write!(text, ": {reason}");
            }
            if let (DsnKind::Delay, Some(until)) = (entry.kind, entry.will_retry_until) {
                let _ = write!(text, " (until {})", rfc5322(until));
            }
            text.push_str("\r\n");
        }
    }
    text
}

/// The second part: the machine-readable `message/delivery-status` (RFC 3464 §2.2, §2.3).
fn delivery_status(
    original: &MailMsg,
    entries: &[&DsnEntry<'_>],
    host: &str,
    now: SystemTime,
) -> String {
    let mut out = String::new();
    field(&mut out, "Reporting-MTA", &format!("dns; {host}"));
    if let Some(envid) = original
        .sender
        .as_ref()
        .and_then(|s| s.params.envid.as_deref())
    {
        field(&mut out, "Original-Envelope-Id", &clean(envid));
    }
    if original.info.arrival_ms > 0 {
        let arrival = UNIX_EPOCH + std::time::Duration::from_millis(original.info.arrival_ms);
        field(&mut out, "Arrival-Date", &rfc5322(arrival));
    }
    for entry in entries {
        out.push_str("\r\n");
        let recipient = entry.recipient;
        if let Some(orcpt) = recipient.params.orcpt.as_deref() {
            let orcpt = clean(orcpt);
            // ORCPT is `addr-type;address`; one without a type is taken as an RFC 822 address.
            let value = match orcpt.split_once(';') {
                Some((kind, addr)) => format!("{}; {}", kind.trim(), addr.trim()),
                None => format!("rfc822; {orcpt}"),
            };
            field(&mut out, "Original-Recipient", &value);
        }
        let final_recipient = format!("rfc822; {}", clean(&recipient.address));
        field(&mut out, "Final-Recipient", &final_recipient);
        field(&mut out, "Action", entry.kind.action());
        let status = if is_status(&entry.status) {
            entry.status.clone()
        } else {
            enhanced_status(entry.kind, entry.diagnostic.as_deref())
        };
        field(&mut out, "Status", &status);
        if let Some(mta) = entry.remote_mta.as_deref() {
            field(&mut out, "Remote-MTA", &format!("dns; {}", clean(mta)));
        }
        if let Some(diagnostic) = entry.diagnostic.as_deref().map(clean) {
            field(&mut out, "Diagnostic-Code", &diagnostic_code(&diagnostic));
        }
        field(&mut out, "Last-Attempt-Date", &rfc5322(now));
        if let (DsnKind::Delay, Some(until)) = (entry.kind, entry.will_retry_until) {
            field(&mut out, "Will-Retry-Until", &rfc5322(until));
        }
    }
    out
}

/// `smtp; REPLY` for a remote's reply; a local reason (a DNS failure, an expiry) is not an SMTP
/// reply and gets a type of its own (RFC 3464 §2.3.6 allows `X-` types).
fn diagnostic_code(diagnostic: &str) -> String {
    let is_reply = diagnostic.len() >= 3
        && matches!(diagnostic.as_bytes()[0], b'2'..=b'5')
        && diagnostic.as_bytes()[1..3].iter().all(u8::is_ascii_digit)
        && diagnostic
            .as_bytes()
            .get(3)
            .is_none_or(|&b| b == b' ' || b == b'-');
    if is_reply {
        format!("smtp; {diagnostic}")
    } else {
        format!("X-Postern; {diagnostic}")
    }
}

/// The third part: the original message, or its header section.
fn returned_part<'x>(original: &'x MailMsg, failed: bool) -> Option<MimePart<'x>> {
    let raw = original.content.bytes();
    if raw.is_empty() {
        return None;
    }
    let ret = original.sender.as_ref().and_then(|s| s.params.ret);
    // RFC 3461 §4.3: RET=FULL asks for the message in a *failed* DSN; delay and success reports
    // carry the headers only. Too large a message, or one that cannot travel as a message/rfc822
    // body (NULs, bare CR/LF, lines over 998 octets: BINARYMIME content), also falls back to
    // the headers.
    let full = failed
        && ret != Some(DsnRet::Headers)
        && raw.len() <= MAX_RETURNED_CONTENT
        && is_line_clean(raw);
    if full {
        let encoding = if raw.is_ascii() { "7bit" } else { "8bit" };
        return Some(MimePart::new("message/rfc822", &raw[..]).transfer_encoding(encoding));
    }
    let headers = &raw[..header_section_end(&original.content)];
    // text/* lets mail-builder pick quoted-printable or base64 when the headers are not 7-bit.
    Some(MimePart::new("text/rfc822-headers", headers))
}

/// The end of the header section, without the empty line that ends it.
fn header_section_end(content: &Content) -> usize {
    let at = content.body_offset();
    if content.bytes()[..at].ends_with(b"\r\n\r\n") {
        at - 2
    } else if at == 2 && content.bytes().starts_with(b"\r\n") {
        0
    } else {
        at
    }
}

/// Whether `raw` is lines of at most 998 octets ended by CRLF, without NUL (RFC 5322 §2.3).
fn is_line_clean(raw: &[u8]) -> bool {
    let mut line = 0usize;
    let mut prev = 0u8;
    for &b in raw {
        match b {
            0 => return false,
            b'\n' if prev != b'\r' => return false,
            b'\n' => line = 0,
            _ if prev == b'\r' => return false,
            b'\r' => {}
            _ => {
                line += 1;
                if line > 998 {
                    return false;
                }
            }
        }
        prev = b;
    }
    prev != b'\r'
}

/// Appends `Name: value` folded at spaces, so that a long reply stays within line limits.
fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut column = name.len() + 1;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if column + 1 + word.len() > FOLD_AT && column > name.len() + 1 {
            out.push_str("\r\n");
            column = 0;
        }
        out.push(' ');
        out.push_str(word);
        column += 1 + word.len();
    }
    out.push_str("\r\n");
}

/// The text with every control character (CR and LF above all) turned into a space and runs of
/// spaces collapsed, so that a reply or an address can never start a new field or line. A
/// multi-line reply becomes one line.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_FIELD_CHARS));
    for c in text.chars() {
        if out.len() >= MAX_FIELD_CHARS {
            break;
        }
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

fn unix_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An RFC 5322 date (in UTC).
fn rfc5322(time: SystemTime) -> String {
    Date::new(unix_secs(time)).to_rfc822()
}

/// A Message-ID unique to this DSN: the original's queue id when it has one, the time and a
/// process-wide counter (two DSNs for one message in the same second differ by the counter).
fn message_id(original: &MailMsg, host: &str, now: SystemTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let secs = unix_secs(now);
    match original.id {
        Some(id) => format!("dsn.{id}.{secs}.{n}@{host}"),
        None => format!("dsn.{secs}.{n}@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_comes_from_the_reply_when_it_has_one() {
        let cases = [
            (
                "code in reply",
                DsnKind::Failure,
                Some("550 5.1.1 <x@y>: unknown"),
                "5.1.1",
            ),
            (
                "multiline separator",
                DsnKind::Failure,
                Some("550-5.7.1 no"),
                "5.7.1",
            ),
            (
                "no code: reply class",
                DsnKind::Failure,
                Some("451 try later"),
                "4.0.0",
            ),
            (
                "class mismatch ignored",
                DsnKind::Failure,
                Some("550 4.1.1 odd"),
                "5.0.0",
            ),
            (
                "local reason",
                DsnKind::Failure,
                Some("host not found"),
                "5.0.0",
            ),
            ("no reply, delay", DsnKind::Delay, None, "4.0.0"),
            ("no reply, success", DsnKind::Success, None, "2.0.0"),
        ];
        for (name, kind, reply, want) in cases {
            assert_eq!(enhanced_status(kind, reply), want, "{name}");
        }
    }

    #[test]
    fn clean_folds_control_characters_into_single_spaces() {
        assert_eq!(clean("550 a\r\nBcc: evil\r\n"), "550 a Bcc: evil");
        assert_eq!(clean("a\0\tb"), "a b");
    }

    #[test]
    fn long_fields_are_folded_below_the_line_limit() {
        let mut out = String::new();
        field(&mut out, "Diagnostic-Code", &"word ".repeat(100));
        assert!(out.lines().all(|l| l.len() <= FOLD_AT), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with(' ')));
    }

    #[test]
    fn line_clean_means_crlf_lines_of_at_most_998_octets() {
        assert!(is_line_clean(b"a\r\nb\r\n"));
        assert!(!is_line_clean(b"a\nb\r\n"));
        assert!(!is_line_clean(b"a\rb\r\n"));
        assert!(!is_line_clean(b"a\0\r\n"));
        assert!(!is_line_clean(&[b'x'; 999]));
    }
}
