//! Delivery status notifications, read back with a MIME parser the way a mail client would.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::{MessageParser, MimeHeaders, PartType};
use postern_delivery::dsn::MAX_RETURNED_CONTENT;
use postern_delivery::{DsnEntry, DsnKind, build_dsn, wants_dsn};
use postern_mailmsg::{
    Body, Content, DsnNotify, DsnRet, MailMsg, MailParams, RcptParams, Recipient, RecipientStatus,
    Sender,
};

const HOST: &str = "mx.example.net";
const ORIGINAL: &str = "From: alice@example.org\r\nTo: bob@example.com\r\nSubject: lunch\r\n\
                        Message-ID: <1@example.org>\r\n\r\nSee you at noon.\r\n";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn notify(flags: &str) -> DsnNotify {
    DsnNotify {
        success: flags.contains("SUCCESS"),
        failure: flags.contains("FAILURE"),
        delay: flags.contains("DELAY"),
        never: flags.contains("NEVER"),
    }
}

fn recipient(address: &str, notify_flags: &str, orcpt: Option<&str>) -> Recipient {
    Recipient {
        params: RcptParams {
            notify: notify(notify_flags),
            orcpt: orcpt.map(str::to_owned),
        },
        ..Recipient::new(address)
    }
}

fn message(sender: &str, ret: Option<DsnRet>, envid: Option<&str>, content: &str) -> MailMsg {
    let mut msg = MailMsg {
        sender: Some(Sender {
            address: sender.to_owned(),
            params: MailParams {
                ret,
                envid: envid.map(str::to_owned),
                ..MailParams::default()
            },
        }),
        content: Content::new(content.as_bytes().to_vec()),
        ..MailMsg::default()
    };
    msg.info.arrival_ms = 1_799_999_000_000;
    msg
}

fn entry<'a>(recipient: &'a Recipient, kind: DsnKind, diagnostic: Option<&str>) -> DsnEntry<'a> {
    DsnEntry {
        recipient,
        kind,
        status: postern_delivery::enhanced_status(kind, diagnostic),
        diagnostic: diagnostic.map(str::to_owned),
        remote_mta: diagnostic.map(|_| "mx.example.com".to_owned()),
        will_retry_until: (kind == DsnKind::Delay).then(|| now() + Duration::from_secs(86_400)),
    }
}

/// A DSN as a client sees it.
#[derive(Debug)]
struct Report {
    raw: String,
    subject: String,
    from: String,
    to: String,
    auto_submitted: String,
    report_type: String,
    human: String,
    per_message: Vec<(String, String)>,
    per_recipient: Vec<Vec<(String, String)>>,
    /// The third part's type and contents.
    returned: Option<(String, Vec<u8>)>,
}

impl Report {
    fn recipient_field(&self, index: usize, name: &str) -> Option<&str> {
        field(&self.per_recipient[index], name)
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits a message/delivery-status body into its groups of fields, unfolding continuation lines.
fn status_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|g| !g.trim().is_empty())
        .map(|group| {
            let mut fields: Vec<(String, String)> = Vec::new();
            for line in group.lines() {
                if line.starts_with([' ', '\t']) {
                    let last = fields.last_mut().expect("continuation after a field");
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                } else {
                    let (name, value) = line.split_once(':').expect("a field");
                    fields.push((name.to_owned(), value.trim().to_owned()));
                }
            }
            fields
        })
        .collect()
}

fn parse(dsn: &MailMsg) -> Report {
    let raw = dsn.content.bytes().to_vec();
    let message = MessageParser::default().parse(&raw[..]).expect("a message");
    let ct = message.content_type().expect("a content type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("report")),
        "top level"
    );
    let PartType::Multipart(children) = &message.parts[0].body else {
        panic!("not multipart");
    };
    assert!(
        (2..=3).contains(&children.len()),
        "{} parts",
        children.len()
    );
    let part = |i: usize| &message.parts[children[i] as usize];
    let type_of = |i: usize| {
        let ct = part(i).content_type().expect("a part type");
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
    };
    assert_eq!(type_of(0), "text/plain");
    assert_eq!(type_of(1), "message/delivery-status");
    let status = part(1).text_contents().expect("text").to_owned();
    let mut groups = status_groups(&status);
    let per_message = groups.remove(0);
    let returned = (children.len() == 3).then(|| (type_of(2), part(2).contents().to_vec()));
    let header = |name: &str| message.header_raw(name).unwrap_or("").trim().to_owned();
    Report {
        subject: message.subject().unwrap_or("").to_owned(),
        from: header("From"),
        to: header("To"),
        auto_submitted: header("Auto-Submitted"),
        report_type: ct.attribute("report-type").unwrap_or("").to_owned(),
        human: part(0).text_contents().unwrap_or("").to_owned(),
        per_message,
        per_recipient: groups,
        returned,
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

#[test]
fn wants_dsn_follows_rfc_3461_notify() {
    let cases = [
        ("no NOTIFY: failure", "", DsnKind::Failure, true),
        ("no NOTIFY: delay", "", DsnKind::Delay, true),
        ("no NOTIFY: no success", "", DsnKind::Success, false),
        ("NEVER: no failure", "NEVER", DsnKind::Failure, false),
        ("NEVER: no delay", "NEVER", DsnKind::Delay, false),
        ("SUCCESS only: success", "SUCCESS", DsnKind::Success, true),
        (
            "SUCCESS only: no failure",
            "SUCCESS",
            DsnKind::Failure,
            false,
        ),
        ("FAILURE only: no delay", "FAILURE", DsnKind::Delay, false),
        (
            "FAILURE,DELAY: delay",
            "FAILURE,DELAY",
            DsnKind::Delay,
            true,
        ),
    ];
    for (name, flags, kind, want) in cases {
        assert_eq!(wants_dsn(&notify(flags), kind), want, "{name}");
    }
}

/// What the third part of the report must be.
#[derive(Debug, PartialEq)]
enum Returned {
    Full,
    Headers,
}

/// A recipient of the original: (address, NOTIFY, ORCPT, kind, reply).
type Given = (
    &'static str,
    &'static str,
    Option<&'static str>,
    DsnKind,
    Option<&'static str>,
);

/// A reported recipient: (Final-Recipient, Action, Status, Diagnostic-Code, Original-Recipient).
type Reported = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

struct Case {
    name: &'static str,
    sender: &'static str,
    ret: Option<DsnRet>,
    envid: Option<&'static str>,
    recipients: Vec<Given>,
    /// `None`: no DSN.
    want: Option<Want>,
}

struct Want {
    subject: &'static str,
    returned: Returned,
    recipients: Vec<Reported>,
}

#[test]
fn builds_the_report_each_case_asks_for() {
    use DsnKind::{Delay, Failure, Success};
    let unknown = Some("550 5.1.1 <bob@example.com>: user unknown");
    let cases = [
        Case {
            name: "one failure, RET not given: whole message",
            sender: "alice@example.org",
            ret: None,
            envid: None,
            recipients: vec![("bob@example.com", "", None, Failure, unknown)],
            want: Some(Want {
                subject: "Undelivered Mail Returned to Sender",
                returned: Returned::Full,
                recipients: vec![(
                    "rfc822; bob@example.com",
                    "failed",
                    "5.1.1",
                    Some("smtp; 550 5.1.1 <bob@example.com>: user unknown"),
                    None,
                )],
            }),
        },
        Case {
            name: "RET=FULL returns the message, ENVID and ORCPT echoed",
            sender: "alice@example.org",
            ret: Some(DsnRet::Full),
            envid: Some("QQ314159"),
            recipients: vec![(
                "bob@example.com",
                "FAILURE",
                Some("rfc822;Bob@Example.COM"),
                Failure,
                unknown,
            )],
            want: Some(Want {
                subject: "Undelivered Mail Returned to Sender",
                returned: Returned::Full,
                recipients: vec![(
                    "rfc822; bob@example.com",
                    "failed",
                    "5.1.1",
                    Some("smtp; 550 5.1.1 <bob@example.com>: user unknown"),
                    Some("rfc822; Bob@Example.COM"),
                )],
            }),
        },
        Case {
            name: "RET=HDRS returns the headers only",
            sender: "alice@example.org",
            ret: Some(DsnRet::Headers),
            envid: None,
            recipients: vec![("bob@example.com", "", None, Failure, unknown)],
            want: Some(Want {
                subject: "Undelivered Mail Returned to Sender",
                returned: Returned::Headers,
                recipients: vec![(
                    "rfc822; bob@example.com",
                    "failed",
                    "5.1.1",
                    Some("smtp; 550 5.1.1 <bob@example.com>: user unknown"),
                    None,
                )],
            }),
        },
        Case {
            name: "NOTIFY=NEVER gives no entry, so no DSN",
            sender: "alice@example.org",
            ret: None,
            envid: None,
            recipients: vec![("bob@example.com", "NEVER", None, Failure, unknown)],
            want: None,
        },
        Case {
            name: "the null sender never gets a DSN",
            sender: "",
            ret: None,
            envid: None,
            recipients: vec![("bob@example.com", "", None, Failure, unknown)],
            want: None,
        },
        Case {
            name: "success is reported only when asked for",
            sender: "alice@example.org",
            ret: None,
            envid: None,
            recipients: vec![("bob@example.com", "", None, Success, Some("250 2.0.0 ok"))],
            want: None,
        },
        Case {
            name: "mixed: one failed and one delayed in one report, NEVER left out",
            sender: "alice@example.org",
            ret: None,
            envid: None,
            recipients: vec![
                ("bob@example.com", "", None, Failure, unknown),
                (
                    "carol@example.com",
                    "",
                    None,
                    Delay,
                    Some("451 4.3.0 try later"),
                ),
                ("dave@example.com", "NEVER", None, Failure, unknown),
            ],
            want: Some(Want {
                subject: "Undelivered Mail Returned to Sender",
                returned: Returned::Full,
                recipients: vec![
                    (
                        "rfc822; bob@example.com",
                        "failed",
                        "5.1.1",
                        Some("smtp; 550 5.1.1 <bob@example.com>: user unknown"),
                        None,
                    ),
                    (
                        "rfc822; carol@example.com",
                        "delayed",
                        "4.3.0",
                        Some("smtp; 451 4.3.0 try later"),
                        None,
                    ),
                ],
            }),
        },
        Case {
            name: "a delay alone returns the headers only, even without RET",
            sender: "alice@example.org",
            ret: Some(DsnRet::Full),
            envid: None,
            recipients: vec![("carol@example.com", "DELAY", None, Delay, None)],
            want: Some(Want {
                subject: "Delayed Mail (still being retried)",
                returned: Returned::Headers,
                recipients: vec![("rfc822; carol@example.com", "delayed", "4.0.0", None, None)],
            }),
        },
        Case {
            name: "success when asked for",
            sender: "alice@example.org",
            ret: None,
            envid: None,
            recipients: vec![(
                "bob@example.com",
                "SUCCESS",
                None,
                Success,
                Some("250 2.0.0 queued as X"),
            )],
            want: Some(Want {
                subject: "Successful Mail Delivery Report",
                returned: Returned::Headers,
                recipients: vec![(
                    "rfc822; bob@example.com",
                    "delivered",
                    "2.0.0",
                    Some("smtp; 250 2.0.0 queued as X"),
                    None,
                )],
            }),
        },
        Case {
            name: "a local reason is not an SMTP diagnostic",
            sender: "alice@example.org",
            ret: None,
            envid: None,
            recipients: vec![(
                "bob@example.com",
                "",
                None,
                Failure,
                Some("no mail exchanger for example.com"),
            )],
            want: Some(Want {
                subject: "Undelivered Mail Returned to Sender",
                returned: Returned::Full,
                recipients: vec![(
                    "rfc822; bob@example.com",
                    "failed",
                    "5.0.0",
                    Some("X-Postern; no mail exchanger for example.com"),
                    None,
                )],
            }),
        },
    ];

    for case in cases {
        let name = case.name;
        let original = message(case.sender, case.ret, case.envid, ORIGINAL);
        let recipients: Vec<Recipient> = case
            .recipients
            .iter()
            .map(|(addr, flags, orcpt, _, _)| recipient(addr, flags, *orcpt))
            .collect();
        let entries: Vec<DsnEntry<'_>> = recipients
            .iter()
            .zip(&case.recipients)
            .map(|(r, (_, _, _, kind, reply))| entry(r, *kind, *reply))
            .collect();
        let dsn = build_dsn(&original, &entries, HOST, now());
        let Some(want) = case.want else {
            assert!(dsn.is_none(), "{name}: wanted no DSN");
            continue;
        };
        let dsn = dsn.unwrap_or_else(|| panic!("{name}: wanted a DSN"));
        let report = parse(&dsn);
        assert_eq!(report.subject, want.subject, "{name}");
        assert_eq!(report.report_type, "delivery-status", "{name}");
        assert_eq!(
            field(&report.per_message, "Reporting-MTA"),
            Some("dns; mx.example.net"),
            "{name}"
        );
        assert_eq!(
            field(&report.per_message, "Original-Envelope-Id"),
            case.envid,
            "{name}"
        );
        assert!(
            field(&report.per_message, "Arrival-Date").is_some(),
            "{name}"
        );
        assert_eq!(
            report.per_recipient.len(),
            want.recipients.len(),
            "{name}: {:?}",
            report.per_recipient
        );
        for (i, (final_rcpt, action, status, diagnostic, orcpt)) in
            want.recipients.iter().enumerate()
        {
            assert_eq!(
                report.recipient_field(i, "Final-Recipient"),
                Some(*final_rcpt),
                "{name}"
            );
            assert_eq!(report.recipient_field(i, "Action"), Some(*action), "{name}");
            assert_eq!(report.recipient_field(i, "Status"), Some(*status), "{name}");
            assert_eq!(
                report.recipient_field(i, "Diagnostic-Code"),
                *diagnostic,
                "{name}"
            );
            assert_eq!(
                report.recipient_field(i, "Original-Recipient"),
                *orcpt,
                "{name}"
            );
            assert!(
                report.recipient_field(i, "Last-Attempt-Date").is_some(),
                "{name}"
            );
            let retry_until = report.recipient_field(i, "Will-Retry-Until");
            assert_eq!(retry_until.is_some(), *action == "delayed", "{name}");
            let address = final_rcpt.trim_start_matches("rfc822; ");
            assert!(report.human.contains(address), "{name}: {}", report.human);
        }
        let (returned_type, returned) = report.returned.expect("a returned part");
        match want.returned {
            Returned::Full => {
                assert_eq!(returned_type, "message/rfc822", "{name}");
                assert_eq!(returned, ORIGINAL.as_bytes(), "{name}");
            }
            Returned::Headers => {
                assert_eq!(returned_type, "text/rfc822-headers", "{name}");
                let text = String::from_utf8(returned).expect("utf-8");
                assert!(text.contains("Subject: lunch"), "{name}: {text}");
                assert!(!text.contains("See you at noon"), "{name}: {text}");
            }
        }
    }
}

#[test]
fn the_dsn_goes_from_the_null_sender_to_the_original_sender() {
    let original = message("alice@example.org", None, None, ORIGINAL);
    let bob = recipient("bob@example.com", "", None);
    let dsn = build_dsn(
        &original,
        &[entry(&bob, DsnKind::Failure, Some("550 5.1.1 no"))],
        HOST,
        now(),
    )
    .expect("a DSN");
    let sender = dsn.sender.as_ref().expect("a sender");
    assert_eq!(sender.address, "");
    assert_eq!(sender.params.body, Body::SevenBit);
    assert_eq!(dsn.recipients.len(), 1);
    assert_eq!(dsn.recipients[0].address, "alice@example.org");
    assert_eq!(dsn.recipients[0].status, RecipientStatus::Pending);
    assert_eq!(dsn.recipients[0].next_hop, None);

    let report = parse(&dsn);
    assert_eq!(
        report.from,
        "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.net>"
    );
    assert_eq!(report.to, "<alice@example.org>");
    assert_eq!(report.auto_submitted, "auto-replied");
    assert!(
        report.human.contains("<bob@example.com>: 550 5.1.1 no"),
        "{}",
        report.human
    );
    assert!(report.raw.contains("\r\nDate: "), "{}", report.raw);
    assert!(
        report.raw.contains("@mx.example.net>\r\n"),
        "{}",
        report.raw
    );
    assert!(report.raw.contains("MIME-Version: 1.0\r\n"));
    assert_eq!(
        report.recipient_field(0, "Remote-MTA"),
        Some("dns; mx.example.com")
    );
    assert_eq!(
        report.recipient_field(0, "Last-Attempt-Date"),
        Some("Fri, 15 Jan 2027 08:00:00 +0000")
    );
    assert_eq!(
        field(&report.per_message, "Arrival-Date"),
        Some("Fri, 15 Jan 2027 07:43:20 +0000")
    );
}

#[test]
fn a_delay_says_until_when_it_is_retried() {
    let original = message("alice@example.org", None, None, ORIGINAL);
    let carol = recipient("carol@example.com", "", None);
    let dsn = build_dsn(
        &original,
        &[entry(&carol, DsnKind::Delay, Some("451 4.4.1 no answer"))],
        HOST,
        now(),
    )
    .expect("a DSN");
    let report = parse(&dsn);
    assert_eq!(
        report.recipient_field(0, "Will-Retry-Until"),
        Some("Sat, 16 Jan 2027 08:00:00 +0000")
    );
    assert!(
        report.human.contains("until Sat, 16 Jan 2027"),
        "{}",
        report.human
    );
}

#[test]
fn cr_lf_in_replies_and_addresses_cannot_inject_fields() {
    let original = message(
        "alice@example.org\r\nBcc: victim@example.net",
        None,
        Some("id\r\nX-Injected: envid"),
        ORIGINAL,
    );
    let bob = recipient(
        "bob@example.com\r\nX-Injected: address",
        "",
        Some("rfc822;bob@example.com\r\nX-Injected: orcpt"),
    );
    let mut failed = entry(
        &bob,
        DsnKind::Failure,
        Some("550 5.1.1 no\r\nX-Injected: reply\r\n\r\nAction: delivered"),
    );
    failed.remote_mta = Some("mx.example.com\r\nX-Injected: mta".to_owned());
    let dsn = build_dsn(&original, &[failed], "host\r\nX-Injected: host", now()).expect("a DSN");
    let report = parse(&dsn);

    let message = MessageParser::default()
        .parse(dsn.content.bytes().as_ref())
        .expect("a message");
    assert!(message.header_raw("Bcc").is_none(), "{}", report.raw);
    assert!(message.header_raw("X-Injected").is_none(), "{}", report.raw);
    assert_eq!(report.per_recipient.len(), 1, "{:?}", report.per_recipient);
    let fields = report
        .per_message
        .iter()
        .chain(report.per_recipient.iter().flatten());
    for (name, _) in fields {
        assert!(!name.eq_ignore_ascii_case("X-Injected"), "{}", report.raw);
    }
    assert_eq!(report.recipient_field(0, "Action"), Some("failed"));
    assert_eq!(
        report.recipient_field(0, "Diagnostic-Code"),
        Some("smtp; 550 5.1.1 no X-Injected: reply Action: delivered")
    );
    assert_eq!(
        dsn.recipients[0].address,
        "alice@example.org Bcc: victim@example.net"
    );
}

#[test]
fn a_long_reply_is_folded_and_read_back_whole() {
    let original = message("alice@example.org", None, None, ORIGINAL);
    let bob = recipient("bob@example.com", "", None);
    let reply = format!("550 5.7.1 {}", "policy words ".repeat(60).trim_end());
    let dsn = build_dsn(
        &original,
        &[entry(&bob, DsnKind::Failure, Some(&reply))],
        HOST,
        now(),
    )
    .expect("a DSN");
    let report = parse(&dsn);
    assert_eq!(
        report.recipient_field(0, "Diagnostic-Code"),
        Some(format!("smtp; {reply}").as_str())
    );
    assert!(report.raw.lines().all(|l| l.len() <= 998));
}

#[test]
fn a_message_over_the_cap_is_returned_as_headers() {
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"
            .repeat(MAX_RETURNED_CONTENT / 66 + 1)
    );
    assert!(big.len() > MAX_RETURNED_CONTENT);
    let original = message("alice@example.org", Some(DsnRet::Full), None, &big);
    let bob = recipient("bob@example.com", "", None);
    let dsn = build_dsn(
        &original,
        &[entry(&bob, DsnKind::Failure, Some("552 5.3.4 too big"))],
        HOST,
        now(),
    )
    .expect("a DSN");
    assert!(
        dsn.content.len() < 64 * 1024,
        "{} octets",
        dsn.content.len()
    );
    let (returned_type, returned) = parse(&dsn).returned.expect("a returned part");
    assert_eq!(returned_type, "text/rfc822-headers");
    assert_eq!(returned, b"Subject: big\r\n");
}

#[test]
fn an_eight_bit_original_makes_an_eight_bit_dsn() {
    let content = "Subject: caf\u{e9}\r\n\r\nd\u{e9}j\u{e0} vu\r\n";
    let original = message("alice@example.org", None, None, content);
    let bob = recipient("bob@example.com", "", None);
    let dsn = build_dsn(
        &original,
        &[entry(&bob, DsnKind::Failure, Some("550 5.1.1 no"))],
        HOST,
        now(),
    )
    .expect("a DSN");
    assert_eq!(
        dsn.sender.as_ref().map(|s| s.params.body),
        Some(Body::EightBitMime)
    );
    let (returned_type, returned) = parse(&dsn).returned.expect("a returned part");
    assert_eq!(returned_type, "message/rfc822");
    assert_eq!(returned, content.as_bytes());
}

#[test]
fn an_empty_entry_list_gives_no_dsn() {
    let original = message("alice@example.org", None, None, ORIGINAL);
    assert!(build_dsn(&original, &[], HOST, now()).is_none());
}

#[test]
fn a_status_that_is_not_one_is_taken_from_the_reply() {
    let original = message("alice@example.org", None, None, ORIGINAL);
    let bob = recipient("bob@example.com", "", None);
    let cases = [
        ("empty", "", "5.2.2"),
        ("garbage", "x.y.z", "5.2.2"),
        ("class 3", "3.1.1", "5.2.2"),
        ("valid kept", "5.7.1", "5.7.1"),
    ];
    for (name, status, want) in cases {
        let mut failed = entry(&bob, DsnKind::Failure, Some("552 5.2.2 mailbox full"));
        failed.status = status.to_owned();
        let dsn = build_dsn(&original, &[failed], HOST, now()).expect("a DSN");
        assert_eq!(
            parse(&dsn).recipient_field(0, "Status"),
            Some(want),
            "{name}"
        );
    }
}
