//! Remote recipients: grouped by next hop, each group one transaction through the outbound
//! client (split past [`MAX_RECIPIENTS_PER_TRANSACTION`]), the hops of a message delivered
//! concurrently.

use std::sync::Arc;

use postern_delivery::RcptOutcome;
use postern_mailmsg::{MailMsg, RecipientStatus};
use postern_sink_api::Context;
use postern_sink_host::Snapshot;

use crate::Transport;
use crate::defaults::LOCAL;

/// Most recipients sent in one transaction. RFC 5321 §4.5.3.1.8 obliges a server to take 100
/// recipients and allows it to refuse more (`452`), which would leave the rest waiting for a
/// retry; a larger group (a list's expansion) goes as several transactions in a row.
pub(crate) const MAX_RECIPIENTS_PER_TRANSACTION: usize = 100;

/// Recipient properties the outbound client records.
pub(crate) const REPLY: &str = "postern.reply";
/// The host that answered, `name[address]`.
pub(crate) const REMOTE: &str = "postern.remote";
/// Set when the next hop offered DSN and so took over the duty of success notices.
pub(crate) const RELAYED_DSN: &str = "postern.relayed_dsn";

impl Transport {
    /// Delivers every pending recipient with a remote next hop.
    pub(crate) async fn deliver_remote(&self, snapshot: &Arc<Snapshot>, ctx: &mut Context) {
        // Grouped by hop and envelope sender: a recipient with a sender of its own (VERP) is
        // a transaction of its own, since MAIL FROM is one per transaction.
        let mut hops: Vec<(String, String, Vec<usize>)> = Vec::new();
        for (i, r) in ctx.message.recipients.iter().enumerate() {
            let Some(hop) = r.next_hop.as_deref() else {
                continue;
            };
            if r.status != RecipientStatus::Pending || hop.starts_with(LOCAL) {
                continue;
            }
            let sender = ctx.message.sender_for(i);
            match hops.iter_mut().find(|(h, s, _)| h == hop && s == sender) {
                Some((_, _, list)) => list.push(i),
                None => hops.push((hop.to_owned(), sender.to_owned(), vec![i])),
            }
        }
        if hops.is_empty() {
            return;
        }
        let msg: Arc<MailMsg> = ctx.message.clone();
        let mut tasks = tokio::task::JoinSet::new();
        for (hop, sender, list) in hops {
            let outbound = self.outbound.clone();
            let snapshot = snapshot.clone();
            let msg = if sender == msg.sender_address() {
                msg.clone()
            } else {
                // The content is shared (reference-counted); only the envelope is copied.
                let mut copy = (*msg).clone();
                if let Some(s) = copy.sender.as_mut() {
                    s.address = sender;
                }
                Arc::new(copy)
            };
            tasks.spawn(async move {
                // In a row on the hop: the next transaction reuses the connection.
                let mut reports = Vec::new();
                for chunk in list.chunks(MAX_RECIPIENTS_PER_TRANSACTION) {
                    reports.push(outbound.deliver(&snapshot, &msg, &hop, chunk).await);
                }
                (hop, list, reports)
            });
        }
        // Each hop's outcome is applied as it comes in.
        while let Some(joined) = tasks.join_next().await {
            let Ok((hop, list, reports)) = joined else {
                // A panicking hop leaves its recipients pending: deferred below.
                continue;
            };
            let msg = Arc::make_mut(&mut ctx.message);
            for report in reports {
                for (i, outcome) in report.outcomes {
                    let Some(r) = msg.recipients.get_mut(i) else {
                        continue;
                    };
                    if let Some(remote) = &report.remote {
                        r.properties.set(REMOTE, remote.as_str());
                    }
                    match outcome {
                        RcptOutcome::Delivered(reply) => {
                            r.properties.set(REPLY, reply);
                            if report.remote_dsn {
                                r.properties.set(RELAYED_DSN, true);
                            }
                            r.status = RecipientStatus::Delivered;
                        }
                        // The reason of a deferral or a failure is in the status itself; only a
                        // delivery's reply needs a place of its own.
                        RcptOutcome::Deferred(reason) => {
                            r.status = RecipientStatus::Deferred { reason }
                        }
                        RcptOutcome::Failed(reason) => {
                            r.status = RecipientStatus::Failed { reason }
                        }
                    }
                }
            }
            for i in list {
                if let Some(r) = msg.recipients.get_mut(i)
                    && r.status == RecipientStatus::Pending
                {
                    r.status = RecipientStatus::Deferred {
                        reason: format!("451 4.3.0 delivery to {hop} did not finish"),
                    };
                }
            }
        }
    }
}
