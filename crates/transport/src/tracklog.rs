//! The tracking log: what the `track` event's default sink writes. One JSON line per change of
//! a message's state goes to `DATA/log/track.jsonl`, which is rotated by size.
//!
//! Lines go through a channel to a thread of their own, so a pass never waits for the disk, and
//! that one writer keeps them in the order [`TrackLog::write`] was called. The writer flushes
//! each batch it takes off the channel, so a reader (`tail -f`) sees a line as soon as the
//! writer gets to it. The log is not fsynced: it tells what happened, the queue is what makes
//! mail durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use tokio::sync::oneshot;
use tracing::warn;

/// The file's name below `DATA/log`; rotated files get `.1`, `.2`, … (`.1` the newest).
pub(crate) const FILE_NAME: &str = "track.jsonl";

/// The version of the line format, written as `"v"` in every line. Raise it when a field
/// changes meaning or goes away; adding a field is compatible.
const WIRE_VERSION: u32 = 1;

/// How many lines the writer takes before it flushes even though more are waiting, so that a
/// steady stream of records still reaches readers promptly.
const MAX_BATCH: usize = 512;

/// One change of a message's state, as a line of the tracking log. A wire struct: renaming a
/// field here changes what readers of the log see.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct TrackRecord {
    /// When the change happened: RFC 3339, UTC, with milliseconds.
    pub(crate) time: String,
    pub(crate) queue_id: String,
    /// `received`, `queued`, `routed`, `delivered`, `deferred`, `bounced`, `expired`,
    /// `dsn-sent`, `held`, `quarantined`, `aborted` or `badmail`.
    pub(crate) state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_hop: Option<String>,
    /// The remote's reply, or the reason for the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reply: Option<String>,
    /// For `deferred`: when delivery is tried next (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_attempt: Option<String>,
    /// The binding whose sink decided the change, when a sink (not a default) decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) binding: Option<String>,
}

impl TrackRecord {
    /// A record of `state` for the message `queue_id` at `time`, the other fields empty.
    pub(crate) fn new(
        queue_id: impl Into<String>,
        state: impl Into<String>,
        time: SystemTime,
    ) -> Self {
        Self {
            time: rfc3339(time),
            queue_id: queue_id.into(),
            state: state.into(),
            ..Self::default()
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-03T09:05:04.123Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// A line as written: the record with the format's version in front.
#[derive(serde::Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    record: &'a TrackRecord,
}

enum Command {
    Line(String),
    /// Answered once every line sent before it is in the file.
    Flush(oneshot::Sender<()>),
}

/// The tracking log's writer. Dropping it writes out every record handed to it and waits for
/// the writer thread to end, so records are not lost at shutdown.
pub(crate) struct TrackLog {
    /// `None` only while dropping: closing the channel is what ends the writer thread.
    sender: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl TrackLog {
    /// Opens (creating them) `DATA/log` below `data_dir` and `track.jsonl` in it, appending to
    /// what is there. The file is rotated when a line would take it past `max_bytes`; `keep`
    /// rotated files are kept.
    pub(crate) fn open(data_dir: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let dir = data_dir.join("log");
        fs::create_dir_all(&dir)?;
        let mut file = Rotating {
            path: dir.join(FILE_NAME),
            max_bytes,
            keep,
            out: None,
            size: 0,
        };
        file.reopen()?;
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("track-log".to_owned())
            .spawn(move || file.run(&receiver))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Hands `record` to the writer; returns at once (the channel is unbounded, so a burst of
    /// changes never blocks a pass). A record that cannot be written is logged, not raised.
    pub(crate) fn write(&self, record: &TrackRecord) {
        let line = Line {
            v: WIRE_VERSION,
            record,
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(text) => text,
            Err(e) => {
                warn!(queue_id = %record.queue_id, error = %e, "track record not serialisable");
                return;
            }
        };
        text.push('\n');
        self.send(Command::Line(text));
    }

    /// Waits, without blocking the runtime, until every record written before is in the file.
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.send(Command::Flush(done)) {
            // An error means the writer thread is gone; there is nothing left to wait for.
            let _ = flushed.await;
        }
    }

    fn send(&self, command: Command) -> bool {
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.send(command).is_ok());
        if !sent {
            warn!("track log writer has stopped; record dropped");
        }
        sent
    }
}

impl Drop for TrackLog {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("track log writer panicked");
        }
    }
}

/// The file and its rotation; owned by the writer thread alone.
struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// `None` after an I/O error: the next line tries to open the file again.
    out: Option<BufWriter<File>>,
    size: u64,
}

impl Rotating {
    fn run(&mut self, receiver: &mpsc::Receiver<Command>) {
        let mut waiting = Vec::new();
        while let Ok(first) = receiver.recv() {
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(command) = next.take() {
                match command {
                    Command::Line(line) => self.append(&line),
                    Command::Flush(done) => waiting.push(done),
                }
                taken += 1;
                if taken < MAX_BATCH {
                    next = receiver.try_recv().ok();
                }
            }
            self.flush();
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
        self.flush();
    }

    fn append(&mut self, line: &str) {
        let len = line.len() as u64;
        // A line longer than the limit still goes into a file of its own rather than nowhere.
        if self.size > 0
            && self.size + len > self.max_bytes
            && let Err(e) = self.rotate()
        {
            warn!(path = %self.path.display(), error = %e, "cannot rotate the track log");
        }
        if self.out.is_none()
            && let Err(e) = self.reopen()
        {
            warn!(path = %self.path.display(), error = %e, "cannot open the track log; record dropped");
            return;
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        match out.write_all(line.as_bytes()) {
            Ok(()) => self.size += len,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot write the track log; record dropped");
                self.out = None;
            }
        }
    }

    fn flush(&mut self) {
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            warn!(path = %self.path.display(), error = %e, "cannot flush the track log");
            self.out = None;
        }
    }

    /// `track.jsonl` becomes `track.jsonl.1`, `.1` becomes `.2` and so on; what would become
    /// `.{keep+1}` is removed. With `keep` 0 the file is simply started again.
    fn rotate(&mut self) -> io::Result<()> {
        self.flush();
        self.out = None;
        self.size = 0;
        if self.keep == 0 {
            remove_if_there(&self.path)?;
        } else {
            remove_if_there(&self.numbered(self.keep))?;
            for n in (1..self.keep).rev() {
                rename_if_there(&self.numbered(n), &self.numbered(n + 1))?;
            }
            rename_if_there(&self.path, &self.numbered(1))?;
        }
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.out = Some(BufWriter::with_capacity(64 * 1024, file));
        Ok(())
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_there(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn record(queue_id: &str, seq: usize) -> TrackRecord {
        TrackRecord {
            recipient: Some("bob@example.com".to_owned()),
            reply: Some(format!("250 2.0.0 ok {seq}")),
            ..TrackRecord::new(queue_id, "delivered", SystemTime::now())
        }
    }

    /// Every line of `file`, parsed.
    fn lines(file: &Path) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    fn seq(line: &serde_json::Value) -> usize {
        let reply = line["reply"].as_str().expect("a reply");
        reply
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    }

    #[tokio::test]
    async fn records_are_written_in_order_as_versioned_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrackLog::open(dir.path(), 1 << 20, 3).unwrap();
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let states = ["received", "queued", "routed", "deferred", "delivered"];
        for state in states {
            let mut record = TrackRecord::new("Q1", state, at);
            if state == "deferred" {
                record.reply = Some("451 4.3.0 later".to_owned());
                record.next_attempt = Some(rfc3339(at + Duration::from_secs(300)));
                record.binding = Some("greylist".to_owned());
            }
            log.write(&record);
        }
        log.flush().await;

        let lines = lines(&dir.path().join("log").join(FILE_NAME));
        let got: Vec<&str> = lines.iter().map(|l| l["state"].as_str().unwrap()).collect();
        assert_eq!(got, states);
        assert_eq!(lines[0]["v"], 1);
        assert_eq!(lines[0]["time"], "2027-01-15T08:00:00.123Z");
        assert_eq!(lines[0]["queue_id"], "Q1");
        assert!(
            lines[0].get("recipient").is_none(),
            "empty fields are left out"
        );
        assert_eq!(lines[3]["next_attempt"], "2027-01-15T08:05:00.123Z");
        assert_eq!(lines[3]["binding"], "greylist");
        assert_eq!(lines[3]["reply"], "451 4.3.0 later");
    }

    #[tokio::test]
    async fn rotation_keeps_keep_files_and_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let max_bytes = 1000;
        let log = TrackLog::open(dir.path(), max_bytes, 2).unwrap();
        for n in 0..100 {
            log.write(&record("Q1", n));
        }
        log.flush().await;

        let base = dir.path().join("log").join(FILE_NAME);
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", base.display()));
        assert!(numbered(2).exists() && !numbered(3).exists());
        let mut all = Vec::new();
        for file in [numbered(2), numbered(1), base.clone()] {
            assert!(fs::metadata(&file).unwrap().len() <= max_bytes, "{file:?}");
            all.extend(lines(&file).iter().map(seq));
        }
        assert_eq!(all.last(), Some(&99), "the newest record is in track.jsonl");
        let first = all[0];
        assert_eq!(
            all,
            (first..100).collect::<Vec<_>>(),
            "contiguous, oldest dropped"
        );
        assert!(first > 0);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_still_gets_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrackLog::open(dir.path(), 10, 1).unwrap();
        log.write(&record("Q1", 1));
        log.write(&record("Q1", 2));
        log.flush().await;
        let base = dir.path().join("log").join(FILE_NAME);
        assert_eq!(lines(&base).iter().map(seq).collect::<Vec<_>>(), [2]);
        let old = PathBuf::from(format!("{}.1", base.display()));
        assert_eq!(lines(&old).iter().map(seq).collect::<Vec<_>>(), [1]);
    }

    #[tokio::test]
    async fn reopening_appends_and_counts_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("log").join(FILE_NAME);
        {
            let log = TrackLog::open(dir.path(), 1 << 20, 1).unwrap();
            log.write(&record("Q1", 1));
            // Dropped here, which writes the record out.
        }
        let one_line = fs::metadata(&base).unwrap().len();
        let log = TrackLog::open(dir.path(), one_line * 2, 1).unwrap();
        log.write(&record("Q1", 2));
        log.write(&record("Q1", 3));
        log.flush().await;
        assert_eq!(lines(&base).iter().map(seq).collect::<Vec<_>>(), [3]);
        let old = PathBuf::from(format!("{}.1", base.display()));
        assert_eq!(lines(&old).iter().map(seq).collect::<Vec<_>>(), [1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_record_is_lost_when_tasks_write_at_once() {
        const TASKS: usize = 8;
        const EACH: usize = 500;
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(TrackLog::open(dir.path(), 1 << 30, 1).unwrap());
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..EACH {
                    log.write(&record(&format!("T{task}"), n));
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Dropping the last handle writes everything out: what shutdown relies on.
        drop(Arc::into_inner(log).expect("the only handle"));

        let lines = lines(&dir.path().join("log").join(FILE_NAME));
        assert_eq!(lines.len(), TASKS * EACH);
        for task in 0..TASKS {
            let id = format!("T{task}");
            let mine: Vec<usize> = lines
                .iter()
                .filter(|l| l["queue_id"] == id)
                .map(seq)
                .collect();
            assert_eq!(mine, (0..EACH).collect::<Vec<_>>(), "{id} in order");
        }
    }
}
