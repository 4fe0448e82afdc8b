//! The dispatcher: walks an event's chain and calls each sink whose rule matches, wrapping every
//! call in one place with the binding's timeout, panic isolation, `on_error` policy, shadow mode,
//! a tracing span and counters, and within the binding's isolation: at most `max_concurrency`
//! calls in flight, none while its circuit breaker is open, blocking sinks on their own pool.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};

use postern_sink_api::{
    Call, Context, EnhancedCode, EventKind, Instance, Outcome, Reply, SinkResult, Verdict,
};
use tracing::{debug, info, warn};

use tokio::sync::OwnedSemaphorePermit;

use crate::apply::apply;
use crate::binding::{BindingId, Mode, OnError};
use crate::blocking;
use crate::decisions::record;
use crate::isolation::Busy;
use crate::snapshot::{Bound, Entry, Slot, Snapshot};
use crate::stats::BindingStats;

/// The server's own behaviour for an event: run where the chain reaches priority 16384.
pub trait DefaultSink: Send {
    /// Does the default work and says what it would reply or change.
    fn run(&mut self, ctx: &Context) -> impl Future<Output = Outcome> + Send;
}

/// A default sink that does nothing (events whose default is "nothing").
pub struct NoDefault;

impl DefaultSink for NoDefault {
    async fn run(&mut self, _ctx: &Context) -> Outcome {
        Outcome::next()
    }
}

/// What a transport event decided for the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TransportVerdict {
    /// Go on to the next stage.
    #[default]
    Continue,
    /// Keep the message and try again later.
    Defer(String),
    /// The message (or the current recipient) fails permanently.
    Fail(String),
}

/// What a dispatch decided.
#[derive(Debug, Clone, Default)]
pub struct Dispatched {
    /// For protocol events: the reply to send (`None` when no sink and no default set one).
    pub reply: Option<Reply>,
    /// Close the connection after the reply.
    pub disconnect: bool,
    /// Whether the default sink ran (its staged session changes take effect only if it ran and
    /// the final reply is positive).
    pub default_ran: bool,
    /// For transport events.
    pub transport: TransportVerdict,
    /// Whether a bound sink (not the default) asked for any change — the transport persists
    /// the message before its next stage when one did.
    pub sink_changes: bool,
    /// The name of the last bound sink (not the default) that decided something: a verdict
    /// other than continue, a fate, a failed recipient. Tracking records it.
    pub decided_by: Option<String>,
}

/// Why a call did not give an outcome.
enum Failure {
    Error(String),
    Panic(String),
    Timeout(Duration),
    /// `max_concurrency` calls were in flight until the timeout.
    Busy(u32),
    /// The circuit breaker is open.
    Open,
}

impl Failure {
    /// Says what happened, after the word "sink" in a log line.
    fn describe(&self) -> String {
        match self {
            Self::Error(e) => format!("failed: {e}"),
            Self::Panic(p) => format!("panicked: {p}"),
            Self::Timeout(t) => format!("timed out after {} ms", t.as_millis()),
            Self::Busy(max) => format!("was busy: {max} calls in flight until the timeout"),
            Self::Open => "was skipped: its circuit breaker is open".to_owned(),
        }
    }

    /// The decision log's name for the failure.
    fn kind(&self) -> &'static str {
        match self {
            Self::Error(_) => "error",
            Self::Panic(_) => "panic",
            Self::Timeout(_) => "timeout",
            Self::Busy(_) => "busy",
            Self::Open => "open",
        }
    }

    /// Whether the sink itself failed (what the circuit breaker counts).
    fn is_sink_fault(&self) -> bool {
        matches!(self, Self::Error(_) | Self::Panic(_) | Self::Timeout(_))
    }
}

const TEMPFAIL: EnhancedCode = EnhancedCode::new(4, 3, 0);
const REJECT: EnhancedCode = EnhancedCode::new(5, 7, 1);
const DISCONNECT: EnhancedCode = EnhancedCode::new(4, 7, 0);

impl Snapshot {
    /// Raises `ctx.event`: calls the chain in order, applies outcomes to `ctx`, and says what
    /// to do. `default` is the server's own behaviour for the event.
    pub async fn dispatch<D: DefaultSink>(&self, ctx: &mut Context, default: &mut D) -> Dispatched {
        let chain = self.chain(&ctx.event).clone();
        let mut out = Dispatched::default();
        for entry in chain.iter() {
            let (outcome, who) = match entry {
                Entry::Default => {
                    out.default_ran = true;
                    (default.run(ctx).await, Who::DEFAULT)
                }
                Entry::Bound(bound) => {
                    let Some(outcome) = self.fire(bound, ctx).await else {
                        continue;
                    };
                    out.sink_changes |= !outcome.changes.is_empty();
                    (
                        outcome,
                        Who {
                            name: bound.binding.name.as_str(),
                            id: Some(bound.binding.id),
                        },
                    )
                }
            };
            if settle(ctx, outcome, who, &mut out) {
                break;
            }
        }
        if out.reply.is_none() {
            out.reply = ctx.reply.clone();
        }
        out
    }

    /// Calls one binding if it is live and its rule matches; `None` when it did not fire or its
    /// outcome is not to be applied.
    async fn fire(&self, bound: &Bound, ctx: &Context) -> Option<Outcome> {
        let b = &bound.binding;
        if b.expires.is_some_and(|t| SystemTime::now() >= t) {
            return None;
        }
        if b.max_firings
            .is_some_and(|max| bound.stats.firings.load(Ordering::Relaxed) >= max)
        {
            return None;
        }
        if !bound.rule.matches(ctx) {
            return None;
        }
        BindingStats::bump(&bound.stats.firings);
        let started = Instant::now();
        let result = guarded_call(bound, ctx).await;
        bound.stats.record_duration(started.elapsed());
        let (outcome, failed) = match result {
            Ok(outcome) => (outcome, None),
            Err(failure) => {
                let counter = match &failure {
                    Failure::Error(_) => &bound.stats.failures,
                    Failure::Panic(_) => &bound.stats.panics,
                    Failure::Timeout(_) => &bound.stats.timeouts,
                    Failure::Busy(_) => &bound.stats.busy,
                    Failure::Open => &bound.stats.broken,
                };
                BindingStats::bump(counter);
                let reason = failure.describe();
                warn!(queue_id = ctx.message.id.as_ref().map(tracing::field::display),
                      binding = %b.name, binding_id = %b.id, event = %ctx.event,
                      on_error = b.on_error.as_str(), "sink {reason}");
                let transport = ctx.event.kind() == EventKind::Transport;
                match b.on_error {
                    OnError::Continue => {
                        record(
                            self,
                            bound,
                            ctx,
                            &Outcome::next(),
                            Some((failure.kind(), failure.describe())),
                        );
                        return None;
                    }
                    // A client is told no more than the generic reply; the message's own record
                    // (its deferral reason, a DSN) says which binding failed and how.
                    OnError::TempFail => (
                        Outcome::next().with_verdict(Verdict::TempFail(
                            transport.then(|| format!("451 4.3.0 binding {} {reason}", b.name)),
                        )),
                        Some(failure),
                    ),
                    OnError::Reject => (
                        Outcome::next().with_verdict(Verdict::Reject(
                            transport.then(|| format!("550 5.3.0 binding {} {reason}", b.name)),
                        )),
                        Some(failure),
                    ),
                }
            }
        };
        let shadow = b.mode == Mode::Shadow;
        let failed = match failed {
            Some(failure) => Some((failure.kind(), failure.describe())),
            None => shadow.then(|| ("shadow", String::new())),
        };
        record(self, bound, ctx, &outcome, failed);
        if shadow {
            BindingStats::bump(&bound.stats.shadowed);
            info!(queue_id = ctx.message.id.as_ref().map(tracing::field::display),
                  binding = %b.name, binding_id = %b.id, event = %ctx.event, verdict = ?outcome.verdict,
                  changes = outcome.changes.len(), "shadow outcome not applied");
            return None;
        }
        Some(outcome)
    }
}

impl Bound {
    /// Calls the sink once within the binding's timeout and isolation, whatever its rule,
    /// expiry, mode or `on_error` say, and gives its own outcome — or, when it gave none, why
    /// (`failed: …`, `panicked: …`, `timed out after N ms`, …). Nothing is applied and no
    /// counter moves. This is `postern sink try`.
    pub async fn call_once(&self, ctx: &Context) -> Result<Outcome, String> {
        guarded_call(self, ctx).await.map_err(|f| f.describe())
    }
}

/// Who an outcome came from: a binding, or the event's default sink (no id).
#[derive(Clone, Copy)]
struct Who<'a> {
    name: &'a str,
    id: Option<BindingId>,
}

impl Who<'_> {
    const DEFAULT: Who<'static> = Who {
        name: "default",
        id: None,
    };
}

/// Applies an outcome; returns whether the chain stops here.
fn settle(ctx: &mut Context, outcome: Outcome, who: Who<'_>, out: &mut Dispatched) -> bool {
    if who.id.is_some()
        && (outcome.verdict != Verdict::Continue
            || outcome.changes.iter().any(|c| {
                matches!(
                    c,
                    postern_sink_api::Change::SetFate(_)
                        | postern_sink_api::Change::FailRecipient(_)
                )
            }))
    {
        out.decided_by = Some(who.name.to_owned());
    }
    for change in outcome.changes {
        let summary = if tracing::enabled!(tracing::Level::DEBUG) {
            format!("{change:?}")
        } else {
            String::new()
        };
        match apply(ctx, change) {
            Ok(()) => {
                debug!(queue_id = ctx.message.id.as_ref().map(tracing::field::display),
                       binding = who.name, binding_id = who.id.map(tracing::field::display),
                       event = %ctx.event, change = %summary, "change applied")
            }
            Err(reason) => warn!(queue_id = ctx.message.id.as_ref().map(tracing::field::display),
                                 binding = who.name, binding_id = who.id.map(tracing::field::display),
                                 event = %ctx.event, "change refused: {reason}"),
        }
    }
    // Outbound events decide a reply too: the one sent for the remote, or the one acted on.
    let protocol = ctx.event.kind() != EventKind::Transport;
    match outcome.verdict {
        Verdict::Continue => false,
        Verdict::Consume => {
            if protocol && ctx.reply.is_none() {
                ctx.reply = Some(Reply::new(250, Some(EnhancedCode::new(2, 0, 0)), "OK"));
            }
            true
        }
        Verdict::Reply(reply) => {
            ctx.reply = Some(reply);
            true
        }
        Verdict::TempFail(text) => {
            let text = text.unwrap_or_else(|| "Temporary failure, try again later".into());
            if protocol {
                ctx.reply = Some(Reply::new(451, Some(TEMPFAIL), text));
            } else {
                out.transport = TransportVerdict::Defer(text);
            }
            true
        }
        Verdict::Reject(text) => {
            let text = text.unwrap_or_else(|| "Rejected by policy".into());
            if protocol {
                ctx.reply = Some(Reply::new(550, Some(REJECT), text));
            } else {
                out.transport = TransportVerdict::Fail(text);
            }
            true
        }
        Verdict::Disconnect(reply) => {
            if protocol {
                ctx.reply =
                    Some(reply.unwrap_or_else(|| {
                        Reply::new(421, Some(DISCONNECT), "Closing connection")
                    }));
                out.disconnect = true;
            } else {
                out.transport = TransportVerdict::Defer("a sink asked to disconnect".into());
            }
            true
        }
    }
}

/// Calls a binding's sink within its limits: not while its breaker is open, not beyond its
/// calls in flight (waiting for a slot counts against the timeout), and counts its failures.
async fn guarded_call(bound: &Bound, ctx: &Context) -> Result<Outcome, Failure> {
    let isolation = &bound.isolation;
    if isolation.is_open() {
        return Err(Failure::Open);
    }
    let timeout = bound.binding.timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let permit = isolation
        .admit(deadline)
        .await
        .map_err(|Busy(max)| Failure::Busy(max))?;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    let result = call(bound, ctx, remaining, permit)
        .await
        .map_err(|failure| match failure {
            Failure::Timeout(_) => Failure::Timeout(timeout),
            other => other,
        });
    if let Err(failure) = &result
        && failure.is_sink_fault()
        && isolation.failed()
    {
        BindingStats::bump(&bound.stats.breaker_opened);
        if let Some(policy) = bound.binding.breaker {
            warn!(binding = %bound.binding.name, binding_id = %bound.binding.id,
                  cool_down_s = policy.window.as_secs(),
                  "circuit breaker opened: {} failures within {} s", policy.failures,
                  policy.window.as_secs());
        }
    }
    result
}

/// Calls the sink; `permit`, a slot of the binding's concurrency limit, is held until the call
/// is over — for a blocking sink until its thread is done, even after a timeout.
async fn call(
    bound: &Bound,
    ctx: &Context,
    timeout: Duration,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<Outcome, Failure> {
    match &bound.slot {
        Slot::Cached(instance) => call_instance(instance, ctx, timeout, permit).await,
        Slot::PerEvent(factory, spec) => {
            let instance = factory
                .create(spec)
                .map_err(|e| Failure::Error(e.to_string()))?;
            call_instance(&instance, ctx, timeout, permit).await
        }
        Slot::Pool(pool) => {
            // Take a free instance if there is one; otherwise queue on one (spread by session).
            let guard = match pool.iter().find_map(|m| m.try_lock().ok()) {
                Some(guard) => guard,
                None => {
                    let pick = ctx.session.as_ref().map_or(0, |s| s.id as usize) % pool.len();
                    // Waiting for the instance counts against the binding's timeout too.
                    tokio::time::timeout(timeout, pool[pick].lock())
                        .await
                        .map_err(|_| Failure::Timeout(timeout))?
                }
            };
            call_instance(&guard, ctx, timeout, permit).await
        }
    }
}

async fn call_instance(
    instance: &Instance,
    ctx: &Context,
    timeout: Duration,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<Outcome, Failure> {
    match instance {
        Instance::Async(sink) => {
            let call = std::panic::catch_unwind(AssertUnwindSafe(|| sink.on_event(ctx)))
                .map_err(|p| Failure::Panic(panic_text(p.as_ref())))?;
            match call {
                Call::Ready(result) => result.map_err(|e| Failure::Error(e.to_string())),
                Call::Pending(future) => {
                    match tokio::time::timeout(timeout, CatchUnwind(future)).await {
                        Err(_) => Err(Failure::Timeout(timeout)),
                        Ok(Err(text)) => Err(Failure::Panic(text)),
                        Ok(Ok(result)) => result.map_err(|e| Failure::Error(e.to_string())),
                    }
                }
            }
        }
        Instance::Blocking(sink) => {
            let sink = sink.clone();
            let ctx = ctx.clone();
            let (answer, answered) = tokio::sync::oneshot::channel();
            blocking::run(move || {
                let _permit = permit;
                // The caller gave up (timed out) before a thread was free: nothing to do.
                if answer.is_closed() {
                    return;
                }
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| sink.on_event(&ctx)))
                    .map_err(|p| panic_text(p.as_ref()));
                let _ = answer.send(result);
            });
            // On a timeout the blocking thread runs on; its late answer is dropped.
            match tokio::time::timeout(timeout, answered).await {
                Err(_) => Err(Failure::Timeout(timeout)),
                Ok(Err(_)) => Err(Failure::Error(
                    "the sink's thread ended without an answer".into(),
                )),
                Ok(Ok(Err(text))) => Err(Failure::Panic(text)),
                Ok(Ok(Ok(result))) => result.map_err(|e| Failure::Error(e.to_string())),
            }
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Polls a sink's future inside `catch_unwind`, so a panic in an async sink becomes a failure of
/// that call instead of the session's task.
struct CatchUnwind<'a>(Pin<Box<dyn Future<Output = SinkResult> + Send + 'a>>);

impl Future for CatchUnwind<'_> {
    type Output = Result<SinkResult, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let future = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(p) => Poll::Ready(Err(panic_text(p.as_ref()))),
        }
    }
}
