//! Damage: acknowledged records the spool can no longer read, and what is kept of them.
//!
//! Recovery never refuses to start over damage, and never drops it silently: it starts with
//! every intact record, logs an error per damaged range and per lost message, and keeps a copy
//! of each damaged segment, as it was first found, in `damaged/` beside `segments/`, with a
//! report (`<segment>.log.txt`, appended to) naming the byte ranges, what was found there and
//! the lost queue ids.
//! Nothing in `damaged/` is ever deleted or read by the spool: it is for an administrator (or a
//! tool) to salvage what can be. The live messages of a damaged segment are then rewritten into
//! the new segment by the writer, so the damaged segment leaves `segments/` like any other.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use postern_mailmsg::QueueId;

use crate::error::{AtPath, QueueError};
use crate::segment;

/// The folder of damaged segments, inside the spool directory.
pub(crate) const DAMAGED_DIR: &str = "damaged";

/// A range of a segment that held acknowledged records and cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file (it may be gone).
    pub segment: PathBuf,
    /// The segment's number.
    pub number: u64,
    /// The first octet of the range.
    pub start: u64,
    /// The octet after the range (equal to `start` when only a position is known).
    pub end: u64,
    /// What was found there.
    pub reason: String,
    /// The messages acknowledged before that the spool can no longer find, oldest id first.
    pub lost: Vec<QueueId>,
}

impl Damage {
    pub(crate) fn new(segment: &Path, number: u64, start: u64, end: u64, reason: String) -> Self {
        Self {
            segment: segment.to_path_buf(),
            number,
            start,
            end,
            reason,
            lost: Vec::new(),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} octets {}..{}: {}",
            self.segment.display(),
            self.start,
            self.end,
            self.reason
        )?;
        if !self.lost.is_empty() {
            let ids: Vec<String> = self.lost.iter().map(ToString::to_string).collect();
            write!(f, "; lost: {}", ids.join(" "))?;
        }
        Ok(())
    }
}

/// Logs every damage and lost message, and keeps a copy of each damaged segment with a report in
/// `spool_dir/damaged/`. Returns the files written.
pub(crate) fn keep(spool_dir: &Path, damage: &[Damage]) -> Result<Vec<PathBuf>, QueueError> {
    if damage.is_empty() {
        return Ok(Vec::new());
    }
    for d in damage {
        tracing::error!(
            segment = %d.segment.display(),
            start = d.start,
            end = d.end,
            reason = %d.reason,
            lost = d.lost.len(),
            "the spool lost acknowledged records; starting with everything intact"
        );
        for id in &d.lost {
            tracing::error!(
                queue_id = %id,
                segment = %d.segment.display(),
                start = d.start,
                end = d.end,
                "an acknowledged message is lost: its record cannot be read"
            );
        }
    }
    let dir = spool_dir.join(DAMAGED_DIR);
    if !dir.is_dir() {
        fs::create_dir(&dir).at(&dir)?;
        segment::sync_dir(spool_dir)?;
    }
    let mut numbers: Vec<u64> = damage.iter().map(|d| d.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut written = Vec::new();
    for number in numbers {
        let name = segment::file_name(number);
        let found: Vec<&Damage> = damage.iter().filter(|d| d.number == number).collect();
        let source = &found[0].segment;
        // The first copy is the segment as damage first found it; a later start (after a crash
        // before the writer moved its messages on) adds to the report, never replaces it.
        let copy = dir.join(&name);
        if source.exists() && !copy.exists() {
            fs::copy(source, &copy).at(&copy)?;
            fs::File::open(&copy).and_then(|f| f.sync_all()).at(&copy)?;
            written.push(copy);
        }
        let report = dir.join(format!("{name}.txt"));
        let mut text = format!(
            "Damage found in spool segment {} when the spool was opened.\n\
             The segment as first found is kept beside this file (when it still existed).\n",
            source.display()
        );
        for d in found {
            text.push_str(&format!("{d}\n"));
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&report)
            .at(&report)?;
        file.write_all(text.as_bytes()).at(&report)?;
        file.sync_all().at(&report)?;
        written.push(report);
    }
    segment::sync_dir(&dir)?;
    Ok(written)
}

/// The files in `spool_dir/damaged/`, kept from earlier damage.
pub(crate) fn kept(spool_dir: &Path) -> Vec<PathBuf> {
    let dir = spool_dir.join(DAMAGED_DIR);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}
