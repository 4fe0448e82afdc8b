//! The session's state machine: commands in and out of order, what resets a transaction, and
//! how a session ends.

use super::harness::Harness;
use crate::End;

#[tokio::test]
async fn commands_out_of_order_are_refused_and_leave_the_state_as_it_was() {
    let h = Harness::new(|c| c.limits.max_errors = 100).await;
    let (mut c, _) = h.connect().await;
    c.transcript(&[
        ("MAIL FROM:<a@example.org>", "503"),
        ("EHLO client.test", "250"),
        ("RCPT TO:<b@localhost>", "503 5.5.1"),
        ("DATA", "503 5.5.1"),
        ("MAIL FROM:<a@example.org>", "250 2.1.0"),
        ("MAIL FROM:<a@example.org>", "503 5.5.1"),
        ("DATA", "554 5.5.1"),
        ("RCPT TO:<b@localhost>", "250 2.1.5"),
        // A new EHLO ends the transaction.
        ("EHLO client.test", "250"),
        ("RCPT TO:<b@localhost>", "503 5.5.1"),
        ("MAIL FROM:<a@example.org>", "250 2.1.0"),
        ("RCPT TO:<b@localhost>", "250 2.1.5"),
    ])
    .await;
    // A BDAT transfer under way excludes DATA and more recipients.
    c.send_raw(b"BDAT 3\r\nab\n").await;
    assert!(c.reply().await.1.starts_with("250 2.0.0"));
    c.transcript(&[
        ("DATA", "503 5.5.1"),
        ("RCPT TO:<c@localhost>", "503 5.5.1"),
        ("RSET", "250 2.0.0"),
        ("RCPT TO:<c@localhost>", "503 5.5.1"),
    ])
    .await;
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order_and_a_message_ends_its_transaction() {
    let mut h = Harness::new(|_| {}).await;
    let (mut c, session) = h.connect().await;
    c.send_raw(
        b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@localhost>\r\n\
          RCPT TO:<c@localhost>\r\nDATA\r\n",
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(c.reply().await.0);
    }
    assert_eq!(got, [250, 250, 250, 250, 354]);
    c.send_raw(b"Subject: s\r\n\r\n..dot\r\n.\r\nRCPT TO:<b@localhost>\r\nQUIT\r\n")
        .await;
    let (code, text) = c.reply().await;
    assert!(code == 250 && text.contains("queued as"), "{text}");
    // The message ended the transaction: RCPT needs a new MAIL.
    assert!(c.reply().await.1.starts_with("503 5.5.1"));
    assert!(c.reply().await.1.starts_with("221 2.0.0"));
    assert_eq!(session.await.unwrap(), End::Quit);
    let msg = h.accepted.recv().await.unwrap();
    assert_eq!(msg.recipients.len(), 2);
    assert!(msg.content.bytes().ends_with(b"Subject: s\r\n\r\n.dot\r\n"));
}

#[tokio::test]
async fn a_client_that_closes_mid_message_ends_the_session_and_nothing_is_queued() {
    let mut h = Harness::new(|_| {}).await;
    let (mut c, session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("MAIL FROM:<a@example.org>", "250"),
        ("RCPT TO:<b@localhost>", "250"),
        ("DATA", "354"),
    ])
    .await;
    c.send_raw(b"Subject: cut\r\n\r\nhalf").await;
    drop(c);
    assert_eq!(session.await.unwrap(), End::ClientClosed);
    assert!(h.accepted.try_recv().is_err());
    assert_eq!(h.server.spool.list().len(), 0);
}
