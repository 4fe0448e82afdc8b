//! One pass of a message through the transport: the message events, the per-recipient events,
//! delivery, and what the queue is told at the end.

use std::sync::Arc;

use postern_mailmsg::{Fate, MailMsg, RecipientStatus, Value};
use postern_queue::QueueState;
use postern_sink_api::{Context, Event};
use postern_sink_host::{DefaultSink, Dispatched, NoDefault, Snapshot, TransportVerdict};
use tracing::{info, warn};

use crate::Transport;
use crate::defaults::{Categorizer, LOCAL, MaildirStore, Router};

/// The message property that says the message was routed (later passes only deliver).
const ROUTED: &str = "postern.routed";

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Every recipient is final; the message left the queue.
    Done,
    /// Some recipients are to be tried again at this time (Unix ms).
    Deferred(u64),
    /// The message is held (a sink set its fate to hold).
    Held,
}

impl std::fmt::Display for Pass {
    /// For the log: a retry time as an RFC 3339 UTC time, not Unix milliseconds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pass::Done => f.write_str("done"),
            Pass::Held => f.write_str("held"),
            Pass::Deferred(until_ms) => {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(*until_ms);
                write!(
                    f,
                    "deferred until {}",
                    humantime::format_rfc3339_seconds(at)
                )
            }
        }
    }
}

/// Why the message stopped early.
enum Stop {
    Fate(Fate),
    Defer(String),
}

impl Transport {
    /// Runs the whole pipeline for a message that is durable in the queue.
    pub async fn pass(&self, msg: MailMsg) -> Pass {
        let started = std::time::Instant::now();
        let snapshot = self.host.snapshot();
        let id = msg.id.map(|i| i.to_string()).unwrap_or_default();
        let mut msg = msg;
        // Recipients deferred on an earlier pass are tried again on this one.
        for r in &mut msg.recipients {
            if matches!(r.status, RecipientStatus::Deferred { .. }) {
                r.status = RecipientStatus::Pending;
            }
        }
        if msg.properties.get(crate::finish::ATTEMPTS).is_none() {
            // The first pass: the message was received (at its arrival time) and is now queued.
            self.track_received(&snapshot, &msg).await;
            self.track_message(&snapshot, &msg, "queued", None).await;
        }
        let mut ctx = Context::new(Event::Submission, self.host.server_props.clone());
        ctx.message = Arc::new(msg);
        let stop = self.stages(&snapshot, &mut ctx).await;
        let mut msg = Arc::unwrap_or_clone(ctx.message);
        self.release_requested(&mut msg).await;
        let pass = match stop {
            Some(Stop::Fate(fate)) => self.settle_fate(&snapshot, &mut msg, fate).await,
            Some(Stop::Defer(reason)) => {
                for r in msg.recipients.iter_mut().filter(|r| !r.status.is_final()) {
                    r.status = RecipientStatus::Deferred {
                        reason: reason.clone(),
                    };
                }
                self.finish(&snapshot, &mut msg).await
            }
            None => self.finish(&snapshot, &mut msg).await,
        };
        if let Some(metrics) = self.metrics() {
            metrics.delivery_attempt(started.elapsed());
        }
        info!(queue_id = %id, outcome = %pass, "transport pass done");
        pass
    }

    async fn stages(&self, snapshot: &Arc<Snapshot>, ctx: &mut Context) -> Option<Stop> {
        // A message that was routed on an earlier pass (and is retried now) goes straight to
        // delivery: the stages before it ran once, and their sinks' changes are in the queue.
        let routed = ctx.message.properties.get(ROUTED).and_then(Value::as_bool) == Some(true);
        if !routed && let Some(stop) = self.resolve(snapshot, ctx).await {
            return Some(stop);
        }
        self.deliver(snapshot, ctx).await;
        None
    }

    /// Submission through route: the message events and the per-recipient resolution.
    async fn resolve(&self, snapshot: &Snapshot, ctx: &mut Context) -> Option<Stop> {
        let config = &*self.config;
        let mut persisted = true;
        for event in [Event::Submission, Event::PreCategorize] {
            ctx.event = event;
            let d = snapshot.dispatch(ctx, &mut NoDefault).await;
            if !self.verdict(ctx, &d, None) {
                return None;
            }
            if let Some(stop) = check_fate(ctx) {
                return Some(stop);
            }
            persisted &= !d.sink_changes;
        }
        ctx.event = Event::Categorize;
        let d = self
            .per_recipient(snapshot, ctx, &mut Categorizer(config))
            .await;
        persisted &= !d;
        if let Some(stop) = check_fate(ctx) {
            return Some(stop);
        }
        ctx.event = Event::PostCategorize;
        let d = snapshot.dispatch(ctx, &mut NoDefault).await;
        if !self.verdict(ctx, &d, None) {
            return None;
        }
        persisted &= !d.sink_changes;
        if let Some(stop) = check_fate(ctx) {
            return Some(stop);
        }
        ctx.event = Event::Route;
        persisted &= !self.per_recipient(snapshot, ctx, &mut Router(config)).await;
        if let Some(stop) = check_fate(ctx) {
            return Some(stop);
        }
        // Routed means every recipient still to deliver has its next hop; one a sink deferred
        // before the router ran is routed again on the next pass.
        let all_hops = ctx.message.recipients.iter().all(|r| {
            r.status.is_final() || (r.status == RecipientStatus::Pending && r.next_hop.is_some())
        });
        if all_hops {
            Arc::make_mut(&mut ctx.message).properties.set(ROUTED, true);
            self.track_routed(snapshot, &ctx.message).await;
        }
        if !persisted {
            // What sinks changed is written before delivery starts, so a crash does not lose it.
            if let Err(e) = self.spool.update(&ctx.message, QueueState::Queued).await {
                return Some(Stop::Defer(format!("451 4.3.0 queue write failed: {e}")));
            }
        }
        None
    }

    /// Local recipients to the store event, remote ones to the outbound client.
    async fn deliver(&self, snapshot: &Arc<Snapshot>, ctx: &mut Context) {
        ctx.event = Event::Store;
        let mut store = MaildirStore(self.maildir.clone());
        for i in 0..ctx.message.recipients.len() {
            let r = &ctx.message.recipients[i];
            let local = r.next_hop.as_deref().is_some_and(|h| h.starts_with(LOCAL));
            // Only recipients still pending: one deferred or failed by an earlier stage of this
            // pass waits for the next pass, or is done.
            if r.status != RecipientStatus::Pending || !local {
                continue;
            }
            ctx.recipient = Some(i);
            let d = snapshot.dispatch(ctx, &mut store).await;
            let status = match &d.transport {
                TransportVerdict::Continue => RecipientStatus::Delivered,
                TransportVerdict::Defer(reason) => RecipientStatus::Deferred {
                    reason: reason.clone(),
                },
                TransportVerdict::Fail(reason) => RecipientStatus::Failed {
                    reason: reason.clone(),
                },
            };
            let msg = Arc::make_mut(&mut ctx.message);
            if let (Some(r), Some(binding)) = (msg.recipients.get_mut(i), &d.decided_by) {
                r.properties.set(crate::track::BINDING, binding.as_str());
            }
            if let Some(r) = msg.recipients.get_mut(i)
                && !r.status.is_final()
            {
                r.status = status;
            }
        }
        ctx.recipient = None;
        self.deliver_remote(snapshot, ctx).await;
    }

    /// Raises a per-recipient event for every recipient still pending; returns whether any
    /// bound sink made a change.
    async fn per_recipient<D: DefaultSink>(
        &self,
        snapshot: &Snapshot,
        ctx: &mut Context,
        default: &mut D,
    ) -> bool {
        let mut changed = false;
        let mut i = 0;
        while i < ctx.message.recipients.len() {
            // Only recipients still pending: one deferred at categorize is not routed (and so
            // the message is not marked routed) until a later pass resolves it.
            if ctx.message.recipients[i].status != RecipientStatus::Pending {
                i += 1;
                continue;
            }
            ctx.recipient = Some(i);
            let original = ctx.message.recipients[i].original.clone();
            let d = snapshot.dispatch(ctx, default).await;
            changed |= d.sink_changes;
            // A rewritten recipient keeps its original address; when another one stands at
            // `i` now, this one was removed (a sink may also have added more than it removed,
            // as a list expansion does).
            let removed = ctx
                .message
                .recipients
                .get(i)
                .is_none_or(|r| r.original != original);
            if removed {
                // A sink removed this recipient (a list it expanded, say): the next one now
                // stands at `i`.
                continue;
            }
            self.verdict(ctx, &d, Some(i));
            i += 1;
        }
        ctx.recipient = None;
        changed
    }

    /// Applies a transport verdict to the message (or to one recipient); returns whether the
    /// pipeline goes on. A deferral of the whole message stops it: every pending recipient is
    /// then marked deferred and the pass ends with a retry.
    fn verdict(&self, ctx: &mut Context, d: &Dispatched, recipient: Option<usize>) -> bool {
        if let Some(binding) = &d.decided_by {
            let msg = Arc::make_mut(&mut ctx.message);
            match recipient.and_then(|i| msg.recipients.get_mut(i)) {
                Some(r) => r.properties.set(crate::track::BINDING, binding.as_str()),
                None => msg.properties.set(crate::track::BINDING, binding.as_str()),
            };
        }
        match &d.transport {
            TransportVerdict::Continue => true,
            TransportVerdict::Fail(reason) => {
                let msg = Arc::make_mut(&mut ctx.message);
                for (i, r) in msg.recipients.iter_mut().enumerate() {
                    if recipient.is_none_or(|only| only == i) && !r.status.is_final() {
                        r.status = RecipientStatus::Failed {
                            reason: reason.clone(),
                        };
                    }
                }
                true
            }
            TransportVerdict::Defer(reason) => {
                warn!(queue_id = ctx.message.id.as_ref().map(tracing::field::display),
                      binding = d.decided_by.as_deref(), event = %ctx.event,
                      "message deferred by a sink: {reason}");
                let msg = Arc::make_mut(&mut ctx.message);
                for (i, r) in msg.recipients.iter_mut().enumerate() {
                    if recipient.is_none_or(|only| only == i) && !r.status.is_final() {
                        r.status = RecipientStatus::Deferred {
                            reason: reason.clone(),
                        };
                    }
                }
                recipient.is_some()
            }
        }
    }
}

fn check_fate(ctx: &Context) -> Option<Stop> {
    match ctx.message.fate {
        Fate::Normal => None,
        // An administrator released it: the binding that held it does not hold it again.
        Fate::Hold
            if ctx
                .message
                .properties
                .get(crate::control::RELEASED)
                .and_then(Value::as_bool)
                == Some(true) =>
        {
            None
        }
        fate => Some(Stop::Fate(fate)),
    }
}
