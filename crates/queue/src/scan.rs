//! Reading the log of one segment: its records up to the clean end, or up to damage.
//!
//! A segment's log ends cleanly at its End marker, at the end of the file, at zeros (a
//! pre-written file never written that far) or at a well-formed record of another segment (what
//! an earlier use of a recycled file left). Anything else where a record should be is damage,
//! which `recover` judges: a torn last batch, or acknowledged records gone bad.
//!
//! "Only the last batch": every record carries its offset within its batch, so for a valid record
//! found past the damage, recovery knows where its batch began. If a batch began after the
//! damaged record, the damaged record was synced before that batch was written: it was
//! acknowledged, and the damage is not a torn write. The same proof unmasks a clean-looking end
//! that is not one: zeros, or an older segment's record, in the middle of acknowledged records (a
//! sector the disk lost) are followed by a later batch of this segment. An End marker needs no
//! such proof: its CRC vouches for it, and nothing written after it in its segment was ever
//! synced (the next batch overwrites it).

use crate::record::{self, HEADER_LEN, Invalid, MAGIC, Valid};

/// The records of one segment and how its log ends.
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    /// Each record with its offset, in log order.
    pub(crate) records: Vec<(u64, Valid<'a>)>,
    /// Damage followed by a later batch of this segment: acknowledged records that cannot be
    /// read. Reading goes on after each, at the later batch's first valid record.
    pub(crate) holes: Vec<Hole>,
    /// Damage that no later batch follows: a torn last batch, or (`recover` decides) the end of
    /// the log gone bad. `None` when the log ends cleanly.
    pub(crate) bad: Option<Bad>,
    /// Where the log ends: the offset just past the last record.
    pub(crate) end: u64,
}

impl Scan<'_> {
    /// Whether the segment holds anything the writer wrote: a record, or damage that may be a
    /// torn one.
    pub(crate) fn holds_records(&self) -> bool {
        !self.records.is_empty() || self.bad.is_some() || !self.holes.is_empty()
    }
}

/// Where the log of a segment stops short of a clean end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bad {
    pub(crate) offset: u64,
    /// What was found there.
    pub(crate) reason: &'static str,
}

/// Octets in the middle of a log that are not records, with records of a later batch after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hole {
    pub(crate) start: u64,
    /// Where the later batch's first valid record is.
    pub(crate) end: u64,
    /// What was found at `start`.
    pub(crate) reason: &'static str,
}

/// Reads the log of segment `segment` from its file's octets.
pub(crate) fn scan(bytes: &[u8], segment: u64) -> Scan<'_> {
    let mut records = Vec::new();
    let mut holes = Vec::new();
    let mut offset = 0;
    loop {
        let (reason, torn_possible) = match read(&bytes[offset..], segment) {
            Ok(Read::Record(valid)) => {
                records.push((offset as u64, valid));
                offset += HEADER_LEN + valid.payload.len();
                continue;
            }
            Ok(Read::End(Ending::Marker | Ending::Eof)) => (None, false),
            Ok(Read::End(ending @ (Ending::Zeros | Ending::Stale))) => {
                (Some(ending.reason()), false)
            }
            Err(invalid) => (Some(invalid.reason()), true),
        };
        let later = reason.and_then(|_| later_batch(bytes, segment, offset));
        match (reason, later) {
            (Some(reason), Some(later)) => {
                holes.push(Hole {
                    start: offset as u64,
                    end: later,
                    reason,
                });
                // `later` was found in `bytes`, so it fits a usize.
                offset = later as usize;
            }
            (reason, _) => {
                let bad = reason.filter(|_| torn_possible).map(|reason| Bad {
                    offset: offset as u64,
                    reason,
                });
                return Scan {
                    records,
                    holes,
                    bad,
                    end: offset as u64,
                };
            }
        }
    }
}

/// What the octets at an offset of segment `segment` are.
#[derive(Debug, Clone, Copy)]
enum Read<'a> {
    /// A record of this segment.
    Record(Valid<'a>),
    /// The log of this segment ends here.
    End(Ending),
}

/// How the log of a segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// This segment's End marker, written with the last batch.
    Marker,
    /// The end of the file.
    Eof,
    /// Zeros: a pre-written file that was never written this far.
    Zeros,
    /// A well-formed record of another segment: what an earlier use of the file left.
    Stale,
}

impl Ending {
    /// A phrase for error messages, when what looked like an end turns out not to be one.
    fn reason(self) -> &'static str {
        match self {
            Self::Marker => "an End marker",
            Self::Eof => "the end of the file",
            Self::Zeros => "zeros where a record should be",
            Self::Stale => "a record of another segment",
        }
    }
}

/// Reads what starts at the beginning of `bytes`, in segment `segment`.
fn read(bytes: &[u8], segment: u64) -> Result<Read<'_>, Invalid> {
    let head = &bytes[..bytes.len().min(HEADER_LEN)];
    if head.is_empty() {
        return Ok(Read::End(Ending::Eof));
    }
    if head.iter().all(|&b| b == 0) {
        return Ok(Read::End(Ending::Zeros));
    }
    let valid = record::check(bytes)?;
    if valid.segment != segment {
        Ok(Read::End(Ending::Stale))
    } else if valid.is_end() {
        Ok(Read::End(Ending::Marker))
    } else {
        Ok(Read::Record(valid))
    }
}

/// Looks past `bad` for a valid record (or End marker) of `segment` whose batch began after it.
/// The length of whatever is at `bad` cannot be trusted, so the search goes octet by octet from
/// just after it; a valid record of an earlier batch is skipped whole, records of other segments
/// (stale data) are passed over.
fn later_batch(bytes: &[u8], segment: u64, bad: usize) -> Option<u64> {
    let mut at = bad + 1;
    while let Some(found) = find_magic(bytes, at) {
        at = found;
        if record::segment_of(&bytes[at..]) != Some(segment) {
            at += 1;
            continue;
        }
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

/// Zeros compared a block at a time: slice equality on octets is a `memcmp` even in an
/// unoptimized build, and a pre-written segment is mostly zeros.
const ZEROS: [u8; 4096] = [0; 4096];

/// The offset of the next record magic at or after `at`.
fn find_magic(bytes: &[u8], mut at: usize) -> Option<usize> {
    while at < bytes.len() {
        let end = (at + ZEROS.len()).min(bytes.len());
        if bytes[at..end] == ZEROS[..end - at] {
            at = end;
            continue;
        }
        match bytes[at..end].iter().position(|&b| b == MAGIC[0]) {
            Some(i) if bytes[at + i..].starts_with(&MAGIC) => return Some(at + i),
            Some(i) => at += i + 1,
            None => at = end,
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::payload;
    use crate::record::{Frame, end_marker};
    use crate::state::QueueState;
    use bytes::Bytes;
    use postern_mailmsg::QueueId;

    /// A small Message record, for tests here and in `recover`.
    pub(crate) fn message(id: u128) -> Frame {
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

    /// Writes batches of frames into `file` as the writer would, each batch followed by its End
    /// marker (overwritten by the next). Returns the start of each record and the log's end.
    fn write_log(
        file: &mut Vec<u8>,
        segment: u64,
        batches: Vec<Vec<Frame>>,
    ) -> (Vec<usize>, usize) {
        let mut starts = Vec::new();
        let mut end = 0;
        for batch in batches {
            let mut bytes = Vec::new();
            for frame in batch {
                starts.push(end + bytes.len());
                bytes.extend_from_slice(&frame.to_bytes(segment, bytes.len() as u32));
            }
            bytes.extend_from_slice(&end_marker(segment, bytes.len() as u32));
            overwrite(file, end, &bytes);
            end += bytes.len() - HEADER_LEN;
        }
        (starts, end)
    }

    fn overwrite(file: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        if file.len() < at + bytes.len() {
            file.resize(at + bytes.len(), 0);
        }
        file[at..at + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn a_log_ends_at_its_end_marker_whatever_follows() {
        let mut file = vec![0; 4096];
        write_log(&mut file, 1, vec![(10..20).map(message).collect()]);
        let mut reused = file.clone();
        let (starts, end) = write_log(&mut reused, 2, vec![vec![message(1)], vec![message(2)]]);
        // What follows the marker is the middle of a record of segment 1: not a torn write.
        let scan = scan(&reused, 2);
        assert_eq!(scan.records.len(), 2);
        assert_eq!((scan.bad, scan.end), (None, end as u64));
        assert!(scan.holes.is_empty());
        assert_eq!(scan.records[1].0, starts[1] as u64);
    }

    #[test]
    fn zeros_eof_and_stale_records_end_an_empty_segment() {
        let mut used = Vec::new();
        write_log(&mut used, 1, vec![vec![message(1)]]);
        for (case, file) in [("zeros", vec![0; 9000]), ("eof", vec![]), ("stale", used)] {
            let scan = scan(&file, 2);
            assert!(!scan.holds_records(), "{case}");
            assert_eq!(scan.end, 0, "{case}");
        }
    }

    #[test]
    fn a_cut_anywhere_in_the_last_record_is_a_torn_tail() {
        let mut file = Vec::new();
        let (starts, _) = write_log(&mut file, 1, vec![vec![message(1)], vec![message(2)]]);
        for cut in starts[1] + 1..file.len() - HEADER_LEN {
            let scan = scan(&file[..cut], 1);
            assert_eq!(scan.records.len(), 1, "cut {cut}");
            assert_eq!(scan.bad.unwrap().offset, starts[1] as u64);
            assert!(scan.holes.is_empty(), "cut {cut}");
        }
    }

    #[test]
    fn damage_inside_the_last_batch_is_torn_even_with_valid_records_after_it() {
        // Pages of one write can reach the disk out of order; none of the batch was acknowledged.
        let mut file = Vec::new();
        let batches = vec![vec![message(1)], vec![message(2), message(3), message(4)]];
        let (starts, _) = write_log(&mut file, 1, batches);
        file[starts[2] + 30] ^= 0xFF;
        let scan = scan(&file, 1);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.bad.unwrap().offset, starts[2] as u64);
        assert!(scan.holes.is_empty());
    }

    #[test]
    fn damage_before_a_later_batch_is_a_hole_in_acknowledged_mail_and_reading_goes_on() {
        let mut file = vec![0; 8192];
        let batches = vec![vec![message(1)], vec![message(2)], vec![message(3)]];
        let (starts, end) = write_log(&mut file, 1, batches);
        for at in starts[1]..starts[2] {
            let mut bad_bytes = file.clone();
            bad_bytes[at] ^= 0x55;
            let scan = scan(&bad_bytes, 1);
            let hole = Hole {
                start: starts[1] as u64,
                end: starts[2] as u64,
                reason: scan.holes[0].reason,
            };
            assert_eq!(scan.holes, vec![hole], "flip at {at}");
            assert_eq!((scan.bad, scan.end), (None, end as u64), "flip at {at}");
            let found: Vec<_> = scan.records.iter().map(|(at, _)| *at as usize).collect();
            assert_eq!(found, vec![starts[0], starts[2]], "flip at {at}");
        }
    }

    #[test]
    fn zeros_or_a_stale_record_before_a_later_batch_are_not_an_end() {
        // A hole in acknowledged records looks like an end; the later batch shows it is not.
        let mut stale = Vec::new();
        let (old, _) = write_log(&mut stale, 1, vec![vec![message(7)]]);
        let old_record = &stale[old[0]..stale.len() - HEADER_LEN];
        let mut file = vec![0; 8192];
        let batches = vec![vec![message(1)], vec![message(2)], vec![message(3)]];
        let (starts, _) = write_log(&mut file, 2, batches);
        let mut zeroed = file.clone();
        zeroed[starts[1]..starts[2]].fill(0);
        let mut replaced = file.clone();
        replaced[starts[1]..starts[1] + old_record.len()].copy_from_slice(old_record);
        for (case, bytes) in [("zeros", zeroed), ("stale", replaced)] {
            let scan = scan(&bytes, 2);
            assert_eq!(scan.bad, None, "{case}");
            assert_eq!(scan.holes.len(), 1, "{case}");
            let hole = scan.holes[0];
            assert_eq!(
                (hole.start, hole.end),
                (starts[1] as u64, starts[2] as u64),
                "{case}"
            );
            assert_eq!(scan.records.len(), 2, "{case}");
        }
    }

    #[test]
    fn what_ends_a_log_and_what_does_not() {
        let ending = |bytes: &[u8]| match read(bytes, 3) {
            Ok(Read::End(how)) => Some(how),
            Ok(Read::Record(_)) => None,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(ending(&message(1).to_bytes(3, 0)), None);
        assert_eq!(ending(&end_marker(3, 70)), Some(Ending::Marker));
        assert_eq!(ending(b""), Some(Ending::Eof));
        assert_eq!(ending(&[0; HEADER_LEN + 5]), Some(Ending::Zeros));
        assert_eq!(ending(&[0; 7]), Some(Ending::Zeros));
        assert_eq!(ending(&message(1).to_bytes(2, 0)), Some(Ending::Stale));
        // Another segment's End marker is stale too.
        assert_eq!(ending(&end_marker(2, 70)), Some(Ending::Stale));
        let marker = end_marker(3, 70);
        let marker = record::check(&marker).unwrap();
        assert_eq!((marker.segment, marker.batch_offset), (3, 70));
        assert!(marker.is_end() && marker.payload.is_empty());
    }

    #[test]
    fn no_flip_or_cut_turns_a_record_into_an_end() {
        // Not into zeros, and not into a well-formed record of another segment: the CRC covers
        // the segment number.
        let bytes = message(1).to_bytes(3, 0);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(read(&bad, 3).is_err(), "flip at {at} read as an end");
        }
        for cut in 1..bytes.len() {
            assert_eq!(
                read(&bytes[..cut], 3).unwrap_err(),
                Invalid::Short,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn the_magic_is_found_across_zero_blocks_and_block_edges() {
        let mut bytes = vec![0; 3 * ZEROS.len()];
        bytes[ZEROS.len() - 2..ZEROS.len() + 2].copy_from_slice(&MAGIC);
        bytes[100] = MAGIC[0];
        assert_eq!(find_magic(&bytes, 0), Some(ZEROS.len() - 2));
        assert_eq!(find_magic(&bytes, ZEROS.len()), None);
    }
}
