//! AUTH (RFC 4954), the early-talker refusal and the rate limits, transcript style.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::harness::Harness;
use crate::End;
use crate::users::Users;

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A server offering AUTH without TLS, with the user alice (password "s3cret").
async fn with_alice(edit: impl FnOnce(&mut postern_config::Config)) -> Harness {
    let h = Harness::new(|c| {
        c.auth.allow_plaintext = true;
        c.auth.failure_delay = Duration::from_millis(10);
        edit(c);
    })
    .await;
    let path = Users::path(&h.server.config.data_dir);
    let mut users = Users::default();
    users.set_password("alice", "s3cret").unwrap();
    users.save(&path).unwrap();
    h
}

#[tokio::test]
async fn auth_is_neither_offered_nor_taken_in_clear_text_by_default() {
    let h = Harness::new(|_| {}).await;
    let (mut c, _session) = h.connect().await;
    c.send("EHLO client.test").await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250);
    assert!(!text.contains("AUTH"), "{text}");
    c.expect(
        &format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")),
        "538 5.7.11",
    )
    .await;
}

#[tokio::test]
async fn plain_with_an_initial_response_authenticates_and_allows_relaying() {
    let mut h = with_alice(|_| {}).await;
    let (mut c, _session) = h.connect().await;
    c.send("EHLO client.test").await;
    let (_, text) = c.reply().await;
    assert!(text.contains("250-AUTH PLAIN LOGIN") || text.contains("250 AUTH PLAIN LOGIN"));
    c.transcript(&[
        ("MAIL FROM:<a@x.test>", "250"),
        ("RCPT TO:<far@elsewhere.test>", "550 5.7.1"),
        ("RSET", "250"),
        (
            &format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")),
            "235 2.7.0",
        ),
        (
            &format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")),
            "503 5.5.1",
        ),
        ("MAIL FROM:<alice@localhost> AUTH=<>", "250"),
        ("RCPT TO:<far@elsewhere.test>", "250"),
        ("DATA", "354"),
        ("Subject: hi\r\n\r\nhello\r\n.", "250"),
    ])
    .await;
    let msg = h.accepted.recv().await.unwrap();
    assert_eq!(msg.info.auth_user.as_deref(), Some("alice"));
    assert_eq!(msg.info.protocol, "ESMTPA");
}

#[tokio::test]
async fn login_and_plain_without_initial_response_use_challenges() {
    let h = with_alice(|_| {}).await;
    let (mut c, _session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
        (&b64(b"alice"), "334 UGFzc3dvcmQ6"),
        (&b64(b"s3cret"), "235 2.7.0"),
    ])
    .await;
    let (mut c, _session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("AUTH PLAIN", "334"),
        (&b64(b"alice\0alice\0s3cret"), "235 2.7.0"),
    ])
    .await;
    let (mut c, _session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        (&format!("AUTH LOGIN {}", b64(b"alice")), "334 UGFzc3dvcmQ6"),
        (&b64(b"s3cret"), "235 2.7.0"),
    ])
    .await;
}

#[tokio::test]
async fn bad_input_gets_its_reply_and_the_session_goes_on() {
    let h = with_alice(|c| c.limits.max_errors = 50).await;
    let (mut c, session) = h.connect().await;
    let huge = "A".repeat(100 * 1024);
    c.transcript(&[
        ("AUTH PLAIN", "503 "),
        ("EHLO client.test", "250"),
        (&format!("AUTH PLAIN {huge}"), "500 5.5.2"),
        ("AUTH PLAIN", "334"),
        (&huge, "500 5.5.6"),
        ("AUTH PLAIN !!!notbase64", "501 5.5.2"),
        ("AUTH LOGIN", "334"),
        ("%%%", "501 5.5.2"),
        ("AUTH LOGIN", "334"),
        ("*", "501 5.7.0"),
        ("AUTH PLAIN", "334"),
        ("*", "501 5.7.0"),
        (&format!("AUTH PLAIN {}", b64(b"alice\0pw")), "501 5.5.2"),
        (
            &format!("AUTH PLAIN {}", b64(b"bob\0alice\0s3cret")),
            "535 5.7.8",
        ),
        (
            &format!("AUTH PLAIN {}", b64(b"\0alice\0wrong")),
            "535 5.7.8",
        ),
        (
            &format!("AUTH PLAIN {}", b64(b"\0nobody\0s3cret")),
            "535 5.7.8",
        ),
        // A long (wrong) password in an initial response of 2.7 KB is read, not refused.
        (
            &format!(
                "AUTH PLAIN {}",
                b64(format!("\0alice\0{}", "x".repeat(2000)).as_bytes())
            ),
            "535 5.7.8",
        ),
        ("AUTH CRAM-MD5", "504 5.5.4"),
        ("AUTH XYZZY-UNKNOWN", "504 5.5.4"),
        ("AUTH", "501 5.5.4"),
        ("MAIL FROM:<a@x.test>", "250"),
        (
            &format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")),
            "503 5.5.1",
        ),
        ("RSET", "250"),
        (&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")), "235"),
        ("NOOP", "250"),
        ("QUIT", "221"),
    ])
    .await;
    assert_eq!(session.await.unwrap(), End::Quit);
}

#[tokio::test(start_paused = true)]
async fn failures_are_delayed_more_each_time_then_locked_out() {
    let h = with_alice(|c| {
        c.auth.max_failures = 3;
        c.auth.failure_delay = Duration::from_secs(1);
        c.auth.lockout = Duration::from_secs(600);
    })
    .await;
    let (mut c, _session) = h.connect().await;
    c.expect("EHLO client.test", "250").await;
    let wrong = format!("AUTH PLAIN {}", b64(b"\0alice\0wrong"));
    for wanted in [1, 2, 4] {
        let started = tokio::time::Instant::now();
        c.expect(&wrong, "535 5.7.8").await;
        assert_eq!(started.elapsed().as_secs(), wanted);
    }
    // Locked out: even the right password is not tried, from any session of this address.
    let right = format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret"));
    c.expect(&right, "454 4.7.0").await;
    let (mut c, _session) = h.connect().await;
    c.expect("EHLO client.test", "250").await;
    c.expect(&right, "454 4.7.0").await;
    tokio::time::advance(Duration::from_secs(601)).await;
    c.expect(&right, "235 2.7.0").await;
}

#[tokio::test]
async fn a_client_talking_before_the_greeting_gets_554_and_is_closed() {
    for delay in [Duration::ZERO, Duration::from_millis(200)] {
        let h = Harness::new(|c| c.limits.greeting_delay = delay).await;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (read, mut write) = tokio::io::split(ours);
        write.write_all(b"EHLO eager.test\r\n").await.unwrap();
        let session = tokio::spawn(crate::session::run(
            h.server.clone(),
            theirs,
            "192.0.2.7:40000".parse().unwrap(),
            "192.0.2.1:25".parse().unwrap(),
        ));
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await.unwrap();
        assert!(line.starts_with("554 "), "{delay:?}: {line}");
        assert_eq!(session.await.unwrap(), End::EarlyTalker);
    }
}

#[tokio::test(start_paused = true)]
async fn a_patient_client_is_greeted_after_the_delay() {
    let h = Harness::new(|c| c.limits.greeting_delay = Duration::from_secs(3)).await;
    let started = tokio::time::Instant::now();
    let (mut c, _session) = h.connect().await;
    assert!(started.elapsed() >= Duration::from_secs(3));
    c.expect("NOOP", "250").await;
}

#[tokio::test(start_paused = true)]
async fn message_and_recipient_rates_are_limited_per_address_and_refill() {
    let h = with_alice(|c| {
        c.limits.message_rate_per_ip = Some(2);
        c.limits.recipient_rate_per_ip = Some(3);
    })
    .await;
    let (mut c, _session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("MAIL FROM:<a@x.test>", "250"),
        ("RCPT TO:<a@localhost>", "250"),
        ("RCPT TO:<b@localhost>", "250"),
        ("RCPT TO:<c@localhost>", "250"),
        ("RCPT TO:<d@localhost>", "450 4.7.1"),
        ("RSET", "250"),
        ("MAIL FROM:<a@x.test>", "250"),
        ("RSET", "250"),
        ("MAIL FROM:<a@x.test>", "450 4.7.1"),
    ])
    .await;
    // Another session from the same address shares the buckets.
    let (mut c, _session) = h.connect().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("MAIL FROM:<a@x.test>", "450 4.7.1").await;
    tokio::time::advance(Duration::from_secs(30)).await;
    c.expect("MAIL FROM:<a@x.test>", "250").await;
}

#[tokio::test(start_paused = true)]
async fn user_rates_follow_the_user() {
    let h = with_alice(|c| c.limits.message_rate_per_user = Some(1)).await;
    let (mut c, _session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("MAIL FROM:<a@x.test>", "250"),
        ("RSET", "250"),
        ("MAIL FROM:<a@x.test>", "250"),
        ("RSET", "250"),
        (&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")), "235"),
        ("MAIL FROM:<a@x.test>", "250"),
        ("RSET", "250"),
        ("MAIL FROM:<a@x.test>", "450 4.7.1"),
    ])
    .await;
}
