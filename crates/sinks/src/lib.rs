//! Postern's built-in sinks, bound as `builtin:NAME`. Each has a page in `docs/sinks/`.
//!
//! # Layout
//! - `reply`: answer a protocol event (access lists, new SMTP commands).
//! - `ehlo_keyword`: advertise a keyword in the EHLO reply.
//! - `add_header`: add a header field, with `${…}` variables.
//! - `set_fate`: abort, badmail, quarantine or hold a message.
//! - `log`: log the event and its context.
//! - `delay`: wait before answering (tarpitting), on the async runtime or a blocking thread.
//! - `fault`: fail, panic or hang on purpose, to try `on_error` policies and timeouts.
//! - `command`: replace or add a command the outbound client sends.
//! - `hosts`: supply the hosts of a next hop at `dns-resolve`.
//! - `props`: reading typed properties with errors that name the property.
//!
//! # Design
//! A built-in sink is a factory that checks its properties once, when the registry loads, and
//! makes an instance that does no parsing per event. Each factory declares the property keys it
//! reads (`SinkFactory::properties`), so that the host refuses a binding with a key the sink
//! would ignore, and a one-line summary for `postern binding sinks`. Sinks that answer at once return
//! `Call::Ready`, which costs no allocation.

#![warn(missing_docs)]

mod add_header;
mod command;
mod delay;
mod ehlo_keyword;
mod fault;
mod hosts;
mod log;
mod props;
mod reply;
mod set_fate;

use std::sync::Arc;

use postern_sink_api::SinkFactory;

/// Every built-in sink factory.
pub fn all() -> Vec<Arc<dyn SinkFactory>> {
    vec![
        Arc::new(reply::Factory),
        Arc::new(ehlo_keyword::Factory),
        Arc::new(add_header::Factory),
        Arc::new(set_fate::Factory),
        Arc::new(log::Factory),
        Arc::new(delay::Factory),
        Arc::new(fault::Factory),
        Arc::new(command::Factory),
        Arc::new(hosts::Factory),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_sink_says_what_it_does_and_which_properties_it_reads() {
        for factory in all() {
            assert!(!factory.summary().is_empty(), "{}", factory.name());
            assert!(factory.properties().is_some(), "{}", factory.name());
        }
    }
}
