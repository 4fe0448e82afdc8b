//! Recovery: reads every segment in order, rebuilds the index, and decides what damage means.
//!
//! The writer syncs a batch before it writes the next one, and cleans up a failed batch before
//! it begins a new segment, so after a crash only the last batch of the newest segment with
//! records can be incomplete, and no record of that batch was acknowledged. Damage there — a
//! record cut short, garbage where a record should be, a CRC mismatch — is a torn write: the
//! segment is cut back to the last good record. Damage anywhere else was acknowledged mail going
//! bad, and recovery stops with an error that names the segment and offset rather than drop it.
//! How one segment's log is read, where it ends and what counts as damage is in `scan`.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{AtPath, QueueError};
use crate::index::{Index, Location};
use crate::payload;
use crate::scan::{self, Bad};
use crate::segment;
use crate::state::QueuedMessage;

/// What `Spool::open` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Every live message, oldest id first: the transport resumes these.
    pub live: Vec<QueuedMessage>,
    /// The last segment ended in a torn record (a write the crash interrupted, never
    /// acknowledged): the segment and the offset it was cut back to.
    pub truncated_tail: Option<(PathBuf, u64)>,
}

/// What replaying the log gave.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) index: Index,
    /// The segment cut back, and where.
    pub(crate) truncated_tail: Option<(PathBuf, u64)>,
    /// The number of the newest segment, if there is one.
    pub(crate) last: Option<u64>,
}

/// Rebuilds the index from the segments in `dir`, cutting off a torn tail.
pub(crate) fn recover(dir: &Path) -> Result<Replayed, QueueError> {
    let numbers = segment::list(dir)?;
    let mut index = Index::default();
    let mut truncated = None;
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment::path(dir, number);
        let bytes = fs::read(&path).at(&path)?;
        index.add_segment(number);
        let scan = scan::scan(&bytes, number);
        // A pre-written file is longer than its log; what follows the log is never read.
        tracing::debug!(
            segment = number,
            log = scan.end,
            file = bytes.len(),
            "read a segment"
        );
        for (offset, valid) in &scan.records {
            let (effect, _) = payload::decode(valid).map_err(|reason| QueueError::Corrupt {
                segment: path.clone(),
                offset: *offset,
                reason,
            })?;
            let at = Location {
                segment: number,
                offset: *offset,
                len: valid.len(),
            };
            index.apply(effect, at);
        }
        let Some(bad) = scan.bad else { continue };
        check_torn(dir, &path, bad, &numbers[i + 1..])?;
        tracing::warn!(
            segment = %path.display(),
            offset = bad.offset,
            reason = bad.reason,
            "cutting off a torn record at the end of the log (a write the crash interrupted, never acknowledged)"
        );
        let file = OpenOptions::new().write(true).open(&path).at(&path)?;
        segment::truncate(&file, &path, bad.offset)?;
        truncated = Some((path, bad.offset));
    }
    Ok(Replayed {
        index,
        truncated_tail: truncated,
        last: numbers.last().copied(),
    })
}

/// Errs unless the damage `bad` in the segment at `path` can be a torn last batch: no later batch
/// of its segment follows it, and none of the segments begun after it (`newer`) holds records.
/// Segments without records do not count: the writer may have begun one (or taken a spare) and
/// stopped before writing to it. Which they are is read from their content, not their length,
/// since a pre-written file is long before it holds anything.
fn check_torn(dir: &Path, path: &Path, bad: Bad, newer: &[u64]) -> Result<(), QueueError> {
    let corrupt = |reason: String| QueueError::Corrupt {
        segment: path.to_path_buf(),
        offset: bad.offset,
        reason,
    };
    if let Some(later) = bad.later_batch_at {
        return Err(corrupt(format!(
            "{}, and a later batch starts at offset {later}: acknowledged records are damaged",
            bad.reason
        )));
    }
    for &number in newer {
        let newer_path = segment::path(dir, number);
        let bytes = fs::read(&newer_path).at(&newer_path)?;
        if scan::scan(&bytes, number).holds_records() {
            return Err(corrupt(format!(
                "{}, in a segment that is not the newest (only the newest may end in a torn write)",
                bad.reason
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::record::{Frame, HEADER_LEN, end_marker};
    use crate::scan::tests::message;
    use crate::state::QueueState;
    use postern_mailmsg::QueueId;

    /// The octets of segment `segment` holding `batches` as the writer leaves them: each batch's
    /// records carry their offset within it, and an End marker follows the last batch. Returns
    /// the bytes and the start of each record.
    fn segment_of(segment: u64, batches: Vec<Vec<Frame>>) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        let mut batch_len = 0;
        for batch in batches {
            let batch_start = bytes.len();
            for frame in batch {
                starts.push(bytes.len());
                let offset = (bytes.len() - batch_start) as u32;
                bytes.extend_from_slice(&frame.to_bytes(segment, offset));
            }
            batch_len = bytes.len() - batch_start;
        }
        bytes.extend_from_slice(&end_marker(segment, batch_len as u32));
        (bytes, starts)
    }

    fn live(index: &Index) -> Vec<QueueId> {
        index.list().into_iter().map(|m| m.id).collect()
    }

    #[test]
    fn dones_and_updates_for_unknown_ids_are_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = QueueId::from_u128(99);
        let frames = vec![
            message(1),
            payload::done(unknown).unwrap().0,
            payload::update(unknown, Envelope::default(), QueueState::Held)
                .unwrap()
                .0,
        ];
        let (bytes, _) = segment_of(1, vec![frames]);
        fs::write(segment::path(dir.path(), 1), bytes).unwrap();
        let replayed = recover(dir.path()).unwrap();
        assert_eq!(replayed.truncated_tail, None);
        assert_eq!(replayed.last, Some(1));
        assert_eq!(live(&replayed.index), vec![QueueId::from_u128(1)]);
    }

    #[test]
    fn a_torn_record_in_an_older_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = segment_of(1, vec![vec![message(1)]]);
        let cut = bytes.len() - HEADER_LEN - 1;
        fs::write(segment::path(dir.path(), 1), &bytes[..cut]).unwrap();
        fs::write(
            segment::path(dir.path(), 2),
            segment_of(2, vec![vec![message(2)]]).0,
        )
        .unwrap();
        let err = recover(dir.path()).unwrap_err();
        assert!(
            matches!(err, QueueError::Corrupt { offset: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0000000000000001.log"), "{err}");
    }

    #[test]
    fn segments_without_records_after_a_torn_one_do_not_make_it_acknowledged() {
        // Begun and never written to: an empty file, a zero-filled spare, a recycled spare that
        // still holds an older segment's records.
        let dir = tempfile::tempdir().unwrap();
        let (bytes, starts) = segment_of(3, vec![vec![message(1)], vec![message(2)]]);
        let cut = bytes.len() - HEADER_LEN - 3;
        fs::write(segment::path(dir.path(), 3), &bytes[..cut]).unwrap();
        fs::write(segment::path(dir.path(), 4), b"").unwrap();
        fs::write(segment::path(dir.path(), 5), vec![0; 8192]).unwrap();
        let (stale, _) = segment_of(2, vec![vec![message(7), message(8)]]);
        fs::write(segment::path(dir.path(), 6), stale).unwrap();
        let replayed = recover(dir.path()).unwrap();
        let (path, offset) = replayed.truncated_tail.unwrap();
        assert_eq!(offset, starts[1] as u64);
        assert_eq!(fs::metadata(path).unwrap().len(), starts[1] as u64);
        assert_eq!(live(&replayed.index), vec![QueueId::from_u128(1)]);
        assert_eq!(replayed.last, Some(6));
    }

    #[test]
    fn a_recycled_segment_recovers_exactly_its_new_records() {
        // The file held five records of segment 4; reused as segment 9, it took two.
        let dir = tempfile::tempdir().unwrap();
        let (mut file, _) = segment_of(4, vec![(10..15).map(message).collect()]);
        let old_len = file.len();
        let (new, _) = segment_of(9, vec![vec![message(1)], vec![message(2)]]);
        assert!(new.len() < old_len);
        file[..new.len()].copy_from_slice(&new);
        fs::write(segment::path(dir.path(), 9), &file).unwrap();
        let replayed = recover(dir.path()).unwrap();
        assert_eq!(replayed.truncated_tail, None);
        let want = vec![QueueId::from_u128(1), QueueId::from_u128(2)];
        assert_eq!(live(&replayed.index), want);
        // Nothing is cut from a clean end: the file stays pre-written for its next use.
        assert_eq!(
            fs::metadata(segment::path(dir.path(), 9)).unwrap().len(),
            old_len as u64
        );
    }

    #[test]
    fn a_zero_tail_is_a_clean_end_in_any_segment() {
        let dir = tempfile::tempdir().unwrap();
        for number in [1, 2] {
            let (mut bytes, _) = segment_of(number, vec![vec![message(u128::from(number))]]);
            bytes.resize(16384, 0);
            fs::write(segment::path(dir.path(), number), bytes).unwrap();
        }
        let replayed = recover(dir.path()).unwrap();
        assert_eq!(replayed.truncated_tail, None);
        assert_eq!(live(&replayed.index).len(), 2);
    }

    #[test]
    fn effects_are_applied_in_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let id = QueueId::from_u128(5);
        let frames = vec![
            message(5),
            payload::update(
                id,
                Envelope::default(),
                QueueState::Deferred { until_ms: 3 },
            )
            .unwrap()
            .0,
        ];
        let (bytes, _) = segment_of(1, vec![frames]);
        fs::write(segment::path(dir.path(), 1), bytes).unwrap();
        let index = recover(dir.path()).unwrap().index;
        assert_eq!(
            index.get(id).map(|e| e.state),
            Some(QueueState::Deferred { until_ms: 3 })
        );
    }
}
