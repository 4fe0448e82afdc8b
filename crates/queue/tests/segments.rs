//! Segment rotation, deletion order and relocation, watched through the files on disk.

mod common;

use std::fs;
use std::path::Path;

use common::{
    assert_same, ids, open, segment_files, segment_numbers, simple_message, spare_files,
    tiny_segments,
};
use postern_mailmsg::Fate;
use postern_queue::{QueueState, Spool, SpoolOptions};

/// The segments on disk are always a run of consecutive numbers ending at the active one:
/// deletion only ever takes the oldest.
async fn settled(spool: &Spool, dir: &Path) -> Vec<u64> {
    spool.settle().await.unwrap();
    assert_suffix(dir)
}

fn assert_suffix(dir: &Path) -> Vec<u64> {
    let numbers = segment_numbers(dir);
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "a gap in the segments: {numbers:?}");
    }
    numbers
}

#[tokio::test]
async fn segments_go_oldest_first_once_nothing_live_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let (a, b, c) = (
        generator.next_id(),
        generator.next_id(),
        generator.next_id(),
    );
    // Every batch fills a segment, so each record below lands in a segment of its own.
    let spool = open(dir.path(), tiny_segments()).await;
    spool.store(&simple_message(a)).await.unwrap(); // segment 1
    spool.store(&simple_message(b)).await.unwrap(); // segment 2
    spool.store(&simple_message(c)).await.unwrap(); // segment 3
    spool.complete(b).await.unwrap(); // segment 4
    // b is done, but a (segment 1) is live and older: nothing may go yet.
    assert_eq!(settled(&spool, dir.path()).await, vec![1, 2, 3, 4, 5]);
    spool.complete(a).await.unwrap(); // segment 5
    // Now 1 and 2 go; 3 holds c, and everything after it stays.
    assert_eq!(settled(&spool, dir.path()).await, vec![3, 4, 5, 6]);
    spool.close().await.unwrap();

    // The Dones of a and b now name messages that are not in the log: harmless.
    let (spool, recovered) = Spool::open(dir.path(), tiny_segments()).await.unwrap();
    assert_eq!(
        recovered.live.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![c]
    );
    assert_eq!(assert_suffix(dir.path()), vec![3, 4, 5, 6, 7]);
    spool.complete(c).await.unwrap();
    assert_eq!(settled(&spool, dir.path()).await, vec![8]);
    assert_eq!(spool.stats().segments, 1);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn deleting_a_newer_segment_first_would_resurrect_mail() {
    // Why the order matters: the Done of a message may sit in a newer segment than its Message.
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let (pinned, a) = (generator.next_id(), generator.next_id());
    let spool = open(dir.path(), tiny_segments()).await;
    spool.store(&simple_message(pinned)).await.unwrap(); // segment 1, keeps 1.. on disk
    spool.store(&simple_message(a)).await.unwrap(); // segment 2
    spool.complete(a).await.unwrap(); // segment 3
    spool.close().await.unwrap();
    assert_eq!(assert_suffix(dir.path()), vec![1, 2, 3, 4]);

    let done_of_a = segment_files(dir.path())[2].clone();
    fs::remove_file(done_of_a).unwrap();
    let (spool, recovered) = Spool::open(dir.path(), tiny_segments()).await.unwrap();
    let live: Vec<_> = recovered.live.iter().map(|m| m.id).collect();
    assert_eq!(
        live,
        vec![pinned, a],
        "a came back: this is what in-order deletion prevents"
    );
    // And the checkpoint shows the segment is not missing for a good reason: it is reported.
    assert_eq!(recovered.damage.len(), 1, "{:?}", recovered.damage);
    assert_eq!(recovered.damage[0].number, 3);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_long_lived_message_is_rewritten_forward_and_old_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let options = SpoolOptions {
        relocate_after_segments: 3,
        ..tiny_segments()
    };
    let held = generator.next_id();
    let mut held_msg = simple_message(held);
    held_msg.fate = Fate::Hold;
    held_msg.properties.set("reason", "suspect attachment");

    let spool = open(dir.path(), options.clone()).await;
    spool.store(&held_msg).await.unwrap();
    for _ in 0..20 {
        let id = generator.next_id();
        spool.store(&simple_message(id)).await.unwrap();
        spool.complete(id).await.unwrap();
        assert!(
            assert_suffix(dir.path()).len() <= 6,
            "{:?}",
            segment_numbers(dir.path())
        );
    }
    assert!(spool.stats().relocated >= 1);
    assert_same(&spool.load(held).await.unwrap(), &held_msg);
    spool.close().await.unwrap();

    let (spool, recovered) = Spool::open(dir.path(), options).await.unwrap();
    assert_eq!(recovered.live.len(), 1);
    assert_eq!(recovered.live[0].state, QueueState::Held);
    assert_same(&spool.load(held).await.unwrap(), &held_msg);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn an_idle_spool_keeps_one_segment_per_start() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        open(dir.path(), SpoolOptions::default())
            .await
            .close()
            .await
            .unwrap();
    }
    // Each start begins a fresh segment and deletes the empty ones before it.
    assert_eq!(assert_suffix(dir.path()), vec![3]);
}

#[tokio::test]
async fn restarts_with_one_deferred_message_do_not_grow_the_spool() {
    // One deferred message used to keep one segment per start: seven restarts, seven segments.
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        segment_size: 64 * 1024,
        ..SpoolOptions::default()
    };
    let id = ids().next_id();
    let msg = simple_message(id);
    let spool = open(dir.path(), options.clone()).await;
    spool.store(&msg).await.unwrap();
    spool
        .set_state(id, QueueState::Deferred { until_ms: u64::MAX })
        .await
        .unwrap();
    spool.close().await.unwrap();
    for restart in 0..8 {
        let (spool, recovered) = Spool::open(dir.path(), options.clone()).await.unwrap();
        assert_eq!(recovered.live.len(), 1, "restart {restart}");
        spool.settle().await.unwrap();
        assert_same(&spool.load(id).await.unwrap(), &msg);
        spool.close().await.unwrap();
        // The message was rewritten into the new segment and the old one went: one segment,
        // and at most `spare_segments` spares, whatever the number of restarts.
        assert_eq!(segment_files(dir.path()).len(), 1, "restart {restart}");
        let spares = spare_files(dir.path());
        assert!(spares.len() <= options.spare_segments, "{spares:?}");
        let octets: u64 = segment_files(dir.path())
            .iter()
            .chain(&spares)
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert!(
            octets <= (1 + options.spare_segments as u64) * options.segment_size,
            "{octets} octets after restart {restart}"
        );
    }
}

#[tokio::test]
async fn a_segment_left_mostly_dead_is_compacted_while_running() {
    // A long-lived message among many short-lived ones: its segment is rewritten forward once
    // it is mostly dead, so at most a few segments stay, without waiting for
    // `relocate_after_segments`.
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let options = SpoolOptions {
        segment_size: 4096,
        relocate_after_segments: 0,
        ..SpoolOptions::default()
    };
    let spool = open(dir.path(), options.clone()).await;
    let kept = simple_message(generator.next_id());
    spool.store(&kept).await.unwrap();
    for _ in 0..40 {
        let msg = simple_message(generator.next_id());
        spool.store(&msg).await.unwrap();
        spool.complete(msg.id.unwrap()).await.unwrap();
        spool.settle().await.unwrap();
        let on_disk = assert_suffix(dir.path());
        assert!(on_disk.len() <= 2, "{on_disk:?}");
    }
    assert!(spool.stats().relocated >= 1);
    assert_same(&spool.load(kept.id.unwrap()).await.unwrap(), &kept);
    spool.close().await.unwrap();
}
