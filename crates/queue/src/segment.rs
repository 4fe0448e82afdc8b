//! Segment files: `segments/<16-digit number>.log` under the spool directory, numbered in the
//! order they were begun (spares, files waiting to become segments, are in `spare`).
//! Everything here is blocking file I/O, called from the writer thread or a blocking task.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use postern_mailmsg::QueueId;

use crate::envelope::Envelope;
use crate::error::{AtPath, QueueError};
use crate::index::{Entry, Location};
use crate::payload::{self, Effect};
use crate::record::{self, HEADER_LEN};

/// The folder of segment files, inside the spool directory.
pub(crate) const SEGMENTS_DIR: &str = "segments";
/// The lock file that keeps a second process out of the spool.
const LOCK_FILE: &str = "lock";

/// The file name of segment `number`.
pub(crate) fn file_name(number: u64) -> String {
    format!("{number:016}.log")
}

/// The segment number a file name stands for, if it is a segment name.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The path of segment `number` in `dir` (the segments folder).
pub(crate) fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(file_name(number))
}

/// The segment numbers in `dir`, oldest first. Other files are left alone.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_name) {
            Some(number) => numbers.push(number),
            None => tracing::warn!(file = ?name, "ignoring a file that is not a spool segment"),
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Makes the spool directory and its segments folder, syncing each parent whose entries changed.
pub(crate) fn prepare(dir: &Path) -> Result<PathBuf, QueueError> {
    let segments = dir.join(SEGMENTS_DIR);
    if !segments.is_dir() {
        fs::create_dir_all(&segments).at(&segments)?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(segments)
}

/// Takes the spool's lock, so two processes never append to the same log. The lock lasts as
/// long as the returned file is open.
pub(crate) fn lock(dir: &Path) -> Result<File, QueueError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(QueueError::Locked(path)),
        Err(fs::TryLockError::Error(e)) => Err(QueueError::io(path, e)),
    }
}

/// Begins segment `number` as an empty file (it must not exist), when no spare is ready, and
/// syncs the directory, so the new name survives a crash before any record in it is
/// acknowledged. Opened for positioned writes, not appending: each batch overwrites the End
/// marker of the one before.
pub(crate) fn create(dir: &Path, number: u64) -> Result<File, QueueError> {
    let path = path(dir, number);
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .at(&path)?;
    sync_dir(dir)?;
    Ok(file)
}

/// Deletes segment `number` (when there are spares enough) and syncs the directory before
/// returning, so deletions reach the disk in the order they are made (see `index` for why the
/// order matters).
pub(crate) fn remove(dir: &Path, number: u64) -> Result<(), QueueError> {
    let path = path(dir, number);
    match fs::remove_file(&path) {
        // Gone already: an earlier attempt removed it but could not sync the directory.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => other.at(&path)?,
    }
    sync_dir(dir)
}

/// Cuts a segment back to `len` octets and syncs the new length.
pub(crate) fn truncate(file: &File, path: &Path, len: u64) -> Result<(), QueueError> {
    file.set_len(len).at(path)?;
    file.sync_all().at(path)
}

/// The latest envelope and the content of the live message `id` whose entry is `entry`: the
/// content from its Message record, the envelope from the latest record carrying one (the same
/// record, or an Update after it).
pub(crate) fn read_message(
    dir: &Path,
    id: QueueId,
    entry: &Entry,
) -> Result<(Envelope, Bytes), QueueError> {
    let (effect, content) = read_record(dir, id, entry.message_at)?;
    let content = content.ok_or_else(|| not_a(dir, entry.message_at, "Message"))?;
    let envelope = if entry.envelope_at == entry.message_at {
        envelope_of(effect)
    } else {
        read_envelope(dir, id, entry.envelope_at)?
    };
    Ok((envelope, content))
}

/// The envelope carried by the Message or Update record of message `id` at `at`.
pub(crate) fn read_envelope(dir: &Path, id: QueueId, at: Location) -> Result<Envelope, QueueError> {
    let (effect, _) = read_record(dir, id, at)?;
    if matches!(effect, Effect::Done { .. }) {
        return Err(not_a(dir, at, "Message or Update"));
    }
    Ok(envelope_of(effect))
}

fn envelope_of(effect: Effect) -> Envelope {
    match effect {
        Effect::Message { envelope, .. } | Effect::Update { envelope, .. } => envelope,
        Effect::Done { .. } => Envelope::default(),
    }
}

fn not_a(dir: &Path, at: Location, kind: &str) -> QueueError {
    QueueError::Corrupt {
        segment: path(dir, at.segment),
        offset: at.offset,
        reason: format!("not a {kind} record"),
    }
}

/// The record of message `id` at `at` (a positional read of exactly the record, checked on the
/// way): what it says, and the content of a Message record.
fn read_record(
    dir: &Path,
    id: QueueId,
    at: Location,
) -> Result<(Effect, Option<Bytes>), QueueError> {
    let path = path(dir, at.segment);
    let bytes = read(&path, at)?;
    let corrupt = |reason: String| QueueError::Corrupt {
        segment: path.clone(),
        offset: at.offset,
        reason,
    };
    let valid = record::check(&bytes).map_err(|e| corrupt(e.reason().to_owned()))?;
    if valid.segment != at.segment || valid.is_end() {
        return Err(corrupt(format!(
            "not a record of this segment (kind {}, segment {})",
            valid.kind, valid.segment
        )));
    }
    let (effect, content) = payload::decode(&valid).map_err(corrupt)?;
    if effect.id() != id {
        return Err(corrupt(format!(
            "the record is for {}, not {id}",
            effect.id()
        )));
    }
    let content = content
        .map(|range| Bytes::from(bytes).slice(HEADER_LEN + range.start..HEADER_LEN + range.end));
    Ok((effect, content))
}

fn read(path: &Path, at: Location) -> Result<Vec<u8>, QueueError> {
    let mut file = File::open(path).at(path)?;
    file.seek(SeekFrom::Start(at.offset)).at(path)?;
    let len = usize::try_from(at.len).map_err(|_| QueueError::TooLarge {
        size: at.len,
        max: usize::MAX as u64,
    })?;
    let mut buf = vec![0; len];
    file.read_exact(&mut buf).at(path)?;
    Ok(buf)
}

/// Syncs a directory, making the creation, renaming or removal of its entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    postern_mailmsg::durable::sync_dir(dir).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_not_segments() {
        assert_eq!(file_name(7), "0000000000000007.log");
        assert_eq!(parse_name(&file_name(7)), Some(7));
        assert_eq!(parse_name("0000000000000007.log.tmp"), None);
        assert_eq!(parse_name(".log"), None);
        assert_eq!(parse_name("lock"), None);
    }
}
