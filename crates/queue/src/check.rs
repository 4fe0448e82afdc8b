//! Checking a spool without opening it for writing: what `postern queue check` prints.
//!
//! The check reads every segment as recovery would, holds the log against the checkpoint, and
//! reports what it finds, changing nothing: a torn tail is reported, not cut; damage is
//! reported, not copied. It takes the spool's lock, so it never reads a log a server is
//! writing (a server's active segment would look torn).

use std::path::{Path, PathBuf};

use crate::damage::{self, Damage};
use crate::error::QueueError;
use crate::recover;
use crate::segment;

/// What a check of a spool found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The spool directory.
    pub dir: PathBuf,
    /// Each segment on disk, oldest first.
    pub segments: Vec<SegmentReport>,
    /// The messages recovery would resume.
    pub live: usize,
    /// Acknowledged records that cannot be read, with the messages lost.
    pub damage: Vec<Damage>,
    /// The newest segment ends in a torn write (never acknowledged; the next start cuts it):
    /// the segment and the offset.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Whether a checkpoint was there to hold the log against. Without one, a segment cut at a
    /// record boundary cannot be told from a whole one.
    pub checkpoint: bool,
    /// Files kept in `damaged/` from damage found at earlier starts.
    pub kept: Vec<PathBuf>,
}

impl Report {
    /// Whether every acknowledged record can be read.
    pub fn intact(&self) -> bool {
        self.damage.is_empty()
    }
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment's number.
    pub number: u64,
    /// The file.
    pub path: PathBuf,
    /// The file's length (a pre-written file is longer than its log).
    pub file_len: u64,
    /// Where its log ends.
    pub log_len: u64,
    /// The records read from it.
    pub records: usize,
}

/// Checks the spool in `dir` (read only). Errs when there is no spool there, when a server has
/// it open ([`QueueError::Locked`]), or when a file cannot be read.
pub fn check(dir: &Path) -> Result<Report, QueueError> {
    let segments_dir = dir.join(segment::SEGMENTS_DIR);
    if !segments_dir.is_dir() {
        return Err(QueueError::io(
            &segments_dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no spool here"),
        ));
    }
    let _lock = segment::lock(dir)?;
    let replayed = recover::replay(dir, &segments_dir)?;
    let extents: std::collections::BTreeMap<u64, u64> = replayed
        .index
        .extents()
        .map(|(number, extent)| (number, extent.log_len))
        .collect();
    let segments = replayed
        .files
        .iter()
        .map(|&(number, file_len, records)| SegmentReport {
            number,
            path: segment::path(&segments_dir, number),
            file_len,
            log_len: extents.get(&number).copied().unwrap_or(0),
            records,
        })
        .collect();
    Ok(Report {
        dir: dir.to_path_buf(),
        segments,
        live: replayed.index.live(),
        damage: replayed.damage,
        torn_tail: replayed.torn,
        checkpoint: replayed.checkpoint,
        kept: damage::kept(dir),
    })
}
