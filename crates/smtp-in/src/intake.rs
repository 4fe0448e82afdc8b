//! The content of a message while it arrives. It starts in memory, under a share of the
//! [`Budget`]; once it passes the spill threshold, or the budget cannot grow, it moves to an
//! unnamed file in the data folder and the session keeps only a write buffer (still under the
//! budget), however long the message and however slowly it comes. When the message is complete its content comes back
//! into memory, under the budget again, for the end-of-data sinks and the queue.
//!
//! The file is made with `O_TMPFILE` (or unlinked as soon as it is made): it has no name, so
//! it disappears when the transfer ends, whichever way, even after a crash.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::budget::{Budget, Share};

/// The share a transfer starts with; most messages fit.
pub(crate) const INITIAL: usize = 16 * 1024;
/// The write buffer of a message on disk (under the budget too).
const WRITE_CHUNK: usize = 128 * 1024;
/// What one write into the buffer may add beyond the input it consumed (the DATA decoder may
/// give back a CR it held from the previous input).
const SLACK: usize = 2;
const _: () = assert!(INITIAL > SLACK);

/// Why the content could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IntakeError {
    /// The memory budget did not free up in time to read a spilled message back.
    #[error("the memory budget is exhausted")]
    Budget,
    /// The spill file could not be made, written or read.
    #[error("spill file: {0}")]
    Io(#[from] io::Error),
}

/// A message's content so far.
#[derive(Debug)]
pub(crate) struct Intake {
    /// In memory: the content so far. On disk: the octets not yet written to `file`. Its
    /// capacity is covered by `share`.
    buf: Vec<u8>,
    /// Taken from the budget; `None` only once `finish` has taken it.
    share: Option<Share>,
    /// Shared with the blocking tasks that write it.
    file: Option<Arc<File>>,
    /// Octets in `file`.
    written: u64,
    threshold: usize,
}

impl Intake {
    /// A new transfer's content, if the budget has room for its initial share.
    pub(crate) fn start(budget: &Budget, threshold: u64) -> Option<Intake> {
        let share = budget.try_take_transfer(INITIAL)?;
        Some(Intake {
            buf: Vec::with_capacity(share.octets()),
            share: Some(share),
            file: None,
            written: 0,
            threshold: usize::try_from(threshold).unwrap_or(usize::MAX),
        })
    }

    /// Octets received so far.
    pub(crate) fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Whether the content has moved to disk.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// The buffer to append to, once [`Intake::reserve`] made room.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Makes room in the buffer for the content of up to `wanted` octets of input, so that
    /// appending it does not allocate outside the budget; returns how many octets of input may
    /// be appended now (at least one, at most `wanted`). In memory, it grows the share; past
    /// the threshold, or when the budget has no more, it moves the content to a file in `dir`;
    /// on disk, it writes out the buffer when it is full.
    pub(crate) async fn reserve(
        &mut self,
        budget: &Budget,
        dir: &Path,
        wanted: usize,
    ) -> Result<usize, IntakeError> {
        let need = self.buf.len() + wanted + SLACK;
        if wanted == 0 || need <= self.buf.capacity() {
            return Ok(wanted);
        }
        if self.file.is_none() {
            if let Some(share) = self.share.as_mut() {
                let grown = need.max(self.buf.capacity() * 2).min(self.threshold);
                if need <= self.threshold && budget.try_grow(share, grown) {
                    let room = share.octets().saturating_sub(self.buf.len());
                    self.buf.reserve_exact(room);
                    return Ok(wanted);
                }
            }
            self.spill(budget, dir).await?;
        } else {
            self.write().await?;
        }
        Ok(wanted.min(self.buf.capacity() - SLACK).max(1))
    }

    /// Moves the content to a new file. The share shrinks to a write buffer, or grows to one if
    /// the budget allows; when it does not, the buffer is the smallest share a transfer has.
    async fn spill(&mut self, budget: &Budget, dir: &Path) -> Result<(), IntakeError> {
        let dir = dir.to_owned();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            tempfile::tempfile_in(&dir)
        })
        .await
        .map_err(io::Error::other)??;
        self.file = Some(Arc::new(file));
        self.write().await?;
        // The memory goes back before the share does.
        self.buf = Vec::new();
        let Some(share) = self.share.as_mut() else {
            return Err(IntakeError::Budget);
        };
        if !budget.try_grow(share, WRITE_CHUNK) {
            share.shrink_to(INITIAL);
        }
        share.shrink_to(WRITE_CHUNK);
        self.buf.reserve_exact(share.octets());
        Ok(())
    }

    /// Writes the buffer to the file (on a blocking thread) and empties it.
    async fn write(&mut self) -> Result<(), IntakeError> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.buf);
        let n = buf.len() as u64;
        self.buf = tokio::task::spawn_blocking(move || {
            (&*file).write_all(&buf)?;
            buf.clear();
            Ok::<_, io::Error>(buf)
        })
        .await
        .map_err(io::Error::other)??;
        self.written += n;
        Ok(())
    }

    /// The whole message, `prefix` (the trace field) first, in memory and holding its share of
    /// the budget for as long as it lives. Content on disk is read back once the budget has
    /// room for it, waiting until `deadline` at most.
    pub(crate) async fn finish(
        mut self,
        budget: &Budget,
        prefix: &[u8],
        deadline: Instant,
    ) -> Result<Bytes, IntakeError> {
        let Some(file) = self.file.clone() else {
            let size = prefix.len() + self.buf.len();
            let mut share = self.share.take().ok_or(IntakeError::Budget)?;
            // The copy is exact; the share follows it (a few octets over if the budget is full).
            budget.try_grow(&mut share, size);
            share.shrink_to(size);
            let mut raw = Vec::with_capacity(size);
            raw.extend_from_slice(prefix);
            raw.extend_from_slice(&self.buf);
            return Ok(share.hold(raw));
        };
        self.write().await?;
        // The write buffer's share goes back first: waiting while holding it could keep other
        // messages from being read back.
        self.buf = Vec::new();
        self.share = None;
        let size = prefix.len() + usize::try_from(self.written).unwrap_or(usize::MAX);
        let share = budget
            .take(size, deadline)
            .await
            .ok_or(IntakeError::Budget)?;
        let prefix = prefix.to_vec();
        let raw = tokio::task::spawn_blocking(move || {
            let mut raw = Vec::with_capacity(size);
            raw.extend_from_slice(&prefix);
            (&*file).rewind()?;
            (&*file).read_to_end(&mut raw)?;
            Ok::<_, io::Error>(raw)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(share.hold(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn append(intake: &mut Intake, budget: &Budget, dir: &Path, mut data: &[u8]) {
        while !data.is_empty() {
            let n = intake
                .reserve(budget, dir, data.len().min(70_000))
                .await
                .unwrap();
            let capacity = intake.buf().capacity();
            intake.buf().extend_from_slice(&data[..n]);
            assert_eq!(intake.buf().capacity(), capacity, "appending allocated");
            data = &data[n..];
        }
    }

    #[tokio::test]
    async fn a_message_past_the_threshold_moves_to_disk_and_gives_its_memory_back() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(1 << 20);
        let mut intake = Intake::start(&budget, 64 * 1024).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        append(&mut intake, &budget, dir.path(), &data[..60_000]).await;
        assert!(!intake.spilled());
        assert!(budget.available() <= (1 << 20) - 60_000);
        append(&mut intake, &budget, dir.path(), &data[60_000..]).await;
        assert!(intake.spilled());
        // What is left in memory is a write buffer.
        assert_eq!(budget.available(), (1 << 20) - WRITE_CHUNK);
        assert_eq!(intake.len(), data.len() as u64);
        // The file has no name: the folder stays empty.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let far = Instant::now() + std::time::Duration::from_secs(5);
        let raw = intake
            .finish(&budget, b"Received: x\r\n", far)
            .await
            .unwrap();
        assert_eq!(&raw[..13], b"Received: x\r\n");
        assert_eq!(&raw[13..], &data[..]);
        assert!(budget.available() < (1 << 20) - 200_000);
        drop(raw);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_transfer_the_budget_cannot_grow_moves_to_disk_early() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(64 * 1024);
        let mut first = Intake::start(&budget, 1 << 20).unwrap();
        let _others: Vec<_> = (0..3)
            .map(|_| Intake::start(&budget, 1 << 20).unwrap())
            .collect();
        append(&mut first, &budget, dir.path(), &[b'x'; 40_000]).await;
        assert!(first.spilled());
        // It kept its first share as a write buffer, and goes on in it.
        assert_eq!(budget.available(), 0);
        append(&mut first, &budget, dir.path(), &[b'x'; 100_000]).await;
        assert_eq!(first.len(), 140_000);
        assert_eq!(budget.available(), 0);
    }

    #[tokio::test]
    async fn reading_a_spilled_message_back_waits_for_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(64 * 1024);
        let mut intake = Intake::start(&budget, 16 * 1024).unwrap();
        append(&mut intake, &budget, dir.path(), &[b'y'; 40_000]).await;
        let hog = budget.try_take(40 * 1024).unwrap();
        let soon = Instant::now() + std::time::Duration::from_millis(10);
        let err = intake.finish(&budget, b"", soon).await.unwrap_err();
        assert!(matches!(err, IntakeError::Budget), "{err}");
        drop(hog);
    }
}
