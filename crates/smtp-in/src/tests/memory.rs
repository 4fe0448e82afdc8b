//! The memory budget and the spill to disk, seen from clients.

use std::time::Duration;

use super::harness::{Client, Harness};

async fn in_transaction(h: &Harness) -> Client {
    let (mut c, _) = h.connect().await;
    c.transcript(&[
        ("EHLO client.test", "250"),
        ("MAIL FROM:<a@example.org>", "250"),
        ("RCPT TO:<b@localhost>", "250"),
    ])
    .await;
    c
}

/// A message of `lines` lines of 100 octets, some starting with a dot; and what it is once
/// received (dots unstuffed).
fn message(lines: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut sent, mut kept) = (Vec::new(), Vec::new());
    for i in 0..lines {
        let line = format!("{:>98}\r\n", format!("line {i}"));
        let line = if i % 7 == 0 {
            format!(".{}", &line[1..])
        } else {
            line
        };
        if line.starts_with('.') {
            sent.push(b'.');
        }
        sent.extend_from_slice(line.as_bytes());
        kept.extend_from_slice(line.as_bytes());
    }
    sent.extend_from_slice(b".\r\n");
    (sent, kept)
}

/// Waits until the budget's free octets satisfy `ok`.
async fn until_available(h: &Harness, ok: impl Fn(usize) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok(h.server.budget.available()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} octets free",
            h.server.budget.available()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn past_the_budget_a_new_transfer_gets_452_4_3_1() {
    let h = Harness::new(|c| c.limits.memory_budget = 64 * 1024).await;
    let mut first = in_transaction(&h).await;
    first.expect("DATA", "354").await;
    // Something else holds the rest.
    let rest = h
        .server
        .budget
        .try_take(h.server.budget.available())
        .unwrap();
    let mut late = in_transaction(&h).await;
    late.expect("DATA", "452 4.3.1").await;
    // BDAT too: its chunk is read and not kept, and the session stays in step.
    late.send_raw(b"BDAT 5 LAST\r\nabc\r\n").await;
    assert!(late.reply().await.1.starts_with("452 4.3.1"));
    late.expect("NOOP", "250").await;
    // The transfer under way is not disturbed: past its share it goes to disk.
    first.send_raw(&[b'x'; 100 * 1024]).await;
    first.send_raw(b"\r\n.\r\n").await;
    assert!(first.reply().await.1.starts_with("550 5.6.0"), "long lines");

    drop(rest);
    late.expect("DATA", "354").await;
    late.send_raw(b"Subject: late\r\n\r\nhello\r\n.\r\n").await;
    assert!(late.reply().await.1.starts_with("250 2.0.0"));
}

#[tokio::test]
async fn past_the_spill_threshold_a_transfer_gives_its_memory_back() {
    const BUDGET: usize = 2 << 20;
    let h = Harness::new(|c| {
        c.limits.memory_budget = BUDGET as u64;
        c.limits.spill_threshold = 512 * 1024;
    })
    .await;
    let mut c = in_transaction(&h).await;
    c.expect("DATA", "354").await;
    let line = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
    let text: Vec<u8> = line.iter().copied().cycle().take(500 * 1024).collect();
    c.send_raw(&text).await;
    until_available(&h, |free| free <= BUDGET - 500 * 1024).await;
    c.send_raw(&text).await;
    // On disk: what is left is a write buffer (128 KiB) and the input buffer (at most 60 KiB
    // past the command buffer).
    until_available(&h, |free| free >= BUDGET - 192 * 1024).await;
    c.send_raw(b".\r\n").await;
    assert!(c.reply().await.1.starts_with("250 2.0.0"));
}

#[tokio::test]
async fn messages_past_the_spill_threshold_arrive_whole_by_data_and_by_bdat() {
    let mut h = Harness::new(|c| {
        c.limits.memory_budget = 256 * 1024;
        c.limits.spill_threshold = 32 * 1024;
    })
    .await;
    let (sent, kept) = message(3000);
    let mut c = in_transaction(&h).await;
    c.expect("DATA", "354").await;
    c.send_raw(&sent).await;
    assert!(c.reply().await.1.starts_with("250 2.0.0"));
    let msg = h.accepted.recv().await.unwrap();
    assert!(msg.content.bytes().starts_with(b"Received: "));
    assert!(msg.content.bytes().ends_with(&kept));
    assert_eq!(msg.info.size, msg.content.len() as u64);
    // Larger than the whole budget, it holds all of it while it lives.
    assert_eq!(h.server.budget.available(), 0);
    drop(msg);

    c.transcript(&[
        ("MAIL FROM:<a@example.org>", "250"),
        ("RCPT TO:<b@localhost>", "250"),
    ])
    .await;
    let pieces: Vec<&[u8]> = kept.chunks(70_001).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let last = if i + 1 == pieces.len() { " LAST" } else { "" };
        c.send_raw(format!("BDAT {}{last}\r\n", piece.len()).as_bytes())
            .await;
        c.send_raw(piece).await;
        assert_eq!(c.reply().await.0, 250);
    }
    let msg = h.accepted.recv().await.unwrap();
    assert!(msg.content.bytes().ends_with(&kept));
    // Spill files have no name: nothing is left in the folder.
    let left = std::fs::read_dir(&h.server.spill_dir).unwrap().count();
    assert_eq!(left, 0);
    // The contents above are dropped: the whole budget is free again.
    drop(msg);
    assert_eq!(h.server.budget.available(), 256 * 1024);
}
