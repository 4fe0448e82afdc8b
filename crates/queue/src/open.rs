//! Start-up: recovery, the first segment, and the two threads (writer and spare preparer).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::damage;
use crate::error::QueueError;
use crate::options::SpoolOptions;
use crate::recover::{self, Recovered};
use crate::segment;
use crate::space::DiskSpace;
use crate::spare::{self, Spares};
use crate::spool::{Shared, Spool};
use crate::writer::Writer;

/// Opens the spool in `dir` (blocking; `Spool::open` runs it on a blocking thread).
pub(crate) fn open(dir: &Path, options: &SpoolOptions) -> Result<(Spool, Recovered), QueueError> {
    let segments_dir = segment::prepare(dir)?;
    let lock = segment::lock(dir)?;
    let recover::Replayed {
        mut index,
        torn,
        damage,
        last,
        ..
    } = recover::replay(dir, &segments_dir)?;
    if let Some((path, offset)) = &torn {
        tracing::warn!(
            segment = %path.display(),
            offset,
            "cutting off a torn record at the end of the log (a write the crash interrupted, never acknowledged)"
        );
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| QueueError::io(path, e))?;
        segment::truncate(&file, path, *offset)?;
    }
    // A copy of each damaged segment is kept before the writer rewrites its live messages
    // forward and lets the segment go like any other.
    damage::keep(dir, &damage)?;
    let relocate_through = damage
        .iter()
        .map(|d| d.number)
        .filter(|&n| segment::path(&segments_dir, n).exists())
        .max()
        .unwrap_or(0);
    let live = index.list();
    let space = DiskSpace::new(dir, options.disk_reserve);
    let (spares, newest_spare) = Spares::open(dir, options.segment_size, options.spare_segments)?;
    // A fresh segment on every start: the writer never writes to a file an earlier process
    // wrote records to, so the only torn tail it can leave is its own. Numbered past every
    // segment and every spare, so no stale record in a reused file carries its number.
    let number = last.unwrap_or(0).max(newest_spare) + 1;
    index.set_active(number);
    let shared = Arc::new(Shared::new(segments_dir, index, lock, spares, space));
    // What this start found is the new baseline: damage is reported once, not at every start.
    if let Err(error) = shared.save_checkpoint(true) {
        tracing::warn!(%error, "cannot write the spool's checkpoint");
    }
    // Spent segments become spares before the first segment is begun, so that a restart reuses
    // the last run's files rather than zero-filling a new one.
    spare::collect_garbage(&shared);
    let started = Instant::now();
    if let Err(error) = shared.spares.prepare_now(&shared) {
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
            .spawn(move || shared.spares.run(&shared))
            .map_err(|e| QueueError::Task(format!("cannot start the spare preparer: {e}")))?
    };
    let (requests, receiver) = mpsc::channel(options.queue_depth.max(1));
    let writer = Writer::new(
        Arc::clone(&shared),
        options,
        receiver,
        (number, file),
        Some(preparer),
    )
    .compacting_through(relocate_through);
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
        truncated = torn.is_some(),
        damaged = damage.len(),
        "spool recovered"
    );
    let spool = Spool::new(shared, requests, handle);
    Ok((
        spool,
        Recovered {
            live,
            truncated_tail: torn,
            damage,
        },
    ))
}
