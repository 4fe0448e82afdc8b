//! Crash points: the log is cut or damaged where a crash (or the disk) could leave it, the
//! spool is reopened, and the recovered state must be exactly that of the records before the
//! damage — or, for damage to acknowledged records, an error that names the place.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_same, full_message, ids, open, simple_message};
use postern_mailmsg::{MailMsg, QueueId};
use postern_queue::{QueueError, QueueState, Spool, SpoolOptions};
use tempfile::TempDir;

const SEGMENT: &str = "0000000000000001.log";

/// A log of five records, all in segment 1, with the offset where each step's record ends.
struct Log {
    bytes: Vec<u8>,
    /// `ends[k]` is the length of the log after step k (`ends[0]` = 0, before any step).
    ends: Vec<usize>,
    a: MailMsg,
    a_deferred: MailMsg,
    b: MailMsg,
    c: MailMsg,
}

const DEFERRED: QueueState = QueueState::Deferred {
    until_ms: 1_700_000_100_000,
};

async fn write_log() -> Log {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let a = simple_message(generator.next_id());
    let b = simple_message(generator.next_id());
    let c = full_message(generator.next_id());
    let mut a_deferred = a.clone();
    a_deferred.properties.set("attempts", 1);

    let segment = dir.path().join("segments").join(SEGMENT);
    let spool = open(dir.path(), SpoolOptions::default()).await;
    let mut ends = vec![0];
    let len = || fs::metadata(&segment).unwrap().len() as usize;
    spool.store(&a).await.unwrap();
    ends.push(len());
    spool.store(&b).await.unwrap();
    ends.push(len());
    spool.update(&a_deferred, DEFERRED).await.unwrap();
    ends.push(len());
    spool.complete(b.id.unwrap()).await.unwrap();
    ends.push(len());
    spool.store(&c).await.unwrap();
    ends.push(len());
    spool.close().await.unwrap();
    let bytes = fs::read(&segment).unwrap();
    assert_eq!(bytes.len(), ends[5]);
    Log {
        bytes,
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
}

/// A spool directory whose only segment holds `bytes`.
fn spool_dir(bytes: &[u8]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("segments")).unwrap();
    fs::write(dir.path().join("segments").join(SEGMENT), bytes).unwrap();
    dir
}

/// Opens `dir` and checks the recovered state is `want` and the tail was cut at `cut_at`.
async fn assert_recovers(
    dir: &Path,
    want: &[(QueueId, QueueState, &MailMsg)],
    cut_at: Option<usize>,
    case: &str,
) {
    let (spool, recovered) = Spool::open(dir, SpoolOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let live: Vec<_> = recovered.live.iter().map(|m| (m.id, m.state)).collect();
    let want_live: Vec<_> = want.iter().map(|(id, state, _)| (*id, *state)).collect();
    assert_eq!(live, want_live, "{case}");
    let segment = dir.join("segments").join(SEGMENT);
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
        assert_same(&spool.load(*id).await.unwrap(), msg);
    }
    spool.close().await.unwrap();
}

#[tokio::test]
async fn stopping_between_steps_recovers_the_steps_before() {
    let log = write_log().await;
    for steps in 0..=5 {
        let dir = spool_dir(&log.bytes[..log.ends[steps]]);
        let case = format!("after {steps} steps");
        assert_recovers(dir.path(), &log.expected(steps), None, &case).await;
    }
}

#[tokio::test]
async fn a_cut_anywhere_in_the_last_record_recovers_the_records_before_it() {
    let log = write_log().await;
    let (start, end) = (log.ends[4], log.ends[5]);
    for cut in start + 1..end {
        let dir = spool_dir(&log.bytes[..cut]);
        let case = format!("cut at {cut}");
        assert_recovers(dir.path(), &log.expected(4), Some(start), &case).await;
        // The cut is made once: the next start finds a clean log.
        let (spool, again) = Spool::open(dir.path(), SpoolOptions::default())
            .await
            .unwrap();
        assert_eq!(again.truncated_tail, None, "{case}");
        spool.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_flipped_byte_in_the_last_record_drops_only_that_record() {
    let log = write_log().await;
    let (start, end) = (log.ends[4], log.ends[5]);
    for at in start..end {
        let mut bytes = log.bytes.clone();
        bytes[at] ^= 0xFF;
        let dir = spool_dir(&bytes);
        let case = format!("flip at {at}");
        assert_recovers(dir.path(), &log.expected(4), Some(start), &case).await;
    }
}

#[tokio::test]
async fn a_flipped_byte_in_an_acknowledged_record_is_an_error_naming_the_offset() {
    let log = write_log().await;
    // Step 2 stored message b; three acknowledged records follow it.
    let (start, end) = (log.ends[1], log.ends[2]);
    for at in start..end {
        let mut bytes = log.bytes.clone();
        bytes[at] ^= 0xFF;
        let dir = spool_dir(&bytes);
        let err = Spool::open(dir.path(), SpoolOptions::default())
            .await
            .unwrap_err();
        match &err {
            QueueError::Corrupt {
                segment, offset, ..
            } => {
                assert_eq!(*offset, start as u64, "flip at {at}");
                assert!(segment.ends_with(SEGMENT), "flip at {at}: {err}");
            }
            other => panic!("flip at {at}: {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(SEGMENT) && text.contains(&format!("offset {start}")),
            "{text}"
        );
        // Nothing was cut: the damaged log is left for an administrator.
        let segment = dir.path().join("segments").join(SEGMENT);
        assert_eq!(fs::read(segment).unwrap(), bytes, "flip at {at}");
    }
}
