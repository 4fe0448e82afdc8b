//! Relocation: rewriting live messages out of an old segment so it can be deleted.
//!
//! Segments go oldest first, so one message deferred for days would keep every segment written
//! since it arrived. The writer therefore rewrites the messages that hold the oldest segment —
//! a new Message record with the current envelope and state, in the active segment — once that
//! segment lies far enough behind. The new record supersedes the old one (recovery keeps the
//! latest Message record of an id), so the old segment no longer holds anything live.
//!
//! It runs on the writer thread between batches: nothing else changes the index there, so the
//! envelope it writes — read back from the latest record carrying one — is the latest one and
//! cannot undo an Update.
//!
//! When: compaction rewrites the oldest segment's live messages once they take less than half a
//! segment, so the spool's size follows the live data (not the number of restarts: each start
//! begins a segment, and the writer compacts before its first request) and a message is
//! rewritten about once per segment written at most; a segment `relocate_after_segments`
//! behind the active one goes whatever it holds; a segment found damaged goes at once.

use crate::error::QueueError;
use crate::index::Pin;
use crate::options::SpoolOptions;
use crate::payload;
use crate::segment;
use crate::spool::Shared;
use crate::writer::Append;

/// When the oldest segment holding live messages is worth freeing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Rewrite when the live messages take less than half a segment.
    compact: bool,
    segment_size: u64,
    /// Rewrite when the segment is this many behind the active one (0: never).
    after: u64,
    /// Segments up to this number were found damaged at start-up (0: none).
    pub(crate) damaged_through: u64,
}

impl Policy {
    pub(crate) fn new(options: &SpoolOptions) -> Self {
        Self {
            compact: options.compact,
            segment_size: options.segment_size,
            after: options.relocate_after_segments,
            damaged_through: 0,
        }
    }

    /// Whether to rewrite the messages of segment `oldest`, pinned by `pin`, into `active`.
    pub(crate) fn wants(&self, active: u64, oldest: u64, pin: Pin) -> bool {
        let sparse = self.compact && pin.octets < self.segment_size / 2;
        let far = self.after != 0 && active.saturating_sub(oldest) >= self.after;
        let damaged = oldest <= self.damaged_through;
        oldest < active && (sparse || far || damaged)
    }
}

/// Records that move the live messages of `segment` forward, up to about `budget` octets (at
/// least one message, however large).
pub(crate) fn batch(shared: &Shared, segment: u64, budget: u64) -> Result<Vec<Append>, QueueError> {
    let pinning = shared.index().pinning(segment);
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    for (id, entry) in pinning {
        if !batch.is_empty() && bytes + entry.message_at.len > budget {
            break;
        }
        let (envelope, content) = segment::read_message(&shared.segments_dir, id, &entry)?;
        let (frame, effect) = payload::message(id, envelope, entry.state, &content)?;
        bytes += frame.len();
        batch.push(Append {
            frame,
            effect,
            reply: None,
        });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_segment_goes_when_sparse_far_or_damaged_never_when_active() {
        let options = SpoolOptions {
            segment_size: 1000,
            relocate_after_segments: 4,
            ..SpoolOptions::default()
        };
        let pin = |octets| Pin {
            messages: 1,
            octets,
        };
        let policy = Policy::new(&options);
        assert!(
            policy.wants(5, 4, pin(499)),
            "less than half a segment live"
        );
        assert!(!policy.wants(5, 4, pin(500)), "half live stays");
        assert!(
            policy.wants(9, 5, pin(900)),
            "far behind goes whatever it holds"
        );
        assert!(!policy.wants(5, 5, pin(1)), "the active segment never");
        let damaged = Policy {
            damaged_through: 3,
            ..policy
        };
        assert!(
            damaged.wants(5, 3, pin(900)),
            "damaged goes whatever it holds"
        );
        let off = Policy::new(&SpoolOptions {
            compact: false,
            relocate_after_segments: 0,
            ..options
        });
        assert!(!off.wants(100, 1, pin(1)), "both off");
    }
}
