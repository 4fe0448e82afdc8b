//! Recovery: reads every segment in order, rebuilds the index, and decides what damage means.
//!
//! The writer syncs a batch before it writes the next one, and cleans up a failed batch before
//! it begins a new segment, so after a crash only the last batch of the newest segment with
//! records can be incomplete, and no record of that batch was acknowledged. Damage there — a
//! record cut short, garbage where a record should be, a CRC mismatch — is a torn write: the
//! segment is cut back to the last good record (by `open`; `replay` changes nothing on disk).
//!
//! Damage anywhere else is acknowledged mail gone bad, and so is a log shorter than the
//! checkpoint says it was, or a segment the checkpoint lists that is gone (see `checkpoint`).
//! Recovery does not stop for it: it reads every record that is intact (past a hole, from the
//! next batch on), and reports each damaged range with the messages it can no longer find —
//! those the checkpoint lists and no record mentions any more, and those a later Update names
//! whose Message record is gone. `open` keeps a copy of each damaged segment in `damaged/`.
//! How one segment's log is read, where it ends and what counts as damage is in `scan`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use postern_mailmsg::QueueId;

use crate::checkpoint::{self, Checkpoint};
use crate::damage::Damage;
use crate::error::{AtPath, QueueError};
use crate::index::{Index, Location};
use crate::payload::{self, Effect};
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
    /// Acknowledged records that could not be read, each with the messages lost with it. The
    /// spool started with everything else; a copy of each damaged segment is in `damaged/`.
    pub damage: Vec<Damage>,
}

impl Recovered {
    /// Every message lost to damage.
    pub fn lost(&self) -> Vec<QueueId> {
        self.damage
            .iter()
            .flat_map(|d| d.lost.iter().copied())
            .collect()
    }
}

/// What replaying the log gave.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) index: Index,
    /// The newest segment ends in a torn write: the segment and where to cut it.
    pub(crate) torn: Option<(PathBuf, u64)>,
    /// Acknowledged records that could not be read.
    pub(crate) damage: Vec<Damage>,
    /// The number of the newest segment, if there is one.
    pub(crate) last: Option<u64>,
    /// Each segment on disk: its number, file length and how many records were read from it.
    pub(crate) files: Vec<(u64, u64, usize)>,
    /// Whether a checkpoint was there to hold the log against.
    pub(crate) checkpoint: bool,
}

/// Rebuilds the index from the segments in `segments_dir`, holding them against the checkpoint
/// in `spool_dir`. Reads only: the torn tail is for the caller to cut.
pub(crate) fn replay(spool_dir: &Path, segments_dir: &Path) -> Result<Replayed, QueueError> {
    let numbers = segment::list(segments_dir)?;
    let checkpoint = checkpoint::load(spool_dir);
    let expected = checkpoint.clone().unwrap_or_default();
    let mut index = Index::default();
    let mut torn = None;
    let mut damage = Vec::new();
    let mut files = Vec::new();
    // Every id some record names, and the first Update of an id that was not live then.
    let mut seen = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut orphans: BTreeMap<QueueId, Location> = BTreeMap::new();
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment::path(segments_dir, number);
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
        files.push((number, bytes.len() as u64, scan.records.len()));
        let hurt =
            |start: u64, end: u64, reason: String| Damage::new(&path, number, start, end, reason);
        for (offset, valid) in &scan.records {
            let effect = match payload::decode(valid) {
                Ok((effect, _)) => effect,
                Err(reason) => {
                    let end = offset + valid.len();
                    damage.push(hurt(*offset, end, format!("unreadable record: {reason}")));
                    continue;
                }
            };
            let at = Location {
                segment: number,
                offset: *offset,
                len: valid.len(),
            };
            let id = effect.id();
            seen.insert(id);
            match &effect {
                Effect::Update { .. } if index.get(id).is_none() => {
                    orphans.entry(id).or_insert(at);
                }
                Effect::Done { .. } => {
                    done.insert(id);
                }
                _ => {}
            }
            index.apply(effect, at);
        }
        for hole in &scan.holes {
            let reason = format!("{} (acknowledged records follow)", hole.reason);
            damage.push(hurt(hole.start, hole.end, reason));
        }
        let written = expected.segments.get(&number).map_or(0, |e| e.log_len);
        if let Some(bad) = scan.bad {
            if written <= bad.offset && is_torn(segments_dir, &numbers[i + 1..])? {
                torn = Some((path.clone(), bad.offset));
            } else {
                // Nothing after the damage can be read as this segment's records: up to where
                // the checkpoint saw the log end, or else to the end of the file.
                let end = if written > bad.offset {
                    written
                } else {
                    bytes.len() as u64
                };
                damage.push(hurt(bad.offset, end, not_torn(bad, written)));
            }
        } else if scan.end < written {
            let reason =
                format!("the log ends here, but the checkpoint says it was {written} octets long");
            damage.push(hurt(scan.end, written, reason));
        }
    }
    missing_segments(segments_dir, &numbers, &expected, &mut damage);
    if let Some(checkpoint) = &checkpoint {
        lost_from_checkpoint(segments_dir, checkpoint, &seen, &mut damage);
    }
    orphans.retain(|id, _| !done.contains(id));
    lost_from_orphans(segments_dir, &index, orphans, &mut damage);
    for d in &mut damage {
        d.lost.sort_unstable();
    }
    Ok(Replayed {
        index,
        torn,
        damage,
        last: numbers.last().copied(),
        files,
        checkpoint: checkpoint.is_some(),
    })
}

fn not_torn(bad: Bad, written: u64) -> String {
    if written > bad.offset {
        format!(
            "{}, before the end of what was acknowledged ({written} octets)",
            bad.reason
        )
    } else {
        format!(
            "{}, in a segment that is not the newest (only the newest may end in a torn write)",
            bad.reason
        )
    }
}

/// Whether damage at the end of a segment's log can be a torn last batch: none of the segments
/// begun after it (`newer`) holds records. Segments without records do not count: the writer
/// may have begun one (or taken a spare) and stopped before writing to it. Which they are is
/// read from their content, not their length, since a pre-written file is long before it holds
/// anything.
fn is_torn(dir: &Path, newer: &[u64]) -> Result<bool, QueueError> {
    for &number in newer {
        let newer_path = segment::path(dir, number);
        let bytes = fs::read(&newer_path).at(&newer_path)?;
        if scan::scan(&bytes, number).holds_records() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Segments the checkpoint lists with records that are gone, where retiring cannot explain it:
/// an older segment is still there (segments go oldest first), or it was the one being written.
fn missing_segments(dir: &Path, numbers: &[u64], expected: &Checkpoint, damage: &mut Vec<Damage>) {
    let oldest = numbers.first().copied();
    for (&number, extent) in &expected.segments {
        if extent.log_len == 0 || numbers.binary_search(&number).is_ok() {
            continue;
        }
        if oldest.is_none_or(|oldest| number > oldest) || number == expected.active {
            let path = segment::path(dir, number);
            let reason = format!(
                "the segment is gone; the checkpoint says it held {} records",
                extent.records
            );
            damage.push(Damage::new(&path, number, 0, extent.log_len, reason));
        }
    }
}

/// Messages the checkpoint lists as live that no record names any more: each goes with the
/// damage that covers its Message record (or a new entry for its segment).
fn lost_from_checkpoint(
    dir: &Path,
    checkpoint: &Checkpoint,
    seen: &BTreeSet<QueueId>,
    damage: &mut Vec<Damage>,
) {
    for (&id, &(segment, offset)) in &checkpoint.live {
        if seen.contains(&id) {
            continue;
        }
        let covering = damage
            .iter()
            .position(|d| {
                d.number == segment && d.start <= offset && offset < d.end.max(d.start + 1)
            })
            .or_else(|| damage.iter().position(|d| d.number == segment));
        match covering {
            Some(i) => damage[i].lost.push(id),
            None => {
                let path = segment::path(dir, segment);
                let reason = "a message's Message record is no longer in the log".to_owned();
                let mut d = Damage::new(&path, segment, offset, offset, reason);
                d.lost.push(id);
                damage.push(d);
            }
        }
    }
}

/// Messages an Update names whose Message record is gone (the writer writes an Update only for a
/// live message, and retires a Message record only after its message's Done or a newer copy):
/// each goes with the last damage before the Update.
fn lost_from_orphans(
    dir: &Path,
    index: &Index,
    orphans: BTreeMap<QueueId, Location>,
    damage: &mut Vec<Damage>,
) {
    for (id, at) in orphans {
        if index.get(id).is_some() || damage.iter().any(|d| d.lost.contains(&id)) {
            continue;
        }
        let before = damage
            .iter()
            .enumerate()
            .filter(|(_, d)| (d.number, d.start) < (at.segment, at.offset))
            .max_by_key(|(_, d)| (d.number, d.start))
            .map(|(i, _)| i);
        match before {
            Some(i) => damage[i].lost.push(id),
            None => {
                let path = segment::path(dir, at.segment);
                let reason = "an Update names a message whose Message record is missing".to_owned();
                let mut d = Damage::new(&path, at.segment, at.offset, at.offset + at.len, reason);
                d.lost.push(id);
                damage.push(d);
            }
        }
    }
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
        let replayed = replay(dir.path(), dir.path()).unwrap();
        assert_eq!(replayed.torn, None);
        assert_eq!(replayed.last, Some(1));
        assert_eq!(live(&replayed.index), vec![QueueId::from_u128(1)]);
    }

    #[test]
    fn a_torn_record_in_an_older_segment_is_damage_and_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = segment_of(1, vec![vec![message(1)]]);
        let cut = bytes.len() - HEADER_LEN - 1;
        fs::write(segment::path(dir.path(), 1), &bytes[..cut]).unwrap();
        fs::write(
            segment::path(dir.path(), 2),
            segment_of(2, vec![vec![message(2)]]).0,
        )
        .unwrap();
        let replayed = replay(dir.path(), dir.path()).unwrap();
        assert_eq!(replayed.torn, None);
        assert_eq!(replayed.damage.len(), 1);
        let damage = &replayed.damage[0];
        assert_eq!((damage.number, damage.start), (1, 0));
        assert!(
            damage.segment.ends_with("0000000000000001.log"),
            "{damage:?}"
        );
        assert_eq!(live(&replayed.index), vec![QueueId::from_u128(2)]);
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
        let replayed = replay(dir.path(), dir.path()).unwrap();
        let (path, offset) = replayed.torn.unwrap();
        assert_eq!(offset, starts[1] as u64);
        // Replaying reads only; `open` cuts the tail.
        assert_eq!(fs::metadata(path).unwrap().len(), cut as u64);
        assert!(replayed.damage.is_empty());
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
        let replayed = replay(dir.path(), dir.path()).unwrap();
        assert_eq!(replayed.torn, None);
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
        let replayed = replay(dir.path(), dir.path()).unwrap();
        assert_eq!(replayed.torn, None);
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
        let index = replay(dir.path(), dir.path()).unwrap().index;
        assert_eq!(
            index.get(id).map(|e| e.state),
            Some(QueueState::Deferred { until_ms: 3 })
        );
    }
}
