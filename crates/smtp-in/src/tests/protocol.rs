//! Protocol details: parameters and addresses that must be refused, with the right reply.

use super::harness::Harness;

/// Opens a transaction and leaves it at the point where MAIL or RCPT is tested.
const HELLO: (&str, &str) = ("EHLO client.test", "250");
const MAIL: (&str, &str) = ("MAIL FROM:<a@example.org>", "250 2.1.0");

#[tokio::test]
async fn mail_size_with_more_than_twenty_digits_is_over_the_limit() {
    let h = Harness::new(|_| {}).await;
    let (mut c, _) = h.connect().await;
    c.transcript(&[
        HELLO,
        (
            "MAIL FROM:<a@example.org> SIZE=100000000000000000000",
            "552 5.3.4",
        ),
        (
            "MAIL FROM:<a@example.org> SIZE=1000000000000000000000",
            "552 5.3.4",
        ),
        (
            "MAIL FROM:<a@example.org> SIZE=10000000000000000000000",
            "552 5.3.4",
        ),
        (
            "MAIL FROM:<a@example.org> SIZE=18446744073709551616",
            "552 5.3.4",
        ),
        ("MAIL FROM:<a@example.org> SIZE=26214401", "552 5.3.4"),
        ("MAIL FROM:<a@example.org> SIZE=26214400", "250 2.1.0"),
    ])
    .await;
}

#[tokio::test]
async fn control_characters_in_an_address_are_refused_not_dropped() {
    let h = Harness::new(|c| c.limits.max_errors = 100).await;
    let (mut c, _) = h.connect().await;
    c.transcript(&[HELLO]).await;
    c.expect("MAIL FROM:<a\rb@example.org>", "501 5.1.7").await;
    c.expect("MAIL FROM:<a\x7fb@example.org>", "501 5.1.7")
        .await;
    c.transcript(&[MAIL]).await;
    for control in (1u8..0x20).chain([0x7f]).filter(|b| *b != b'\n') {
        let line = format!("RCPT TO:<a{}b@localhost>", control as char);
        c.expect(&line, "501 5.1.3").await;
    }
    // Outside the address it is a syntax error of the arguments.
    c.expect("RCPT TO:<ab@localhost>\x01", "501 5.5.4").await;
    c.transcript(&[("RCPT TO:<ab@localhost>", "250 2.1.5")])
        .await;
}

#[tokio::test]
async fn rset_takes_no_parameters() {
    let h = Harness::new(|_| {}).await;
    let (mut c, _) = h.connect().await;
    c.transcript(&[
        HELLO,
        MAIL,
        ("RSET x", "501 5.5.4"),
        // The refused RSET left the transaction as it was.
        ("MAIL FROM:<b@example.org>", "503 5.5.1"),
        ("RSET", "250 2.0.0"),
        ("MAIL FROM:<b@example.org>", "250 2.1.0"),
    ])
    .await;
}

#[tokio::test]
async fn bdat_arguments_are_read_by_the_protocol_parser() {
    let mut h = Harness::new(|_| {}).await;
    let (mut c, session) = h.connect().await;
    c.transcript(&[HELLO, MAIL, ("RCPT TO:<b@localhost>", "250")])
        .await;
    c.send_raw(b"BDAT 4\r\nab\r\n").await;
    assert_eq!(c.reply().await.0, 250);
    c.send_raw(b"BDAT 0 last\r\n").await;
    let (code, text) = c.reply().await;
    assert!(code == 250 && text.contains("queued as"), "{text}");
    let msg = h.accepted.recv().await.unwrap();
    assert!(msg.content.bytes().ends_with(b"\r\nab\r\n"));
    // A size past what can be read exactly would desynchronize the stream: the session ends.
    c.send("BDAT 100000000000000000000 LAST").await;
    assert!(c.reply().await.1.starts_with("501 5.5.4"));
    assert_eq!(session.await.unwrap(), crate::End::Desync);
}

#[tokio::test]
async fn a_bdat_size_with_a_control_character_is_not_guessed_at() {
    let h = Harness::new(|_| {}).await;
    let (mut c, session) = h.connect().await;
    c.transcript(&[HELLO, MAIL, ("RCPT TO:<b@localhost>", "250")])
        .await;
    // `1<CR>2` is neither 1 nor 12: the stream can no longer be followed.
    c.send_raw(b"BDAT 1\r2 LAST\r\n").await;
    assert!(c.reply().await.1.starts_with("501 5.5.4"));
    assert_eq!(session.await.unwrap(), crate::End::Desync);
}
