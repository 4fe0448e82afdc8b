//! Pre-written segments: spent segments recycled as spares, zero-filled spares, what a crash can
//! leave in `spare/`, and rotation with and without a spare ready.

mod common;

use std::fs;
use std::path::Path;

use common::{
    HEADER_LEN, assert_same, ids, open, record_ends, segment_files, simple_message, spare_files,
};
use postern_mailmsg::{Content, QueueIdGenerator};
use postern_queue::{DiskReserve, Spool, SpoolOptions};

/// Segments of 4 KiB: a few messages of 1 KiB fill one.
fn small() -> SpoolOptions {
    SpoolOptions {
        segment_size: 4096,
        relocate_after_segments: 0,
        ..SpoolOptions::default()
    }
}

fn kilobyte_message(generator: &QueueIdGenerator) -> postern_mailmsg::MailMsg {
    let mut msg = simple_message(generator.next_id());
    msg.content = Content::new(vec![b'k'; 1024]);
    msg
}

#[tokio::test]
async fn recycled_segments_serve_the_steady_state_and_recover_exactly_their_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let spool = open(dir.path(), small()).await;
    // Messages that come and go: segments fill, rotate and are spent, over and over.
    for _ in 0..60 {
        let msg = kilobyte_message(&generator);
        spool.store(&msg).await.unwrap();
        spool.complete(msg.id.unwrap()).await.unwrap();
    }
    // Then two that stay, written over records of an earlier use of their file.
    let (x, y) = (kilobyte_message(&generator), kilobyte_message(&generator));
    spool.store(&x).await.unwrap();
    spool.store(&y).await.unwrap();
    spool.settle().await.unwrap();
    let stats = spool.stats();
    let rotations = stats.spares_taken + stats.empty_begins - 1;
    assert!(rotations >= 20, "{stats:?}");
    assert!(stats.recycled >= rotations - 2, "{stats:?}");
    // Zeros for the first segment, the spare made after the start and at most one more at the
    // first rotation (nothing is spent yet): recycling serves the rest.
    assert!(stats.zero_filled <= 3 * 4096, "{stats:?}");
    assert!(spare_files(dir.path()).len() <= 2);
    spool.close().await.unwrap();

    let newest = segment_files(dir.path()).pop().unwrap();
    let bytes = fs::read(&newest).unwrap();
    let log_end = *record_ends(&bytes).last().unwrap();
    assert!(
        bytes.len() > log_end + HEADER_LEN && bytes[log_end + HEADER_LEN..].iter().any(|&b| b != 0),
        "the newest segment should hold an older use's records after its log"
    );

    let (spool, recovered) = Spool::open(dir.path(), small()).await.unwrap();
    assert_eq!(recovered.truncated_tail, None);
    let live: Vec<_> = recovered.live.iter().map(|m| m.id).collect();
    assert_eq!(live, vec![x.id.unwrap(), y.id.unwrap()]);
    assert_same(&spool.load(x.id.unwrap()).await.unwrap(), &x);
    assert_same(&spool.load(y.id.unwrap()).await.unwrap(), &y);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn what_a_crash_leaves_in_spare_and_in_a_just_begun_segment_is_harmless() {
    // Another spool's segment, well advanced, holding a live message: the stand-in for a file
    // that held records before it became a spare.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = QueueIdGenerator::new(9);
    let spool = open(elsewhere.path(), common::tiny_segments()).await;
    for _ in 0..30 {
        spool.store(&simple_message(other.next_id())).await.unwrap();
    }
    let stranger = simple_message(other.next_id());
    spool.store(&stranger).await.unwrap();
    spool.close().await.unwrap();
    let foreign = segment_files(elsewhere.path()).pop().unwrap();
    let foreign_number = number_of(&foreign);
    assert!(foreign_number > 30);

    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let (x, y) = (
        simple_message(generator.next_id()),
        simple_message(generator.next_id()),
    );
    let spool = open(dir.path(), small()).await;
    spool.store(&x).await.unwrap();
    spool.store(&y).await.unwrap();
    spool.close().await.unwrap();
    // A recycled spare named after the segment it was; a zero-fill the crash cut short; a file
    // that is no spare at all.
    let spare = dir.path().join("spare");
    fs::copy(&foreign, spare.join(foreign.file_name().unwrap())).unwrap();
    fs::write(spare.join("0000000000000000.log"), [0u8; 100]).unwrap();
    fs::write(spare.join("notes.txt"), b"not a spare").unwrap();
    // A segment begun in a recycled spare just before the crash, before any record: it holds
    // only the older segment's records.
    let begun = foreign_number + 1;
    fs::copy(
        &foreign,
        dir.path().join("segments").join(format!("{begun:016}.log")),
    )
    .unwrap();

    let (spool, recovered) = Spool::open(dir.path(), small()).await.unwrap();
    assert_eq!(recovered.truncated_tail, None);
    let live: Vec<_> = recovered.live.iter().map(|m| m.id).collect();
    assert_eq!(live, vec![x.id.unwrap(), y.id.unwrap()]);
    spool.settle().await.unwrap();
    // The first segment is numbered past every segment and every spare.
    let numbers: Vec<u64> = segment_files(dir.path())
        .iter()
        .map(|p| number_of(p))
        .collect();
    assert_eq!(numbers.last(), Some(&(begun + 1)), "{numbers:?}");
    let spares: Vec<_> = spare_files(dir.path());
    assert!(
        spares.len() <= 3,
        "two spares at most, and notes.txt: {spares:?}"
    );
    assert!(spares.iter().any(|p| p.ends_with("notes.txt")));
    let w = simple_message(generator.next_id());
    spool.store(&w).await.unwrap();
    spool.close().await.unwrap();

    let (spool, recovered) = Spool::open(dir.path(), small()).await.unwrap();
    let live: Vec<_> = recovered.live.iter().map(|m| m.id).collect();
    assert_eq!(live, vec![x.id.unwrap(), y.id.unwrap(), w.id.unwrap()]);
    assert!(spool.get(stranger.id.unwrap()).is_none());
    assert_same(&spool.load(w.id.unwrap()).await.unwrap(), &w);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_rotation_takes_a_ready_spare() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    // Every batch fills its segment.
    let spool = open(dir.path(), common::tiny_segments()).await;
    for expected_spares in 2..=4 {
        // A spare is ready (settle waits for the preparer), then a batch fills the segment and
        // the rotation after it (settle waits for that too) takes the spare.
        spool.settle().await.unwrap();
        spool
            .store(&simple_message(generator.next_id()))
            .await
            .unwrap();
        spool.settle().await.unwrap();
        let stats = spool.stats();
        // The first segment and one per rotation, none begun empty.
        assert_eq!(
            (stats.spares_taken, stats.empty_begins),
            (expected_spares, 0)
        );
    }
    spool.close().await.unwrap();
    let (spool, recovered) = Spool::open(dir.path(), common::tiny_segments())
        .await
        .unwrap();
    assert_eq!(recovered.live.len(), 3);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn without_spares_every_segment_begins_empty_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let options = SpoolOptions {
        spare_segments: 0,
        ..common::tiny_segments()
    };
    let spool = open(dir.path(), options.clone()).await;
    let messages: Vec<_> = (0..3)
        .map(|_| simple_message(generator.next_id()))
        .collect();
    for msg in &messages {
        spool.store(msg).await.unwrap();
    }
    spool.settle().await.unwrap();
    let stats = spool.stats();
    assert_eq!((stats.spares_taken, stats.empty_begins), (0, 4));
    assert_eq!(stats.zero_filled, 0);
    spool.close().await.unwrap();
    assert!(spare_files(dir.path()).is_empty());
    // Each file is its log and the End marker after it, nothing more.
    for file in &segment_files(dir.path())[..3] {
        let bytes = fs::read(file).unwrap();
        assert_eq!(bytes.len(), record_ends(&bytes)[0] + HEADER_LEN);
    }
    let (spool, recovered) = Spool::open(dir.path(), options).await.unwrap();
    assert_eq!(recovered.live.len(), 3);
    for msg in &messages {
        assert_same(&spool.load(msg.id.unwrap()).await.unwrap(), msg);
    }
    spool.close().await.unwrap();
}

fn number_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn below_the_disk_reserve_no_spare_is_written_and_mail_is_refused_but_records_go_on() {
    // A reserve of the whole file system: whatever is free, it is below it.
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let options = SpoolOptions {
        disk_reserve: DiskReserve::percent(100),
        ..small()
    };
    let (spool, _) = Spool::open(dir.path(), options.clone()).await.unwrap();
    assert!(!spool.accepting());
    // The preparer wrote no zeros: the first segment began empty, and no spare waits.
    spool.settle().await.unwrap();
    let stats = spool.stats();
    assert_eq!(stats.zero_filled, 0);
    assert_eq!((stats.spares_taken, stats.empty_begins), (0, 1));
    assert!(spare_files(dir.path()).is_empty());
    // Delivery's records are still written: the queue drains below the reserve.
    let msg = kilobyte_message(&generator);
    spool.store(&msg).await.unwrap();
    spool.complete(msg.id.unwrap()).await.unwrap();
    spool.close().await.unwrap();

    // With no reserve, the same spool accepts and pre-writes its spare.
    let options = SpoolOptions {
        disk_reserve: DiskReserve::octets(0),
        ..small()
    };
    let (spool, _) = Spool::open(dir.path(), options).await.unwrap();
    assert!(spool.accepting());
    spool.settle().await.unwrap();
    assert!(spool.stats().zero_filled > 0);
    spool.close().await.unwrap();
}
