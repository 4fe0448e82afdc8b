//! The preparer: the thread that keeps a spare ready, so that rotation never waits for one. It
//! works only when no spare is ready, extending a recycled segment that was never full, or else
//! zero-filling a new file; in the steady state recycled segments arrive ready, and it sleeps.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::{FRESH, Pool, Spares};
use crate::checkpoint;
use crate::error::{AtPath, QueueError};
use crate::spool::Shared;
use crate::stats::Counters;

/// Zeros are written this much at a time, and `stop` is looked at in between.
const FILL_CHUNK: usize = 1 << 20;

impl Pool {
    /// The spare to extend next, when none is ready: a short recycled one, else a new one.
    /// Zeros are written only when no spare is ready, so recycling serves the steady state.
    pub(super) fn job(&self) -> Option<u64> {
        if self.failed || self.filling.is_some() || !self.ready.is_empty() {
            return None;
        }
        Some(self.short.last().copied().unwrap_or(FRESH))
    }
}

impl Spares {
    /// Makes one spare ready now, unless one is: for the first segment at start-up, before the
    /// preparer runs.
    pub(crate) fn prepare_now(&self, shared: &Shared) -> Result<(), QueueError> {
        let Some(name) = self.claim(&mut self.pool()) else {
            return Ok(());
        };
        let result = self.extend(name, shared);
        self.finish(name, &result);
        result.map(|_| ())
    }

    /// The preparer thread: keeps a spare ready until the spool stops. It also brings the
    /// checkpoint up to date when the writer has gone quiet (the writer does it while busy).
    pub(crate) fn run(&self, shared: &Shared) {
        // However this thread ends, nobody may wait for it any more (`wait_idle`).
        struct Stopper<'a>(&'a Spares);
        impl Drop for Stopper<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _stopper = Stopper(self);
        loop {
            let name = {
                let mut pool = self.pool();
                loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(name) = self.claim(&mut pool) {
                        break name;
                    }
                    let (next, waited) = self
                        .changed
                        .wait_timeout(pool, checkpoint::INTERVAL)
                        .unwrap_or_else(PoisonError::into_inner);
                    pool = next;
                    if waited.timed_out() {
                        drop(pool);
                        shared.checkpoint_if_due();
                        pool = self.pool();
                    }
                }
            };
            let result = self.extend(name, shared);
            match &result {
                Err(QueueError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::StorageFull =>
                {
                    // Said once by the disk space check, not at every rotation.
                    tracing::debug!("no spare prepared: free space is at the spool's reserve");
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot prepare a spare segment; new segments will grow as they are written");
                }
                Ok(_) => {}
            }
            self.finish(name, &result);
        }
    }

    /// Waits until the preparer has nothing left to do (or has given up for now).
    pub(crate) fn wait_idle(&self) {
        let mut pool = self.pool();
        while !self.stop.load(Ordering::SeqCst)
            && self.max > 0
            && (pool.filling.is_some() || pool.job().is_some())
        {
            pool = self
                .changed
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the preparer, in the middle of a file if need be.
    pub(crate) fn stop(&self) {
        let _pool = self.pool();
        self.stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Takes the next job off the pool, marking it as being filled.
    fn claim(&self, pool: &mut Pool) -> Option<u64> {
        if self.max == 0 {
            return None;
        }
        let name = pool.job()?;
        pool.short.retain(|&n| n != name);
        pool.filling = Some(name);
        Some(name)
    }

    /// Puts a spare back after extending it: ready if it is full, short otherwise.
    fn finish(&self, name: u64, result: &Result<bool, QueueError>) {
        let mut pool = self.pool();
        pool.filling = None;
        match result {
            Ok(true) => pool.ready.push(name),
            Ok(false) => pool.short.push(name),
            Err(_) => {
                pool.short.push(name);
                pool.failed = true;
            }
        }
        self.changed.notify_all();
    }

    /// Writes zeros from the end of spare `name` (made if missing) up to the segment size and
    /// syncs them, so its blocks are allocated and written before a segment overwrites them.
    /// Returns `false` when stopped before the end.
    fn extend(&self, name: u64, shared: &Shared) -> Result<bool, QueueError> {
        let counters = &shared.counters;
        let path = self.path(name);
        let have = std::fs::metadata(&path).map_or(0, |m| m.len());
        if have < self.size && !shared.space.room_for(self.size - have) {
            shared.space.refresh();
            return Err(QueueError::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "a spare would take free space below the spool's reserve",
                ),
            ));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        let mut len = file.metadata().at(&path)?.len();
        if len >= self.size {
            return Ok(true);
        }
        file.seek(SeekFrom::Start(len)).at(&path)?;
        let zeros = vec![0u8; FILL_CHUNK];
        while len < self.size {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let n = (self.size - len).min(FILL_CHUNK as u64);
            // `n` is at most FILL_CHUNK, a usize.
            file.write_all(&zeros[..n as usize]).at(&path)?;
            len += n;
            Counters::add(&counters.zero_filled, n);
        }
        file.sync_data().at(&path)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::{collect_garbage, tests::shared};
    use crate::segment;

    #[test]
    fn the_preparer_extends_a_short_recycled_spare_before_making_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 4096, 2);
        fs::write(segment::path(&shared.segments_dir, 1), vec![1; 1000]).unwrap();
        shared.index().add_segment(1);
        shared.index().set_active(2);
        collect_garbage(&shared);
        shared.spares.prepare_now(&shared).unwrap();
        assert_eq!(shared.stats().zero_filled, 4096 - 1000);
        let recycled = fs::read(shared.spares.path(1)).unwrap();
        assert_eq!(recycled.len(), 4096);
        assert!(recycled[..1000].iter().all(|&b| b == 1));
        assert!(recycled[1000..].iter().all(|&b| b == 0));
    }
}
