//! Counters of the writer, read without stopping it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the spool's counters. `syncs` counts the `fdatasync` calls on segments, one per
/// batch written (the syncs an SMTP session waits for); directory syncs for new and deleted
/// segments are not in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records written and synced since the spool was opened.
    pub records: u64,
    /// `fdatasync` calls on segments, failed ones included.
    pub syncs: u64,
    /// Batches written successfully.
    pub batches: u64,
    /// Batches whose write or sync failed (every request in them was refused).
    pub failed_batches: u64,
    /// Octets of records written successfully.
    pub bytes: u64,
    /// Live messages rewritten into a newer segment to free an old one.
    pub relocated: u64,
    /// Segments begun in a pre-written spare.
    pub spares_taken: u64,
    /// Segments begun as an empty file, because no spare was ready (or spares are off).
    pub empty_begins: u64,
    /// Spent segments kept as spares instead of deleted.
    pub recycled: u64,
    /// Octets of zeros written to prepare spares: the disk bandwidth pre-writing costs.
    pub zero_filled: u64,
    /// Messages in the queue now.
    pub live: usize,
    /// Segment files on disk now.
    pub segments: usize,
}

/// The writer's side of the counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) records: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) relocated: AtomicU64,
    pub(crate) spares_taken: AtomicU64,
    pub(crate) empty_begins: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) zero_filled: AtomicU64,
}

impl Counters {
    /// Adds to a counter. Relaxed: each counter is a tally on its own, read for reporting only.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters, with the index's figures filled in by the caller.
    pub(crate) fn snapshot(&self, live: usize, segments: usize) -> SpoolStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SpoolStats {
            records: get(&self.records),
            syncs: get(&self.syncs),
            batches: get(&self.batches),
            failed_batches: get(&self.failed_batches),
            bytes: get(&self.bytes),
            relocated: get(&self.relocated),
            spares_taken: get(&self.spares_taken),
            empty_begins: get(&self.empty_begins),
            recycled: get(&self.recycled),
            zero_filled: get(&self.zero_filled),
            live,
            segments,
        }
    }
}
