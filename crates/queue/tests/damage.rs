//! Damage to acknowledged records that no crash can explain: a segment cut at a record boundary
//! (the newest or an older one) or gone. The log alone reads such a cut as a clean end; the
//! checkpoint knows better. The spool must start with every intact message, name the segment,
//! the octets and every message it lost, and keep what it found in `damaged/`; `check` must
//! find the same without changing anything.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_same, ids, record_ends, segment_files, simple_message};
use postern_mailmsg::{MailMsg, QueueId};
use postern_queue::{QueueState, Recovered, Spool, SpoolOptions};

const DEFERRED: QueueState = QueueState::Deferred {
    until_ms: 1_700_000_100_000,
};

/// Segments of 4 KiB, each begun as an empty file (so a file ends where its log does), and
/// nothing rewritten: the layout stays as written until the test damages it.
fn writing() -> SpoolOptions {
    SpoolOptions {
        segment_size: 4096,
        relocate_after_segments: 0,
        spare_segments: 0,
        compact: false,
        ..SpoolOptions::default()
    }
}

/// Each message as stored and as deferred, by id.
type Messages = BTreeMap<QueueId, (MailMsg, MailMsg)>;

/// Twenty messages stored, then deferred (a Message and an Update each), all acknowledged;
/// the spool is closed.
async fn twenty_deferred(dir: &Path) -> Messages {
    let generator = ids();
    let (spool, _) = Spool::open(dir, writing()).await.unwrap();
    let mut messages = BTreeMap::new();
    for _ in 0..20 {
        let msg = simple_message(generator.next_id());
        spool.store(&msg).await.unwrap();
        let mut deferred = msg.clone();
        deferred.properties.set("attempts", 1);
        spool.update(&deferred, DEFERRED).await.unwrap();
        messages.insert(msg.id.unwrap(), (msg, deferred));
    }
    spool.close().await.unwrap();
    messages
}

/// The segment files that hold records, oldest first.
fn written_segments(dir: &Path) -> Vec<PathBuf> {
    segment_files(dir)
        .into_iter()
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect()
}

/// Cuts the segment at `path` at the record boundary in the middle of its log; returns the
/// cut and where the log ended.
fn cut_in_the_middle(path: &Path) -> (u64, u64) {
    let bytes = fs::read(path).unwrap();
    let ends = record_ends(&bytes);
    assert!(ends.len() >= 2, "{}: {ends:?}", path.display());
    let cut = ends[ends.len() / 2 - 1];
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    (cut as u64, *ends.last().unwrap() as u64)
}

/// Opens the damaged spool and checks what every case must show: it starts; each message it no
/// longer has is reported lost (none silently), and each it has loads whole, deferred (or as
/// stored, when only its Update was in the damaged range); the segment as found and a report
/// naming the lost ids are in `damaged/`. Returns what open said.
async fn open_damaged(dir: &Path, messages: &Messages, segment: &Path) -> Recovered {
    let found = fs::read(segment).ok();
    let (spool, recovered) = Spool::open(dir, SpoolOptions::default()).await.unwrap();
    let live: Vec<QueueId> = recovered.live.iter().map(|m| m.id).collect();
    let missing: Vec<QueueId> = messages
        .keys()
        .filter(|id| !live.contains(id))
        .copied()
        .collect();
    assert!(!missing.is_empty(), "the cut took no message");
    let mut lost = recovered.lost();
    lost.sort();
    assert_eq!(lost, missing, "every missing message is reported, by id");
    for m in &recovered.live {
        let (stored, deferred) = &messages[&m.id];
        let want = if m.state == DEFERRED {
            deferred
        } else {
            stored
        };
        assert!(m.state == DEFERRED || m.state == QueueState::Queued);
        assert_same(&spool.load(m.id).await.unwrap(), want);
    }
    spool.close().await.unwrap();

    let name = segment.file_name().unwrap().to_str().unwrap();
    let damaged = dir.join("damaged");
    if let Some(found) = found {
        assert_eq!(fs::read(damaged.join(name)).unwrap(), found);
    }
    let report = fs::read_to_string(damaged.join(format!("{name}.txt"))).unwrap();
    for id in &missing {
        assert!(report.contains(&id.to_string()), "{id} not in {report}");
    }
    recovered
}

#[tokio::test]
async fn the_newest_segment_cut_at_a_record_boundary_is_reported_with_every_lost_message() {
    let dir = tempfile::tempdir().unwrap();
    let messages = twenty_deferred(dir.path()).await;
    let newest = written_segments(dir.path()).pop().unwrap();
    let (cut, end) = cut_in_the_middle(&newest);

    let recovered = open_damaged(dir.path(), &messages, &newest).await;
    assert_eq!(recovered.truncated_tail, None);
    let damage = &recovered.damage[0];
    assert_eq!(damage.segment.file_name(), newest.file_name());
    assert_eq!((damage.start, damage.end), (cut, end), "{damage}");
    assert!(damage.to_string().contains(&format!("octets {cut}..{end}")));

    // Reported once: the next start finds the spool intact, with the same messages.
    let (spool, again) = Spool::open(dir.path(), SpoolOptions::default())
        .await
        .unwrap();
    assert!(again.damage.is_empty(), "{:?}", again.damage);
    assert_eq!(again.live, recovered.live);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn an_older_segment_cut_at_a_record_boundary_is_reported_with_every_lost_message() {
    let dir = tempfile::tempdir().unwrap();
    let messages = twenty_deferred(dir.path()).await;
    let written = written_segments(dir.path());
    assert!(written.len() >= 3, "{written:?}");
    let older = written[0].clone();
    let (cut, end) = cut_in_the_middle(&older);

    let recovered = open_damaged(dir.path(), &messages, &older).await;
    let damage = &recovered.damage[0];
    assert_eq!(damage.segment.file_name(), older.file_name());
    assert_eq!((damage.start, damage.end), (cut, end), "{damage}");
    // What follows the damaged segment is all there.
    for path in &written[1..] {
        assert!(recovered.damage.iter().all(|d| d.segment != *path));
    }
}

#[tokio::test]
async fn a_segment_gone_from_the_middle_is_reported_with_every_lost_message() {
    let dir = tempfile::tempdir().unwrap();
    let messages = twenty_deferred(dir.path()).await;
    let written = written_segments(dir.path());
    let gone = written[1].clone();
    let len = *record_ends(&fs::read(&gone).unwrap()).last().unwrap() as u64;
    fs::remove_file(&gone).unwrap();

    let recovered = open_damaged(dir.path(), &messages, &gone).await;
    let damage = recovered
        .damage
        .iter()
        .find(|d| d.segment == gone)
        .expect("the missing segment is named");
    assert_eq!((damage.start, damage.end), (0, len), "{damage}");
}

#[tokio::test]
async fn check_finds_the_damage_open_would_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let messages = twenty_deferred(dir.path()).await;
    let report = postern_queue::check(dir.path()).unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    assert!(report.checkpoint);
    assert_eq!(report.live, messages.len());
    let records: usize = report.segments.iter().map(|s| s.records).sum();
    assert_eq!(records, 40);

    let newest = written_segments(dir.path()).pop().unwrap();
    let (cut, end) = cut_in_the_middle(&newest);
    let report = postern_queue::check(dir.path()).unwrap();
    assert!(!report.intact());
    let damage = &report.damage[0];
    assert_eq!((damage.start, damage.end), (cut, end));
    assert!(!damage.lost.is_empty());
    assert_eq!(report.live + damage.lost.len(), messages.len());
    // Read only: nothing cut, copied or rewritten.
    assert_eq!(fs::metadata(&newest).unwrap().len(), cut);
    assert!(!dir.path().join("damaged").exists());

    // A running spool holds the lock: check refuses rather than read a log being written.
    let (spool, _) = Spool::open(dir.path(), SpoolOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        postern_queue::check(dir.path()),
        Err(postern_queue::QueueError::Locked(_))
    ));
    spool.close().await.unwrap();
    // After the start that reported it, the spool checks intact; the kept files are listed.
    let report = postern_queue::check(dir.path()).unwrap();
    assert!(report.intact(), "{:?}", report.damage);
    assert!(!report.kept.is_empty());
}

#[tokio::test]
async fn after_a_crash_the_checkpoint_written_while_running_still_names_the_lost_messages() {
    // What a crash leaves is what is on disk while the spool runs: a copy taken then.
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let (spool, _) = Spool::open(dir.path(), writing()).await.unwrap();
    let mut messages = Messages::new();
    for _ in 0..20 {
        let msg = simple_message(generator.next_id());
        spool.store(&msg).await.unwrap();
        let mut deferred = msg.clone();
        deferred.properties.set("attempts", 1);
        spool.update(&deferred, DEFERRED).await.unwrap();
        messages.insert(msg.id.unwrap(), (msg, deferred));
    }
    // The running spool brings its checkpoint up to date within a second or so.
    let last = messages.keys().last().unwrap().to_string();
    let checkpoint = dir.path().join("checkpoint.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !fs::read_to_string(&checkpoint).is_ok_and(|text| text.contains(&last)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint lists {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let image = tempfile::tempdir().unwrap();
    fs::create_dir(image.path().join("segments")).unwrap();
    for path in segment_files(dir.path()) {
        fs::copy(
            &path,
            image
                .path()
                .join("segments")
                .join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    fs::copy(&checkpoint, image.path().join("checkpoint.json")).unwrap();
    spool.close().await.unwrap();

    let newest = written_segments(image.path()).pop().unwrap();
    cut_in_the_middle(&newest);
    open_damaged(image.path(), &messages, &newest).await;
}
