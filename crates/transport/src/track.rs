//! The `track` event: raised on every change of a message's state — received, routed,
//! delivered, deferred, bounced, expired, DSN sent, held, quarantined, aborted, badmail — once
//! per recipient where the change is a recipient's. Its default sink appends a JSON line to
//! `DATA/log/track.jsonl` (see `tracklog`); bound sinks see the message with the change in the
//! properties `track.state`, `track.reply` and `track.next_attempt`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_mailmsg::{MailMsg, RecipientStatus, now_ms};
use postern_sink_api::{Context, Event, Outcome};
use postern_sink_host::{DefaultSink, Snapshot};
use tracing::info;

use crate::Transport;
use crate::finish::id_of;
use crate::remote::REPLY;
use crate::tracklog::{TrackLog, TrackRecord};

/// Set on a recipient that failed because it was too old.
pub(crate) const EXPIRED: &str = "postern.expired";
/// The state last tracked for a recipient (so a final state is tracked once).
const TRACKED: &str = "postern.tracked";
/// The binding that decided a recipient's or the message's fate.
pub(crate) const BINDING: &str = "postern.binding";

/// A Unix time in ms as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(ms: u64) -> String {
    crate::tracklog::rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

/// The default sink of `track`: one line in the track log.
struct Writer<'a>(&'a TrackLog, &'a TrackRecord);

impl DefaultSink for Writer<'_> {
    async fn run(&mut self, _ctx: &Context) -> Outcome {
        self.0.write(self.1);
        Outcome::next()
    }
}

impl Transport {
    /// Tracks a change of the whole message (`held`, `deferred`, `dsn-sent`, …).
    pub(crate) async fn track_message(
        &self,
        snapshot: &Snapshot,
        msg: &MailMsg,
        state: &str,
        next_attempt: Option<u64>,
    ) {
        let mut record = TrackRecord::new(id_of(msg), state, SystemTime::now());
        record.next_attempt = next_attempt.map(rfc3339);
        record.binding = msg.properties.get_str(BINDING).map(str::to_owned);
        self.raise(snapshot, msg, None, &record).await;
    }

    /// Tracks the message's arrival (`received`, at its arrival time, with the sender).
    pub(crate) async fn track_received(&self, snapshot: &Snapshot, msg: &MailMsg) {
        let arrival = match msg.info.arrival_ms {
            0 => SystemTime::now(),
            ms => UNIX_EPOCH + Duration::from_millis(ms),
        };
        let mut record = TrackRecord::new(id_of(msg), "received", arrival);
        record.reply = Some(format!("from <{}>", msg.sender_address()));
        self.raise(snapshot, msg, None, &record).await;
    }

    /// Tracks the next hop chosen for each recipient (`routed`).
    pub(crate) async fn track_routed(&self, snapshot: &Snapshot, msg: &MailMsg) {
        for (i, r) in msg.recipients.iter().enumerate() {
            if r.status != RecipientStatus::Pending {
                continue;
            }
            let record = TrackRecord {
                time: rfc3339(now_ms()),
                queue_id: id_of(msg),
                state: "routed".to_owned(),
                recipient: Some(r.address.clone()),
                next_hop: r.next_hop.clone(),
                reply: None,
                next_attempt: None,
                binding: None,
            };
            self.raise(snapshot, msg, Some(i), &record).await;
        }
    }

    /// Tracks each recipient whose state changed in this pass: delivered, failed (bounced or
    /// expired) once, deferred at every attempt.
    pub(crate) async fn track_recipients(&self, snapshot: &Snapshot, msg: &mut MailMsg) {
        for i in 0..msg.recipients.len() {
            let r = &msg.recipients[i];
            let (state, reason) = match &r.status {
                RecipientStatus::Pending => continue,
                RecipientStatus::Delivered => ("delivered", r.properties.get_str(REPLY)),
                RecipientStatus::Deferred { reason } => ("deferred", Some(reason.as_str())),
                RecipientStatus::Failed { reason } => {
                    let expired = r.properties.get(EXPIRED).is_some();
                    (
                        if expired { "expired" } else { "bounced" },
                        Some(reason.as_str()),
                    )
                }
            };
            if state != "deferred" && r.properties.get_str(TRACKED) == Some(state) {
                continue;
            }
            let record = TrackRecord {
                time: rfc3339(now_ms()),
                queue_id: id_of(msg),
                state: state.to_owned(),
                recipient: Some(r.address.clone()),
                next_hop: r.next_hop.clone(),
                reply: reason.map(str::to_owned),
                next_attempt: None,
                binding: r.properties.get_str(BINDING).map(str::to_owned),
            };
            info!(queue_id = %record.queue_id, recipient = %r.address,
                  next_hop = r.next_hop.as_deref().unwrap_or(""), state,
                  reply = reason.unwrap_or(""), "recipient");
            self.raise(snapshot, msg, Some(i), &record).await;
            // Only a final state needs remembering (a deferral is tracked at every attempt); a
            // deferred recipient so carries no extra property in the queue.
            if state != "deferred" {
                msg.recipients[i].properties.set(TRACKED, state);
            }
        }
    }

    async fn raise(
        &self,
        snapshot: &Snapshot,
        msg: &MailMsg,
        recipient: Option<usize>,
        record: &TrackRecord,
    ) {
        if !snapshot.is_bound(&Event::Track) {
            // Nothing listens: no copy of the message to make.
            self.tracklog.write(record);
            return;
        }
        let mut ctx = Context::new(Event::Track, self.host.server_props.clone());
        let mut copy = msg.clone();
        copy.properties.set("track.state", record.state.as_str());
        if let Some(reply) = &record.reply {
            copy.properties.set("track.reply", reply.as_str());
        }
        if let Some(next) = &record.next_attempt {
            copy.properties.set("track.next_attempt", next.as_str());
        }
        ctx.message = Arc::new(copy);
        ctx.recipient = recipient;
        snapshot
            .dispatch(&mut ctx, &mut Writer(&self.tracklog, record))
            .await;
    }
}
