//! The end of a pass: tell the queue, schedule the retry, act on a fate, raise `track`.

use std::path::Path;
use std::sync::Arc;

use postern_mailmsg::{Fate, MailMsg, RecipientStatus, Value, now_ms};
use postern_queue::QueueState;
use postern_sink_api::{Context, Event};
use postern_sink_host::{NoDefault, Snapshot};
use tracing::{error, info, warn};

use crate::Transport;
use crate::pipeline::Pass;

/// The message property counting delivery attempts.
const ATTEMPTS: &str = "postern.attempts";

/// Minutes to wait before attempt n+1 (the last value repeats).
const BACKOFF_MINUTES: &[u64] = &[1, 5, 15, 30, 60, 120, 240];

impl Transport {
    /// Tells the queue what became of the message.
    pub(crate) async fn finish(&self, snapshot: &Snapshot, msg: &mut MailMsg) -> Pass {
        for r in &msg.recipients {
            let (state, reason) = match &r.status {
                RecipientStatus::Delivered => ("delivered", ""),
                RecipientStatus::Failed { reason } => ("failed", reason.as_str()),
                RecipientStatus::Deferred { reason } => ("deferred", reason.as_str()),
                RecipientStatus::Pending => continue,
            };
            info!(queue_id = %id_of(msg), recipient = %r.address, next_hop = r.next_hop.as_deref().unwrap_or(""),
                  state, reason, "recipient");
        }
        let all_final = msg.recipients.iter().all(|r| r.status.is_final());
        if all_final {
            let failed = msg
                .recipients
                .iter()
                .filter(|r| matches!(r.status, RecipientStatus::Failed { .. }))
                .count();
            if failed > 0 && !msg.sender_address().is_empty() {
                // Delivery status notifications arrive with the outbound SMTP client.
                warn!(queue_id = %id_of(msg), failed, sender = %msg.sender_address(),
                      "recipients failed; a DSN to the sender is due");
            }
            self.track(
                snapshot,
                msg,
                if failed > 0 { "bounced" } else { "delivered" },
            )
            .await;
            return match self.complete(msg).await {
                true => Pass::Done,
                false => Pass::Deferred(now_ms() + 60_000),
            };
        }
        let attempts = msg
            .properties
            .get(ATTEMPTS)
            .and_then(Value::as_int)
            .unwrap_or(0)
            + 1;
        msg.properties.set(ATTEMPTS, attempts);
        let minutes = BACKOFF_MINUTES[(attempts as usize - 1).min(BACKOFF_MINUTES.len() - 1)];
        let until = now_ms() + minutes * 60_000;
        self.track(snapshot, msg, "deferred").await;
        if let Err(e) = self
            .spool
            .update(msg, QueueState::Deferred { until_ms: until })
            .await
        {
            error!(queue_id = %id_of(msg), "queue update failed: {e}");
        }
        Pass::Deferred(until)
    }

    /// Acts on a fate a sink set.
    pub(crate) async fn settle_fate(&self, msg: &mut MailMsg, fate: Fate) -> Pass {
        let id = id_of(msg);
        match fate {
            Fate::Normal => Pass::Done,
            Fate::Hold => {
                info!(queue_id = %id, "message held");
                if let Err(e) = self.spool.update(msg, QueueState::Held).await {
                    error!(queue_id = %id, "queue update failed: {e}");
                }
                Pass::Held
            }
            Fate::Abort => {
                info!(queue_id = %id, "message aborted by a sink: not delivered, no DSN");
                self.complete(msg).await;
                Pass::Done
            }
            Fate::Badmail | Fate::Quarantine => {
                let folder = self.data_dir.join(fate.as_str());
                let content = msg.content.bytes().clone();
                let path = folder.join(format!("{id}.eml"));
                let written =
                    tokio::task::spawn_blocking(move || write_file(&folder, &path, &content))
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .and_then(|r| r);
                match written {
                    Ok(()) => {
                        info!(queue_id = %id, fate = fate.as_str(), "message moved out of the queue");
                        self.complete(msg).await;
                        Pass::Done
                    }
                    Err(e) => {
                        error!(queue_id = %id, fate = fate.as_str(), "could not write: {e}");
                        Pass::Deferred(now_ms() + 60_000)
                    }
                }
            }
        }
    }

    async fn complete(&self, msg: &MailMsg) -> bool {
        let Some(id) = msg.id else { return true };
        match self.spool.complete(id).await {
            Ok(()) => true,
            Err(e) => {
                error!(queue_id = %id, "queue completion failed: {e}");
                false
            }
        }
    }

    /// Raises `track` for a change of the message's state (delivered, bounced, deferred); the
    /// transport's own log lines record the state, so the event has no default sink.
    pub(crate) async fn track(&self, snapshot: &Snapshot, msg: &MailMsg, state: &str) {
        if !snapshot.is_bound(&Event::Track) {
            // Nothing listens: no copy of the message to make.
            return;
        }
        let mut ctx = Context::new(Event::Track, self.host.server_props.clone());
        let mut copy = msg.clone();
        copy.properties.set("track.state", state);
        ctx.message = Arc::new(copy);
        snapshot.dispatch(&mut ctx, &mut NoDefault).await;
    }
}

fn write_file(folder: &Path, path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(folder)?;
    let mut file = std::fs::File::create(path)?;
    file.write_all(content)?;
    file.sync_all()?;
    postern_mailmsg::durable::sync_dir(folder)
}

pub(crate) fn id_of(msg: &MailMsg) -> String {
    msg.id.map(|i| i.to_string()).unwrap_or_default()
}
