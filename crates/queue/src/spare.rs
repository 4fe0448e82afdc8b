//! Spare segment files: pre-written files the writer renames into its next segment, so that a
//! batch overwrites octets already on disk instead of growing a file. Growing a file changes its
//! size, and `fdatasync` must then commit the file system's journal too; overwriting written
//! blocks syncs the data alone, which is what each SMTP transaction waits for.
//!
//! A spare is, in order of preference, a spent segment kept instead of deleted (recycling costs
//! no disk bandwidth), or a new file filled with zeros. Both are prepared by a thread of their
//! own, the preparer, so the writer never waits for one: rotation takes a ready spare when there
//! is one and otherwise begins an empty file, which is correct, only slower. The preparer
//! zero-fills a new file only when there is no spare at all, and it extends a recycled segment
//! that was never full with zeros up to the segment size.
//!
//! Spares live in `spare/`, where recovery never looks for records. Each is named after the
//! newest segment whose records it may still hold (`0000000000000000.log`, number 0, for a new
//! file: segments are numbered from 1). `Spool::open` numbers its first segment past every
//! segment and every spare, and numbers only grow, so no stale record in a reused file can carry
//! the number of the segment it becomes: recovery reads such a record as the clean end of the
//! log (see `scan`), never as a live record.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{AtPath, QueueError};
use crate::segment;
use crate::spool::Shared;
use crate::stats::Counters;

mod preparer;

/// The folder of spares, inside the spool directory.
pub(crate) const SPARE_DIR: &str = "spare";
/// The name of a new zero-filled spare: it holds no record of any segment.
const FRESH: u64 = 0;

/// The spares on disk and the preparer's work.
#[derive(Debug)]
pub(crate) struct Spares {
    dir: PathBuf,
    /// A spare is ready once it is at least this long (the segment size).
    size: u64,
    /// How many spares to keep at most; 0 turns pre-writing off.
    max: usize,
    pool: Mutex<Pool>,
    /// Signalled whenever the pool changes.
    changed: Condvar,
    /// Set once, when the spool stops: the preparer leaves even in the middle of a file.
    stop: AtomicBool,
}

#[derive(Debug, Default)]
struct Pool {
    /// Spares at least `size` long, by name; the writer takes these.
    ready: Vec<u64>,
    /// Spares the preparer must first extend with zeros.
    short: Vec<u64>,
    /// The spare the preparer is extending now; the writer leaves it alone.
    filling: Option<u64>,
    /// The preparer's last attempt failed: it waits for the pool to change before trying
    /// again, rather than spin on a full disk.
    failed: bool,
}

impl Pool {
    fn count(&self) -> usize {
        self.ready.len() + self.short.len() + usize::from(self.filling.is_some())
    }
}

impl Spares {
    /// Finds the spares a previous run left in `spool_dir/spare` (making the folder if needed),
    /// keeping up to `max` and deleting the rest. Also returns the highest name found, which the
    /// next segment number must exceed.
    pub(crate) fn open(spool_dir: &Path, size: u64, max: usize) -> Result<(Self, u64), QueueError> {
        let dir = spool_dir.join(SPARE_DIR);
        if !dir.is_dir() {
            fs::create_dir(&dir).at(&dir)?;
            segment::sync_dir(spool_dir)?;
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            match name.to_str().and_then(segment::parse_name) {
                Some(number) => found.push((number, entry.metadata().at(&entry.path())?.len())),
                None => tracing::warn!(file = ?name, "ignoring a file that is not a spare"),
            }
        }
        let newest = found.iter().map(|&(name, _)| name).max().unwrap_or(FRESH);
        // The longest first: they need the least zero-filling.
        found.sort_unstable_by_key(|&(name, len)| std::cmp::Reverse((len, name)));
        let mut pool = Pool::default();
        for &(name, len) in found.iter().take(max) {
            if len >= size {
                pool.ready.push(name);
            } else {
                pool.short.push(name);
            }
        }
        for &(name, _) in found.iter().skip(max) {
            let path = dir.join(segment::file_name(name));
            fs::remove_file(&path).at(&path)?;
        }
        let spares = Self {
            dir,
            size,
            max,
            pool: Mutex::new(pool),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        };
        Ok((spares, newest))
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // The pool is a few lists changed in single steps; a panic cannot leave it half-changed.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, name: u64) -> PathBuf {
        self.dir.join(segment::file_name(name))
    }

    /// Keeps spent segment `number` as a spare, or deletes it when there are enough spares.
    /// Either way the segment is gone from `segments/`, and that directory is synced, before
    /// this returns (see `index` for why removals must reach the disk in order). Returns
    /// whether the segment was kept.
    pub(crate) fn retire(&self, segments_dir: &Path, number: u64) -> Result<bool, QueueError> {
        if self.pool().count() >= self.max {
            segment::remove(segments_dir, number)?;
            return Ok(false);
        }
        let from = segment::path(segments_dir, number);
        let to = self.path(number);
        match fs::rename(&from, &to) {
            // An earlier attempt moved it but could not sync the directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => {}
            other => other.at(&from)?,
        }
        segment::sync_dir(segments_dir)?;
        let len = fs::metadata(&to).at(&to)?.len();
        let mut pool = self.pool();
        if len >= self.size {
            pool.ready.push(number);
        } else {
            pool.short.push(number);
        }
        pool.failed = false;
        self.changed.notify_all();
        Ok(true)
    }

    /// Renames a ready spare into segment `number` and syncs `segments/`, so the segment's
    /// name is on disk before any record in it is acknowledged. `None` when no spare is ready.
    pub(crate) fn take(
        &self,
        segments_dir: &Path,
        number: u64,
    ) -> Option<Result<File, QueueError>> {
        let mut pool = self.pool();
        let name = pool.ready.pop()?;
        let from = self.path(name);
        let to = segment::path(segments_dir, number);
        // Moved out of `spare/` under the pool's lock: the preparer, woken by the pop, must not
        // find this file under its old name and take it for a spare of its own (a new spare
        // always has name 0). Opened before the rename, so the file written is the one moved.
        let moved = OpenOptions::new()
            .write(true)
            .open(&from)
            .and_then(|file| fs::rename(&from, &to).map(|()| file))
            .at(&from);
        // The preparer may have work now (a new spare when this was the last one).
        pool.failed = false;
        self.changed.notify_all();
        drop(pool);
        Some(moved.and_then(|file| segment::sync_dir(segments_dir).map(|()| file)))
    }
}

/// Begins segment `number` in a ready spare when there is one, else as an empty file; either way
/// its name is on disk before this returns.
pub(crate) fn begin_segment(shared: &Shared, number: u64) -> Result<File, QueueError> {
    let dir = &shared.segments_dir;
    match shared.spares.take(dir, number) {
        Some(Ok(file)) => {
            Counters::add(&shared.counters.spares_taken, 1);
            return Ok(file);
        }
        Some(Err(error)) => {
            tracing::warn!(%error, segment = number, "cannot begin a segment in a spare; beginning an empty file");
        }
        None => {}
    }
    let file = segment::create(dir, number)?;
    Counters::add(&shared.counters.empty_begins, 1);
    Ok(file)
}

/// Retires the segments no live message needs, oldest first, each removal from `segments/`
/// synced before the next (see `index` for why): kept as spares up to the limit, deleted beyond
/// it.
pub(crate) fn collect_garbage(shared: &Shared) {
    let doomed = shared.index().deletable();
    if doomed.is_empty() {
        return;
    }
    // The checkpoint must no longer list as live a message whose records go with these
    // segments (it would be reported lost after a crash): one taken now lists none.
    if let Err(error) = shared.save_checkpoint(true) {
        tracing::warn!(%error, "cannot write the spool's checkpoint; spent segments stay for now");
        return;
    }
    for number in doomed {
        match shared.spares.retire(&shared.segments_dir, number) {
            Ok(kept) => {
                if kept {
                    Counters::add(&shared.counters.recycled, 1);
                }
                tracing::debug!(segment = number, kept, "retired a spent segment");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot retire a spent segment; will try again");
                return;
            }
        }
        shared.index().remove_segment(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::space::{DiskReserve, DiskSpace};

    pub(super) fn shared(dir: &Path, size: u64, max: usize) -> Shared {
        let segments_dir = segment::prepare(dir).unwrap();
        let lock = segment::lock(dir).unwrap();
        let (spares, _) = Spares::open(dir, size, max).unwrap();
        let space = DiskSpace::new(dir, DiskReserve::octets(0));
        Shared::new(segments_dir, Index::default(), lock, spares, space)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn open_keeps_the_longest_spares_up_to_the_limit_and_names_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let spare = dir.path().join(SPARE_DIR);
        fs::create_dir(&spare).unwrap();
        for (name, len) in [(3u64, 4096), (7, 10), (5, 4096)] {
            fs::write(spare.join(segment::file_name(name)), vec![0; len]).unwrap();
        }
        fs::write(spare.join("notes.txt"), b"left alone").unwrap();
        let (spares, newest) = Spares::open(dir.path(), 4096, 2).unwrap();
        // The deleted spare counts too: it held records of segment 7 until now.
        assert_eq!(newest, 7);
        let kept = [
            segment::file_name(3),
            segment::file_name(5),
            "notes.txt".into(),
        ];
        assert_eq!(names(&spare), kept);
        assert_eq!(spares.pool().ready.len(), 2);
    }

    #[test]
    fn a_segment_begins_empty_without_a_ready_spare_and_pre_written_with_one() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 4096, 2);
        let file = begin_segment(&shared, 1).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0);
        shared.spares.prepare_now(&shared).unwrap();
        let file = begin_segment(&shared, 2).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 4096);
        let stats = shared.stats();
        assert_eq!((stats.empty_begins, stats.spares_taken), (1, 1));
        assert_eq!(stats.zero_filled, 4096);
        assert!(names(&dir.path().join(SPARE_DIR)).is_empty());
        let segments = [segment::file_name(1), segment::file_name(2)];
        assert_eq!(names(&shared.segments_dir), segments);
    }

    #[test]
    fn spent_segments_are_kept_as_spares_up_to_the_limit_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path(), 4096, 2);
        for (number, len) in [(1, 4096), (2, 100), (3, 4096)] {
            fs::write(segment::path(&shared.segments_dir, number), vec![1; len]).unwrap();
            shared.index().add_segment(number);
        }
        shared.index().set_active(4);
        collect_garbage(&shared);
        let kept = [segment::file_name(1), segment::file_name(2)];
        assert_eq!(names(&dir.path().join(SPARE_DIR)), kept);
        assert!(names(&shared.segments_dir).is_empty());
        assert_eq!(shared.stats().recycled, 2);
        // 1 is full and ready; 2 must be extended first, but not while 1 is ready.
        let pool = shared.spares.pool();
        assert_eq!(
            (&pool.ready[..], &pool.short[..], pool.job()),
            (&[1][..], &[2][..], None)
        );
    }
}
