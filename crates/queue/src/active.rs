//! The segment the writer writes to, and what becomes of it when a write fails.
//!
//! Each batch is written at the logical end of the log, which is not the end of the file when
//! the segment began in a pre-written spare, and is followed by an End marker that the next
//! batch overwrites: so the log always ends in an explicit, checked marker, whatever the file
//! holds after it (see `record`).
//!
//! A failed write or sync leaves octets that were never acknowledged after the logical end.
//! They are cut off (with the rest of the file) before anything else is written, and the writer
//! goes on in a fresh segment (a file whose sync failed cannot be trusted to sync again). No new
//! segment is begun while the old one may still hold such octets: that keeps "only the newest
//! segment with records can end in a torn write" true, which recovery relies on.

use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::mem;
use std::path::Path;

use crate::error::QueueError;
use crate::index::Location;
use crate::record;
use crate::segment;
use crate::spare;
use crate::spool::Shared;
use crate::writer::Append;

/// Where the writer stands with its segment.
#[derive(Debug)]
enum State {
    Healthy {
        number: u64,
        file: File,
        /// The logical end of the log: where the End marker is and the next batch goes.
        len: u64,
    },
    /// A batch failed in this segment: octets past `good_len` were never acknowledged.
    Dirty {
        number: u64,
        file: File,
        good_len: u64,
    },
    /// Beginning a segment failed; the next batch tries again.
    Missing,
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    state: State,
    /// The number the next segment gets; never reused, even when beginning one failed (the
    /// file may exist).
    next_number: u64,
    /// Past this length, a new segment is begun after the batch.
    segment_size: u64,
}

impl ActiveSegment {
    /// Writing to `file`, the freshly begun segment `number`, from offset 0.
    pub(crate) fn new(number: u64, file: File, segment_size: u64) -> Self {
        Self {
            state: State::Healthy {
                number,
                file,
                len: 0,
            },
            next_number: number + 1,
            segment_size,
        }
    }

    /// The segment's number, unless a failure left none usable.
    pub(crate) fn number(&self) -> Option<u64> {
        match self.state {
            State::Healthy { number, .. } => Some(number),
            State::Dirty { .. } | State::Missing => None,
        }
    }

    /// Writes a batch and its End marker at the logical end with one vectored write and syncs
    /// it once. Returns where each record went and how many octets of records were written. On
    /// error nothing of the batch counts as written.
    pub(crate) fn append(
        &mut self,
        shared: &Shared,
        batch: &[Append],
    ) -> Result<(Vec<Location>, u64), QueueError> {
        self.ready(shared)?;
        let State::Healthy { number, file, len } = &mut self.state else {
            return Err(QueueError::Closed);
        };
        let start = *len;
        let mut headers = Vec::with_capacity(batch.len());
        let mut locations = Vec::with_capacity(batch.len());
        let mut offset = 0u64;
        for append in batch {
            // The writer keeps every offset within a batch below `max_batch_bytes` (<= u32::MAX).
            headers.push(append.frame.header(*number, offset as u32));
            locations.push(Location {
                segment: *number,
                offset: start + offset,
                len: append.frame.len(),
            });
            offset += append.frame.len();
        }
        // MAX_PAYLOAD leaves room for a lone record's header within the 32-bit field.
        let end = record::end_marker(*number, offset as u32);
        let mut slices = Vec::with_capacity(batch.len() * 3 + 1);
        for (header, append) in headers.iter().zip(batch) {
            slices.push(IoSlice::new(header));
            slices.push(IoSlice::new(append.frame.prefix()));
            slices.push(IoSlice::new(append.frame.content()));
        }
        slices.push(IoSlice::new(&end));
        let written = file
            .seek(SeekFrom::Start(start))
            .and_then(|_| write_all(file, &mut slices))
            .and_then(|()| shared.sync_data(file));
        match written {
            Ok(()) => {
                *len += offset;
                Ok((locations, offset))
            }
            Err(e) => {
                let path = segment::path(&shared.segments_dir, *number);
                if let State::Healthy { number, file, .. } =
                    mem::replace(&mut self.state, State::Missing)
                {
                    self.state = State::Dirty {
                        number,
                        file,
                        good_len: start,
                    };
                }
                Err(QueueError::io(path, e))
            }
        }
    }

    /// Makes sure there is a healthy segment, cleaning up after a failed batch first.
    fn ready(&mut self, shared: &Shared) -> Result<(), QueueError> {
        match mem::replace(&mut self.state, State::Missing) {
            healthy @ State::Healthy { .. } => {
                self.state = healthy;
                return Ok(());
            }
            State::Dirty {
                number,
                file,
                good_len,
            } => {
                let path = segment::path(&shared.segments_dir, number);
                if let Err(error) = segment::truncate(&file, &path, good_len) {
                    self.state = State::Dirty {
                        number,
                        file,
                        good_len,
                    };
                    return Err(error);
                }
                tracing::warn!(segment = %path.display(), len = good_len, "cut off a failed batch; going on in a new segment");
            }
            State::Missing => {}
        }
        self.begin(shared)
    }

    /// Begins the next segment, in a spare if one is ready (directory synced either way), and
    /// makes it the active one.
    fn begin(&mut self, shared: &Shared) -> Result<(), QueueError> {
        let number = self.next_number;
        self.next_number += 1;
        let file = spare::begin_segment(shared, number)?;
        shared.index().set_active(number);
        self.state = State::Healthy {
            number,
            file,
            len: 0,
        };
        Ok(())
    }

    /// Begins a new segment once this one has outgrown `segment_size`. The writer calls it
    /// after answering a batch, so no caller waits for it; on failure the full segment stays.
    pub(crate) fn rotate_if_full(&mut self, shared: &Shared) {
        let State::Healthy { len, .. } = &self.state else {
            return;
        };
        if *len < self.segment_size {
            return;
        }
        let old = mem::replace(&mut self.state, State::Missing);
        if let Err(error) = self.begin(shared) {
            tracing::warn!(%error, "cannot begin a new segment; appending to the full one");
            self.state = old;
        }
    }

    /// On the way out, cuts off a failed batch left at the end of the segment, so a record that
    /// was refused does not come back at the next start.
    pub(crate) fn cut_failed_batch(&self, dir: &Path) {
        if let State::Dirty {
            number,
            file,
            good_len,
        } = &self.state
        {
            let path = segment::path(dir, *number);
            if let Err(error) = segment::truncate(file, &path, *good_len) {
                tracing::warn!(%error, "cannot cut off a failed batch; its records may be recovered");
            }
        }
    }
}

/// Writes every slice, however the kernel splits the vectored write.
fn write_all(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
