//! The sink traits, and the factory that makes a sink from its binding.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use postern_mailmsg::Properties;

use crate::context::Context;
use crate::event::Event;
use crate::outcome::Outcome;

/// Why a sink could not be made or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The binding's properties do not make a working sink (reported when the registry loads).
    #[error("bad configuration: {0}")]
    Config(String),
    /// The sink does not fit the event it is bound to.
    #[error("sink {sink} does not fit event {event}")]
    WrongEvent {
        /// The sink.
        sink: String,
        /// The event.
        event: String,
    },
    /// The sink failed while handling an event.
    #[error("{0}")]
    Failed(String),
}

/// The result of one call.
pub type SinkResult = Result<Outcome, SinkError>;

/// The answer of an async sink: ready at once (no allocation), or a future.
pub enum Call<'a> {
    /// The outcome is known.
    Ready(SinkResult),
    /// The outcome comes later.
    Pending(Pin<Box<dyn Future<Output = SinkResult> + Send + 'a>>),
}

impl<'a> Call<'a> {
    /// Wraps a future.
    pub fn pending(future: impl Future<Output = SinkResult> + Send + 'a) -> Self {
        Self::Pending(Box::pin(future))
    }
}

/// A sink that runs on the server's async runtime. It must not block: a sink that does blocking
/// I/O or heavy computation implements [`BlockingSink`] instead.
pub trait Sink: Send + Sync {
    /// Handles one event.
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a>;
}

/// A sink whose calls may block; the host runs them on a blocking thread pool so that they never
/// stall other sessions.
pub trait BlockingSink: Send + Sync {
    /// Handles one event.
    fn on_event(&self, ctx: &Context) -> SinkResult;
}

/// A made sink.
#[derive(Clone)]
pub enum Instance {
    /// Runs on the async runtime.
    Async(Arc<dyn Sink>),
    /// Runs on the blocking pool.
    Blocking(Arc<dyn BlockingSink>),
}

/// Whether one instance may serve concurrent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    /// One instance serves any number of calls at once.
    #[default]
    Shared,
    /// Calls to one instance must not overlap (the original's apartment model); the host keeps
    /// a small pool of instances and serializes the calls of each.
    Serialized,
}

/// What a factory is given to make a sink: the binding it serves.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// The binding's id.
    pub binding_id: String,
    /// The binding's display name.
    pub binding_name: String,
    /// The event the binding names.
    pub event: Event,
    /// The binding's properties.
    pub properties: Properties,
    /// What the binding's sink names after its kind: the built-in or native sink's name, the
    /// script's path (`script:PATH`), the milter's address (`milter:ADDRESS`), the hook's URL
    /// (`http:URL`, or the `http://…` / `https://…` URL itself).
    pub target: String,
}

/// Makes sinks of one kind (`builtin:reply`, `rust:my-filter`, …), or of a whole kind whose
/// target varies by binding (`script:PATH`, `milter:ADDRESS`, `http:URL`: one factory each, which
/// reads [`SinkSpec::target`]).
pub trait SinkFactory: Send + Sync {
    /// The name after the `builtin:` or `rust:` prefix (for a factory of a whole kind: the
    /// kind, `script`, `milter` or `http`).
    fn name(&self) -> &'static str;

    /// One line saying what the sink does, for `postern binding sinks`.
    fn summary(&self) -> &'static str {
        ""
    }

    /// The property keys the sink reads. A binding that sets any other key is refused when the
    /// registry loads (a misspelt key would otherwise be ignored without a word); `None`, the
    /// default, lets a sink take any key.
    fn properties(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Whether instances may serve concurrent calls.
    fn concurrency(&self) -> Concurrency {
        Concurrency::Shared
    }

    /// Whether a binding of this sink to a command verb (`inbound:VERB`) is also called at
    /// `inbound:EHLO`, in the same place of that chain, where it may advertise the verb with
    /// `Change::AddEhloKeyword`: a command extension is then one binding, not two.
    fn also_at_ehlo(&self) -> bool {
        false
    }

    /// Whether the sink can serve `event`; a binding to an event it does not fit is refused
    /// when the registry loads.
    fn fits(&self, event: &Event) -> bool {
        let _ = event;
        true
    }

    /// Makes an instance for a binding. Errors here are configuration errors, reported with the
    /// binding's name when the registry loads.
    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError>;
}
