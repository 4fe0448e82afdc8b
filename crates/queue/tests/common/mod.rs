//! Helpers shared by the spool's integration tests.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use postern_mailmsg::{
    Body, Content, DsnNotify, DsnRet, Fate, MailMsg, MailParams, MessageInfo, Properties, QueueId,
    QueueIdGenerator, RcptParams, Recipient, RecipientStatus, Sender,
};
use postern_queue::{Spool, SpoolOptions};

/// A message with every field set to something other than its default.
pub(crate) fn full_message(id: QueueId) -> MailMsg {
    let mut properties = Properties::new();
    properties.set("spam.score", 3);
    properties.set("dkim.verified", true);
    properties.set("note", "kept across restarts");
    let mut rcpt_properties = Properties::new();
    rcpt_properties.set("mailbox", "joe");
    MailMsg {
        id: Some(id),
        sender: Some(Sender {
            address: "alice@example.org".into(),
            params: MailParams {
                size: Some(4096),
                body: Body::EightBitMime,
                smtputf8: true,
                ret: Some(DsnRet::Headers),
                envid: Some("env-1".into()),
            },
        }),
        recipients: vec![
            Recipient {
                address: "joe@example.com".into(),
                original: "Joe@Example.COM".into(),
                params: RcptParams {
                    notify: DsnNotify {
                        success: true,
                        failure: true,
                        delay: true,
                        never: false,
                    },
                    orcpt: Some("rfc822;Joe@Example.COM".into()),
                },
                status: RecipientStatus::Deferred {
                    reason: "451 4.7.1 try later".into(),
                },
                next_hop: Some("smtp:mx.example.com".into()),
                properties: rcpt_properties,
            },
            Recipient {
                address: "ann@example.net".into(),
                original: "ann@example.net".into(),
                params: RcptParams {
                    notify: DsnNotify {
                        never: true,
                        ..DsnNotify::default()
                    },
                    orcpt: None,
                },
                status: RecipientStatus::Failed {
                    reason: "550 5.1.1 no such user".into(),
                },
                next_hop: Some("local:example.net".into()),
                properties: Properties::new(),
            },
            Recipient {
                status: RecipientStatus::Delivered,
                ..Recipient::new("bob@example.com")
            },
        ],
        info: MessageInfo {
            arrival_ms: 1_700_000_000_123,
            size: 61,
            remote_ip: Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
            remote_port: 52_525,
            helo: "client.example.org".into(),
            auth_user: Some("alice".into()),
            tls: Some("TLSv1.3 TLS_AES_128_GCM_SHA256".into()),
            received_by: "mx.postern.test".into(),
            protocol: "ESMTPSA".into(),
            session_id: 77,
        },
        properties,
        content: Content::new(
            &b"From: alice@example.org\r\nSubject: hi\r\n\r\nbinary \x00\xff\r\n"[..],
        ),
        fate: Fate::Quarantine,
    }
}

/// A plain message: one recipient, a short body naming the id.
pub(crate) fn simple_message(id: QueueId) -> MailMsg {
    MailMsg {
        id: Some(id),
        sender: Some(Sender {
            address: "s@example.org".into(),
            params: MailParams::default(),
        }),
        recipients: vec![Recipient::new("r@example.com")],
        info: MessageInfo {
            arrival_ms: id.millis(),
            ..MessageInfo::default()
        },
        content: Content::new(format!("Subject: {id}\r\n\r\nbody of {id}\r\n")),
        ..MailMsg::default()
    }
}

/// Asserts two messages are equal field by field (MailMsg has no `PartialEq`).
pub(crate) fn assert_same(got: &MailMsg, want: &MailMsg) {
    assert_eq!(got.id, want.id, "id");
    assert_eq!(got.sender, want.sender, "sender");
    assert_eq!(got.recipients, want.recipients, "recipients");
    assert_eq!(got.info, want.info, "info");
    assert_eq!(got.properties, want.properties, "properties");
    assert_eq!(got.content, want.content, "content");
    assert_eq!(got.fate, want.fate, "fate");
}

/// Queue ids for tests.
pub(crate) fn ids() -> QueueIdGenerator {
    QueueIdGenerator::new(3)
}

/// Options that begin a new segment after every batch, to watch rotation and deletion.
pub(crate) fn tiny_segments() -> SpoolOptions {
    SpoolOptions {
        segment_size: 1,
        relocate_after_segments: 0,
        ..SpoolOptions::default()
    }
}

/// Options with small segments, so a spool opens without zero-filling a full-size one: for
/// tests that open many spools.
pub(crate) fn small_segments() -> SpoolOptions {
    SpoolOptions {
        segment_size: 64 * 1024,
        ..SpoolOptions::default()
    }
}

/// The size of a record header (`crates/queue/src/record.rs` has the layout).
pub(crate) const HEADER_LEN: usize = 28;

/// Walks the records of a segment's octets by their framing, without checking them, up to the
/// End marker (kind 0): the offset where each record ends (the last is where the marker is).
pub(crate) fn record_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while bytes[at + 4] != 0 {
        let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
        at += HEADER_LEN + len;
        ends.push(at);
    }
    ends
}

/// The spare files of a spool directory, by name.
pub(crate) fn spare_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("spare"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Opens a spool, panicking on error.
pub(crate) async fn open(dir: &Path, options: SpoolOptions) -> Spool {
    Spool::open(dir, options).await.expect("open spool").0
}

/// The segment files of a spool directory, oldest first.
pub(crate) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The segment numbers of a spool directory, oldest first.
pub(crate) fn segment_numbers(dir: &Path) -> Vec<u64> {
    segment_files(dir)
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            assert_eq!(stem.len(), 16, "segment names have 16 digits");
            stem.parse().unwrap()
        })
        .collect()
}
