//! Reading the live messages of a spool no server has open, changing nothing: what
//! `postern queue list|show` print when the server is not running.

use std::path::Path;

use postern_mailmsg::{Content, MailMsg};

use crate::error::QueueError;
use crate::state::QueuedMessage;
use crate::{recover, segment};

/// Every live message in the spool in `dir` with its envelope and content, oldest id first.
/// Takes the spool's lock while it reads (so errs with [`QueueError::Locked`] when a server
/// has it open); a torn tail or damage is skipped as recovery would, never repaired.
pub fn read_offline(dir: &Path) -> Result<Vec<(QueuedMessage, MailMsg)>, QueueError> {
    let segments_dir = dir.join(segment::SEGMENTS_DIR);
    if !segments_dir.is_dir() {
        // No spool yet: an empty queue.
        return Ok(Vec::new());
    }
    let _lock = segment::lock(dir)?;
    let replayed = recover::replay(dir, &segments_dir)?;
    let mut out = Vec::new();
    for summary in replayed.index.list() {
        let Some(entry) = replayed.index.get(summary.id) else {
            continue;
        };
        let (envelope, content) = segment::read_message(&segments_dir, summary.id, entry)?;
        let msg = envelope.into_msg(summary.id, Content::new(content));
        out.push((summary, msg));
    }
    Ok(out)
}
