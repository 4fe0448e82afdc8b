//! The milter sink against a scripted milter on loopback: what Postern sends for what was
//! negotiated, and how every reply and modification becomes an outcome.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_mailmsg::{Content, Fate, MailMsg, PropertyBag, Recipient, Sender, Value};
use postern_sink_api::{
    Call, Change, Context, EnhancedCode, Event, Instance, Reply, Scope, SessionInfo, SinkFactory,
    SinkResult, SinkSpec, Verdict,
};

mod common;
use common::{Frames, frame, milter, optneg};

// Protocol flags used below (Sendmail's mfdef.h).
const NOHELO: u32 = 0x2;
const NR_HDR: u32 = 0x80;
const SKIP: u32 = 0x400;
const HDR_LEADSPC: u32 = 0x10_0000;
const ALL_ACTIONS: u32 = 0x1ff;

fn context(recipients: &[&str], body: &str) -> Context {
    let mut msg = MailMsg {
        sender: Some(Sender {
            address: "alice@example.test".into(),
            params: Default::default(),
        }),
        ..MailMsg::default()
    };
    for r in recipients {
        msg.recipients.push(Recipient::new(*r));
    }
    msg.content = Content::new(format!(
        "Received: from client\r\n\tby mx.test\r\nSubject: hi\r\n\r\n{body}"
    ));
    msg.info.received_by = "mx.test".into();
    let mut ctx = Context::new(Event::EndOfData, PropertyBag::new());
    ctx.message = Arc::new(msg);
    ctx.session = Some(Arc::new(SessionInfo {
        id: 7,
        remote: "127.0.0.9:4000".parse().unwrap(),
        local: "127.0.0.1:25".parse().unwrap(),
        helo: Some("client.test".into()),
        esmtp: true,
        tls: false,
        auth_user: Some("alice".into()),
        may_relay: true,
    }));
    ctx
}

async fn run(addr: SocketAddr, ctx: &Context) -> SinkResult {
    let spec = SinkSpec {
        binding_id: "id".into(),
        binding_name: "test".into(),
        event: Event::EndOfData,
        properties: Default::default(),
        target: format!("inet:{}:{}", addr.ip(), addr.port()),
    };
    let Ok(Instance::Async(sink)) = postern_milter::Factory.create(&spec) else {
        panic!("not an async sink");
    };
    match sink.on_event(ctx) {
        Call::Ready(r) => r,
        Call::Pending(f) => f.await,
    }
}

fn macros_of(got: &Frames, stage: u8) -> String {
    got.iter()
        .filter(|(c, d)| *c == b'D' && d.first() == Some(&stage))
        .map(|(_, d)| String::from_utf8_lossy(&d[1..]).replace('\0', "|"))
        .collect()
}

#[tokio::test]
async fn replays_as_negotiated_and_maps_every_modification() {
    let (addr, task) = milter(
        optneg(ALL_ACTIONS, NOHELO | NR_HDR | SKIP | HDR_LEADSPC),
        |code, _| match code {
            b'L' => vec![],
            b'B' => vec![frame(b's', b"")],
            b'E' => vec![
                frame(b'p', b""),
                frame(b'h', b"X-Added\0 first;\n\tsecond\0"),
                frame(b'i', b"\0\0\0\x01X-Ins\0 x\0"),
                frame(b'm', b"\0\0\0\x01Subject\0\0"),
                frame(b'2', b"<new@example.test>\0NOTIFY=NEVER\0"),
                frame(b'-', b"<bob@example.test>\0"),
                frame(b'e', b"<bounce@example.test>\0"),
                frame(b'b', b"new body\n"),
                frame(b'q', b"suspicious\0"),
                frame(b'a', b""),
            ],
            _ => vec![frame(b'c', b"")],
        },
    )
    .await;
    let body = "x".repeat(70_000);
    let ctx = context(&["bob@example.test"], &body);
    let outcome = run(addr, &ctx).await.unwrap();
    let got = task.await.unwrap();

    let codes: String = got.iter().map(|(c, _)| char::from(*c)).collect();
    // No HELO (NOHELO); one body chunk of 65535 octets, then SKIP stops the body.
    assert_eq!(codes, "ODCDMDRDTLLDNBDEQ", "{codes}");
    let chunk = got.iter().find(|(c, _)| *c == b'B').unwrap();
    assert_eq!(chunk.1.len(), 65535);
    let header = got.iter().find(|(c, _)| *c == b'L').unwrap();
    assert_eq!(header.1, b"Received\0 from client\n\tby mx.test\0");
    assert_eq!(
        macros_of(&got, b'C'),
        "j|mx.test|{daemon_name}|postern|{if_addr}|127.0.0.1|{client_addr}|127.0.0.9|\
         {client_name}|[127.0.0.9]|"
    );
    assert_eq!(
        macros_of(&got, b'M'),
        "i||{auth_authen}|alice|{mail_addr}|alice@example.test|"
    );
    assert_eq!(macros_of(&got, b'R'), "{rcpt_addr}|bob@example.test|");
    let connect = &got.iter().find(|(c, _)| *c == b'C').unwrap().1;
    assert_eq!(connect, b"[127.0.0.9]\x004\x0f\xa0127.0.0.9\0");

    assert_eq!(outcome.verdict, Verdict::Continue);
    assert_eq!(
        outcome.changes,
        vec![
            Change::AddHeader {
                name: "X-Added".into(),
                value: "first;\r\n\tsecond".into()
            },
            Change::InsertHeader {
                index: 1,
                name: "X-Ins".into(),
                value: "x".into()
            },
            Change::ChangeHeader {
                name: "Subject".into(),
                index: 1,
                value: None
            },
            Change::AddRecipient("new@example.test".into()),
            Change::RemoveRecipient("bob@example.test".into()),
            Change::SetSender("bounce@example.test".into()),
            Change::SetFate(Fate::Quarantine),
            Change::SetProperty {
                scope: Scope::Message,
                key: "milter-quarantine-reason".into(),
                value: Value::from("suspicious".to_owned()),
            },
            Change::ReplaceBody(b"new body\r\n".to_vec().into()),
        ]
    );
}

#[tokio::test]
async fn replies_become_verdicts() {
    let replycode = Reply::new(554, Some(EnhancedCode::new(5, 7, 1)), "go away");
    type Respond = fn(u8, &[u8]) -> Vec<Vec<u8>>;
    let cases: Vec<(&str, Respond, Verdict, Vec<Change>)> = vec![
        (
            "reject at end",
            |c, _| vec![frame(if c == b'E' { b'r' } else { b'c' }, b"")],
            Verdict::Reject(Some("Command rejected".into())),
            vec![],
        ),
        (
            "tempfail at mail",
            |c, _| vec![frame(if c == b'M' { b't' } else { b'c' }, b"")],
            Verdict::TempFail(Some("Please try again later".into())),
            vec![],
        ),
        (
            "replycode at connect",
            |c, _| match c {
                b'C' => vec![frame(b'y', b"554 5.7.1 go away\0")],
                _ => vec![frame(b'c', b"")],
            },
            Verdict::Reply(replycode.clone()),
            vec![],
        ),
        (
            "discard at data",
            |c, _| vec![frame(if c == b'T' { b'd' } else { b'c' }, b"")],
            Verdict::Continue,
            vec![Change::SetFate(Fate::Abort)],
        ),
        (
            "accept at helo ends with no change",
            |c, _| vec![frame(if c == b'H' { b'a' } else { b'c' }, b"")],
            Verdict::Continue,
            vec![],
        ),
        (
            "one recipient refused",
            |c, d| match c {
                b'R' if d.starts_with(b"<bob@") => vec![frame(b'y', b"550 5.1.1 no\0")],
                b'E' => vec![frame(b'h', b"X-A\0 1\0"), frame(b'c', b"")],
                _ => vec![frame(b'c', b"")],
            },
            Verdict::Continue,
            vec![
                Change::RemoveRecipient("bob@example.test".into()),
                Change::AddHeader {
                    name: "X-A".into(),
                    value: " 1".into(),
                },
            ],
        ),
        (
            "every recipient refused",
            |c, _| vec![frame(if c == b'R' { b'r' } else { b'c' }, b"")],
            Verdict::Reject(Some("Command rejected".into())),
            vec![],
        ),
    ];
    for (name, respond, verdict, changes) in cases {
        let (addr, task) = milter(optneg(ALL_ACTIONS, 0), respond).await;
        let ctx = context(&["bob@example.test", "carol@example.test"], "hi\r\n");
        let ctx = if name == "every recipient refused" {
            context(&["bob@example.test"], "hi\r\n")
        } else {
            ctx
        };
        let outcome = run(addr, &ctx).await.unwrap();
        assert_eq!(outcome.verdict, verdict, "case {name}");
        assert_eq!(outcome.changes, changes, "case {name}");
        let got = task.await.unwrap();
        assert_eq!(got.last().map(|f| f.0), Some(b'Q'), "case {name}: quits");
    }
}

#[tokio::test]
async fn out_of_place_or_unnegotiated_answers_are_errors() {
    type Respond = fn(u8, &[u8]) -> Vec<Vec<u8>>;
    let cases: Vec<(&str, u32, Respond, &str)> = vec![
        (
            "modification before end",
            ALL_ACTIONS,
            |_, _| vec![frame(b'h', b"X-A\0v\0")],
            "before end of message",
        ),
        (
            "action not negotiated",
            0,
            |c, _| match c {
                b'E' => vec![frame(b'h', b"X-A\0v\0")],
                _ => vec![frame(b'c', b"")],
            },
            "did not negotiate",
        ),
        (
            "skip without SKIP",
            ALL_ACTIONS,
            |c, _| vec![frame(if c == b'B' { b's' } else { b'c' }, b"")],
            "skip outside the body",
        ),
        (
            "unknown answer",
            ALL_ACTIONS,
            |_, _| vec![frame(b'Z', b"")],
            "unknown answer",
        ),
        (
            "closes early",
            ALL_ACTIONS,
            |c, _| match c {
                b'M' => vec![vec![0, 0, 0, 9], vec![]],
                _ => vec![frame(b'c', b"")],
            },
            "closed the connection",
        ),
    ];
    for (name, actions, respond, want) in cases {
        let (addr, task) = milter(optneg(actions, 0), respond).await;
        let err = run(addr, &context(&["bob@example.test"], "hi\r\n"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "case {name}: {err}");
        task.abort();
    }
}
