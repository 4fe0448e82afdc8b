//! The sink host: the registry of bindings, their rules, and the dispatcher that calls sinks.
//!
//! # Layout
//! - [`binding`]: [`Binding`] and its fields (priority levels, sink references, policies).
//! - [`registry`]: the registry file (`bindings.toml`), read and written atomically.
//! - [`edit`]: a validated change of the registry file under its lock (the CLI's and the API's).
//! - [`rule`]: the rule language that filters when a binding fires.
//! - [`catalog`]: the sink kinds this binary can make.
//! - [`snapshot`]: bindings compiled into one ordered chain per event.
//! - [`dispatch`]: calling a chain — timeouts, panic isolation, `on_error`, shadow mode.
//! - `isolation`: per-binding limits — calls in flight and the circuit breaker.
//! - `blocking`: the bounded thread pool of blocking sinks, apart from tokio's.
//! - `apply`: applying sinks' changes to the context.
//! - [`host`]: the snapshot in force, reloaded when the file changes.
//! - [`stats`]: per-binding counters.
//!
//! # Design
//! Everything that can be decided once is decided when the registry loads: rules are parsed,
//! cached sinks made, chains sorted by (priority, registration order) with the default sink at
//! 16384. A dispatch walks a slice and allocates nothing per binding that does not fire. The
//! default behaviour of an event is an entry of the chain like any binding, so a sink before it
//! can veto it and a sink after it sees and may replace its reply. Cross-cutting concerns
//! (timeouts, panics, failure policy, shadow mode, concurrency limits, circuit breakers, counters)
//! live in one function. Blocking sinks run on a pool of their own, so a slow one cannot take
//! the threads the queue and the mail stores use.

#![warn(missing_docs)]

mod apply;
pub mod binding;
mod blocking;
pub mod catalog;
pub mod dispatch;
pub mod edit;
pub mod host;
mod isolation;
pub mod registry;
pub mod rule;
pub mod snapshot;
pub mod stats;

pub use binding::{Binding, BindingId, BreakerPolicy, Mode, OnError, SinkRef, priority};
pub use blocking::THREADS as BLOCKING_THREADS;
pub use catalog::Catalog;
pub use dispatch::{DefaultSink, Dispatched, NoDefault, TransportVerdict};
pub use host::{Host, LoadError};
pub use snapshot::{Bound, CompileError, Entry, Snapshot};
pub use stats::{BindingStats, StatsSnapshot};
