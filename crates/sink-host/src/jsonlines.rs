//! A JSON-lines log rotated by size, written off the hot path: the track log (transport) and
//! the decision log ([`crate::decisions`]) both go through it.
//!
//! Lines go through a channel to a thread of their own, so a caller never waits for the disk,
//! and that one writer keeps them in the order [`JsonLines::write`] was called. The writer
//! flushes each batch it takes off the channel, so a reader (`tail -f`) sees a line as soon as
//! the writer gets to it. The log is not fsynced: it tells what happened, the queue is what
//! makes mail durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tracing::warn;

/// How many lines the writer takes before it flushes even though more are waiting, so that a
/// steady stream of records still reaches readers promptly.
const MAX_BATCH: usize = 512;

enum Command {
    Line(String),
    /// Answered once every line sent before it is in the file.
    Flush(oneshot::Sender<()>),
}

/// A JSON-lines log's writer. Dropping it writes out every line handed to it and waits for the
/// writer thread to end, so lines are not lost at shutdown.
pub struct JsonLines {
    /// `None` only while dropping: closing the channel is what ends the writer thread.
    sender: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl JsonLines {
    /// Opens (creating them) `DATA/log` below `data_dir` and `file_name` in it, appending to
    /// what is there. The file is rotated when a line would take it past `max_bytes`; `keep`
    /// rotated files are kept (`NAME.1` the newest). `thread` names the writer thread.
    pub fn open(
        data_dir: &Path,
        file_name: &str,
        max_bytes: u64,
        keep: usize,
        thread: &str,
    ) -> io::Result<Self> {
        let dir = data_dir.join("log");
        fs::create_dir_all(&dir)?;
        let mut file = Rotating {
            path: dir.join(file_name),
            max_bytes,
            keep,
            out: None,
            size: 0,
        };
        file.reopen()?;
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(thread.to_owned())
            .spawn(move || file.run(&receiver))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Hands `value` to the writer as one line; returns at once (the channel is unbounded, so a
    /// burst never blocks the caller). A line that cannot be written is logged, not raised.
    pub fn write<T: serde::Serialize>(&self, value: &T) {
        let mut text = match serde_json::to_string(value) {
            Ok(text) => text,
            Err(e) => {
                warn!(error = %e, "log record not serialisable");
                return;
            }
        };
        text.push('\n');
        self.send(Command::Line(text));
    }

    /// Waits, without blocking the runtime, until every line written before is in the file.
    pub async fn flush(&self) {
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
            warn!("JSON-lines log writer has stopped; record dropped");
        }
        sent
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("JSON-lines log writer panicked");
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
            warn!(path = %self.path.display(), error = %e, "cannot rotate a JSON-lines log");
        }
        if self.out.is_none()
            && let Err(e) = self.reopen()
        {
            warn!(path = %self.path.display(), error = %e, "cannot open a JSON-lines log; record dropped");
            return;
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        match out.write_all(line.as_bytes()) {
            Ok(()) => self.size += len,
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot write a JSON-lines log; record dropped");
                self.out = None;
            }
        }
    }

    fn flush(&mut self) {
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            warn!(path = %self.path.display(), error = %e, "cannot flush a JSON-lines log");
            self.out = None;
        }
    }

    /// `NAME` becomes `NAME.1`, `.1` becomes `.2` and so on; what would become
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
