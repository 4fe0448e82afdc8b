//! The checkpoint: what the spool knew to be on disk a moment ago, kept beside the log so that
//! recovery can tell a log that lost acknowledged records from one that is merely short.
//!
//! The log alone cannot: a segment cut at a record boundary, or deleted, reads as a clean end.
//! So the spool writes `checkpoint.json` from its index: every segment on disk with the extent
//! of its log (where it ends, how many records), which segment was being written, and every
//! live message with where its latest Message record is. Recovery holds the log against it
//! (`recover`): a segment whose log ends before the checkpoint's extent, or that is gone while
//! older ones remain, is damage, and a message the checkpoint lists that the log no longer
//! mentions at all (no record of any kind) is lost, and named.
//!
//! A checkpoint only ever describes records that were already synced (the index changes after
//! the sync), so an old checkpoint is a weaker claim, never a false one. It is written at
//! start-up, before spent segments are retired (so no retired segment's messages are still
//! listed as live), at close, and in between at most once a second when records were written
//! (less often for a queue so large that writing its checkpoint takes more than 50 ms).
//! The ones before retiring and at start-up and close are synced; the others are not, since a
//! lost checkpoint only narrows what recovery can check. A checkpoint that cannot be read is
//! ignored with a warning: recovery then checks what the log shows by itself.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use postern_mailmsg::QueueId;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{AtPath, QueueError};
use crate::index::{Extent, Index};
use crate::segment;

/// The checkpoint's file, in the spool directory.
pub(crate) const FILE: &str = "checkpoint.json";
const TEMP: &str = "checkpoint.json.tmp";
/// The checkpoint is brought up to date at most this often while records are written.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// What a checkpoint says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// The segment being written when it was taken.
    pub(crate) active: u64,
    /// Every segment on disk then, with its log's extent (the active one's so far).
    pub(crate) segments: BTreeMap<u64, Extent>,
    /// Every live message then: the segment and offset of its latest Message record.
    pub(crate) live: BTreeMap<QueueId, (u64, u64)>,
}

/// What the index knows now, taken under its lock and written after: flat lists, so that a
/// large queue's checkpoint takes a few large allocations, not several small ones per message
/// (which would stay behind in the process's heap once freed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    active: u64,
    segments: Vec<(u64, Extent)>,
    /// Each live message, with the segment and offset of its latest Message record.
    live: Vec<(QueueId, u64, u64)>,
}

impl Snapshot {
    pub(crate) fn of(index: &Index) -> Self {
        Self {
            active: index.active(),
            segments: index.extents().collect(),
            live: index
                .locations()
                .map(|(id, at)| (id, at.segment, at.offset))
                .collect(),
        }
    }
}

/// The file: a versioned struct of its own, like the records (as read; see `CheckpointOutV1`).
#[derive(Debug, Deserialize)]
struct CheckpointV1 {
    version: u32,
    active: u64,
    segments: Vec<SegmentV1>,
    live: Vec<LiveV1>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SegmentV1 {
    number: u64,
    log_len: u64,
    records: u64,
}

#[derive(Debug, Deserialize)]
struct LiveV1 {
    id: String,
    segment: u64,
    offset: u64,
}

/// [`CheckpointV1`] as written: the same JSON, serialized straight from a [`Snapshot`] without
/// a string per message.
#[derive(Serialize)]
struct CheckpointOutV1<'a> {
    version: u32,
    active: u64,
    segments: Vec<SegmentV1>,
    live: LiveOut<'a>,
}

struct LiveOut<'a>(&'a [(QueueId, u64, u64)]);

impl Serialize for LiveOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|&(id, segment, offset)| LiveOutV1 {
            id,
            segment,
            offset,
        }))
    }
}

/// [`LiveV1`] as written.
#[derive(Serialize)]
struct LiveOutV1 {
    #[serde(serialize_with = "as_text")]
    id: QueueId,
    segment: u64,
    offset: u64,
}

fn as_text<S: Serializer>(id: &QueueId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

/// Writes the checkpoint (to a temporary file renamed over the old one); `durable` syncs the
/// file and the directory before returning.
pub(crate) fn save(dir: &Path, checkpoint: &Snapshot, durable: bool) -> Result<(), QueueError> {
    let wire = CheckpointOutV1 {
        version: 1,
        active: checkpoint.active,
        segments: checkpoint
            .segments
            .iter()
            .map(|&(number, extent)| SegmentV1 {
                number,
                log_len: extent.log_len,
                records: extent.records,
            })
            .collect(),
        live: LiveOut(&checkpoint.live),
    };
    let temp = dir.join(TEMP);
    let file = File::create(&temp).at(&temp)?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer(&mut out, &wire)
        .map_err(io::Error::from)
        .at(&temp)?;
    let file = out.into_inner().map_err(|e| e.into_error()).at(&temp)?;
    if durable {
        file.sync_data().at(&temp)?;
    }
    drop(file);
    let path = dir.join(FILE);
    fs::rename(&temp, &path).at(&path)?;
    if durable {
        segment::sync_dir(dir)?;
    }
    Ok(())
}

/// Reads the checkpoint in `dir`; `None` when there is none or it cannot be read (warned).
pub(crate) fn load(dir: &Path) -> Option<Checkpoint> {
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%error, file = %path.display(), "cannot read the spool's checkpoint; checking the log by itself");
            return None;
        }
    };
    match parse(&bytes) {
        Ok(checkpoint) => Some(checkpoint),
        Err(reason) => {
            tracing::warn!(file = %path.display(), reason, "ignoring an unreadable checkpoint; checking the log by itself");
            None
        }
    }
}

fn parse(bytes: &[u8]) -> Result<Checkpoint, String> {
    let wire: CheckpointV1 = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if wire.version != 1 {
        return Err(format!(
            "checkpoint version {} is not supported",
            wire.version
        ));
    }
    let mut live = BTreeMap::new();
    for entry in wire.live {
        let id = entry.id.parse().map_err(|e| format!("{e}"))?;
        live.insert(id, (entry.segment, entry.offset));
    }
    Ok(Checkpoint {
        active: wire.active,
        segments: wire
            .segments
            .into_iter()
            .map(|s| {
                let extent = Extent {
                    log_len: s.log_len,
                    records: s.records,
                };
                (s.number, extent)
            })
            .collect(),
        live,
    })
}

/// When the checkpoint was last written, how long that took, and how many records the writer
/// had written then: shared by the writer and the preparer thread, which both bring it up to
/// date.
#[derive(Debug)]
pub(crate) struct Saver {
    dir: PathBuf,
    last: Mutex<Last>,
}

#[derive(Debug, Default)]
struct Last {
    at: Option<Instant>,
    took: Duration,
    records: u64,
}

/// A checkpoint of a large queue takes a while to write: the periodic one waits at least this
/// many times as long as the last one took, so it never costs more than a small share of the
/// writer's time.
const COST_FACTOR: u32 = 20;

impl Saver {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: Mutex::new(Last::default()),
        }
    }

    /// Writes the index's checkpoint now (`records`: the writer's count of records so far).
    pub(crate) fn save(
        &self,
        index: &Mutex<Index>,
        records: u64,
        durable: bool,
    ) -> Result<(), QueueError> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let checkpoint = Snapshot::of(&index.lock().unwrap_or_else(PoisonError::into_inner));
        save(&self.dir, &checkpoint, durable)?;
        *last = Last {
            at: Some(Instant::now()),
            took: started.elapsed(),
            records,
        };
        Ok(())
    }

    /// Writes it when records were written since the last one and [`INTERVAL`] has passed
    /// (or [`COST_FACTOR`] times what the last one took, if longer).
    pub(crate) fn save_if_due(&self, index: &Mutex<Index>, records: u64) {
        {
            let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let wait = INTERVAL.max(last.took * COST_FACTOR);
            let due = last.at.is_none_or(|at| at.elapsed() >= wait);
            if !due || last.records == records {
                return;
            }
        }
        if let Err(error) = self.save(index, records, false) {
            tracing::warn!(%error, "cannot write the spool's checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_garbage_is_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpoint = Checkpoint {
            active: 7,
            ..Checkpoint::default()
        };
        let extent = Extent {
            log_len: 4096,
            records: 12,
        };
        checkpoint.segments.insert(6, extent);
        checkpoint.segments.insert(7, Extent::default());
        checkpoint.live.insert(QueueId::from_u128(5), (6, 1024));
        let snapshot = Snapshot {
            active: 7,
            segments: vec![(6, extent), (7, Extent::default())],
            live: vec![(QueueId::from_u128(5), 6, 1024)],
        };
        save(dir.path(), &snapshot, true).unwrap();
        assert_eq!(load(dir.path()), Some(checkpoint));
        fs::write(dir.path().join(FILE), b"{\"version\": 1, \"act").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
