//! Recovery: reads every segment in order, rebuilds the index, and decides what damage means.
//!
//! The writer syncs a batch before it writes the next one, and cleans up a failed batch before
//! it begins a new segment, so after a crash only the last batch of the newest segment with
//! records can be incomplete, and no record of that batch was acknowledged. Damage there — a record cut short, zeros where a record should
//! be, a CRC mismatch — is a torn write: the segment is cut back to the last good record. Damage
//! anywhere else was acknowledged mail going bad, and recovery stops with an error that names
//! the segment and offset rather than drop it.
//!
//! "Only the last batch": every record carries its offset within its batch, so for a valid
//! record found past the damage, recovery knows where its batch began. If a batch began after
//! the damaged record, the damaged record was synced before that batch was written: it was
//! acknowledged, and the damage is not a torn write.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{AtPath, QueueError};
use crate::index::{Index, Location};
use crate::payload;
use crate::record::{self, HEADER_LEN, Invalid, MAGIC, Valid};
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
    // Empty segments after the last one with records do not count: the writer may have begun a
    // segment and failed before writing to it, and then gone on in the one before.
    let mut last_with_records = None;
    for &number in numbers.iter().rev() {
        let path = segment::path(dir, number);
        if fs::metadata(&path).at(&path)?.len() > 0 {
            last_with_records = Some(number);
            break;
        }
    }
    let mut index = Index::default();
    let mut truncated = None;
    for &number in &numbers {
        let is_last = last_with_records.is_none_or(|last| number >= last);
        let path = segment::path(dir, number);
        let bytes = fs::read(&path).at(&path)?;
        index.add_segment(number);
        let scan = scan(&bytes);
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
        let corrupt = |reason: String| QueueError::Corrupt {
            segment: path.clone(),
            offset: bad.offset,
            reason,
        };
        if !is_last {
            return Err(corrupt(format!(
                "{}, in a segment that is not the newest (only the newest may end in a torn write)",
                bad.reason.reason()
            )));
        }
        if let Some(later) = bad.later_batch_at {
            return Err(corrupt(format!(
                "{}, and a later batch starts at offset {later}: acknowledged records are damaged",
                bad.reason.reason()
            )));
        }
        tracing::warn!(
            segment = %path.display(),
            offset = bad.offset,
            reason = bad.reason.reason(),
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

/// The records of one segment up to the first that fails its check.
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    pub(crate) records: Vec<(u64, Valid<'a>)>,
    pub(crate) bad: Option<Bad>,
}

/// The first record of a segment that failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bad {
    pub(crate) offset: u64,
    pub(crate) reason: Invalid,
    /// Where a valid record of a batch that began after `offset` was found, if one was: proof
    /// that the damage is not a torn last batch.
    pub(crate) later_batch_at: Option<u64>,
}

/// Reads the records of a segment.
pub(crate) fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match record::check(&bytes[offset..]) {
            Ok(valid) => {
                records.push((offset as u64, valid));
                offset += HEADER_LEN + valid.payload.len();
            }
            Err(reason) => {
                let bad = Bad {
                    offset: offset as u64,
                    reason,
                    later_batch_at: later_batch(bytes, offset),
                };
                return Scan {
                    records,
                    bad: Some(bad),
                };
            }
        }
    }
    Scan { records, bad: None }
}

/// Looks past damage at `bad` for a valid record of a batch that began after it. The damaged
/// record's own length cannot be trusted, so the search goes octet by octet from just after its
/// start; a valid record of the damaged batch itself is skipped whole.
fn later_batch(bytes: &[u8], bad: usize) -> Option<u64> {
    let mut at = bad + 1;
    while at + HEADER_LEN <= bytes.len() {
        let found = bytes[at..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        at += found;
        match record::check(&bytes[at..]) {
            Ok(valid) => {
                let batch_start = (at as u64).saturating_sub(u64::from(valid.batch_offset));
                if batch_start > bad as u64 {
                    return Some(at as u64);
                }
                at += HEADER_LEN + valid.payload.len();
            }
            Err(_) => at += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::record::Frame;
    use crate::state::QueueState;
    use bytes::Bytes;
    use postern_mailmsg::QueueId;

    fn message(id: u128) -> Frame {
        let content = Bytes::from(format!("Subject: {id}\r\n\r\nbody {id}\r\n"));
        payload::message(
            QueueId::from_u128(id),
            Envelope::default(),
            QueueState::Queued,
            &content,
        )
        .unwrap()
        .0
    }

    /// Writes batches of frames as the writer would: each batch's records carry their offset
    /// within it. Returns the bytes and the start of each record.
    fn segment_of(batches: Vec<Vec<Frame>>) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for batch in batches {
            let batch_start = bytes.len();
            for frame in batch {
                starts.push(bytes.len());
                let offset = (bytes.len() - batch_start) as u32;
                bytes.extend_from_slice(&frame.to_bytes(offset));
            }
        }
        (bytes, starts)
    }

    #[test]
    fn a_cut_anywhere_in_the_last_record_is_a_torn_tail() {
        let (bytes, starts) = segment_of(vec![vec![message(1)], vec![message(2)]]);
        for cut in starts[1] + 1..bytes.len() {
            let scan = scan(&bytes[..cut]);
            assert_eq!(scan.records.len(), 1, "cut {cut}");
            let bad = scan.bad.unwrap();
            assert_eq!((bad.offset, bad.later_batch_at), (starts[1] as u64, None));
        }
    }

    #[test]
    fn damage_inside_the_last_batch_is_torn_even_with_valid_records_after_it() {
        // Pages of one write can reach the disk out of order; none of the batch was acknowledged.
        let (mut bytes, starts) = segment_of(vec![
            vec![message(1)],
            vec![message(2), message(3), message(4)],
        ]);
        bytes[starts[2] + 30] ^= 0xFF;
        let scan = scan(&bytes);
        assert_eq!(scan.records.len(), 2);
        let bad = scan.bad.unwrap();
        assert_eq!((bad.offset, bad.later_batch_at), (starts[2] as u64, None));
    }

    #[test]
    fn damage_before_a_later_batch_is_corruption_of_acknowledged_mail() {
        let (mut bytes, starts) =
            segment_of(vec![vec![message(1)], vec![message(2)], vec![message(3)]]);
        for at in starts[1]..starts[2] {
            let mut bad_bytes = bytes.clone();
            bad_bytes[at] ^= 0x55;
            let bad = scan(&bad_bytes).bad.unwrap();
            assert_eq!(bad.offset, starts[1] as u64, "flip at {at}");
            assert_eq!(bad.later_batch_at, Some(starts[2] as u64), "flip at {at}");
        }
        bytes.truncate(starts[2]);
        assert!(scan(&bytes).bad.is_none());
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
        let (bytes, _) = segment_of(vec![frames]);
        fs::write(segment::path(dir.path(), 1), bytes).unwrap();
        let replayed = recover(dir.path()).unwrap();
        assert_eq!(replayed.truncated_tail, None);
        assert_eq!(replayed.last, Some(1));
        let live: Vec<_> = replayed.index.list().into_iter().map(|m| m.id).collect();
        assert_eq!(live, vec![QueueId::from_u128(1)]);
    }

    #[test]
    fn a_torn_record_in_an_older_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = segment_of(vec![vec![message(1)]]);
        fs::write(segment::path(dir.path(), 1), &bytes[..bytes.len() - 1]).unwrap();
        fs::write(segment::path(dir.path(), 2), &bytes).unwrap();
        let err = recover(dir.path()).unwrap_err();
        assert!(
            matches!(err, QueueError::Corrupt { offset: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("0000000000000001.log"), "{err}");
    }

    #[test]
    fn empty_segments_after_a_torn_one_do_not_make_it_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, starts) = segment_of(vec![vec![message(1)], vec![message(2)]]);
        fs::write(segment::path(dir.path(), 1), &bytes[..bytes.len() - 3]).unwrap();
        fs::write(segment::path(dir.path(), 2), b"").unwrap();
        let replayed = recover(dir.path()).unwrap();
        let (path, offset) = replayed.truncated_tail.unwrap();
        assert_eq!(offset, starts[1] as u64);
        assert_eq!(fs::metadata(path).unwrap().len(), starts[1] as u64);
        assert_eq!(replayed.index.live(), 1);
        assert_eq!(replayed.last, Some(2));
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
        let (bytes, _) = segment_of(vec![frames]);
        fs::write(segment::path(dir.path(), 1), bytes).unwrap();
        let index = recover(dir.path()).unwrap().index;
        assert_eq!(
            index.get(id).map(|e| e.state),
            Some(QueueState::Deferred { until_ms: 3 })
        );
    }
}
