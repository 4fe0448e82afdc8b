//! Postern's configuration: the TOML file, its validation, and the default compiled into the
//! binary.
//!
//! ```
//! use postern_config::Config;
//!
//! let config = Config::parse(
//!     "[[listener]]\naddress = \"127.0.0.1:2525\"\n\n\
//!      [[domain]]\nname = \"example.org\"\nusers = [\"alice\"]\n",
//!     postern_config::Source::Embedded,
//! )
//! .unwrap();
//! assert!(config.local_domain("Example.ORG").unwrap().accepts("Alice"));
//! ```
//!
//! # The file
//! Every key is optional except those marked *required*; unknown keys are errors.
//!
//! ```toml
//! hostname = "mx.example.com"    # default: the system host name, else "localhost"
//! data_dir = "postern-data"      # default; relative to the working directory
//!
//! [[listener]]                   # at least one
//! address = "127.0.0.1:2525"     # required: IP:port ("[::1]:2525" for IPv6)
//! mode = "smtp"                  # "smtp", "submission" (STARTTLS and AUTH before MAIL)
//!                                # or "submissions" (implicit TLS, AUTH before MAIL)
//!
//! [[domain]]                     # local domains, delivered to local mailboxes
//! name = "localhost"             # required; stored lower-case; duplicates are errors
//! users = "*"                    # required: "*" (any local part) or ["alice", "bob"]
//! aliases = "aliases"            # Postfix aliases(5) format; relative to data_dir; default none
//!
//! [categorizer]
//! max_depth = 20                 # aliases nested deeper fail with 5.4.6
//! recipient_delimiter = "+"      # bob+tag@ is delivered to bob@; "" turns it off
//!
//! [relay]
//! networks = ["192.168.0.0/16", "::1/128"]  # may relay to non-local domains; default none
//!
//! [[route]]
//! domain = "example.org"         # required: "*", "example.org" or "*.example.org"
//! smarthost = "relay.example.net:587"  # required: host[:port] or [ip-literal]:port; port 25
//!                                # (also "smtp:host:port", "lmtp:host[:port]" (port 24) and
//!                                # "lmtp:unix:PATH", a socket relative to data_dir)
//!
//! [limits]
//! max_message_size = "25M"       # octets, or with k/K, M, G, T or KiB… (powers of 1024)
//! max_recipients = 100           # per transaction
//! max_errors = 10                # protocol errors before 421 and close
//! command_timeout = "5m"         # "250ms", "30s", "5m", "1h" or integer seconds
//! data_timeout = "10m"           # the whole DATA or BDAT transfer
//! max_connections = 10000
//! max_connections_per_ip = 200
//! shutdown_grace = "30s"         # how long SIGTERM waits for transactions in flight
//! memory_budget = "512M"         # message content in memory, all sessions together
//! spill_threshold = "1M"         # a message being received moves to disk past this size
//! message_rate_per_ip = 60       # messages a minute from one address; default: no limit
//! recipient_rate_per_ip = 300    # recipients a minute from one address; default: no limit
//! message_rate_per_user = 60     # the same per authenticated user; default: no limit
//! recipient_rate_per_user = 300
//! greeting_delay = "0s"          # talking before the greeting gets 554 and a close
//!
//! [auth]
//! allow_plaintext = false        # offer AUTH without TLS (tests, trusted networks)
//! max_failures = 5               # failed AUTH from one address before a lockout
//! failure_delay = "1s"           # wait before 535, doubling with each further failure
//! lockout = "15m"                # a locked-out address gets 454 4.7.0
//!
//! [bindings]
//! file = "bindings.toml"         # relative to data_dir; an absolute path stays absolute
//!
//! [log]
//! format = "text"                # "text" or "json"
//! level = "info"                 # a tracing EnvFilter directive
//! decisions_max_size = "64M"     # rotate DATA/log/decisions.jsonl past this size
//! decisions_keep = 5             # rotated decision logs kept
//!
//! [tls]                          # default: a self-signed certificate made in data_dir/tls/
//! certificate = "tls/cert.pem"   # PEM chain, leaf first; relative to data_dir; with `key`
//! key = "tls/key.pem"            # PEM private key; reloaded when either file changes
//!
//! [queue]
//! segment_size = "32M"           # one spool segment file (and each pre-written spare)
//! disk_reserve = "5%"            # or "1GiB": below it, no new mail; default: max(1 GiB, 5%)
//! ```
//!
//! The values shown are the defaults, except `hostname`, `relay.networks` and the route. The
//! embedded default ([`EMBEDDED`]) listens on `127.0.0.1:2525` and has the local domain
//! `localhost` with any user, no relay networks and no routes.
//!
//! # Errors
//! Each [`ConfigError`] displays as `FILE:LINE:COLUMN: field `FIELD`: MESSAGE`, where FILE is
//! the path as given or `<embedded default>` and FIELD a dotted path such as
//! `limits.command_timeout` or `domain[1].users` (indexes count from 0). A TOML syntax error or
//! a shape error (unknown key, wrong type, missing required key) stops parsing; after that,
//! validation reports every problem it finds, gathered in [`ConfigErrors`].
//!
//! # Layout
//! - `aliases`: a domain's aliases file (Postfix's format), re-read when it changes.
//! - `categorize`: `[categorizer]` and each domain's `aliases` key.
//! - `model`: the validated [`Config`] and its parts, the lookups the server makes
//!   ([`Config::local_domain`], [`Config::is_relay_client`], [`Config::route_for`]) and
//!   command-line [`Overrides`].
//! - `parse`: text to [`Config`] — TOML syntax, then shape, then validation.
//! - `raw`: the file as written — serde structs keeping the span of every value.
//! - `validate`: defaults, checks, and the gathering of every problem.
//! - `inbound`: listener modes and `[tls]`; `outbound`: `[dns]`, `[delivery]`, route TLS.
//! - `names`: the syntax of domains, domain patterns, local parts, smarthosts and networks.
//! - `units`: durations and sizes.
//! - `security`: `[auth]` and the abuse limits (rates, greeting delay).
//! - `admin`: `[admin]`, the admin API's listener.
//! - `locate`: the field at a byte offset, for the errors `toml` reports by span only.
//! - `error`: [`ConfigError`], [`ConfigErrors`], [`Position`].
//!
//! # Design
//! The file is read in two layers, as the wire formats elsewhere in Postern: `raw` mirrors the
//! TOML (spans included) and `model` is what the server uses, so a renamed key changes one
//! struct and one function. Validation never stops at the first problem: a bad value is
//! recorded and replaced by its default so that the checks after it still run, and the
//! configuration is handed out only when nothing was recorded. Names are stored in the form they
//! are compared in (domains and local parts lower-case, networks with host bits cleared), so
//! lookups compare without allocating. The embedded default is parsed like any file; a built-in
//! copy of it, kept equal by a test, means that [`Config::embedded_default`] cannot fail.

#![warn(missing_docs)]

mod admin;
mod aliases;
mod categorize;
mod error;
mod inbound;
mod locate;
mod model;
mod names;
mod outbound;
mod parse;
mod raw;
mod security;
mod units;
mod validate;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub use admin::{Admin, DEFAULT_ADMIN_PORT, admin_address};
pub use aliases::{AliasError, AliasFile, Aliases};
pub use error::{ConfigError, ConfigErrors, Position};
pub use inbound::{ListenerMode, Tls, TlsFiles};
pub use model::{
    Categorizer, Config, Delivery, DiskReserve, Dns, DomainPattern, HopProtocol, Limits, Listener,
    LocalDomain, Log, LogFormat, Overrides, Queue, Route, RouteTls, Source, Users,
};
pub use security::Auth;

/// The embedded default configuration, a commented TOML file; `postern serve` runs on it when
/// no configuration file is given.
pub const EMBEDDED: &str = include_str!("embedded.toml");

/// Parses a duration given on the command line: digits and a unit (`250ms`, `30s`, `5m`, `1h`);
/// the error says how to write one there.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    units::duration_option(text)
}

/// Parses a size: digits, optionally followed by `k`, `M` or `G` in either case (powers of 1024),
/// as the configuration and binding rules write it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    units::size(&units::Amount::Text(text.to_owned()))
}

/// Checks a log level (a `tracing` `EnvFilter` directive) given outside the file: the error says
/// what is wrong with it.
pub fn check_log_level(text: &str) -> Result<(), String> {
    validate::log_filter(text)
}

impl Config {
    /// The embedded default ([`EMBEDDED`]), with the system host name.
    pub fn embedded_default() -> Config {
        // The parse cannot fail (a test proves it); the built-in copy only spares an `expect`.
        parse::parse(EMBEDDED, Source::Embedded).unwrap_or_else(|_| built_in_default())
    }

    /// Reads, parses and validates the file at `path`. An unreadable file is an error naming it.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        parse::load(path)
    }

    /// Parses and validates a configuration text; `origin` names it in errors and is kept in
    /// [`Config::source`].
    pub fn parse(text: &str, origin: Source) -> Result<Config, ConfigErrors> {
        parse::parse(text, origin)
    }
}

/// What [`EMBEDDED`] says, built in code.
fn built_in_default() -> Config {
    let data_dir = PathBuf::from(validate::DEFAULT_DATA_DIR);
    Config {
        hostname: validate::system_hostname(),
        bindings_file: data_dir.join(validate::DEFAULT_BINDINGS_FILE),
        data_dir,
        listeners: vec![Listener {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 2525)),
            mode: ListenerMode::Smtp,
        }],
        domains: vec![LocalDomain {
            name: "localhost".to_owned(),
            users: Users::Any,
            aliases: None,
            recipient_delimiter: "+".to_owned(),
        }],
        relay_networks: Vec::new(),
        routes: Vec::new(),
        limits: Limits::default(),
        log: Log::default(),
        dns: Dns::default(),
        delivery: Delivery::default(),
        queue: Queue::default(),
        tls: Tls::default(),
        auth: Auth::default(),
        categorizer: Categorizer::default(),
        admin: Admin::default(),
        source: Source::Embedded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_to_the_built_in_copy() {
        let parsed = Config::parse(EMBEDDED, Source::Embedded);
        assert_eq!(parsed, Ok(built_in_default()));
    }
}
