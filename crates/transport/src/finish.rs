//! The end of a pass: expiry, DSNs, telling the queue, scheduling the retry, acting on a fate.

use std::path::Path;
use std::time::Duration;

use postern_mailmsg::{Fate, MailMsg, RecipientStatus, Value, now_ms};
use postern_queue::QueueState;
use postern_sink_host::Snapshot;
use tracing::{error, info};

use crate::Transport;
use crate::pipeline::Pass;
use crate::retry::{self, Next};

/// The message property counting delivery attempts.
pub(crate) const ATTEMPTS: &str = "postern.attempts";
/// The message property a sink sets, with a deferral, to the time (Unix milliseconds) of the
/// message's next attempt in place of the retry schedule's (`builtin:hold-queue`'s delivery
/// window). It applies to that deferral only: it is taken off the message here.
pub(crate) const NEXT_ATTEMPT: &str = "postern.next_attempt";

fn take_next_attempt(msg: &mut MailMsg) -> Option<u64> {
    msg.properties
        .remove(NEXT_ATTEMPT)
        .and_then(|v| v.as_int())
        .and_then(|at| u64::try_from(at).ok())
}

impl Transport {
    /// Tells the queue what became of the message: expires what is too old, sends the DSNs
    /// that are due, and either completes the message or schedules its next attempt.
    pub(crate) async fn finish(&self, snapshot: &Snapshot, msg: &mut MailMsg) -> Pass {
        let now = now_ms();
        let arrival = if msg.info.arrival_ms == 0 {
            now
        } else {
            msg.info.arrival_ms
        };
        let attempts = msg
            .properties
            .get(ATTEMPTS)
            .and_then(Value::as_int)
            .unwrap_or(0)
            + 1;
        msg.properties.set(ATTEMPTS, attempts);
        let deferred = msg
            .recipients
            .iter()
            .any(|r| matches!(r.status, RecipientStatus::Deferred { .. }));
        let next = if deferred {
            retry::next_attempt(&self.config.delivery, arrival, attempts as u64, now)
        } else {
            Next::RetryAt(now)
        };
        if next == Next::Expired {
            let age = humanize(self.config.delivery.max_age.as_secs());
            for r in &mut msg.recipients {
                if let RecipientStatus::Deferred { reason } = &r.status {
                    r.properties.set(crate::track::EXPIRED, true);
                    r.status = RecipientStatus::Failed {
                        reason: format!("{reason} (gave up after {age})"),
                    };
                }
            }
        }
        self.track_recipients(snapshot, msg).await;
        let asked = take_next_attempt(msg);
        let next_at = match next {
            // A sink that deferred the message may say when to try again (a delivery window's
            // opening), later than the schedule's time or sooner.
            Next::RetryAt(at) => asked.filter(|&t| t > now).unwrap_or(at),
            Next::Expired => now,
        };
        let delay_due = retry::delay_warning_due(&self.config.delivery, arrival, now);
        if !self
            .notify(
                snapshot,
                msg,
                delay_due,
                retry::expiry(&self.config.delivery, arrival),
            )
            .await
        {
            // The DSN could not be queued: keep the message and try its notices again.
            if let Err(e) = self
                .spool
                .update(
                    msg,
                    QueueState::Deferred {
                        until_ms: now + 60_000,
                    },
                )
                .await
            {
                error!(queue_id = %id_of(msg), "queue update failed: {e}");
            }
            return Pass::Deferred(now + 60_000);
        }
        let all_final = msg.recipients.iter().all(|r| r.status.is_final());
        if all_final {
            let done = self.complete(msg).await;
            if done
                && let Some(metrics) = self.metrics()
                && msg
                    .recipients
                    .iter()
                    .all(|r| matches!(r.status, RecipientStatus::Delivered))
            {
                metrics.message_delivered(Duration::from_millis(now.saturating_sub(arrival)));
            }
            return match done {
                true => Pass::Done,
                false => Pass::Deferred(now + 60_000),
            };
        }
        if let Some(metrics) = self.metrics() {
            metrics.message_deferred();
        }
        info!(queue_id = %id_of(msg), attempts, next_attempt = %crate::track::rfc3339(next_at),
              "message deferred");
        // The queue first: whoever reads `deferred` in the track log finds it deferred.
        if let Err(e) = self
            .spool
            .update(msg, QueueState::Deferred { until_ms: next_at })
            .await
        {
            error!(queue_id = %id_of(msg), "queue update failed: {e}");
        }
        self.track_message(snapshot, msg, "deferred", Some(next_at))
            .await;
        Pass::Deferred(next_at)
    }

    /// Acts on a fate a sink set.
    pub(crate) async fn settle_fate(
        &self,
        snapshot: &Snapshot,
        msg: &mut MailMsg,
        fate: Fate,
    ) -> Pass {
        let id = id_of(msg);
        match fate {
            Fate::Normal => Pass::Done,
            Fate::Hold => {
                info!(queue_id = %id, "message held");
                // The queue first: whoever reads `held` in the track log finds it held.
                if let Err(e) = self.spool.update(msg, QueueState::Held).await {
                    error!(queue_id = %id, "queue update failed: {e}");
                }
                self.track_message(snapshot, msg, "held", None).await;
                Pass::Held
            }
            Fate::Abort => {
                info!(queue_id = %id, "message aborted by a sink: not delivered, no DSN");
                self.track_message(snapshot, msg, "aborted", None).await;
                self.complete(msg).await;
                Pass::Done
            }
            Fate::Badmail | Fate::Quarantine => match self.move_out(msg, fate.as_str()).await {
                Ok(()) => {
                    let state = if fate == Fate::Badmail {
                        "badmail"
                    } else {
                        "quarantined"
                    };
                    self.track_message(snapshot, msg, state, None).await;
                    self.complete(msg).await;
                    Pass::Done
                }
                Err(e) => {
                    error!(queue_id = %id, fate = fate.as_str(), "could not write: {e}");
                    Pass::Deferred(now_ms() + 60_000)
                }
            },
        }
    }

    /// Writes the message and its envelope into `DATA/FOLDER/` (badmail, quarantine), synced.
    pub(crate) async fn move_out(&self, msg: &MailMsg, folder: &str) -> std::io::Result<()> {
        let id = id_of(msg);
        let folder = self.data_dir.join(folder);
        let content = msg.content.bytes().clone();
        let envelope = envelope_text(msg);
        tokio::task::spawn_blocking(move || {
            write_file(&folder, &folder.join(format!("{id}.eml")), &content)?;
            write_file(
                &folder,
                &folder.join(format!("{id}.envelope")),
                envelope.as_bytes(),
            )
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| {
            if r.is_ok() {
                info!(queue_id = %id_of(msg), "message moved out of the queue");
            }
            r
        })
    }

    pub(crate) async fn complete(&self, msg: &MailMsg) -> bool {
        let Some(id) = msg.id else { return true };
        match self.spool.complete(id).await {
            Ok(()) => true,
            Err(e) => {
                error!(queue_id = %id, "queue completion failed: {e}");
                false
            }
        }
    }
}

/// The envelope as a small text file beside a message moved out of the queue, so nothing about
/// it is lost: sender, each recipient with its state and reason.
fn envelope_text(msg: &MailMsg) -> String {
    let mut out = format!(
        "queue-id: {}\nsender: <{}>\n",
        id_of(msg),
        msg.sender_address()
    );
    for r in &msg.recipients {
        let (state, reason) = match &r.status {
            RecipientStatus::Pending => ("pending", ""),
            RecipientStatus::Delivered => ("delivered", ""),
            RecipientStatus::Deferred { reason } => ("deferred", reason.as_str()),
            RecipientStatus::Failed { reason } => ("failed", reason.as_str()),
        };
        let reason = reason.replace(['\r', '\n'], " ");
        out.push_str(&format!("recipient: <{}> {state} {reason}\n", r.address));
    }
    out
}

fn write_file(folder: &Path, path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(folder)?;
    let mut file = std::fs::File::create(path)?;
    file.write_all(content)?;
    file.sync_all()?;
    postern_mailmsg::durable::sync_dir(folder)
}

/// "5d", "4h", "30m", "45s": how long a message was tried, for people.
pub(crate) fn humanize(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub(crate) fn id_of(msg: &MailMsg) -> String {
    msg.id.map(|i| i.to_string()).unwrap_or_default()
}
