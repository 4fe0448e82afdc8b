//! Relocation: rewriting live messages out of an old segment so it can be deleted.
//!
//! Segments go oldest first, so one message deferred for days would keep every segment written
//! since it arrived. The writer therefore rewrites the messages that hold the oldest segment —
//! a new Message record with the current envelope and state, in the active segment — once that
//! segment lies far enough behind. The new record supersedes the old one (recovery keeps the
//! latest Message record of an id), so the old segment no longer holds anything live.
//!
//! It runs on the writer thread between batches: nothing else changes the index there, so the
//! envelope it writes is the latest one and cannot undo an Update.

use crate::error::QueueError;
use crate::payload;
use crate::segment;
use crate::spool::Shared;
use crate::writer::Append;

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
        let content = segment::read_content(&shared.segments_dir, id, entry.message_at)?;
        let (frame, effect) = payload::message(id, entry.envelope, entry.state, &content)?;
        bytes += frame.len();
        batch.push(Append {
            frame,
            effect,
            reply: None,
        });
    }
    Ok(batch)
}
