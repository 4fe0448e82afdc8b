//! Timeouts, on tokio's paused clock.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::harness::Harness;
use crate::End;

/// Regression: a client sending one octet a second was held for 61 s with a 5 s command
/// timeout, because the timeout bounded each read, not the line.
#[tokio::test(start_paused = true)]
async fn a_trickled_command_line_is_timed_out_as_a_whole() {
    let h = Harness::new(|c| c.limits.command_timeout = Duration::from_secs(1)).await;
    let (mut c, session) = h.connect().await;
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        // Never a line end: each octet arrives well within the timeout of the one before.
        for b in b"NOOP ".iter().cycle().take(600) {
            if c.write.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c
    });
    let end = tokio::time::timeout(Duration::from_secs(3), session)
        .await
        .expect("the session outlived its command timeout")
        .unwrap();
    assert_eq!(end, End::Timeout);
    let elapsed = started.elapsed();
    assert!(elapsed <= Duration::from_millis(1200), "{elapsed:?}");
    let mut c = trickle.await.unwrap();
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
}

#[tokio::test(start_paused = true)]
async fn each_line_gets_the_whole_timeout_from_its_first_octet() {
    let h = Harness::new(|c| c.limits.command_timeout = Duration::from_secs(1)).await;
    let (mut c, _session) = h.connect().await;
    // Three lines, each sent over 0.8 s: 2.4 s in all, every one within its own timeout.
    for _ in 0..3 {
        for b in b"NOOP\r\n" {
            c.send_raw(&[*b]).await;
            tokio::time::sleep(Duration::from_millis(160)).await;
        }
        assert_eq!(c.reply().await.0, 250);
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_trickled_past_the_data_timeout_is_cut_off_with_421() {
    let h = Harness::new(|c| {
        c.limits.command_timeout = Duration::from_secs(1);
        c.limits.data_timeout = Duration::from_secs(3);
    })
    .await;
    let (mut c, session) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("MAIL FROM:<a@example.org>", "250"),
        ("RCPT TO:<b@localhost>", "250"),
        ("DATA", "354"),
    ])
    .await;
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        // Each line well within the command timeout; the message never ends.
        for _ in 0..100 {
            if c.write.write_all(b"line\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        c
    });
    let end = tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .expect("the transfer outlived the data timeout")
        .unwrap();
    assert_eq!(end, End::Timeout);
    assert!(started.elapsed() <= Duration::from_millis(3100));
    let mut c = trickle.await.unwrap();
    assert!(c.reply().await.1.starts_with("421 4.4.2"));
    assert_eq!(h.server.spool.list().len(), 0);
}
