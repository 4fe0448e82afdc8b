//! The milter sink kind: `milter:inet:PORT@HOST`, `milter:inet:HOST:PORT` or `milter:unix:PATH`
//! binds a mail filter that speaks the Sendmail milter protocol (version 6) — OpenDKIM,
//! clamav-milter, rspamd's proxy, spamass-milter… — with Postern as the MTA side.
//!
//! # Layout
//! - `wire`: frames (length, command byte, data), bounds, and the protocol's constants.
//! - `address`: the milter's address and connecting to it.
//! - `connection`: option negotiation and sending steps as negotiated (skipped, unanswered).
//! - `answer`: a milter's replies and modifications, and header value normalisation.
//! - `macros`: the Sendmail macros sent at each stage.
//! - `replay`: the end-of-data conversation and its mapping onto Postern's outcome.
//! - `steps`: the step mode, one connection per session driven across protocol events.
//! - `open`: the step connections open, process-wide, and their reaper.
//! - `error`: why a conversation failed.
//!
//! # Design
//! The protocol is written by hand over tokio. The Rust crates that exist are libmilter
//! bindings or the milter side (indymilter and friends, several under the GPL), and the one
//! MTA-side client (`miltr-client`) says of itself that it is a bare client for trying
//! behaviour out: it does not enforce what was negotiated and needs `futures` compat layers.
//! Postern needs bounded frames, negotiated steps honoured exactly, and every reply mapped onto
//! its own outcome, which is a few hundred lines.
//!
//! A milter bound to `end-of-data` gets the whole conversation replayed at once on one fresh
//! connection, like Postfix's after-queue milters; its answers become one [`Outcome`]: the
//! verdict from its final reply and the changes from its modifications. Any failure — the
//! milter is down, closes early, sends garbage or a frame over the limit — is an error, so the
//! binding's `on_error` policy applies.
//!
//! A milter bound to protocol events (`session-start`, `inbound:HELO`/`EHLO`, `inbound:MAIL`,
//! `inbound:RCPT`, `session-end`) is driven step by step on one connection per session, shared
//! by every binding of the same milter address (see `steps`). Steps not yet sent are sent
//! first, so the milter always sees a well-formed conversation. At `end-of-data` a session that
//! already has a step connection to the milter finishes its message there; otherwise the
//! message is replayed on a fresh connection.
//!
//! [`Outcome`]: postern_sink_api::Outcome

mod address;
mod answer;
mod connection;
mod error;
mod macros;
mod open;
mod replay;
mod steps;
mod wire;

use std::sync::Arc;

use postern_sink_api::{Call, Context, Event, Instance, Sink, SinkError, SinkFactory, SinkSpec};

pub use error::MilterError;

use address::Address;

/// The name sent as `{daemon_name}` unless the binding sets one.
const DEFAULT_DAEMON_NAME: &str = "postern";

/// The factory of the `milter:` kind.
pub struct Factory;

/// The factory of the `milter:` kind, for the catalog.
pub fn factory() -> Arc<dyn SinkFactory> {
    Arc::new(Factory)
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "milter"
    }

    fn summary(&self) -> &'static str {
        "a Sendmail milter (protocol 6) at inet:PORT@HOST, inet:HOST:PORT or unix:PATH"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["daemon_name"])
    }

    fn fits(&self, event: &Event) -> bool {
        match event {
            Event::SessionStart | Event::EndOfData | Event::SessionEnd | Event::Inbound(None) => {
                true
            }
            Event::Inbound(Some(verb)) => {
                matches!(verb.as_str(), "HELO" | "EHLO" | "MAIL" | "RCPT")
            }
            _ => false,
        }
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let address = Address::parse(&spec.target).map_err(|e| SinkError::Config(e.to_string()))?;
        let daemon_name = spec
            .properties
            .get_str("daemon_name")
            .unwrap_or(DEFAULT_DAEMON_NAME)
            .to_owned();
        if daemon_name.contains('\0') {
            return Err(SinkError::Config("property `daemon_name` has a NUL".into()));
        }
        Ok(Instance::Async(Arc::new(Milter {
            address,
            daemon_name,
        })))
    }
}

/// One binding's milter.
struct Milter {
    address: Address,
    daemon_name: String,
}

impl Sink for Milter {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(async move {
            let session = ctx.session.as_ref().map(|s| s.id);
            let stepped = match (steps::Step::of(ctx), session) {
                (Some(steps::Step::Message), Some(id)) if !open::is_open(&self.address, id) => None,
                (Some(step), Some(id)) => Some((step, id)),
                _ => None,
            };
            let result = match stepped {
                Some((step, id)) => {
                    steps::drive(&self.address, id, step, ctx, &self.daemon_name).await
                }
                None if ctx.event == Event::EndOfData => {
                    replay::replay(&self.address, ctx, &self.daemon_name).await
                }
                None => Ok(postern_sink_api::Outcome::next()),
            };
            result.map_err(|e| SinkError::Failed(format!("milter {}: {e}", self.address)))
        })
    }
}
