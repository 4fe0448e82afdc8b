//! The outbound client against scripted remotes over an in-memory duplex: pipelining, BDAT,
//! local refusals, and every kind of bad remote (garbage, overlong lines, endless replies,
//! stalls, closing mid-transaction). Time limits run on tokio's paused clock.

use bytes::Bytes;
use postern_delivery::RcptOutcome;
use postern_delivery::smtp::ClientError;
use postern_delivery::smtp::conn::{Connection, Timeouts};
use postern_delivery::smtp::transaction::{self, Events};
use postern_mailmsg::{Content, MailMsg, Recipient, Sender};
use postern_sink_api::{Context, Event};
use postern_sink_host::{Catalog, Snapshot};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

fn message(recipients: &[&str]) -> MailMsg {
    let mut msg = MailMsg {
        sender: Some(Sender {
            address: "alice@example.org".into(),
            ..Sender::default()
        }),
        ..MailMsg::default()
    };
    for r in recipients {
        msg.recipients.push(Recipient::new(*r));
    }
    msg.content = Content::new(Bytes::from_static(
        b"Subject: t\r\n\r\n.leading dot\r\nbody\r\n",
    ));
    msg
}

fn snapshot() -> Snapshot {
    match Snapshot::compile(&[], &Catalog::new(), 1, None) {
        Ok(s) => s,
        Err(_) => panic!("an empty registry compiles"),
    }
}

fn events(snapshot: &Snapshot) -> Events<'_> {
    Events {
        snapshot,
        base: Context::new(Event::Response, Default::default()),
    }
}

/// The remote's side: reads lines, writes what it is told.
struct Remote {
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    writer: tokio::io::WriteHalf<DuplexStream>,
}

impl Remote {
    async fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).await.unwrap();
        line.trim_end().to_owned()
    }

    async fn say(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads the content after 354 up to the lone dot.
    async fn content(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = self.line().await;
            if line == "." {
                return all;
            }
            all.push_str(&line);
            all.push('\n');
        }
    }
}

fn pair() -> (Connection, Remote) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(server);
    (
        Connection::new(Box::new(client), Timeouts::default()),
        Remote {
            reader: BufReader::new(read),
            writer: write,
        },
    )
}

/// Greeting and EHLO with these extension lines.
async fn open(conn: &mut Connection, remote: &mut Remote, extensions: &[&str]) {
    remote.say("220 peer ESMTP\r\n").await;
    assert_eq!(conn.greeting().await.unwrap().code, 220);
    let mut ehlo = String::from("250-peer\r\n");
    for (i, e) in extensions.iter().enumerate() {
        let sep = if i + 1 == extensions.len() { ' ' } else { '-' };
        ehlo.push_str(&format!("250{sep}{e}\r\n"));
    }
    if extensions.is_empty() {
        ehlo = "250 peer\r\n".into();
    }
    let hello = conn.hello("EHLO mx.test", "mx.test");
    let (reply, line) = tokio::join!(hello, async {
        let line = remote.line().await;
        remote.say(&ehlo).await;
        line
    });
    assert_eq!(reply.unwrap().code, 250);
    assert_eq!(line, "EHLO mx.test");
}

#[tokio::test]
async fn pipelines_mail_rcpt_and_data_in_one_batch() {
    let (mut conn, mut remote) = pair();
    open(
        &mut conn,
        &mut remote,
        &["PIPELINING", "SIZE 1000000", "8BITMIME"],
    )
    .await;
    let snapshot = snapshot();
    let msg = message(&["a@x.test", "b@x.test"]);
    let events = events(&snapshot);
    let send = transaction::send(&mut conn, &events, &msg, &[0, 1]);
    let (result, seen) = tokio::join!(send, async {
        // All four commands arrive before any reply is written.
        let mut lines = Vec::new();
        for _ in 0..4 {
            lines.push(remote.line().await);
        }
        remote
            .say("250 ok\r\n250 ok\r\n550 5.1.1 no b\r\n354 go\r\n")
            .await;
        let content = remote.content().await;
        remote.say("250 2.0.0 queued\r\n").await;
        (lines, content)
    });
    let (lines, content) = seen;
    let mail = format!("MAIL FROM:<alice@example.org> SIZE={}", msg.content.len());
    assert_eq!(
        lines,
        [
            mail.as_str(),
            "RCPT TO:<a@x.test>",
            "RCPT TO:<b@x.test>",
            "DATA"
        ]
    );
    assert!(content.contains("..leading dot"), "dot-stuffed: {content}");
    let mut outcomes = result.unwrap();
    outcomes.sort_by_key(|(i, _)| *i);
    assert_eq!(
        outcomes,
        [
            (0, RcptOutcome::Delivered("250 2.0.0 queued".into())),
            (1, RcptOutcome::Failed("550 5.1.1 no b".into())),
        ]
    );
}

#[tokio::test]
async fn sends_bdat_when_chunking_is_offered() {
    let (mut conn, mut remote) = pair();
    open(&mut conn, &mut remote, &["CHUNKING"]).await;
    let snapshot = snapshot();
    let msg = message(&["a@x.test"]);
    let len = msg.content.len();
    let events = events(&snapshot);
    let send = transaction::send(&mut conn, &events, &msg, &[0]);
    let (result, (bdat, chunk)) = tokio::join!(send, async {
        assert!(remote.line().await.starts_with("MAIL FROM:"));
        remote.say("250 ok\r\n").await;
        assert_eq!(remote.line().await, "RCPT TO:<a@x.test>");
        remote.say("250 ok\r\n").await;
        let bdat = remote.line().await;
        let mut chunk = vec![0u8; len];
        remote.reader.read_exact(&mut chunk).await.unwrap();
        remote.say("250 2.0.0 chunk ok\r\n").await;
        (bdat, chunk)
    });
    assert_eq!(bdat, format!("BDAT {len} LAST"));
    assert_eq!(
        chunk,
        msg.content.bytes().to_vec(),
        "BDAT sends the content unstuffed"
    );
    assert_eq!(
        result.unwrap(),
        [(0, RcptOutcome::Delivered("250 2.0.0 chunk ok".into()))]
    );
}

#[tokio::test]
async fn a_message_over_the_next_hops_size_fails_without_being_sent() {
    let (mut conn, mut remote) = pair();
    open(&mut conn, &mut remote, &["SIZE 10"]).await;
    let snapshot = snapshot();
    let msg = message(&["a@x.test"]);
    let outcomes = transaction::send(&mut conn, &events(&snapshot), &msg, &[0])
        .await
        .unwrap();
    match &outcomes[0].1 {
        RcptOutcome::Failed(reason) => assert!(reason.starts_with("552 5.3.4"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_message_needing_smtputf8_fails_at_a_hop_without_it() {
    let (mut conn, mut remote) = pair();
    open(&mut conn, &mut remote, &["8BITMIME"]).await;
    let snapshot = snapshot();
    let msg = message(&["jörg@x.test"]);
    let outcomes = transaction::send(&mut conn, &events(&snapshot), &msg, &[0])
        .await
        .unwrap();
    match &outcomes[0].1 {
        RcptOutcome::Failed(reason) => assert!(reason.starts_with("553 5.6.7"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// Bad remotes: each is an error of the connection, never a hang or a panic.
#[tokio::test(start_paused = true)]
async fn bad_remotes_end_in_errors() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("garbage", b"HELLO THERE\r\n", "malformed reply"),
        ("line over 512 octets", &[b'2'; 600], "longer than 512"),
        ("mixed codes", b"220-a\r\n250 b\r\n", "different codes"),
        ("closed", b"", "closed"),
        ("stalls mid-reply", b"220-part of a reply\r\n", "time-out"),
    ];
    for (name, sent, want) in cases {
        let (mut conn, mut remote) = pair();
        remote.say(std::str::from_utf8(sent).unwrap()).await;
        if sent.is_empty() {
            drop(remote);
            let err = conn.greeting().await.unwrap_err();
            assert!(err.to_string().contains(want), "{name}: {err}");
            continue;
        }
        let err = conn.greeting().await.unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
        drop(remote);
    }
}

#[tokio::test]
async fn an_endless_multiline_reply_is_cut_off() {
    let (mut conn, mut remote) = pair();
    let writer = tokio::spawn(async move {
        for _ in 0..1000 {
            if remote.writer.write_all(b"220-more\r\n").await.is_err() {
                return;
            }
        }
    });
    let err = conn.greeting().await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("more than 128 lines"), "{err}");
    drop(conn);
    writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_remote_that_closes_mid_transaction_keeps_the_answers_it_gave() {
    let (mut conn, mut remote) = pair();
    open(&mut conn, &mut remote, &[]).await;
    let snapshot = snapshot();
    let msg = message(&["a@x.test", "b@x.test"]);
    let events = events(&snapshot);
    let send = transaction::send(&mut conn, &events, &msg, &[0, 1]);
    let remote_side = async move {
        remote.line().await;
        remote.say("250 ok\r\n").await;
        remote.line().await;
        remote.say("550 5.1.1 no a\r\n").await;
        remote.line().await;
        // Closes instead of answering the second RCPT.
    };
    let (result, ()) = tokio::join!(send, remote_side);
    let (err, done) = result.unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err}");
    assert_eq!(done, [(0, RcptOutcome::Failed("550 5.1.1 no a".into()))]);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_data_phase_times_out_by_the_rfc_limits() {
    let (mut conn, mut remote) = pair();
    open(&mut conn, &mut remote, &[]).await;
    let snapshot = snapshot();
    let msg = message(&["a@x.test"]);
    let started = tokio::time::Instant::now();
    let events = events(&snapshot);
    let send = transaction::send(&mut conn, &events, &msg, &[0]);
    let remote_side = async move {
        remote.line().await;
        remote.say("250 ok\r\n").await;
        remote.line().await;
        remote.say("250 ok\r\n").await;
        remote.line().await;
        remote.say("354 go\r\n").await;
        remote.content().await;
        // Never answers the end of data.
        remote
    };
    let (result, _remote) = tokio::join!(send, remote_side);
    let (err, _) = result.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    // RFC 5321 §4.5.3.2.6: ten minutes for the reply to the end of data.
    assert_eq!(started.elapsed().as_secs(), 600);
}
