//! The step mode against a scripted milter on loopback: bindings of one milter on several
//! protocol events of a session share one connection and the milter sees the steps in order.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_mailmsg::{Content, MailMsg, PropertyBag, Recipient, Sender};
use postern_sink_api::{
    Call, Command, Context, EnhancedCode, Event, Instance, Outcome, Reply, SessionInfo,
    SinkFactory, SinkSpec, Verb, Verdict,
};

mod common;
use common::{frame, milter, optneg};

const ALL_ACTIONS: u32 = 0x1ff;

/// One session's events, each with its own binding (instance), as the dispatcher makes them.
struct Session {
    target: String,
    id: u64,
    sender: Option<String>,
    recipients: Vec<String>,
}

impl Session {
    fn new(addr: SocketAddr, id: u64) -> Self {
        Self {
            target: format!("inet:{}@{}", addr.port(), addr.ip()),
            id,
            sender: None,
            recipients: Vec::new(),
        }
    }

    async fn event(&mut self, event: Event, line: Option<&str>) -> Outcome {
        let spec = SinkSpec {
            binding_id: format!("{event}"),
            binding_name: format!("{event}"),
            event: event.clone(),
            properties: Default::default(),
            target: self.target.clone(),
        };
        assert!(postern_milter::Factory.fits(&event), "{event}");
        let Ok(Instance::Async(sink)) = postern_milter::Factory.create(&spec) else {
            panic!("not an async sink");
        };
        let mut msg = MailMsg {
            sender: self.sender.clone().map(|address| Sender {
                address,
                params: Default::default(),
            }),
            ..MailMsg::default()
        };
        for r in &self.recipients {
            msg.recipients.push(Recipient::new(r.as_str()));
        }
        msg.content = Content::new("Subject: hi\r\n\r\nhello\r\n".to_owned());
        let mut ctx = Context::new(event, PropertyBag::new());
        ctx.message = Arc::new(msg);
        ctx.command = line.and_then(Command::parse).map(Arc::new);
        ctx.session = Some(Arc::new(SessionInfo {
            id: self.id,
            remote: "127.0.0.9:4000".parse().unwrap(),
            local: "127.0.0.1:25".parse().unwrap(),
            helo: Some("client.test".into()),
            esmtp: true,
            tls: false,
            auth_user: None,
            may_relay: false,
        }));
        match sink.on_event(&ctx) {
            Call::Ready(r) => r,
            Call::Pending(f) => f.await,
        }
        .unwrap()
    }
}

fn inbound(verb: &str) -> Event {
    Event::Inbound(Verb::parse(verb))
}

fn codes(got: &[(u8, Vec<u8>)]) -> String {
    got.iter().map(|(c, _)| char::from(*c)).collect()
}

#[tokio::test]
async fn a_session_is_driven_step_by_step_on_one_connection() {
    // The harness serves exactly one connection: every step below must share it.
    let (addr, task) = milter(optneg(ALL_ACTIONS, 0), |code, data| match code {
        b'R' if data.starts_with(b"<mallory@") => vec![frame(b'y', b"550 5.7.1 not here\0")],
        b'E' => vec![frame(b'h', b"X-Milter\0 seen\0"), frame(b'c', b"")],
        _ => vec![frame(b'c', b"")],
    })
    .await;
    let mut s = Session::new(addr, 1001);
    assert_eq!(s.event(Event::SessionStart, None).await, Outcome::next());
    let ehlo = s.event(inbound("EHLO"), Some("EHLO client.test")).await;
    assert_eq!(ehlo, Outcome::next());
    let mail = s
        .event(inbound("MAIL"), Some("MAIL FROM:<alice@example.test>"))
        .await;
    assert_eq!(mail, Outcome::next());
    s.sender = Some("alice@example.test".into());
    let refused = s
        .event(inbound("RCPT"), Some("RCPT TO:<mallory@example.test>"))
        .await;
    assert_eq!(
        refused.verdict,
        Verdict::Reply(Reply::new(
            550,
            Some(EnhancedCode::new(5, 7, 1)),
            "not here"
        ))
    );
    let bob = s
        .event(inbound("RCPT"), Some("RCPT TO:<bob@example.test>"))
        .await;
    assert_eq!(bob, Outcome::next());
    s.recipients.push("bob@example.test".into());
    // The end-of-data binding finishes the message on the session's connection.
    let eod = s.event(Event::EndOfData, None).await;
    assert_eq!(eod.verdict, Verdict::Continue);
    assert_eq!(eod.changes.len(), 1, "{eod:?}");
    assert_eq!(s.event(Event::SessionEnd, None).await, Outcome::next());

    let got = task.await.unwrap();
    let commands: String = codes(&got).replace('D', "");
    assert_eq!(commands, "OCHMRRTLNBEQ");
    let data = |code: u8| -> Vec<String> {
        got.iter()
            .filter(|(c, _)| *c == code)
            .map(|(_, d)| String::from_utf8_lossy(d).replace('\0', "|"))
            .collect()
    };
    assert_eq!(data(b'H'), vec!["client.test|"]);
    assert_eq!(data(b'M'), vec!["<alice@example.test>|"]);
    assert_eq!(
        data(b'R'),
        vec!["<mallory@example.test>|", "<bob@example.test>|"]
    );
    let mail_macros: String = got
        .iter()
        .filter(|(c, d)| *c == b'D' && d.first() == Some(&b'M'))
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(mail_macros.contains("{mail_addr}\0alice@example.test\0"));
}

#[tokio::test]
async fn a_milter_bound_only_at_rcpt_sees_the_earlier_steps_first() {
    const NOHELO: u32 = 0x2;
    let (addr, task) = milter(optneg(ALL_ACTIONS, NOHELO), |code, _| match code {
        b'R' => vec![frame(b't', b"")],
        _ => vec![frame(b'c', b"")],
    })
    .await;
    let mut s = Session::new(addr, 1002);
    s.sender = Some("alice@example.test".into());
    let out = s
        .event(inbound("RCPT"), Some("RCPT TO:<bob@example.test>"))
        .await;
    assert!(matches!(out.verdict, Verdict::TempFail(_)), "{out:?}");
    assert_eq!(s.event(Event::SessionEnd, None).await, Outcome::next());
    let got = task.await.unwrap();
    // Helo was negotiated away; the open message is aborted before quitting.
    assert_eq!(codes(&got).replace('D', ""), "OCMRAQ");
}

#[tokio::test]
async fn other_events_are_refused() {
    for event in [Event::Submission, Event::PreCategorize, inbound("DATA")] {
        assert!(!postern_milter::Factory.fits(&event), "{event}");
    }
}
