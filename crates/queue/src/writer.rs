//! The group-commit writer: one thread owns the active segment. Callers send records over a
//! channel and wait on a oneshot; the writer takes every request that is waiting (a batch),
//! writes them with one vectored write, syncs once, updates the index, and only then answers
//! them all. So the cost of a sync is shared by every session that arrived while the previous
//! one ran, and an answer of success always follows the sync of its record. A failed write or
//! sync fails every request of its batch (see `active` for what happens to the segment).
//!
//! After answering, the writer does its housekeeping before it takes the next batch: retiring
//! spent segments (kept as spares or deleted), a new segment when the active one is full (in a
//! spare, see `spare`), compaction (`relocate`), the checkpoint. It does the same once when it
//! starts, before the first request: that is what compacts the previous runs' segments.

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;

use postern_mailmsg::QueueId;
use tokio::sync::{mpsc, oneshot};

use crate::active::ActiveSegment;
use crate::envelope::Envelope;
use crate::error::QueueError;
use crate::payload::{self, Effect};
use crate::record::{Frame, MAX_PAYLOAD};
use crate::relocate;
use crate::segment;
use crate::spare;
use crate::spool::Shared;
use crate::state::QueueState;
use crate::stats::Counters;

/// The answer a caller waits for.
pub(crate) type Reply = oneshot::Sender<Result<(), QueueError>>;

/// What callers ask of the writer.
#[derive(Debug)]
pub(crate) enum Request {
    /// Append a record; its effect goes into the index once it is synced.
    Append(Box<Append>),
    /// Write an Update with the latest envelope and a new state. Built by the writer, at the
    /// moment it writes, so it cannot put back an envelope older than one written meanwhile.
    SetState {
        id: QueueId,
        state: QueueState,
        reply: Reply,
    },
    /// Answer once everything sent before is written and the housekeeping after it (rotation,
    /// deletion, relocation) is done.
    Settle(oneshot::Sender<()>),
    /// Finish what came before, then stop.
    Close(oneshot::Sender<()>),
}

/// What the writer took from the channel in one go.
#[derive(Debug, Default)]
struct Batch {
    appends: Vec<Append>,
    settles: Vec<oneshot::Sender<()>>,
    close: Option<oneshot::Sender<()>>,
}

fn answer_all(waiters: Vec<oneshot::Sender<()>>) {
    for waiter in waiters {
        let _ = waiter.send(());
    }
}

/// A record and what to do once it is on disk.
#[derive(Debug)]
pub(crate) struct Append {
    pub(crate) frame: Frame,
    pub(crate) effect: Effect,
    /// `None` for the writer's own records (relocations).
    pub(crate) reply: Option<Reply>,
}

/// The writer thread's state.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    max_batch_bytes: u64,
    /// When the oldest segment holding live messages is rewritten forward.
    policy: relocate::Policy,
    requests: mpsc::Receiver<Request>,
    segment: ActiveSegment,
    /// A request taken from the channel that did not fit the last batch.
    carry: Option<Request>,
    /// Relocation failed for this segment; not tried again until the oldest pinned one changes.
    relocation_failed: Option<u64>,
    /// The spare preparer's thread: stopped and joined when the writer stops, so nothing writes
    /// in the spool once `close` returns.
    preparer: Option<JoinHandle<()>>,
}

impl Writer {
    /// A writer writing to `file`, the freshly begun segment `number`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        options: &crate::SpoolOptions,
        requests: mpsc::Receiver<Request>,
        (number, file): (u64, File),
        preparer: Option<JoinHandle<()>>,
    ) -> Self {
        Self {
            shared,
            // The batch offset in a record header is 32 bits.
            max_batch_bytes: options.max_batch_bytes.clamp(1, MAX_PAYLOAD),
            policy: relocate::Policy::new(options),
            requests,
            segment: ActiveSegment::new(number, file, options.segment_size),
            carry: None,
            relocation_failed: None,
            preparer,
        }
    }

    /// Has the live messages of segments up to `number` rewritten forward, whatever they take:
    /// those segments were found damaged.
    pub(crate) fn compacting_through(mut self, number: u64) -> Self {
        self.policy.damaged_through = number;
        self
    }

    /// Serves requests until `Close` or until every sender is gone.
    pub(crate) fn run(mut self) {
        // The previous runs' segments: compacted now rather than after the first request.
        self.compact();
        while let Some(batch) = self.next_batch() {
            self.commit(batch.appends);
            // Measured at most once a second: refusing or accepting mail again needs no session
            // to ask, and is logged once.
            self.shared.space.accepting();
            // Spent segments first: a rotation then takes a recycled spare, and the preparer
            // is not woken to zero-fill a new one for nothing.
            spare::collect_garbage(&self.shared);
            self.segment.rotate_if_full(&self.shared);
            if let Some(close) = batch.close {
                self.refuse_the_rest();
                self.finish();
                answer_all(batch.settles);
                let _ = close.send(());
                return;
            }
            self.compact();
            self.shared.checkpoint_if_due();
            answer_all(batch.settles);
        }
        // Every spool handle is gone without a close.
        self.finish();
    }

    /// Relocates batch after batch while there is something to compact and no request waits.
    fn compact(&mut self) {
        while self.relocate() && self.requests.is_empty() {}
    }

    /// Leaves the spool directory as the next start expects it: no failed batch at the end of
    /// the log, and no spare being written.
    fn finish(&mut self) {
        self.segment.cut_failed_batch(&self.shared.segments_dir);
        if let Err(error) = self.shared.save_checkpoint(true) {
            tracing::warn!(%error, "cannot write the spool's checkpoint at close");
        }
        self.shared.spares.stop();
        if let Some(preparer) = self.preparer.take()
            && preparer.join().is_err()
        {
            tracing::error!("the spare preparer panicked");
        }
    }

    /// Waits for a request, then takes every other one already waiting, up to the batch size.
    fn next_batch(&mut self) -> Option<Batch> {
        let mut next = match self.carry.take() {
            Some(request) => Some(request),
            None => Some(self.requests.blocking_recv()?),
        };
        let mut batch = Batch::default();
        let mut bytes = 0u64;
        while let Some(request) = next.take() {
            let append = match request {
                Request::Close(reply) => {
                    batch.close = Some(reply);
                    break;
                }
                Request::Settle(reply) => {
                    batch.settles.push(reply);
                    next = self.requests.try_recv().ok();
                    continue;
                }
                Request::Append(append) if is_orphan(&self.shared, &batch.appends, &append) => {
                    // An Update raced the message's Done: writing it would name a message that
                    // is gone, which recovery must be able to take for a lost Message record.
                    if let Some(reply) = append.reply {
                        let _ = reply.send(Err(QueueError::UnknownId(append.effect.id())));
                    }
                    next = self.requests.try_recv().ok();
                    continue;
                }
                Request::Append(append) => *append,
                Request::SetState { id, state, reply } => {
                    match state_update(&self.shared, &batch.appends, id, state) {
                        Ok((frame, effect)) => Append {
                            frame,
                            effect,
                            reply: Some(reply),
                        },
                        Err(error) => {
                            let _ = reply.send(Err(error));
                            next = self.requests.try_recv().ok();
                            continue;
                        }
                    }
                }
            };
            let len = append.frame.len();
            if !batch.appends.is_empty() && bytes + len > self.max_batch_bytes {
                self.carry = Some(Request::Append(Box::new(append)));
                break;
            }
            bytes += len;
            batch.appends.push(append);
            next = self.requests.try_recv().ok();
        }
        Some(batch)
    }

    /// Writes and syncs a batch, applies it to the index, and answers its callers. Returns
    /// whether the batch is on disk.
    fn commit(&mut self, batch: Vec<Append>) -> bool {
        if batch.is_empty() {
            return true;
        }
        let shared = Arc::clone(&self.shared);
        let counters = &shared.counters;
        match self.segment.append(&shared, &batch) {
            Ok((locations, bytes)) => {
                Counters::add(&counters.batches, 1);
                Counters::add(&counters.records, batch.len() as u64);
                Counters::add(&counters.bytes, bytes);
                let mut replies = Vec::with_capacity(batch.len());
                {
                    let mut index = shared.index();
                    for (append, at) in batch.into_iter().zip(locations) {
                        index.apply(append.effect, at);
                        replies.extend(append.reply);
                    }
                }
                for reply in replies {
                    // A caller that stopped waiting still has its record on disk; nothing to do.
                    let _ = reply.send(Ok(()));
                }
                true
            }
            Err(error) => {
                Counters::add(&counters.failed_batches, 1);
                tracing::error!(%error, records = batch.len(), "spool batch failed; refusing every request in it");
                for append in batch {
                    if let Some(reply) = append.reply {
                        let _ = reply.send(Err(error.duplicate()));
                    }
                }
                false
            }
        }
    }

    /// Rewrites the live messages that hold the oldest segment on disk into the active one, one
    /// batch at a time between batches of callers, when the policy says that segment is worth
    /// freeing. Returns whether it wrote anything.
    fn relocate(&mut self) -> bool {
        let Some(active) = self.segment.number() else {
            return false;
        };
        let Some((oldest, pin)) = self.shared.index().oldest_pin() else {
            return false;
        };
        if !self.policy.wants(active, oldest, pin) || self.relocation_failed == Some(oldest) {
            return false;
        }
        match relocate::batch(&self.shared, oldest, self.max_batch_bytes) {
            Ok(batch) => {
                let n = batch.len() as u64;
                let written = self.commit(batch);
                if written {
                    Counters::add(&self.shared.counters.relocated, n);
                    tracing::info!(
                        segment = oldest,
                        messages = n,
                        "rewrote live messages out of an old segment"
                    );
                }
                spare::collect_garbage(&self.shared);
                self.segment.rotate_if_full(&self.shared);
                written
            }
            Err(error) => {
                tracing::error!(%error, segment = oldest, "cannot rewrite live messages out of an old segment");
                self.relocation_failed = Some(oldest);
                false
            }
        }
    }

    /// After `Close`: refuse whatever is still waiting, then let the channel go.
    fn refuse_the_rest(&mut self) {
        self.requests.close();
        let mut rest: Vec<Request> = self.carry.take().into_iter().collect();
        while let Ok(request) = self.requests.try_recv() {
            rest.push(request);
        }
        for request in rest {
            match request {
                Request::Append(append) => {
                    if let Some(reply) = append.reply {
                        let _ = reply.send(Err(QueueError::Closed));
                    }
                }
                Request::SetState { reply, .. } => {
                    let _ = reply.send(Err(QueueError::Closed));
                }
                Request::Close(reply) | Request::Settle(reply) => {
                    let _ = reply.send(());
                }
            }
        }
    }
}

/// Whether `append` is an Update for a message that is not live, counting records earlier in
/// the same batch (not yet in the index).
fn is_orphan(shared: &Shared, batch: &[Append], append: &Append) -> bool {
    let Effect::Update { id, .. } = append.effect else {
        return false;
    };
    match batch.iter().rev().find(|a| a.effect.id() == id) {
        Some(earlier) => matches!(earlier.effect, Effect::Done { .. }),
        None => shared.index().get(id).is_none(),
    }
}

/// The Update record of a `SetState` request: the envelope is the latest one, counting records
/// earlier in the same batch (not yet in the index).
fn state_update(
    shared: &Shared,
    batch: &[Append],
    id: QueueId,
    state: QueueState,
) -> Result<(Frame, Effect), QueueError> {
    let earlier = batch.iter().rev().find(|a| a.effect.id() == id);
    let envelope: Envelope = match earlier.map(|a| &a.effect) {
        Some(Effect::Message { envelope, .. } | Effect::Update { envelope, .. }) => {
            envelope.clone()
        }
        Some(Effect::Done { .. }) => return Err(QueueError::UnknownId(id)),
        None => {
            let at = shared
                .index()
                .get(id)
                .map(|entry| entry.envelope_at)
                .ok_or(QueueError::UnknownId(id))?;
            // Only this thread changes the index or retires segments, so the record is there.
            segment::read_envelope(&shared.segments_dir, id, at)?
        }
    };
    payload::update(id, envelope, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::options::SpoolOptions;
    use crate::spare::Spares;
    use bytes::Bytes;
    use postern_mailmsg::Recipient;

    struct Rig {
        _dir: tempfile::TempDir,
        shared: Arc<Shared>,
        requests: mpsc::Sender<Request>,
        writer: Option<Writer>,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let segments_dir = segment::prepare(dir.path()).unwrap();
        let lock = segment::lock(dir.path()).unwrap();
        let file = segment::create(&segments_dir, 1).unwrap();
        let mut index = Index::default();
        index.set_active(1);
        // No spares: these tests are about batching, not files.
        let (spares, _) = Spares::open(dir.path(), 1024, 0).unwrap();
        let space = crate::space::DiskSpace::new(dir.path(), crate::space::DiskReserve::octets(0));
        let shared = Arc::new(Shared::new(segments_dir, index, lock, spares, space));
        let (requests, receiver) = mpsc::channel(1024);
        let options = SpoolOptions::default();
        let writer = Writer::new(Arc::clone(&shared), &options, receiver, (1, file), None);
        Rig {
            _dir: dir,
            shared,
            requests,
            writer: Some(writer),
        }
    }

    fn store(rig: &Rig, id: u128) -> oneshot::Receiver<Result<(), QueueError>> {
        let envelope = Envelope {
            recipients: vec![Recipient::new(format!("r{id}@example.com"))],
            ..Envelope::default()
        };
        let content = Bytes::from(format!("Subject: {id}\r\n\r\nbody\r\n"));
        let (frame, effect) = payload::message(
            QueueId::from_u128(id),
            envelope,
            QueueState::Queued,
            &content,
        )
        .unwrap();
        let (reply, answer) = oneshot::channel();
        let append = Append {
            frame,
            effect,
            reply: Some(reply),
        };
        rig.requests
            .try_send(Request::Append(Box::new(append)))
            .unwrap();
        answer
    }

    #[test]
    fn requests_waiting_together_share_one_write_and_one_sync() {
        let mut rig = rig();
        let answers: Vec<_> = (1..=50).map(|id| store(&rig, id)).collect();
        let (close, closed) = oneshot::channel();
        rig.requests.try_send(Request::Close(close)).unwrap();
        let writer = rig.writer.take().unwrap();
        std::thread::spawn(move || writer.run()).join().unwrap();
        for answer in answers {
            answer.blocking_recv().unwrap().unwrap();
        }
        closed.blocking_recv().unwrap();
        let stats = rig.shared.stats();
        assert_eq!((stats.records, stats.batches, stats.syncs), (50, 1, 1));
        assert_eq!(stats.live, 50);
    }

    #[test]
    fn a_set_state_sees_an_update_earlier_in_its_batch() {
        let mut rig = rig();
        let id = QueueId::from_u128(1);
        let stored = store(&rig, 1);
        let envelope = Envelope {
            recipients: vec![Recipient::new("changed@example.com")],
            ..Envelope::default()
        };
        let (frame, effect) = payload::update(id, envelope.clone(), QueueState::Queued).unwrap();
        let (reply, updated) = oneshot::channel();
        let append = Append {
            frame,
            effect,
            reply: Some(reply),
        };
        rig.requests
            .try_send(Request::Append(Box::new(append)))
            .unwrap();
        let (reply, held) = oneshot::channel();
        let state = QueueState::Held;
        rig.requests
            .try_send(Request::SetState { id, state, reply })
            .unwrap();
        let (close, _closed) = oneshot::channel();
        rig.requests.try_send(Request::Close(close)).unwrap();
        let writer = rig.writer.take().unwrap();
        std::thread::spawn(move || writer.run()).join().unwrap();
        for answer in [stored, updated, held] {
            answer.blocking_recv().unwrap().unwrap();
        }
        let entry = rig.shared.index().get(id).unwrap().clone();
        assert_eq!(entry.state, QueueState::Held);
        let latest = segment::read_envelope(&rig.shared.segments_dir, id, entry.envelope_at);
        assert_eq!(latest.unwrap(), envelope);
        assert_eq!(rig.shared.stats().batches, 1);
    }

    #[test]
    fn a_set_state_for_an_unknown_id_is_refused_without_a_record() {
        let mut rig = rig();
        let (reply, answer) = oneshot::channel();
        let id = QueueId::from_u128(9);
        let state = QueueState::Held;
        rig.requests
            .try_send(Request::SetState { id, state, reply })
            .unwrap();
        let (close, _closed) = oneshot::channel();
        rig.requests.try_send(Request::Close(close)).unwrap();
        let writer = rig.writer.take().unwrap();
        std::thread::spawn(move || writer.run()).join().unwrap();
        let err = answer.blocking_recv().unwrap().unwrap_err();
        assert!(matches!(err, QueueError::UnknownId(i) if i == id));
        assert_eq!(rig.shared.stats().records, 0);
    }
}
