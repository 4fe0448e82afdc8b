//! What an administrator does to a live message (the admin API and `postern queue`): retry it
//! now, hold it, release it, give up on it with a failure DSN (bounce), or delete it silently.
//! Each is durable in the queue before it returns; a refused action changes nothing.

use std::sync::Arc;

use postern_mailmsg::{Fate, MailMsg, QueueId, RELEASE_REQUEST, RecipientStatus};
use postern_queue::{QueueError, QueueState};
use tracing::{info, warn};

use crate::finish::id_of;

use crate::Transport;

/// The message property set by a release: a `hold` fate set on a later pass (by the binding
/// that held it the first time) is not acted on again.
pub(crate) const RELEASED: &str = "postern.released";

/// The reason a bounced recipient's DSN gives.
const BOUNCED_REASON: &str = "550 5.0.0 Delivery cancelled by the administrator";

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No live message has this id.
    #[error("no message {0} in the queue")]
    UnknownId(QueueId),
    /// The action does not apply to the message's state (release of a message not held).
    #[error("message {id} is {state}: {why}")]
    WrongState {
        /// The message.
        id: QueueId,
        /// Its state.
        state: &'static str,
        /// What the action needs.
        why: &'static str,
    },
    /// The failure DSN could not be queued: the message is kept and tried again later.
    #[error("message {0}: the failure DSN could not be queued; the message is kept")]
    DsnNotQueued(QueueId),
    /// The queue failed.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl Transport {
    fn state_of(&self, id: QueueId) -> Result<QueueState, ControlError> {
        self.spool
            .get(id)
            .map(|m| m.state)
            .ok_or(ControlError::UnknownId(id))
    }

    /// Runs the message now (a deferred one before its time). A held message must be released.
    pub async fn retry_now(self: &Arc<Self>, id: QueueId) -> Result<QueueState, ControlError> {
        let state = self.state_of(id)?;
        if state == QueueState::Held {
            return Err(ControlError::WrongState {
                id,
                state: state.as_str(),
                why: "release it to deliver it",
            });
        }
        self.spool.set_state(id, QueueState::Queued).await?;
        info!(queue_id = %id, "retry asked by the administrator");
        self.schedule(id, 0);
        Ok(QueueState::Queued)
    }

    /// Holds the message: neither delivered nor retried until released, also after a restart.
    pub async fn hold(self: &Arc<Self>, id: QueueId) -> Result<QueueState, ControlError> {
        self.state_of(id)?;
        self.spool.set_state(id, QueueState::Held).await?;
        info!(queue_id = %id, "message held by the administrator");
        Ok(QueueState::Held)
    }

    /// Releases a held message: it is delivered now, and the fate that held it is cleared. A
    /// deferred message (one waiting for a hold-queue window, say) is released by running it
    /// now, as [`Transport::retry_now`] does.
    pub async fn release(&self, id: QueueId) -> Result<QueueState, ControlError> {
        let state = self.state_of(id)?;
        if matches!(state, QueueState::Deferred { .. }) {
            self.spool.set_state(id, QueueState::Queued).await?;
            info!(queue_id = %id, "deferred message released by the administrator");
            self.schedule(id, 0);
            return Ok(QueueState::Queued);
        }
        if state != QueueState::Held {
            return Err(ControlError::WrongState {
                id,
                state: state.as_str(),
                why: "only a held or deferred message can be released",
            });
        }
        let mut msg = self.spool.load(id).await?;
        msg.fate = Fate::Normal;
        msg.properties.set(RELEASED, true);
        self.spool.update(&msg, QueueState::Queued).await?;
        info!(queue_id = %id, "message released by the administrator");
        self.schedule(id, 0);
        Ok(QueueState::Queued)
    }

    /// Releases the held messages a sink asked for in the message property [`RELEASE_REQUEST`]
    /// (a list owner's approval by mail); a refused release is logged and changes nothing.
    pub(crate) async fn release_requested(&self, msg: &mut MailMsg) {
        let Some(ids) = msg.properties.remove(RELEASE_REQUEST) else {
            return;
        };
        let ids = ids.as_str().unwrap_or_default().to_owned();
        for id in ids.split_whitespace() {
            match id.parse::<QueueId>() {
                Ok(held) => match self.release(held).await {
                    Ok(_) => info!(queue_id = %id_of(msg), released = %held,
                                   "held message released at a sink's request"),
                    Err(e) => warn!(queue_id = %id_of(msg), "release asked by a sink refused: {e}"),
                },
                Err(_) => {
                    warn!(queue_id = %id_of(msg), id, "release asked by a sink: not a queue id")
                }
            }
        }
    }

    /// Gives up now: every recipient not yet final fails, the sender gets the failure DSN (as
    /// for a permanent failure; never to the null sender) and the message leaves the queue.
    pub async fn bounce(self: &Arc<Self>, id: QueueId) -> Result<(), ControlError> {
        self.state_of(id)?;
        let mut msg = self.spool.load(id).await?;
        for r in msg.recipients.iter_mut().filter(|r| !r.status.is_final()) {
            r.status = RecipientStatus::Failed {
                reason: BOUNCED_REASON.to_owned(),
            };
        }
        info!(queue_id = %id, "message bounced by the administrator");
        let snapshot = self.host.snapshot();
        self.finish(&snapshot, &mut msg).await;
        if self.spool.get(id).is_some() {
            // The DSN could not be queued: the message is kept (deferred) for another try.
            return Err(ControlError::DsnNotQueued(id));
        }
        Ok(())
    }

    /// Deletes the message from the queue: no delivery, no DSN.
    pub async fn delete(self: &Arc<Self>, id: QueueId) -> Result<(), ControlError> {
        self.state_of(id)?;
        self.spool.complete(id).await?;
        info!(queue_id = %id, "message deleted by the administrator");
        Ok(())
    }
}
