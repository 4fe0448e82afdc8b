//! Postern's SMTP listeners and inbound session. Every command is an `inbound:VERB` event whose
//! default sink is the RFC 5321 behaviour of that verb.
//!
//! # Layout
//! - `listener`: accepting connections, connection limits, graceful shutdown.
//! - `session`: the session state machine: read, dispatch, reply.
//! - `state`: the session's state apart from its stream, with its phase (greeting, command,
//!   data, bdat, auth, discarding, closing); staged changes take effect there.
//! - `input`: the bounded input buffer; `dot`: the DATA decoder (dot-stuffing, smuggling) and
//!   the BDAT content check.
//! - `budget`: the memory budget of message content across sessions; `intake`: a message's
//!   content while it arrives, in memory or spilled to an unnamed file.
//! - `defaults`: the default sink of each `inbound:VERB` event, one module per verb:
//!   `ehlo`, `mail`, `rcpt`, `data`, `bdat`, and `minor` (RSET, NOOP, QUIT, VRFY, HELP, …);
//!   `auth`: AUTH, its SASL exchange and its default sink.
//! - `fuzzing`: entry points for the fuzz targets (`fuzz/`); not an API.
//! - `users`: the user store (`DATA/users.toml`, argon2id), shared with `postern user`.
//! - `guard`: counters across sessions: rate limits (token buckets) and AUTH lockouts.
//! - `received`: the Received: trace field; `reply`: every reply text the session sends.
//! - `tls`: the certificate (configured, or self-signed in `DATA/tls/`) and its reload;
//!   `conn`: the connection in clear or encrypted; `starttls`: STARTTLS and the implicit-TLS
//!   handshake; `role`: what a listener's mode requires before MAIL.
//!
//! # Design
//! The session is generic over its stream. Replies are buffered and written when no complete
//! command is waiting (RFC 2920 pipelining). A message is held in memory while it arrives, up
//! to the spill threshold and under a memory budget shared by all sessions; past the threshold
//! it goes to an unnamed file, so what clients send cannot grow the server's memory past the
//! budget (a transfer that cannot get its first share is answered 452 4.3.1). The size limit
//! bounds what is kept; the excess is counted, not kept. The complete message is handed to
//! the queue, whose group commit makes it durable before the 250. The end of DATA is found by
//! a decoder that treats only `<CRLF>.<CRLF>` as the end and refuses bare CR, bare LF and NUL,
//! so no input can split one message into two (SMTP smuggling). The command timeout bounds a
//! whole command line, so a client cannot hold a session by trickling octets.

#![warn(missing_docs)]

mod auth;
mod bdat;
mod budget;
mod conn;
mod data;
mod defaults;
mod dot;
mod ehlo;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod input;
mod intake;
pub mod listener;
mod mail;
mod minor;
mod rcpt;
mod received;
mod reply;
mod role;
pub mod session;
mod starttls;
mod state;
#[cfg(test)]
mod tests;
pub mod tls;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;

use postern_config::Config;
use postern_mailmsg::{MailMsg, QueueIdGenerator};
use postern_metrics::Metrics;
use postern_queue::Spool;
use postern_sink_host::Host;
use tokio::sync::{mpsc, watch};

pub use listener::{Connections, bind, serve};
pub use tls::{Tls, TlsError};

use crate::budget::Budget;

/// The folder, in the data folder, of messages being received that passed the spill threshold.
pub(crate) const SPILL_DIR: &str = "incoming";
pub use session::End;

/// Everything sessions share.
pub struct Server {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The binding registry.
    pub host: Arc<Host>,
    /// The durable queue.
    pub spool: Spool,
    /// Makes queue ids.
    pub ids: Arc<QueueIdGenerator>,
    /// The name of this server in replies and trace fields.
    pub hostname: String,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Open connections.
    pub connections: Arc<Connections>,
    /// Where accepted (durable) messages go: the transport.
    inbox: mpsc::Sender<MailMsg>,
    /// Message content in memory, across all sessions.
    pub(crate) budget: Budget,
    /// Where messages past the spill threshold are kept while they arrive (unnamed files).
    pub(crate) spill_dir: PathBuf,
    /// The certificate for STARTTLS and implicit TLS; without it STARTTLS is not offered.
    pub(crate) tls: Option<Arc<Tls>>,
    /// AUTH failures per client address.
    pub(crate) lockouts: guard::Lockouts,
    /// Messages per client address and per user (`[limits] message_rate_*`).
    pub(crate) message_rates: guard::Rates,
    /// Recipients per client address and per user (`[limits] recipient_rate_*`).
    pub(crate) recipient_rates: guard::Rates,
    /// Where connections, commands, replies and accepted messages are counted.
    pub(crate) metrics: Arc<Metrics>,
}

impl Server {
    /// Assembles the shared state; accepted messages are sent to `inbox`.
    pub fn new(
        config: Arc<Config>,
        host: Arc<Host>,
        spool: Spool,
        ids: Arc<QueueIdGenerator>,
        shutdown: watch::Receiver<bool>,
        inbox: mpsc::Sender<MailMsg>,
    ) -> Self {
        Self {
            budget: Budget::new(config.limits.memory_budget),
            spill_dir: config.data_dir.join(SPILL_DIR),
            hostname: config.hostname.clone(),
            config,
            host,
            spool,
            ids,
            shutdown,
            connections: Arc::new(Connections::default()),
            inbox,
            tls: None,
            lockouts: guard::Lockouts::default(),
            message_rates: guard::Rates::default(),
            recipient_rates: guard::Rates::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Counts into `metrics` (the server's own; without it, into a private set nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Offers STARTTLS and serves implicit-TLS listeners with this certificate.
    pub fn with_tls(mut self, tls: Arc<Tls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Hands a durable message to the transport, waiting for room when the transport is
    /// behind (the channel is bounded). If the transport is gone (shutting down) the message
    /// stays in the queue and recovery delivers it at the next start.
    pub(crate) async fn submit(&self, msg: MailMsg) {
        let _ = self.inbox.send(msg).await;
    }
}
