//! Crash points: the log is cut or damaged where a crash (or the disk) could leave it, the
//! spool is reopened, and the recovered state must be exactly that of the records before the
//! damage — or, for damage to acknowledged records, every intact record, with the damage
//! reported (segment, octets, lost ids) and the segment as found kept in `damaged/`.
//!
//! Each case runs on the three files a segment can be written in: an empty file that grows
//! (no spare was ready), a zero-filled spare, and a recycled segment that still holds records
//! of an older one after the new log.

mod common;

use std::fs;
use std::path::Path;

use common::{
    HEADER_LEN, assert_same, full_message, ids, open, record_ends, simple_message, small_segments,
};
use postern_mailmsg::{Content, MailMsg, QueueId};
use postern_queue::{QueueState, Spool, SpoolOptions};
use tempfile::TempDir;

/// What the segment file was before the log was written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Appended,
    ZeroFilled,
    Recycled,
}

const LAYOUTS: [Layout; 3] = [Layout::Appended, Layout::ZeroFilled, Layout::Recycled];

/// A log of five records, all in one segment, as the spool wrote it.
struct Log {
    layout: Layout,
    /// The segment's file name.
    name: String,
    /// The whole file after each step: `files[k]` after k steps.
    files: Vec<Vec<u8>>,
    /// `ends[k]` is where the log ends after step k (`ends[0]` = 0, before any step).
    ends: Vec<usize>,
    a: MailMsg,
    a_deferred: MailMsg,
    b: MailMsg,
    c: MailMsg,
}

/// Options for reopening: recovery does not depend on spares, and without them a start does
/// not zero-fill one, which keeps thousands of reopens quick.
fn reopen_options() -> SpoolOptions {
    SpoolOptions {
        spare_segments: 0,
        // The files are what these tests look at after a start.
        compact: false,
        ..small_segments()
    }
}

const DEFERRED: QueueState = QueueState::Deferred {
    until_ms: 1_700_000_100_000,
};

async fn write_log(layout: Layout) -> Log {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let mut number = 1;
    if layout == Layout::Recycled {
        // A first run fills segment 1 with records of messages that all leave, so the next run
        // begins segment 2 in that file, over records longer than the new log.
        let spool = open(dir.path(), small_segments()).await;
        for _ in 0..10 {
            let mut msg = simple_message(generator.next_id());
            msg.content = Content::new(vec![b'x'; 1000]);
            spool.store(&msg).await.unwrap();
            spool.complete(msg.id.unwrap()).await.unwrap();
        }
        spool.close().await.unwrap();
        number = 2;
    }
    let a = simple_message(generator.next_id());
    let b = simple_message(generator.next_id());
    let c = full_message(generator.next_id());
    let mut a_deferred = a.clone();
    a_deferred.properties.set("attempts", 1);

    let name = format!("{number:016}.log");
    let segment = dir.path().join("segments").join(&name);
    let options = match layout {
        Layout::Appended => reopen_options(),
        Layout::ZeroFilled | Layout::Recycled => small_segments(),
    };
    let spool = open(dir.path(), options).await;
    let mut files = vec![fs::read(&segment).unwrap()];
    spool.store(&a).await.unwrap();
    files.push(fs::read(&segment).unwrap());
    spool.store(&b).await.unwrap();
    files.push(fs::read(&segment).unwrap());
    spool.update(&a_deferred, DEFERRED).await.unwrap();
    files.push(fs::read(&segment).unwrap());
    spool.complete(b.id.unwrap()).await.unwrap();
    files.push(fs::read(&segment).unwrap());
    spool.store(&c).await.unwrap();
    files.push(fs::read(&segment).unwrap());
    spool.close().await.unwrap();

    let mut ends = vec![0];
    ends.extend(record_ends(&files[5]));
    assert_eq!(ends.len(), 6);
    let stale = files[0].len() >= 4 && files[0][..4] == *b"PSPL";
    assert_eq!(stale, layout == Layout::Recycled, "{layout:?}");
    for k in 1..=5 {
        // Records never change once written; each batch's End marker follows it.
        assert_eq!(files[k][..ends[k]], files[5][..ends[k]], "{layout:?} {k}");
        assert_eq!(record_ends(&files[k]), ends[1..=k], "{layout:?} {k}");
    }
    Log {
        layout,
        name,
        files,
        ends,
        a,
        a_deferred,
        b,
        c,
    }
}

impl Log {
    /// What must be live after the first `steps` records, with the message each id loads as.
    fn expected(&self, steps: usize) -> Vec<(QueueId, QueueState, &MailMsg)> {
        let id = |m: &MailMsg| m.id.unwrap();
        let a = if steps >= 3 {
            (id(&self.a), DEFERRED, &self.a_deferred)
        } else {
            (id(&self.a), QueueState::Queued, &self.a)
        };
        let b = (id(&self.b), QueueState::Queued, &self.b);
        let c = (id(&self.c), QueueState::Queued, &self.c);
        match steps {
            0 => vec![],
            1 => vec![a],
            2 | 3 => vec![a, b],
            4 => vec![a],
            _ => vec![a, c],
        }
    }

    /// The file after step 4, with the write of step 5 (its record, then its End marker)
    /// reaching the disk only up to `cut`: the old octets are still there after it.
    fn torn(&self, cut: usize) -> Vec<u8> {
        let mut file = self.files[5][..cut].to_vec();
        if self.files[4].len() > cut {
            file.extend_from_slice(&self.files[4][cut..]);
        }
        file
    }

    /// A spool directory whose only segment is this log's segment holding `bytes`.
    fn spool_dir(&self, bytes: &[u8]) -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("segments")).unwrap();
        fs::write(dir.path().join("segments").join(&self.name), bytes).unwrap();
        dir
    }

    /// Opens `dir` and checks the recovered state is what `steps` steps give and the tail was
    /// cut at `cut_at`.
    async fn assert_recovers(&self, dir: &Path, steps: usize, cut_at: Option<usize>, case: &str) {
        let case = format!("{:?}, {case}", self.layout);
        let want = self.expected(steps);
        let (spool, recovered) = Spool::open(dir, reopen_options())
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let live: Vec<_> = recovered.live.iter().map(|m| (m.id, m.state)).collect();
        let want_live: Vec<_> = want.iter().map(|(id, state, _)| (*id, *state)).collect();
        assert_eq!(live, want_live, "{case}");
        let segment = dir.join("segments").join(&self.name);
        match cut_at {
            Some(at) => {
                assert_eq!(
                    recovered.truncated_tail,
                    Some((segment.clone(), at as u64)),
                    "{case}"
                );
                assert_eq!(fs::metadata(&segment).unwrap().len(), at as u64, "{case}");
            }
            None => assert_eq!(recovered.truncated_tail, None, "{case}"),
        }
        for (id, _, msg) in want {
            assert_same(&spool.load(id).await.unwrap(), msg);
        }
        spool.close().await.unwrap();
    }
}

#[tokio::test]
async fn stopping_between_steps_recovers_the_steps_before() {
    for layout in LAYOUTS {
        let log = write_log(layout).await;
        for steps in 0..=5 {
            // As the spool left the file, and cut back to the log (as recovery leaves a torn one).
            let cut_back = &log.files[5][..log.ends[steps]];
            for (how, bytes) in [("as left", &log.files[steps][..]), ("cut back", cut_back)] {
                let dir = log.spool_dir(bytes);
                let case = format!("after {steps} steps, {how}");
                log.assert_recovers(dir.path(), steps, None, &case).await;
            }
        }
    }
}

// One test per layout, so the thousands of reopens run in parallel.
#[tokio::test]
async fn a_cut_anywhere_in_the_last_batch_of_an_appended_file() {
    cut_anywhere_in_the_last_batch(Layout::Appended).await;
}

#[tokio::test]
async fn a_cut_anywhere_in_the_last_batch_of_a_zero_filled_file() {
    cut_anywhere_in_the_last_batch(Layout::ZeroFilled).await;
}

#[tokio::test]
async fn a_cut_anywhere_in_the_last_batch_of_a_recycled_file() {
    cut_anywhere_in_the_last_batch(Layout::Recycled).await;
}

/// A cut anywhere in the last batch recovers the records before it.
async fn cut_anywhere_in_the_last_batch(layout: Layout) {
    let log = write_log(layout).await;
    let (start, end) = (log.ends[4], log.ends[5]);
    for cut in start + 1..end + HEADER_LEN {
        let bytes = log.torn(cut);
        let dir = log.spool_dir(&bytes);
        let case = format!("cut at {cut}");
        if bytes == log.files[4] {
            // Only octets equal to the old End marker's reached the disk: nothing happened.
            log.assert_recovers(dir.path(), 4, None, &case).await;
        } else if cut < end {
            log.assert_recovers(dir.path(), 4, Some(start), &case).await;
        } else if cut == end && bytes[end..].iter().take(HEADER_LEN).all(|&b| b == 0) {
            // The record is whole and zeros (or the end of the file) follow: a clean end.
            log.assert_recovers(dir.path(), 5, None, &case).await;
        } else {
            // The record is whole, its End marker is not: the marker is the torn part.
            log.assert_recovers(dir.path(), 5, Some(end), &case).await;
        }
        // The cut is made once: the next start finds a clean log. (A cut leaves the same file
        // whatever the layout, so one layout is enough to show it.)
        if layout == Layout::Appended {
            let (spool, again) = Spool::open(dir.path(), reopen_options()).await.unwrap();
            assert_eq!(again.truncated_tail, None, "{layout:?} {case}");
            spool.close().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_batch_of_an_appended_file() {
    flip_in_the_last_batch(Layout::Appended).await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_batch_of_a_zero_filled_file() {
    flip_in_the_last_batch(Layout::ZeroFilled).await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_batch_of_a_recycled_file() {
    flip_in_the_last_batch(Layout::Recycled).await;
}

/// A flipped byte in the last batch drops only what follows it.
async fn flip_in_the_last_batch(layout: Layout) {
    let log = write_log(layout).await;
    let (start, end) = (log.ends[4], log.ends[5]);
    for at in start..end + HEADER_LEN {
        let mut bytes = log.files[5].clone();
        bytes[at] ^= 0xFF;
        let dir = log.spool_dir(&bytes);
        let case = format!("flip at {at}");
        if at < end {
            log.assert_recovers(dir.path(), 4, Some(start), &case).await;
        } else {
            // In the End marker: the record before it is whole.
            log.assert_recovers(dir.path(), 5, Some(end), &case).await;
        }
    }
}

#[tokio::test]
async fn a_flipped_byte_in_an_acknowledged_record_is_damage_reported_and_kept_and_the_rest_starts()
{
    for layout in LAYOUTS {
        let log = write_log(layout).await;
        // Step 2 stored message b; three acknowledged records follow it.
        let (start, end) = (log.ends[1], log.ends[2]);
        for at in start..end {
            let mut bytes = log.files[5].clone();
            bytes[at] ^= 0xFF;
            assert_damaged(
                &log,
                &bytes,
                (start, end),
                &format!("{layout:?}, flip at {at}"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn zeros_over_an_acknowledged_record_are_not_taken_for_the_end_of_the_log() {
    // A sector the disk lost reads as zeros, like the unwritten rest of a pre-written file; the
    // records after it show it is a hole, not the end.
    for layout in LAYOUTS {
        let log = write_log(layout).await;
        let (start, end) = (log.ends[1], log.ends[2]);
        let mut bytes = log.files[5].clone();
        bytes[start..end].fill(0);
        assert_damaged(&log, &bytes, (start, end), &format!("{layout:?}")).await;
    }
}

/// Opening a spool whose segment holds `bytes` starts with every intact record, reports the
/// damaged `range` (b's Message record: b was Done, so no message is lost), and keeps a copy of
/// the segment as found in `damaged/`.
async fn assert_damaged(log: &Log, bytes: &[u8], range: (usize, usize), case: &str) {
    let dir = log.spool_dir(bytes);
    let (spool, recovered) = Spool::open(dir.path(), reopen_options())
        .await
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(recovered.truncated_tail, None, "{case}");
    assert_eq!(recovered.damage.len(), 1, "{case}: {:?}", recovered.damage);
    let damage = &recovered.damage[0];
    assert!(damage.segment.ends_with(&log.name), "{case}: {damage}");
    assert_eq!(
        (damage.start, damage.end),
        (range.0 as u64, range.1 as u64),
        "{case}"
    );
    assert!(damage.lost.is_empty(), "{case}: {damage}");
    // a (deferred) and c are intact, whole, and in the queue.
    let want: Vec<_> = log
        .expected(5)
        .iter()
        .map(|(id, state, _)| (*id, *state))
        .collect();
    let live: Vec<_> = recovered.live.iter().map(|m| (m.id, m.state)).collect();
    assert_eq!(live, want, "{case}");
    for (id, _, msg) in log.expected(5) {
        assert_same(&spool.load(id).await.unwrap(), msg);
    }
    spool.close().await.unwrap();
    let kept = dir.path().join("damaged").join(&log.name);
    assert_eq!(fs::read(&kept).unwrap(), bytes, "{case}");
    let report =
        fs::read_to_string(dir.path().join("damaged").join(format!("{}.txt", log.name))).unwrap();
    assert!(
        report.contains(&format!("octets {}..{}", range.0, range.1)),
        "{case}: {report}"
    );
    // Its live messages were rewritten forward and the damaged segment went: the next start
    // finds an intact spool with the same messages, and reports nothing again.
    assert!(
        !dir.path().join("segments").join(&log.name).exists(),
        "{case}"
    );
    let (spool, again) = Spool::open(dir.path(), reopen_options()).await.unwrap();
    assert!(again.damage.is_empty(), "{case}: {:?}", again.damage);
    let live_again: Vec<_> = again.live.iter().map(|m| (m.id, m.state)).collect();
    assert_eq!(live_again, want, "{case}");
    spool.close().await.unwrap();
}
