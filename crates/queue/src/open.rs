//! Start-up: recovery, the first segment, and the two threads (writer and spare preparer).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::error::QueueError;
use crate::options::SpoolOptions;
use crate::recover::{self, Recovered};
use crate::segment;
use crate::spare::{self, Spares};
use crate::spool::{Shared, Spool};
use crate::writer::Writer;

/// Opens the spool in `dir` (blocking; `Spool::open` runs it on a blocking thread).
pub(crate) fn open(dir: &Path, options: &SpoolOptions) -> Result<(Spool, Recovered), QueueError> {
    let segments_dir = segment::prepare(dir)?;
    let lock = segment::lock(dir)?;
    let recover::Replayed {
        mut index,
        truncated_tail,
        last,
    } = recover::recover(&segments_dir)?;
    let live = index.list();
    let (spares, newest_spare) = Spares::open(dir, options.segment_size, options.spare_segments)?;
    // A fresh segment on every start: the writer never writes to a file an earlier process
    // wrote records to, so the only torn tail it can leave is its own. Numbered past every
    // segment and every spare, so no stale record in a reused file carries its number.
    let number = last.unwrap_or(0).max(newest_spare) + 1;
    index.set_active(number);
    let shared = Arc::new(Shared::new(segments_dir, index, lock, spares));
    // Spent segments become spares before the first segment is begun, so that a restart reuses
    // the last run's files rather than zero-filling a new one.
    spare::collect_garbage(&shared);
    let started = Instant::now();
    if let Err(error) = shared.spares.prepare_now(&shared.counters) {
        tracing::warn!(%error, "cannot pre-write the first segment; it will grow as it is written");
    }
    let file = spare::begin_segment(&shared, number)?;
    tracing::info!(
        segment = number,
        ms = started.elapsed().as_millis() as u64,
        zero_filled = shared.stats().zero_filled,
        "first segment ready"
    );

    let preparer = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("postern-spool-spares".to_owned())
            .spawn(move || shared.spares.run(&shared.counters))
            .map_err(|e| QueueError::Task(format!("cannot start the spare preparer: {e}")))?
    };
    let (requests, receiver) = mpsc::channel(options.queue_depth.max(1));
    let writer = Writer::new(
        Arc::clone(&shared),
        options,
        receiver,
        (number, file),
        Some(preparer),
    );
    let handle = match std::thread::Builder::new()
        .name("postern-spool-writer".to_owned())
        .spawn(move || writer.run())
    {
        Ok(handle) => handle,
        Err(e) => {
            // The writer, which would have stopped the preparer, is gone with the closure.
            shared.spares.stop();
            return Err(QueueError::Task(format!(
                "cannot start the spool writer: {e}"
            )));
        }
    };
    tracing::info!(
        live = live.len(),
        segments = shared.index().segment_count(),
        truncated = truncated_tail.is_some(),
        "spool recovered"
    );
    let spool = Spool::new(shared, requests, handle);
    Ok((
        spool,
        Recovered {
            live,
            truncated_tail,
        },
    ))
}
