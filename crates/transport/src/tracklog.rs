//! The track log: one JSON line per change of a message's state in `DATA/log/track.jsonl`,
//! written by a thread of its own (a runtime thread never waits on the disk) in the order the
//! changes were made, and rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;
use tracing::error;

/// One line of the track log (wire format version 1).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TrackRecord {
    pub(crate) time: String,
    pub(crate) queue_id: String,
    pub(crate) state: String,
    pub(crate) recipient: Option<String>,
    pub(crate) next_hop: Option<String>,
    pub(crate) reply: Option<String>,
    pub(crate) next_attempt: Option<String>,
    pub(crate) binding: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    record: &'a TrackRecord,
}

/// The writer's handle; cloning the sender is cheap, the thread ends when every handle is gone.
pub(crate) struct TrackLog {
    tx: mpsc::Sender<Vec<u8>>,
}

impl TrackLog {
    /// Opens (creating) `dir/track.jsonl`, rotated past `max_bytes` keeping `keep` old files.
    pub(crate) fn open(dir: &Path, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("track.jsonl");
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("postern-track".into())
            .spawn(move || {
                let mut out = Output {
                    path,
                    file: BufWriter::new(file),
                    size,
                    max_bytes,
                    keep,
                };
                while let Ok(line) = rx.recv() {
                    out.write(&line);
                    // Whatever else is waiting goes out in the same write, then one flush.
                    while let Ok(line) = rx.try_recv() {
                        out.write(&line);
                    }
                    if let Err(e) = out.file.flush() {
                        error!("track log: {e}");
                    }
                }
            })?;
        Ok(Self { tx })
    }

    /// Queues a record; never blocks on the disk.
    pub(crate) fn write(&self, record: &TrackRecord) {
        match serde_json::to_vec(&Line { v: 1, record }) {
            Ok(mut line) => {
                line.push(b'\n');
                let _ = self.tx.send(line);
            }
            Err(e) => error!("track log: {e}"),
        }
    }
}

struct Output {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

impl Output {
    fn write(&mut self, line: &[u8]) {
        if self.size > 0
            && self.size + line.len() as u64 > self.max_bytes
            && let Err(e) = self.rotate()
        {
            error!("track log rotation: {e}");
        }
        match self.file.write_all(line) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => error!("track log: {e}"),
        }
    }

    /// `track.jsonl` → `track.jsonl.1` → … → `track.jsonl.KEEP` (the oldest is removed).
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, numbered(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&self.path)?;
        if self.keep == 0 {
            file.set_len(0)?;
        }
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> TrackRecord {
        TrackRecord {
            time: "2026-01-01T00:00:00.000Z".into(),
            queue_id: format!("q{n}"),
            state: "delivered".into(),
            recipient: Some("a@b".into()),
            next_hop: None,
            reply: None,
            next_attempt: None,
            binding: None,
        }
    }

    fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines: Vec<serde_json::Value> = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn records_are_written_in_order_as_versioned_json() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrackLog::open(dir.path(), 1 << 20, 2).unwrap();
        for n in 0..100 {
            log.write(&record(n));
        }
        let lines = wait_lines(&dir.path().join("track.jsonl"), 100);
        assert_eq!(lines.len(), 100);
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(line["v"], 1);
            assert_eq!(line["queue_id"], format!("q{n}"));
        }
    }

    #[test]
    fn rotation_keeps_the_newest_records_and_that_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrackLog::open(dir.path(), 2000, 2).unwrap();
        for n in 0..200 {
            log.write(&record(n));
        }
        let path = dir.path().join("track.jsonl");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let last = std::fs::read_to_string(&path).unwrap_or_default();
            if last.contains("\"q199\"") || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 2000);
        assert!(dir.path().join("track.jsonl.1").exists());
        assert!(dir.path().join("track.jsonl.2").exists());
        assert!(!dir.path().join("track.jsonl.3").exists());
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"q199\""));
    }
}
