//! Tuning of the spool. The defaults suit a server; tests shrink the segment size to watch
//! rotation and deletion happen.

use crate::space::DiskReserve;

/// How the spool lays out and batches its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// A segment is closed and the next one begun after the batch that takes it past this many
    /// octets. Smaller segments are deleted sooner; larger ones mean fewer files. It is also the
    /// size of the pre-written spares, so the first start of an empty spool zero-fills this
    /// much before it returns.
    pub segment_size: u64,
    /// A batch stops taking waiting requests once it holds this many octets, which bounds one
    /// write (a single larger record still goes alone). At most 4 GiB - 1, the reach of a
    /// record's batch offset.
    pub max_batch_bytes: u64,
    /// How many requests may wait for the writer; past that, `store` waits for room, which
    /// pushes back on the sessions instead of piling messages up in memory.
    pub queue_depth: usize,
    /// A live message whose latest Message record lies this many segments or more behind the
    /// active one is rewritten into the active segment, so that one long-deferred message does
    /// not keep every segment after it on disk. 0 turns rewriting off.
    pub relocate_after_segments: u64,
    /// Compaction: the live messages of the oldest segment are rewritten into the active one
    /// when they take less than half a segment (at start-up, which compacts the segments of
    /// earlier runs, and after batches), so that the spool's size follows the live data rather
    /// than the number of restarts. Off only for tests that watch segment files.
    pub compact: bool,
    /// How many pre-written spare files to keep for the next segments: spent segments are kept
    /// up to this many instead of deleted, and a new one is zero-filled in the background when
    /// none is left. Syncing a batch that overwrites a pre-written file does not change its size,
    /// which spares the file system a journal commit per batch. 0 turns this off: every segment
    /// begins as an empty file and grows (for file systems where overwriting gains nothing,
    /// such as copy-on-write ones).
    pub spare_segments: usize,
    /// The free space the spool leaves on its file system. Below it [`Spool::accepting`] is
    /// false (the SMTP session answers 452 4.3.1) and no spare is zero-filled; records are
    /// still written, so delivery goes on and the queue drains.
    ///
    /// [`Spool::accepting`]: crate::Spool::accepting
    pub disk_reserve: DiskReserve,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            segment_size: 32 * 1024 * 1024,
            max_batch_bytes: 16 * 1024 * 1024,
            queue_depth: 1024,
            relocate_after_segments: 16,
            compact: true,
            spare_segments: 2,
            disk_reserve: DiskReserve::default(),
        }
    }
}
