//! Postern's built-in sinks, bound as `builtin:NAME`. Each has a page in `docs/sinks/`.
//!
//! # Layout
//! - `reply`: answer a protocol event (access lists, new SMTP commands).
//! - `ehlo_keyword`: advertise a keyword in the EHLO reply.
//! - `add_header`: add a header field, with `${…}` variables.
//! - `list_bounces`: bounces to a list counted per member in a state file.
//! - `list_subscribe`: subscribing and unsubscribing by mail, with a confirmation round trip.
//! - `mailing_list`: mailing lists from a TOML file, expanded at `categorize`.
//! - `set_fate`: abort, badmail, quarantine or hold a message.
//! - `log`: log the event and its context.
//! - `delay`: wait before answering (tarpitting), on the async runtime or a blocking thread.
//! - `fault`: fail, panic or hang on purpose, to try `on_error` policies and timeouts.
//! - `command`: replace or add a command the outbound client sends.
//! - `hosts`: supply the hosts of a next hop at `dns-resolve`.
//! - `spf`, `dkim_verify`, `arc_verify`, `dmarc`: mail authentication checks, each adding its
//!   result to one `Authentication-Results:` field and acting on it by a policy property.
//! - `dkim_sign`, `arc_seal`: DKIM signing and ARC sealing.
//! - `mailauth`: what those share: the `mail-auth` authenticator on the `[dns] servers`
//!   resolver ([`Env`]), the `Authentication-Results:` writer, policies, keys.
//! - `archive`: a copy of each message in a Maildir or mbox archive per day, with a retention.
//! - `disclaimer`: a text and HTML footer spliced into the body parts; signed mail left alone.
//! - `clamav`: virus scanning with clamd over INSTREAM.
//! - `xclient`, `xforward`: Postfix's XCLIENT and XFORWARD for trusted proxies (`forward`:
//!   what they share).
//! - `props`: reading typed properties with errors that name the property.
//! - `route_table`: choose next hops at `route` from a TOML table of rules, reloaded when it
//!   changes.
//! - `hold_queue`: hold messages for approval or until a delivery window opens.
//! - `data_dir`: the data folder, where relative file properties are found.
//!
//! # Design
//! A built-in sink is a factory that checks its properties once, when the registry loads, and
//! makes an instance that does no parsing per event. Each factory declares the property keys it
//! reads (`SinkFactory::properties`), so that the host refuses a binding with a key the sink
//! would ignore, and a one-line summary for `postern binding sinks`. Sinks that answer at once return
//! `Call::Ready`, which costs no allocation.

#![warn(missing_docs)]

mod add_header;
mod arc_seal;
mod arc_verify;
mod archive;
mod clamav;
mod command;
mod data_dir;
mod delay;
mod disclaimer;
mod dkim_sign;
mod dkim_verify;
mod dmarc;
mod ehlo_keyword;
mod fault;
mod forward;
mod hold_queue;
mod hosts;
mod list_bounces;
mod list_subscribe;
mod log;
mod mailauth;
mod mailing_list;
mod props;
mod reply;
mod route_table;
mod set_fate;
mod spf;
mod xclient;
mod xforward;

use std::sync::Arc;

use postern_sink_api::SinkFactory;

pub use data_dir::set_data_dir;
pub use mailauth::Env;

/// Every built-in sink factory, for a server called `localhost` on the system's resolver: enough
/// to check bindings; a server uses [`with_env`].
pub fn all() -> Vec<Arc<dyn SinkFactory>> {
    with_env(Env::new("localhost", Vec::new()))
}

/// Every built-in sink factory; the mail authentication sinks use `env`'s name and resolver.
pub fn with_env(env: Arc<Env>) -> Vec<Arc<dyn SinkFactory>> {
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
        Arc::new(route_table::Factory),
        Arc::new(hold_queue::Factory),
        Arc::new(archive::Factory),
        Arc::new(disclaimer::Factory),
        Arc::new(spf::Factory(env.clone())),
        Arc::new(dkim_verify::Factory(env.clone())),
        Arc::new(arc_verify::Factory(env.clone())),
        Arc::new(dmarc::Factory(env.clone())),
        Arc::new(dkim_sign::Factory),
        Arc::new(mailing_list::Factory),
        Arc::new(arc_seal::Factory(env)),
        Arc::new(clamav::Factory),
        Arc::new(xclient::Factory),
        Arc::new(xforward::Factory),
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
