//! Everything a Postern sink author needs: the events a sink can be bound to, the context it is
//! called with, the outcome it returns, and the traits it implements.
//!
//! # Layout
//! - [`event`]: [`Event`] and [`Verb`], their names in bindings and the original aliases.
//! - [`reply`]: [`Reply`], an SMTP reply as a value.
//! - [`context`]: [`Context`], what a sink sees: event, command, session, property bags, the
//!   MailMsg so far and the reply about to be sent.
//! - [`outcome`]: [`Outcome`], a [`Verdict`] and a list of [`Change`]s.
//! - [`sink`]: the [`Sink`] (async) and [`BlockingSink`] traits and their [`SinkFactory`].
//!
//! # Design
//! A sink never mutates the server: it returns changes, and the host applies them in order and
//! records which binding made each one. That is what gives native, script, milter and HTTP sinks
//! the same power. The context is built of shared (`Arc`) parts so that a blocking sink can take
//! it to another thread; an async sink that has its answer at once returns [`Call::Ready`] and
//! costs no allocation.

#![warn(missing_docs)]

pub mod context;
pub mod event;
pub mod outcome;
pub mod reply;
pub mod sink;

pub use context::{Command, Context, Peer, SessionInfo};
pub use event::{Event, EventKind, OutboundStep, UnknownEvent, Verb};
pub use outcome::{Change, Outcome, Scope, Verdict};
pub use reply::{EnhancedCode, Reply};
pub use sink::{
    BlockingSink, Call, Concurrency, Instance, Sink, SinkError, SinkFactory, SinkResult, SinkSpec,
};

pub use postern_mailmsg as mailmsg;
