//! The session's state apart from its stream: its phase, who the client is, the transaction so
//! far, the registry snapshot it runs on, and how staged changes take effect.

use std::sync::Arc;
use std::time::Duration;

use postern_config::ListenerMode;
use postern_mailmsg::{MailMsg, PropertyBag};
use postern_sink_api::{Command, Context, Event, SessionInfo};
use postern_sink_host::Snapshot;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Server;
use crate::defaults::Staged;
use crate::dot::Checker;
use crate::intake::Intake;

/// Where a session is in the protocol: what the input it reads next is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// session-start runs; the greeting (or refusal) is not sent yet.
    Greeting,
    /// Reading command lines.
    Command,
    /// Reading a message's text after 354, up to `<CRLF>.<CRLF>`.
    Data,
    /// Reading a BDAT chunk that is kept.
    Bdat,
    /// An AUTH exchange: reading the client's responses, not commands.
    Auth,
    /// Reading input only to throw it away: a refused BDAT chunk, the rest of an over-long
    /// command line.
    Discarding,
    /// The session has ended: the last replies go out and session-end runs.
    Closing,
}

/// A session's state apart from its stream.
pub(crate) struct State {
    /// Changed by the session as it moves between reading commands, message text and chunks.
    pub(crate) phase: Phase,
    pub(crate) server: Arc<Server>,
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) info: Arc<SessionInfo>,
    pub(crate) props: PropertyBag,
    /// The transaction so far: sender, recipients (no content until the end of data).
    pub(crate) msg: Arc<MailMsg>,
    /// BDAT chunks received so far in this transaction.
    pub(crate) chunks: Option<Chunks>,
    pub(crate) errors: u32,
    /// The transaction's size limit when a max-size sink lifted the configured one.
    pub(crate) size_limit: Option<u64>,
    /// The role of the listener the session came in on: what it requires before MAIL.
    pub(crate) mode: ListenerMode,
    /// The TLS version and cipher once encrypted (`TLSv1.3 TLS_AES_256_GCM_SHA384`), for the
    /// Received: field and the message's record.
    pub(crate) tls: Option<String>,
}

/// A BDAT transfer in progress.
pub(crate) struct Chunks {
    /// The content kept so far (up to the size limit).
    pub(crate) content: Intake,
    /// Octets received, kept or not.
    pub(crate) seen: u64,
    /// The content rules DATA applies, checked as the chunks arrive.
    pub(crate) checker: Checker,
}

impl Chunks {
    pub(crate) fn new(content: Intake) -> Self {
        Self {
            content,
            seen: 0,
            checker: Checker::default(),
        }
    }
}

impl State {
    /// A context for an event of this session.
    pub(crate) fn context(&self, event: Event, command: Option<Arc<Command>>) -> Context {
        Context {
            event,
            command,
            session: Some(self.info.clone()),
            reply: None,
            message: self.msg.clone(),
            recipient: None,
            server: self.server.host.server_props.clone(),
            session_props: Some(self.props.clone()),
            ehlo_keywords: Vec::new(),
            peer: None,
            hosts: None,
            added_commands: Vec::new(),
        }
    }

    /// Carries out a staged change after a positive reply.
    pub(crate) fn apply(&mut self, staged: Staged) {
        match staged {
            Staged::Nothing
            | Staged::Quit
            | Staged::Data(..)
            | Staged::Bdat(_)
            | Staged::StartTls => {}
            Staged::Helo { name, esmtp } => {
                let info = Arc::make_mut(&mut self.info);
                info.helo = Some(name);
                info.esmtp = esmtp;
                self.reset();
            }
            Staged::Mail(sender, limit) => {
                Arc::make_mut(&mut self.msg).sender = Some(sender);
                self.size_limit = limit;
            }
            Staged::Oversize(_) => {}
            Staged::Rcpt(recipient) => {
                Arc::make_mut(&mut self.msg).add_recipient(recipient);
            }
            Staged::Reset => self.reset(),
        }
    }

    /// The session is encrypted from here on: what the client said in clear is forgotten
    /// (RFC 3207 §4.2) and it must say EHLO again.
    pub(crate) fn encrypted(&mut self, summary: Option<String>) {
        let info = Arc::make_mut(&mut self.info);
        info.helo = None;
        info.esmtp = false;
        info.auth_user = None;
        info.tls = true;
        self.tls = Some(summary.unwrap_or_else(|| "TLS".to_owned()));
        self.reset();
    }

    /// Takes the client a sink named in place of the connection's (XCLIENT): everything from
    /// here on sees it, and the transaction starts afresh.
    pub(crate) fn adopt_client(&mut self, session: Option<Arc<SessionInfo>>) -> bool {
        let Some(info) = session else { return false };
        if Arc::ptr_eq(&info, &self.info) || info.id != self.info.id {
            return false;
        }
        info!(
            session = self.info.id,
            remote = %self.info.remote,
            client = %info.remote,
            helo = info.helo.as_deref().unwrap_or(""),
            "client details replaced by a sink"
        );
        self.info = info;
        // Relay rights follow the forwarded client, not the proxy that forwarded it.
        let ip = self.info.remote.ip();
        let may_relay = self.server.config.is_relay_client(ip) || self.info.auth_user.is_some();
        Arc::make_mut(&mut self.info).may_relay = may_relay;
        self.reset();
        true
    }

    /// Ends the transaction (RSET, a new EHLO, after a message).
    pub(crate) fn reset(&mut self) {
        self.msg = Arc::new(MailMsg::default());
        self.chunks = None;
        self.size_limit = None;
    }

    /// The size limit of the current transaction: the configured one, unless a max-size sink
    /// lifted it for a declared size.
    pub(crate) fn size_limit(&self) -> u64 {
        self.size_limit
            .unwrap_or(self.server.config.limits.max_message_size)
    }
}

/// Logs a refused message once, where the decision is made.
pub(crate) fn log_refused(st: &State, why: &str) {
    warn!(session = st.info.id, remote = %st.info.remote, "message refused: {why}");
}

/// How long to wait at most for a whole DATA or BDAT transfer.
pub(crate) fn data_deadline(st: &State) -> Instant {
    Instant::now()
        + st.server
            .config
            .limits
            .data_timeout
            .max(Duration::from_secs(1))
}
