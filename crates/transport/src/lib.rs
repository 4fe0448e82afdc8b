//! Postern's transport: what happens to a message after the queue made it durable.
//!
//! # Layout
//! - `pipeline`: one pass — submission, pre-categorize, categorize (per recipient),
//!   post-categorize, route (per recipient), store (per local recipient).
//! - `defaults`: the default sinks of those events (categorizer, router, Maildir store).
//! - `finish`: telling the queue, retries with backoff, fates, the `track` event.
//! - `tracklog`: the `track` event's default sink's writer: JSON lines in `DATA/log/track.jsonl`,
//!   rotated by size, written by a thread of its own.
//!
//! # Design
//! The message only moves forward: each stage hands the MailMsg to the next, and the queue is
//! the single source of truth. Changes that bound sinks make are written to the queue before
//! delivery starts; the default sinks' decisions are recomputed on a later pass instead (they
//! depend only on the configuration and the message). A pass runs on its own task, bounded by a
//! semaphore, so a slow delivery never holds up the intake.

#![warn(missing_docs)]

mod defaults;
mod finish;
mod pipeline;
#[allow(dead_code)] // wired into the track event by the delivery integration
mod tracklog;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_config::Config;
use postern_delivery::Maildir;
use postern_mailmsg::{MailMsg, QueueId};
use postern_queue::{QueueState, QueuedMessage, Spool};
use postern_sink_host::Host;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info};

pub use pipeline::Pass;

/// How many messages go through the pipeline at once.
const CONCURRENCY: usize = 64;

/// The transport.
pub struct Transport {
    config: Arc<Config>,
    host: Arc<Host>,
    spool: Spool,
    maildir: Arc<Maildir>,
    data_dir: PathBuf,
}

impl Transport {
    /// A transport delivering local mail below `DATA/maildir`.
    pub fn new(config: Arc<Config>, host: Arc<Host>, spool: Spool) -> Arc<Self> {
        let data_dir = config.data_dir.clone();
        let maildir = Arc::new(Maildir::new(data_dir.join("maildir"), &config.hostname));
        Arc::new(Self {
            config,
            host,
            spool,
            maildir,
            data_dir,
        })
    }

    /// Runs until the inbox closes or shutdown: resumes what recovery found, then takes every
    /// message sessions accept.
    pub async fn run(
        self: Arc<Self>,
        mut inbox: mpsc::UnboundedReceiver<MailMsg>,
        recovered: Vec<QueuedMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        for queued in recovered {
            match queued.state {
                QueueState::Held => {}
                QueueState::Queued => self.clone().schedule(queued.id, 0, permits.clone()),
                QueueState::Deferred { until_ms } => {
                    self.clone().schedule(queued.id, until_ms, permits.clone())
                }
            }
        }
        loop {
            let msg = tokio::select! {
                m = inbox.recv() => match m { Some(m) => m, None => break },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            // A message whose pass can start now keeps its content in memory; past the
            // concurrency limit only its id waits, and the content is read back from the queue
            // when its turn comes, so a backlog costs no message content in memory.
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                if let Some(id) = msg.id {
                    self.clone().schedule(id, 0, permits.clone());
                }
                continue;
            };
            let this = self.clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let id = msg.id;
                let pass = this.pass(msg).await;
                drop(permit);
                if let (Pass::Deferred(until), Some(id)) = (pass, id) {
                    this.schedule(id, until, permits);
                }
            });
        }
        // Passes in flight finish (within the grace period) before the queue is closed, so
        // what they delivered is marked done and not delivered again at the next start.
        let grace = self.config.limits.shutdown_grace;
        let _ = tokio::time::timeout(grace, permits.acquire_many(CONCURRENCY as u32)).await;
    }

    /// Runs a queued message again at `at_ms` (now if in the past), loading it from the queue,
    /// and keeps rescheduling it while it is deferred.
    fn schedule(self: Arc<Self>, id: QueueId, at_ms: u64, permits: Arc<Semaphore>) {
        tokio::spawn(async move {
            let wait = at_ms.saturating_sub(postern_mailmsg::now_ms());
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            let Ok(permit) = permits.acquire().await else {
                return;
            };
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
                self.schedule(id, until, permits);
            }
        });
    }
}
