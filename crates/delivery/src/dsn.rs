//! Delivery status notifications (RFC 3464, RFC 3461): one `multipart/report` message for the
//! recipients of a message that failed, were delayed or were delivered with NOTIFY=SUCCESS,
//! built with `mail-builder`, addressed from the null reverse-path to the original sender.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use postern_mailmsg::{Content, DsnNotify, DsnRet, MailMsg, Recipient, Sender};

/// What a DSN entry reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnKind {
    /// `Action: failed`.
    Failure,
    /// `Action: delayed`.
    Delay,
    /// `Action: delivered` (or relayed to a next hop without DSN support).
    Success,
}

impl DsnKind {
    fn action(self) -> &'static str {
        match self {
            Self::Failure => "failed",
            Self::Delay => "delayed",
            Self::Success => "delivered",
        }
    }
}

/// One recipient of a DSN.
#[derive(Debug, Clone)]
pub struct DsnEntry<'a> {
    /// The recipient reported on (its address, ORCPT and NOTIFY).
    pub recipient: &'a Recipient,
    /// What is reported.
    pub kind: DsnKind,
    /// The enhanced status code, `X.Y.Z`.
    pub status: String,
    /// The remote's reply as received (`550 5.1.1 …`), for `Diagnostic-Code: smtp; …`.
    pub diagnostic: Option<String>,
    /// The host that gave the reply, for `Remote-MTA: dns; …`.
    pub remote_mta: Option<String>,
    /// For a delay: until when delivery is tried.
    pub will_retry_until: Option<SystemTime>,
}

/// Returned content is capped at this size; past it only the header section is returned.
const MAX_RETURNED: usize = 10 << 20;

/// Whether a recipient asked for a DSN of this kind (RFC 3461 §4.1): NOTIFY=NEVER never; without
/// NOTIFY, failures and delays but not successes.
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

/// One DSN for `entries` (those whose NOTIFY allows it), from `reporting_mta`; `None` when the
/// sender is the null reverse-path (never a DSN to it) or no entry is left.
pub fn build_dsn(
    original: &MailMsg,
    entries: &[DsnEntry<'_>],
    reporting_mta: &str,
    now: SystemTime,
) -> Option<MailMsg> {
    let to = original.sender_address();
    if to.is_empty() {
        return None;
    }
    let entries: Vec<&DsnEntry<'_>> = entries
        .iter()
        .filter(|e| wants_dsn(&e.recipient.params.notify, e.kind))
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mta = one_line(reporting_mta);
    let failed = entries.iter().any(|e| e.kind == DsnKind::Failure);
    let delayed = entries.iter().any(|e| e.kind == DsnKind::Delay);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };

    let human = human_text(&mta, &entries);
    let status = delivery_status(original, &mta, &entries, now);
    let returned = returned_part(original);
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", human),
            MimePart::new("message/delivery-status", status.into_bytes())
                .transfer_encoding(encoding_of(&[])),
            returned,
        ],
    );
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let message_id = format!("{now_secs:x}.{:x}.dsn@{mta}", rand::random::<u64>());
    let built = MessageBuilder::new()
        .from(Address::new_address(
            "Mail Delivery System".into(),
            format!("MAILER-DAEMON@{mta}"),
        ))
        .to(Address::new_address(None::<&str>, one_line(to)))
        .subject(subject)
        .date(Date::new(now_secs as i64))
        .message_id(message_id)
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .ok()?;

    let mut dsn = MailMsg {
        sender: Some(Sender::default()),
        ..MailMsg::default()
    };
    dsn.recipients.push(Recipient::new(to));
    dsn.content = Content::new(Bytes::from(built));
    Some(dsn)
}

fn human_text(mta: &str, entries: &[&DsnEntry<'_>]) -> String {
    let mut text = format!("This is the mail system at host {mta}.\r\n\r\n");
    let failed: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == DsnKind::Failure)
        .collect();
    let delayed: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == DsnKind::Delay)
        .collect();
    let done: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == DsnKind::Success)
        .collect();
    for (list, intro) in [
        (
            &failed,
            "Your message could not be delivered to the recipients below. It has been given up on.",
        ),
        (
            &delayed,
            "Your message has not yet been delivered to the recipients below. Delivery is still being tried; you need not send it again.",
        ),
        (&done, "Your message was delivered to the recipients below."),
    ] {
        if list.is_empty() {
            continue;
        }
        text.push_str(intro);
        text.push_str("\r\n\r\n");
        for e in list {
            text.push_str(&format!("<{}>", one_line(&e.recipient.address)));
            if let Some(reason) = &e.diagnostic {
                match &e.remote_mta {
                    Some(host) => text.push_str(&format!(
                        ": host {} said: {}",
                        one_line(host),
                        one_line(reason)
                    )),
                    None => text.push_str(&format!(": {}", one_line(reason))),
                }
            }
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
    }
    text
}

/// The `message/delivery-status` body: per-message fields, then a block per recipient.
fn delivery_status(
    original: &MailMsg,
    mta: &str,
    entries: &[&DsnEntry<'_>],
    now: SystemTime,
) -> String {
    let mut out = format!("Reporting-MTA: dns; {mta}\r\n");
    if let Some(envid) = original
        .sender
        .as_ref()
        .and_then(|s| s.params.envid.as_ref())
    {
        out.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    if original.info.arrival_ms > 0 {
        let arrival = (original.info.arrival_ms / 1000) as i64;
        out.push_str(&format!(
            "Arrival-Date: {}\r\n",
            Date::new(arrival).to_rfc822()
        ));
    }
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    for e in entries {
        out.push_str("\r\n");
        if let Some(orcpt) = &e.recipient.params.orcpt {
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            out.push_str(&format!(
                "Original-Recipient: {}; {}\r\n",
                one_line(kind),
                one_line(address)
            ));
        }
        out.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            one_line(&e.recipient.address)
        ));
        out.push_str(&format!("Action: {}\r\n", e.kind.action()));
        out.push_str(&format!("Status: {}\r\n", one_line(&e.status)));
        if let Some(host) = &e.remote_mta {
            out.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(host)));
        }
        if let Some(reply) = &e.diagnostic {
            out.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(reply)));
        }
        out.push_str(&format!(
            "Last-Attempt-Date: {}\r\n",
            Date::new(now_secs).to_rfc822()
        ));
        if let Some(until) = e.will_retry_until {
            let until = until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
            out.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                Date::new(until).to_rfc822()
            ));
        }
    }
    out
}

/// The original as the third part: the whole message (`message/rfc822`) unless RET=HDRS asked
/// for the header section only (`text/rfc822-headers`), or the message is too large to return.
fn returned_part(original: &MailMsg) -> MimePart<'static> {
    let content = original.content.bytes();
    let headers_only = original
        .sender
        .as_ref()
        .is_some_and(|s| s.params.ret == Some(DsnRet::Headers))
        || content.len() > MAX_RETURNED;
    if headers_only {
        let head = content[..original.content.body_offset().min(content.len())].to_vec();
        let encoding = encoding_of(&head);
        MimePart::new("text/rfc822-headers", head).transfer_encoding(encoding)
    } else {
        let encoding = encoding_of(content);
        MimePart::new("message/rfc822", content.to_vec()).transfer_encoding(encoding)
    }
}

/// `7bit` for ASCII, else `8bit` (message/* parts may not be base64-encoded, RFC 2046 §5.2.1).
fn encoding_of(bytes: &[u8]) -> &'static str {
    if bytes.is_ascii() { "7bit" } else { "8bit" }
}

/// Text that goes into a header-like line: CR, LF and other controls become spaces, so a reply
/// or an address cannot add lines to the report.
fn one_line(text: &str) -> String {
    let clean: Cow<'_, str> = if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    };
    clean.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    use postern_mailmsg::{MailParams, RcptParams};

    use super::*;

    fn original(ret: Option<DsnRet>, envid: Option<&str>) -> MailMsg {
        MailMsg {
            sender: Some(Sender {
                address: "alice@example.org".into(),
                params: MailParams {
                    ret,
                    envid: envid.map(str::to_owned),
                    ..MailParams::default()
                },
            }),
            content: Content::new(Bytes::from_static(
                b"Subject: hello\r\nMessage-ID: <m1@example.org>\r\n\r\nthe body\r\n",
            )),
            ..MailMsg::default()
        }
    }

    fn rcpt(address: &str, notify: DsnNotify, orcpt: Option<&str>) -> Recipient {
        Recipient {
            params: RcptParams {
                notify,
                orcpt: orcpt.map(str::to_owned),
            },
            ..Recipient::new(address)
        }
    }

    fn entry<'a>(r: &'a Recipient, kind: DsnKind, diagnostic: Option<&str>) -> DsnEntry<'a> {
        DsnEntry {
            recipient: r,
            kind,
            status: match kind {
                DsnKind::Failure => "5.1.1",
                DsnKind::Delay => "4.4.1",
                DsnKind::Success => "2.0.0",
            }
            .into(),
            diagnostic: diagnostic.map(str::to_owned),
            remote_mta: Some("mx.remote.test".into()),
            will_retry_until: (kind == DsnKind::Delay).then(SystemTime::now),
        }
    }

    fn text(dsn: &MailMsg) -> String {
        String::from_utf8_lossy(dsn.content.bytes()).into_owned()
    }

    #[test]
    fn a_failure_dsn_is_a_multipart_report_with_the_remote_reply() {
        let bob = rcpt(
            "bob@remote.test",
            DsnNotify::default(),
            Some("rfc822;Bob@Remote.test"),
        );
        let msg = original(None, Some("env-42"));
        let dsn = build_dsn(
            &msg,
            &[entry(
                &bob,
                DsnKind::Failure,
                Some("550 5.1.1 <bob@remote.test>: no such user"),
            )],
            "mx.test",
            SystemTime::now(),
        )
        .expect("a DSN");
        assert_eq!(dsn.sender_address(), "");
        assert_eq!(dsn.recipients[0].address, "alice@example.org");
        let raw = text(&dsn);
        let parsed = MessageParser::default()
            .parse(dsn.content.bytes())
            .expect("parses");
        let ct = parsed.content_type().expect("content type");
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("MAILER-DAEMON@mx.test")
        );
        assert!(raw.contains("Auto-Submitted: auto-replied"), "{raw}");
        for want in [
            "Reporting-MTA: dns; mx.test",
            "Original-Envelope-Id: env-42",
            "Original-Recipient: rfc822; Bob@Remote.test",
            "Final-Recipient: rfc822; bob@remote.test",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.remote.test",
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: no such user",
        ] {
            assert!(raw.contains(want), "missing {want:?}:\n{raw}");
        }
        // The whole original comes back as message/rfc822.
        let returned = parsed.parts.iter().find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "message" && c.subtype() == Some("rfc822"))
        });
        let returned = returned.expect("message/rfc822 part");
        assert!(
            matches!(returned.body, PartType::Message(_)),
            "{:?}",
            returned.body
        );
        assert!(raw.contains("the body"), "{raw}");
    }

    #[test]
    fn ret_hdrs_returns_the_header_section_only() {
        let bob = rcpt("bob@remote.test", DsnNotify::default(), None);
        let msg = original(Some(DsnRet::Headers), None);
        let dsn = build_dsn(
            &msg,
            &[entry(&bob, DsnKind::Failure, None)],
            "mx.test",
            SystemTime::now(),
        )
        .expect("a DSN");
        let raw = text(&dsn);
        assert!(raw.contains("text/rfc822-headers"), "{raw}");
        assert!(raw.contains("Subject: hello"), "{raw}");
        assert!(!raw.contains("the body"), "{raw}");
    }

    #[test]
    fn notify_decides_who_is_reported() {
        let never = DsnNotify {
            never: true,
            ..DsnNotify::default()
        };
        let success = DsnNotify {
            success: true,
            ..DsnNotify::default()
        };
        let cases = [
            (
                "default: failures",
                DsnNotify::default(),
                DsnKind::Failure,
                true,
            ),
            (
                "default: delays",
                DsnNotify::default(),
                DsnKind::Delay,
                true,
            ),
            (
                "default: no successes",
                DsnNotify::default(),
                DsnKind::Success,
                false,
            ),
            ("never", never, DsnKind::Failure, false),
            ("success only: no failure", success, DsnKind::Failure, false),
            ("success only: success", success, DsnKind::Success, true),
        ];
        for (name, notify, kind, want) in cases {
            assert_eq!(wants_dsn(&notify, kind), want, "{name}");
        }
        let bob = rcpt("bob@remote.test", never, None);
        let msg = original(None, None);
        assert!(
            build_dsn(
                &msg,
                &[entry(&bob, DsnKind::Failure, None)],
                "mx.test",
                SystemTime::now()
            )
            .is_none()
        );
    }

    #[test]
    fn never_a_dsn_to_the_null_sender() {
        let bob = rcpt("bob@remote.test", DsnNotify::default(), None);
        let mut msg = original(None, None);
        msg.sender = Some(Sender::default());
        assert!(
            build_dsn(
                &msg,
                &[entry(&bob, DsnKind::Failure, None)],
                "mx.test",
                SystemTime::now()
            )
            .is_none()
        );
    }

    #[test]
    fn failed_and_delayed_recipients_share_one_dsn() {
        let bob = rcpt("bob@remote.test", DsnNotify::default(), None);
        let carol = rcpt("carol@remote.test", DsnNotify::default(), None);
        let msg = original(None, None);
        let dsn = build_dsn(
            &msg,
            &[
                entry(&bob, DsnKind::Failure, Some("550 5.1.1 no")),
                entry(&carol, DsnKind::Delay, None),
            ],
            "mx.test",
            SystemTime::now(),
        )
        .expect("a DSN");
        let raw = text(&dsn);
        assert!(
            raw.contains("Action: failed") && raw.contains("Action: delayed"),
            "{raw}"
        );
        assert!(raw.contains("Will-Retry-Until:"), "{raw}");
    }

    #[test]
    fn a_reply_with_line_breaks_cannot_add_fields() {
        let bob = rcpt("bob@remote.test", DsnNotify::default(), None);
        let msg = original(None, None);
        let dsn = build_dsn(
            &msg,
            &[entry(
                &bob,
                DsnKind::Failure,
                Some("550 no\r\nAction: delivered"),
            )],
            "mx.test",
            SystemTime::now(),
        )
        .expect("a DSN");
        let raw = text(&dsn);
        assert!(!raw.contains("\r\nAction: delivered"), "{raw}");
        assert!(
            raw.contains("Diagnostic-Code: smtp; 550 no  Action: delivered"),
            "{raw}"
        );
    }
}
