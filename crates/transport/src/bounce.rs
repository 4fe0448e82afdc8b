//! Delivery status notifications for the recipients of a pass: one DSN per message for every
//! recipient that failed (bounced or expired), was delivered with NOTIFY=SUCCESS, or is still
//! deferred when the delay warning is due. A DSN is queued like any message and takes the same
//! pipeline, so sinks see it; it is never sent to the null sender, and a message from the null
//! sender (a DSN itself) that cannot be delivered goes to badmail with its envelope.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_delivery::dsn::{DsnEntry, DsnKind, build_dsn};
use postern_mailmsg::{MailMsg, RecipientStatus, Value, now_ms};
use postern_sink_host::Snapshot;
use tracing::{error, info, warn};

use crate::Transport;
use crate::finish::id_of;
use crate::remote::{RELAYED_DSN, REMOTE};

/// What a recipient was last notified of (`failure`, `success`, `delay`).
const NOTIFIED: &str = "postern.notified";
/// Set on the message once its delay DSN was sent.
const DELAY_SENT: &str = "postern.delay_dsn_sent";

impl Transport {
    /// Queues the DSN this pass owes; `false` when it could not be queued (the caller keeps
    /// the message and tries again).
    pub(crate) async fn notify(
        &self,
        snapshot: &Snapshot,
        msg: &mut MailMsg,
        delay_due: bool,
        expires_ms: u64,
    ) -> bool {
        let delay_sent = msg.properties.get(DELAY_SENT).and_then(Value::as_bool) == Some(true);
        let mut due: Vec<(usize, DsnKind)> = Vec::new();
        for (i, r) in msg.recipients.iter().enumerate() {
            let notified = r.properties.get_str(NOTIFIED);
            match &r.status {
                RecipientStatus::Failed { .. } if notified != Some("failure") => {
                    due.push((i, DsnKind::Failure));
                }
                RecipientStatus::Delivered
                    if notified.is_none()
                        && r.params.notify.success
                        && r.properties.get(RELAYED_DSN).is_none() =>
                {
                    due.push((i, DsnKind::Success));
                }
                RecipientStatus::Deferred { .. }
                    if delay_due && !delay_sent && notified.is_none() =>
                {
                    due.push((i, DsnKind::Delay));
                }
                _ => {}
            }
        }
        if due.is_empty() {
            return true;
        }
        let failed = due.iter().any(|(_, k)| *k == DsnKind::Failure);
        if msg.sender_address().is_empty() {
            // Never a DSN to the null sender. A bounce that cannot be delivered is kept in
            // badmail with its envelope rather than lost.
            if failed {
                if let Err(e) = self.move_out(msg, "badmail").await {
                    error!(queue_id = %id_of(msg), "could not write badmail: {e}");
                    return false;
                }
                warn!(queue_id = %id_of(msg), "undeliverable message from the null sender moved to badmail");
                if let Some(metrics) = self.metrics() {
                    metrics.message_badmail();
                }
                self.track_message(snapshot, msg, "badmail", None).await;
            }
            mark(msg, &due);
            return true;
        }
        let entries: Vec<DsnEntry<'_>> =
            due.iter()
                .filter_map(|(i, kind)| {
                    let r = msg.recipients.get(*i)?;
                    let reason = match &r.status {
                        RecipientStatus::Failed { reason }
                        | RecipientStatus::Deferred { reason } => Some(reason.as_str()),
                        RecipientStatus::Delivered => r.properties.get_str(crate::remote::REPLY),
                        RecipientStatus::Pending => None,
                    };
                    Some(DsnEntry {
                        recipient: r,
                        kind: *kind,
                        status: status_of(reason, *kind),
                        diagnostic: reason.filter(|t| is_reply(t)).map(str::to_owned),
                        remote_mta: r
                            .properties
                            .get_str(REMOTE)
                            .map(|h| h.split('[').next().unwrap_or(h).to_owned()),
                        will_retry_until: (*kind == DsnKind::Delay)
                            .then(|| UNIX_EPOCH + Duration::from_millis(expires_ms)),
                    })
                })
                .collect();
        let dsn = build_dsn(msg, &entries, &self.config.hostname, SystemTime::now());
        drop(entries);
        if let Some(mut dsn) = dsn {
            let id = self.ids.next_id();
            dsn.id = Some(id);
            dsn.info.arrival_ms = now_ms();
            dsn.info.size = dsn.content.len() as u64;
            dsn.info.received_by = self.config.hostname.clone();
            dsn.info.protocol = "local".into();
            if let Err(e) = self.spool.store(&dsn).await {
                error!(queue_id = %id_of(msg), "could not queue a DSN: {e}");
                return false;
            }
            info!(queue_id = %id_of(msg), dsn = %id, sender = %msg.sender_address(),
                  recipients = due.len(), "DSN queued");
            self.schedule(id, 0);
            if failed && let Some(metrics) = self.metrics() {
                metrics.message_bounced();
            }
            self.track_message(snapshot, msg, "dsn-sent", None).await;
        }
        mark(msg, &due);
        if due.iter().any(|(_, k)| *k == DsnKind::Delay) {
            msg.properties.set(DELAY_SENT, true);
        }
        true
    }
}

fn mark(msg: &mut MailMsg, due: &[(usize, DsnKind)]) {
    for (i, kind) in due {
        if let Some(r) = msg.recipients.get_mut(*i) {
            let word = match kind {
                DsnKind::Failure => "failure",
                DsnKind::Success => "success",
                DsnKind::Delay => "delay",
            };
            r.properties.set(NOTIFIED, word);
        }
    }
}

/// Whether a reason is an SMTP reply (`550 5.1.1 …`), for the Diagnostic-Code.
fn is_reply(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit) && matches!(b.get(3), None | Some(b' '))
}

/// The status code of a DSN entry: the reply's enhanced code when it has one whose class fits,
/// else the generic code of the kind.
fn status_of(reason: Option<&str>, kind: DsnKind) -> String {
    let class = match kind {
        DsnKind::Failure => '5',
        DsnKind::Delay => '4',
        DsnKind::Success => '2',
    };
    let enhanced = reason
        .filter(|t| is_reply(t))
        .and_then(|t| t.get(4..))
        .and_then(|t| t.split_whitespace().next())
        .filter(|code| {
            let parts: Vec<&str> = code.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
    match enhanced {
        Some(code) if code.starts_with(class) => code.to_owned(),
        // An expired recipient's last reply was temporary: the DSN says it failed.
        Some(code) if class == '5' && code.starts_with('4') => format!("5{}", &code[1..]),
        _ => format!("{class}.0.0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_come_from_the_reply_when_they_fit() {
        let cases = [
            (
                "enhanced code",
                Some("550 5.1.1 no such user"),
                DsnKind::Failure,
                "5.1.1",
            ),
            (
                "expired temporary",
                Some("451 4.4.1 timeout"),
                DsnKind::Failure,
                "5.4.1",
            ),
            (
                "no enhanced code",
                Some("550 no"),
                DsnKind::Failure,
                "5.0.0",
            ),
            ("not a reply", Some("gave up"), DsnKind::Failure, "5.0.0"),
            ("delay", Some("451 4.4.1 later"), DsnKind::Delay, "4.4.1"),
            ("success", Some("250 2.0.0 ok"), DsnKind::Success, "2.0.0"),
            ("none", None, DsnKind::Delay, "4.0.0"),
        ];
        for (name, reason, kind, want) in cases {
            assert_eq!(status_of(reason, kind), want, "{name}");
        }
    }
}
