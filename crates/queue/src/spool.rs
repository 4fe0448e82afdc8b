//! The spool: the API the SMTP session, the transport and the admin tools call.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use postern_mailmsg::{Content, Fate, MailMsg, QueueId};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::Saver;
use crate::envelope::Envelope;
use crate::error::QueueError;
use crate::index::Index;
use crate::open;
use crate::options::SpoolOptions;
use crate::payload;
use crate::record::Frame;
use crate::recover::Recovered;
use crate::segment;
use crate::space::DiskSpace;
use crate::spare::Spares;
use crate::state::{QueueState, QueuedMessage};
use crate::stats::{Counters, SpoolStats};
use crate::writer::{Append, Request};

/// What the callers and the writer thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) segments_dir: PathBuf,
    /// Changed only by the writer thread, after a batch is synced, in log order.
    index: Mutex<Index>,
    pub(crate) counters: Counters,
    /// The pre-written files the writer begins segments in, and the preparer's work.
    pub(crate) spares: Spares,
    /// Free space against the reserve: whether new mail is accepted.
    pub(crate) space: DiskSpace,
    /// When the checkpoint was last brought up to date.
    checkpoints: Saver,
    /// Held open for the life of the spool: the lock is released when it closes (after the
    /// writer and the preparer, which hold this struct, have stopped).
    _lock: File,
    /// Tests make this many of the next syncs fail.
    #[cfg(test)]
    pub(crate) failing_syncs: std::sync::atomic::AtomicU32,
}

impl Shared {
    pub(crate) fn new(
        segments_dir: PathBuf,
        index: Index,
        lock: File,
        spares: Spares,
        space: DiskSpace,
    ) -> Self {
        let spool_dir = segments_dir.parent().unwrap_or(&segments_dir).to_path_buf();
        Self {
            checkpoints: Saver::new(&spool_dir),
            segments_dir,
            index: Mutex::new(index),
            counters: Counters::default(),
            spares,
            space,
            _lock: lock,
            #[cfg(test)]
            failing_syncs: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The index. A panic while it was held cannot leave it half-changed in a way that matters
    /// more than stopping the queue would, so a poisoned lock is taken over.
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the checkpoint now (see `checkpoint`); `durable` syncs it.
    pub(crate) fn save_checkpoint(&self, durable: bool) -> Result<(), QueueError> {
        let records = self
            .counters
            .records
            .load(std::sync::atomic::Ordering::Relaxed);
        self.checkpoints.save(&self.index, records, durable)
    }

    /// Brings the checkpoint up to date when records were written and it is a second old.
    pub(crate) fn checkpoint_if_due(&self) {
        let records = self
            .counters
            .records
            .load(std::sync::atomic::Ordering::Relaxed);
        self.checkpoints.save_if_due(&self.index, records);
    }

    /// The counters and the index's figures.
    pub(crate) fn stats(&self) -> SpoolStats {
        let (live, segments) = {
            let index = self.index();
            (index.live(), index.segment_count())
        };
        self.counters.snapshot(live, segments)
    }

    /// `fdatasync` of a segment: the records (and the file's new length, when the batch grew
    /// the file) reach the disk.
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        Counters::add(&self.counters.syncs, 1);
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let failing = &self.failing_syncs;
            if failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(io::Error::other("injected sync failure"));
            }
        }
        file.sync_data()
    }
}

/// The durable spool. Cheap to clone; every clone talks to the same writer.
///
/// Call [`Spool::close`] to stop it. Dropping every handle also stops the writer, but nothing
/// waits for it, so the lock may still be held for a moment: open the directory again only
/// after `close`.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    /// Taken by `close`, which waits for the thread to end.
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`: recovers the log, cuts off a torn tail, reports
    /// and keeps damage (it never refuses to start over it: see [`Recovered::damage`]), retires
    /// spent segments, begins a fresh segment in a pre-written file (zero-filling one first when
    /// there is no spare and the disk reserve allows, as on the first start) and starts the
    /// writer (which compacts the earlier runs' segments first) and the spare preparer. Run it
    /// before the listeners open, and resume the messages in [`Recovered::live`].
    pub async fn open(dir: &Path, options: SpoolOptions) -> Result<(Spool, Recovered), QueueError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || open::open(&dir, &options))
            .await
            .map_err(|e| QueueError::Task(e.to_string()))?
    }

    /// The handle of a started spool.
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: mpsc::Sender<Request>,
        writer: JoinHandle<()>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                requests,
                writer: Mutex::new(Some(writer)),
            }),
        }
    }

    /// Stores a message that has just been received: when this returns `Ok`, its content,
    /// envelope and properties are on disk and the 250 may be sent. `msg.id` must be set (from
    /// a `QueueIdGenerator`). The state is `Held` when the fate is `Hold`, `Queued` otherwise.
    /// Storing an id that is already queued rewrites it whole (new content, for instance).
    pub async fn store(&self, msg: &MailMsg) -> Result<(), QueueError> {
        let id = msg.id.ok_or(QueueError::NoId)?;
        let state = if msg.fate == Fate::Hold {
            QueueState::Held
        } else {
            QueueState::Queued
        };
        let (frame, effect) = payload::message(id, Envelope::of(msg), state, msg.content.bytes())?;
        self.append(frame, effect).await
    }

    /// Records the envelope and state of a queued message after a transport stage; durable on
    /// return. When the content differs from the stored content a whole Message record is
    /// written instead of an Update. Empty content means "not supplied": the stored content
    /// stays (a message's content never legitimately becomes empty once received).
    pub async fn update(&self, msg: &MailMsg, state: QueueState) -> Result<(), QueueError> {
        let id = msg.id.ok_or(QueueError::NoId)?;
        let (stored_len, stored_crc) = {
            let index = self.inner.shared.index();
            let entry = index.get(id).ok_or(QueueError::UnknownId(id))?;
            (entry.content_len, entry.content_crc)
        };
        let content = msg.content.bytes();
        let changed = !content.is_empty()
            && (content.len() as u64 != stored_len
                || payload::content_crc(content).1 != stored_crc);
        let envelope = Envelope::of(msg);
        let (frame, effect) = if changed {
            payload::message(id, envelope, state, content)?
        } else {
            payload::update(id, envelope, state)?
        };
        self.append(frame, effect).await
    }

    /// Changes only the state of a queued message (hold, release, retry now), keeping the
    /// latest envelope as the writer sees it; durable on return.
    pub async fn set_state(&self, id: QueueId, state: QueueState) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::SetState { id, state, reply }, answer)
            .await
    }

    /// Takes a message out of the queue: every recipient is final (or an administrator deleted
    /// it). Durable on return; the id is no longer listed.
    pub async fn complete(&self, id: QueueId) -> Result<(), QueueError> {
        if self.inner.shared.index().get(id).is_none() {
            return Err(QueueError::UnknownId(id));
        }
        let (frame, effect) = payload::done(id)?;
        self.append(frame, effect).await
    }

    /// Reads a queued message back: its content from the latest Message record on disk, its
    /// envelope from the latest record carrying one (that Message record or a later Update).
    pub async fn load(&self, id: QueueId) -> Result<MailMsg, QueueError> {
        // The writer may rewrite a message into a newer segment and delete the old one between
        // looking the id up and reading; the second lookup then finds the new place.
        let mut attempts = 0;
        loop {
            let entry = self
                .inner
                .shared
                .index()
                .get(id)
                .cloned()
                .ok_or(QueueError::UnknownId(id))?;
            let dir = self.inner.shared.segments_dir.clone();
            let places = (entry.message_at, entry.envelope_at);
            let read = tokio::task::spawn_blocking(move || segment::read_message(&dir, id, &entry))
                .await
                .map_err(|e| QueueError::Task(e.to_string()))?;
            match read {
                Ok((envelope, content)) => return Ok(envelope.into_msg(id, Content::new(content))),
                Err(error) => {
                    attempts += 1;
                    let now = self
                        .inner
                        .shared
                        .index()
                        .get(id)
                        .map(|e| (e.message_at, e.envelope_at));
                    match now {
                        None => return Err(QueueError::UnknownId(id)),
                        Some(now) if now != places && attempts < 3 => {}
                        Some(_) => return Err(error),
                    }
                }
            }
        }
    }

    /// Waits until the writer has finished everything asked of it before, including the
    /// housekeeping it does after answering (beginning a new segment, retiring spent ones,
    /// rewriting old messages forward), and then until the spare preparer is idle. For tests and
    /// administrative tools; a session never needs it, since `store` is durable on return.
    pub async fn settle(&self) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Settle(reply))
            .await
            .map_err(|_| QueueError::Closed)?;
        answer.await.map_err(|_| QueueError::Closed)?;
        let shared = Arc::clone(&self.inner.shared);
        tokio::task::spawn_blocking(move || shared.spares.wait_idle())
            .await
            .map_err(|e| QueueError::Task(e.to_string()))
    }

    /// Whether new mail may be accepted: false while free space on the spool's file system is
    /// below [`SpoolOptions::disk_reserve`]. Cheap enough to ask per transaction (free space is
    /// measured at most once a second). Records are still written below the reserve, so
    /// delivery goes on; an SMTP session answers MAIL with 452 4.3.1 instead of accepting.
    pub fn accepting(&self) -> bool {
        self.inner.shared.space.accepting()
    }

    /// Every live message, oldest id first.
    pub fn list(&self) -> Vec<QueuedMessage> {
        self.inner.shared.index().list()
    }

    /// How many live messages are queued, deferred and held, in that order (what a metrics
    /// scrape reads).
    pub fn count_by_state(&self) -> [usize; 3] {
        self.inner.shared.index().count_by_state()
    }

    /// The summary of one live message.
    pub fn get(&self, id: QueueId) -> Option<QueuedMessage> {
        self.inner.shared.index().summary(id)
    }

    /// The writer's counters, and how many messages and segments there are now.
    pub fn stats(&self) -> SpoolStats {
        self.inner.shared.stats()
    }

    /// Stops the writer after the requests already sent, and waits for it. Every acknowledged
    /// record is already on disk, so there is nothing left to flush. Other clones of this spool
    /// get [`QueueError::Closed`] from then on.
    pub async fn close(self) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .requests
            .send(Request::Close(reply))
            .await
            .is_ok()
        {
            // An error here means the writer is gone already, which is what was asked.
            let _ = answer.await;
        }
        // The writer stops the spare preparer on its way out; should the writer have died
        // instead, the preparer must not go on writing in `spare/` after the spool is closed.
        self.inner.shared.spares.stop();
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| QueueError::Task(e.to_string()))?
                .map_err(|_| QueueError::Task("the spool writer panicked".to_owned()))?;
        }
        Ok(())
    }

    async fn append(&self, frame: Frame, effect: payload::Effect) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        let append = Append {
            frame,
            effect,
            reply: Some(reply),
        };
        self.send(Request::Append(Box::new(append)), answer).await
    }

    async fn send(
        &self,
        request: Request,
        answer: oneshot::Receiver<Result<(), QueueError>>,
    ) -> Result<(), QueueError> {
        self.inner
            .requests
            .send(request)
            .await
            .map_err(|_| QueueError::Closed)?;
        // A dropped reply means the writer stopped (closed, or died) before answering.
        answer.await.map_err(|_| QueueError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_mailmsg::{QueueIdGenerator, Recipient};
    use std::sync::atomic::Ordering;

    fn message(id: QueueId) -> MailMsg {
        MailMsg {
            id: Some(id),
            recipients: vec![Recipient::new("r@example.com")],
            content: Content::new(format!("Subject: {id}\r\n\r\nbody\r\n")),
            ..MailMsg::default()
        }
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_batch_and_the_writer_goes_on_in_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let ids = QueueIdGenerator::new(1);
        let (a, b, c) = (ids.next_id(), ids.next_id(), ids.next_id());
        // The test counts batches and watches the first segment's file: compaction, which would
        // move `a` out of it in a batch of its own whenever the writer is idle, stays off.
        let options = SpoolOptions {
            compact: false,
            ..SpoolOptions::default()
        };
        let (spool, _) = Spool::open(dir.path(), options.clone()).await.unwrap();
        spool.store(&message(a)).await.unwrap();
        let first = dir.path().join("segments").join(segment::file_name(1));
        // The segment began pre-written: its file is longer than its log.
        let a_at = spool.inner.shared.index().get(a).unwrap().message_at;
        let good_len = a_at.offset + a_at.len;
        assert!(std::fs::metadata(&first).unwrap().len() > good_len);

        spool.inner.shared.failing_syncs.store(1, Ordering::SeqCst);
        let err = spool.store(&message(b)).await.unwrap_err();
        assert!(
            matches!(&err, QueueError::Io { path, .. } if *path == first),
            "{err}"
        );
        assert!(err.is_temporary());
        assert!(spool.get(b).is_none());

        spool.store(&message(c)).await.unwrap();
        // The failed batch was cut off, with the rest of the file.
        assert_eq!(std::fs::metadata(&first).unwrap().len(), good_len);
        let stats = spool.stats();
        assert_eq!(
            (stats.failed_batches, stats.batches, stats.segments),
            (1, 2, 2)
        );
        spool.close().await.unwrap();

        let (spool, recovered) = Spool::open(dir.path(), options).await.unwrap();
        let live: Vec<_> = recovered.live.iter().map(|m| m.id).collect();
        assert_eq!(live, vec![a, c]);
        spool.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_failures_exactly_the_acknowledged_messages_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let ids = QueueIdGenerator::new(1);
        let (spool, _) = Spool::open(dir.path(), SpoolOptions::default())
            .await
            .unwrap();
        let mut acknowledged = Vec::new();
        for _ in 0..4 {
            // Fail the next sync, whichever batch of this burst it belongs to.
            spool.inner.shared.failing_syncs.store(1, Ordering::SeqCst);
            let mut burst = Vec::new();
            for _ in 0..25 {
                let spool = spool.clone();
                let msg = message(ids.next_id());
                burst.push(tokio::spawn(async move {
                    (msg.id, spool.store(&msg).await.is_ok())
                }));
            }
            for task in burst {
                if let (Some(id), true) = task.await.unwrap() {
                    acknowledged.push(id);
                }
            }
        }
        acknowledged.sort();
        assert!(acknowledged.len() < 100, "some stores failed");
        assert_eq!(spool.stats().failed_batches, 4);
        spool.close().await.unwrap();

        let (spool, recovered) = Spool::open(dir.path(), SpoolOptions::default())
            .await
            .unwrap();
        let live: Vec<_> = recovered.live.iter().map(|m| m.id).collect();
        assert_eq!(live, acknowledged);
        spool.close().await.unwrap();
    }
}
