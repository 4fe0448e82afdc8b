//! Postern's transport: what happens to a message after the queue made it durable.
//!
//! # Layout
//! - `pipeline`: one pass — submission, pre-categorize, categorize (per recipient),
//!   post-categorize, route (per recipient), store (per local recipient), remote delivery.
//! - `defaults`: the default sinks of those events (categorizer, router, Maildir store).
//! - `expand`: alias expansion and sub-addressing for the default categorizer.
//! - `remote`: remote recipients grouped by next hop, handed to the outbound SMTP client.
//! - `pickup`: the pickup folder, `DATA/pickup/`: files dropped there submitted like SMTP mail.
//! - `finish`: telling the queue, retries and expiry, fates, the `track` event.
//! - `retry`: the retry schedule, expiry and the delay warning, as pure functions.
//! - `scheduler`: one ordered index of waiting messages (ids and due times only).
//! - `control`: an administrator's retry, hold, release, bounce and delete of a live message.
//! - `bounce`: the DSNs a pass owes (failure, delay, success), queued like any message.
//! - `track`: the `track` event on every change of state; `tracklog` its default sink's file.
//!
//! # Design
//! The message only moves forward: each stage hands the MailMsg to the next, and the queue is
//! the single source of truth. Changes that bound sinks make are written to the queue before
//! delivery starts; the default sinks' decisions are recomputed on a later pass instead (they
//! depend only on the configuration and the message). A pass runs on its own task, bounded by a
//! semaphore, so a slow delivery never holds up the intake. A deferred message costs an entry
//! in the scheduler's index, not a task and not its content: the content is read back from the
//! queue when the message is due.

#![warn(missing_docs)]

mod bounce;
mod control;
mod defaults;
mod expand;
mod finish;
mod pickup;
mod pipeline;
mod remote;
mod retry;
mod scheduler;
mod track;
mod tracklog;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use postern_config::Config;
use postern_delivery::{DnsError, Maildir, Outbound};
use postern_mailmsg::{MailMsg, QueueId, QueueIdGenerator};
use postern_metrics::Metrics;
use postern_queue::{QueueState, QueuedMessage, Spool};
use postern_sink_host::Host;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info};

pub use control::ControlError;
pub use pickup::{PICKUP_POLL, Pickup};
pub use pipeline::Pass;

/// How many messages go through the pipeline at once.
const CONCURRENCY: usize = 64;

/// How many accepted messages may wait between the sessions and the transport before a
/// session waits for room (the channel from sessions to the transport is bounded).
pub const INBOX_CAPACITY: usize = 1024;

/// The track log is rotated past this size (`track.jsonl` becomes `track.jsonl.1`).
const TRACK_LOG_MAX_BYTES: u64 = 64 << 20;
/// Rotated track logs kept.
const TRACK_LOG_KEEP: usize = 5;

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The resolver configuration could not be read.
    #[error("DNS resolver: {0}")]
    Dns(#[from] DnsError),
    /// The track log could not be opened.
    #[error("opening the track log: {0}")]
    TrackLog(#[source] std::io::Error),
}

/// The transport.
pub struct Transport {
    config: Arc<Config>,
    host: Arc<Host>,
    spool: Spool,
    maildir: Arc<Maildir>,
    outbound: Arc<Outbound>,
    ids: Arc<QueueIdGenerator>,
    data_dir: PathBuf,
    tracklog: tracklog::TrackLog,
    permits: Arc<Semaphore>,
    schedule_tx: scheduler::ScheduleTx,
    /// Taken by [`Transport::run`].
    schedule_rx: Mutex<Option<mpsc::UnboundedReceiver<(u64, QueueId)>>>,
    /// Where deliveries, deferrals and bounces are counted; set once at start.
    metrics: OnceLock<Arc<Metrics>>,
}

impl Transport {
    /// A transport delivering local mail below `DATA/maildir` and remote mail through the
    /// outbound SMTP client; `ids` names the messages it makes itself (DSNs).
    pub fn new(
        config: Arc<Config>,
        host: Arc<Host>,
        spool: Spool,
        ids: Arc<QueueIdGenerator>,
    ) -> Result<Arc<Self>, StartError> {
        let data_dir = config.data_dir.clone();
        let tracklog = tracklog::TrackLog::open(&data_dir, TRACK_LOG_MAX_BYTES, TRACK_LOG_KEEP)
            .map_err(StartError::TrackLog)?;
        let maildir = Arc::new(Maildir::new(data_dir.join("maildir"), &config.hostname));
        let outbound = Arc::new(Outbound::new(config.clone(), host.clone())?);
        let (schedule_tx, schedule_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            config,
            host,
            spool,
            maildir,
            outbound,
            ids,
            data_dir,
            tracklog,
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            schedule_tx,
            schedule_rx: Mutex::new(Some(schedule_rx)),
            metrics: OnceLock::new(),
        }))
    }

    /// Counts deliveries, deferrals, bounces and attempt times into `metrics` from now on
    /// (the first call wins: the server has one set of metrics).
    pub fn count_into(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The metrics, once set.
    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.metrics.get().map(|m| m.as_ref())
    }

    /// Runs until the inbox closes or shutdown: resumes what recovery found, then takes every
    /// message sessions accept.
    pub async fn run(
        self: Arc<Self>,
        mut inbox: mpsc::Receiver<MailMsg>,
        recovered: Vec<QueuedMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Some(schedule_rx) = self
            .schedule_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            error!("the transport runs once");
            return;
        };
        for queued in recovered {
            match queued.state {
                QueueState::Held => {}
                QueueState::Queued => self.schedule(queued.id, 0),
                QueueState::Deferred { until_ms } => self.schedule(queued.id, until_ms),
            }
        }
        let this = self.clone();
        let scheduler = tokio::spawn(scheduler::run(
            schedule_rx,
            shutdown.clone(),
            postern_mailmsg::now_ms,
            move |id| this.clone().start_queued(id),
        ));
        loop {
            let msg = tokio::select! {
                m = inbox.recv() => match m { Some(m) => m, None => break },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            // A message whose pass can start now keeps its content in memory; past the
            // concurrency limit only its id waits, and the content is read back from the queue
            // when its turn comes, so a backlog costs no message content in memory.
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                if let Some(id) = msg.id {
                    self.schedule(id, 0);
                }
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let id = msg.id;
                let pass = this.pass(msg).await;
                drop(permit);
                if let (Pass::Deferred(until), Some(id)) = (pass, id) {
                    this.schedule(id, until);
                }
            });
        }
        let _ = scheduler.await;
        // Passes in flight finish (within the grace period) before the queue is closed, so
        // what they delivered is marked done and not delivered again at the next start.
        let grace = self.config.limits.shutdown_grace;
        let _ = tokio::time::timeout(grace, self.permits.acquire_many(CONCURRENCY as u32)).await;
        // What the passes tracked is in the file before the process exits.
        self.tracklog.flush().await;
    }

    /// Runs a queued message again at `at_ms` (now if in the past).
    pub(crate) fn schedule(&self, id: QueueId, at_ms: u64) {
        // Fails only once the scheduler has stopped (shutdown): the message stays in the queue
        // and recovery schedules it at the next start.
        let _ = self.schedule_tx.send((at_ms, id));
    }

    /// Waits for a free pass slot, then runs the queued message `id` on its own task.
    async fn start_queued(self: Arc<Self>, id: QueueId) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        // Held by an administrator since it was scheduled: it waits for a release.
        if self.spool.get(id).map(|m| m.state) == Some(QueueState::Held) {
            return;
        }
        tokio::spawn(async move {
            let msg = match self.spool.load(id).await {
                Ok(msg) => msg,
                Err(e) => {
                    // Gone (an admin deleted it) or unreadable: either way not ours to retry.
                    error!(queue_id = %id, "cannot load a queued message: {e}");
                    return;
                }
            };
            info!(queue_id = %id, "running queued message");
            let pass = self.pass(msg).await;
            drop(permit);
            if let Pass::Deferred(until) = pass {
                self.schedule(id, until);
            }
        });
    }
}
