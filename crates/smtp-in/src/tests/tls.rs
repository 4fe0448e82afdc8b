//! STARTTLS as the session sees it: offered only with a certificate, refused inside TLS, and a
//! handshake that fails or stalls ends the session (on tokio's paused clock).

use std::time::Duration;

use tokio::time::Instant;

use super::harness::Harness;
use crate::End;

/// The first octets of a ClientHello record, and no more.
const PARTIAL_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";

#[tokio::test]
async fn without_a_certificate_starttls_is_neither_offered_nor_accepted() {
    let h = Harness::new(|_| {}).await;
    let (mut c, _session) = h.connect().await;
    c.send("EHLO client.test").await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250);
    assert!(!text.contains("STARTTLS"), "{text}");
    c.transcript(&[("STARTTLS", "502 5.5.1")]).await;
}

#[tokio::test]
async fn starttls_is_offered_and_takes_no_argument() {
    let h = Harness::with_tls(|_| {}).await;
    let (mut c, _session) = h.connect().await;
    c.send("EHLO client.test").await;
    let (_, text) = c.reply().await;
    assert!(text.ends_with("250 STARTTLS"), "{text}");
    c.transcript(&[("STARTTLS now", "501 5.5.4")]).await;
}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_stalls_ends_at_the_command_timeout() {
    let h = Harness::with_tls(|c| c.limits.command_timeout = Duration::from_secs(1)).await;
    let (mut c, session) = h.connect().await;
    c.expect("STARTTLS", "220 Ready to start TLS").await;
    c.send_raw(PARTIAL_HELLO).await;
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(3), session)
        .await
        .expect("the handshake outlived the command timeout")
        .unwrap();
    assert_eq!(end, End::Timeout);
    assert!(started.elapsed() <= Duration::from_millis(1100));
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_ends_the_session() {
    let h = Harness::with_tls(|_| {}).await;
    let (mut c, session) = h.connect().await;
    c.expect("STARTTLS", "220 Ready to start TLS").await;
    c.send_raw(&[0x47; 600]).await;
    let end = session.await.unwrap();
    assert!(matches!(end, End::Tls(_)), "{end:?}");
}
