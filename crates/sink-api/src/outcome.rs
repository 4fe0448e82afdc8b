//! What a sink returns: a verdict and the changes it asks the host to make.

use bytes::Bytes;
use postern_mailmsg::{Fate, Value};

use crate::reply::Reply;

/// What happens after the sink.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Verdict {
    /// The next sink runs.
    #[default]
    Continue,
    /// No later sink runs — for protocol events not even the default one if it has not run
    /// yet; the current reply (or `250 2.0.0 OK` when there is none) is sent.
    Consume,
    /// Send this reply and run no later sink (protocol events).
    Reply(Reply),
    /// A temporary failure: `451 4.3.0` on a protocol event, the message is deferred on a
    /// transport event. The text, if any, is the reason given.
    TempFail(Option<String>),
    /// A permanent failure: `550 5.7.1` on a protocol event; on a transport event the message
    /// (or the current recipient of a per-recipient event) fails and a DSN is due.
    Reject(Option<String>),
    /// Send this reply (or `421 4.7.0`) and close the connection (protocol events).
    Disconnect(Option<Reply>),
}

/// Which property bag a property change goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The server-wide bag.
    Server,
    /// The session's bag.
    Session,
    /// The message's properties (persisted with it).
    Message,
    /// The current recipient's properties (per-recipient events).
    Recipient,
}

/// A change a sink asks for. The host applies changes in order and logs which binding made each.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Replace the reply that will be sent.
    SetReply(Reply),
    /// Add a keyword line to the EHLO reply.
    AddEhloKeyword(String),
    /// Append a header field at the end of the header section.
    AddHeader {
        /// Field name.
        name: String,
        /// Field value: one line, or lines folded with CRLF + space or tab.
        value: String,
    },
    /// Insert a header field at the top of the header section.
    PrependHeader {
        /// Field name.
        name: String,
        /// Field value: one line, or lines folded with CRLF + space or tab.
        value: String,
    },
    /// Replace every field of this name by one.
    SetHeader {
        /// Field name.
        name: String,
        /// Field value: one line, or lines folded with CRLF + space or tab.
        value: String,
    },
    /// Remove every field of this name.
    RemoveHeader(String),
    /// Replace the body, keeping the headers.
    ReplaceBody(Bytes),
    /// Add a recipient to the envelope.
    AddRecipient(String),
    /// Remove a recipient from the envelope.
    RemoveRecipient(String),
    /// Rewrite the current recipient's address (categorize: alias resolution).
    SetRecipientAddress(String),
    /// Set the current recipient's next hop (route).
    SetNextHop(String),
    /// Fail the current recipient permanently with this reason.
    FailRecipient(String),
    /// Set a property.
    SetProperty {
        /// Which bag.
        scope: Scope,
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// Remove a property.
    RemoveProperty {
        /// Which bag.
        scope: Scope,
        /// The key.
        key: String,
    },
    /// Set the message's fate.
    SetFate(Fate),
    /// Replace the command about to be sent (`outbound:*` events): a whole command line without
    /// CRLF.
    SetCommand(String),
    /// Send this command line after the command of the event (`outbound:*` events).
    AddCommand(String),
    /// Supply the hosts of the next hop (`dns-resolve`): `HOST` or `HOST:PORT`, in order.
    SetHosts(Vec<String>),
    /// Insert a header field before the field at `index` (0 = the top, counting every field;
    /// past the last field it is appended). A value may be folded (CRLF + space or tab).
    InsertHeader {
        /// Position among all fields.
        index: usize,
        /// Field name.
        name: String,
        /// Field value.
        value: String,
    },
    /// Change the value of the `index`-th field named `name` (1 = the first), or remove that
    /// field when `value` is `None`; a missing field with a value is appended.
    ChangeHeader {
        /// Field name.
        name: String,
        /// Which occurrence, from 1.
        index: usize,
        /// The new value, or `None` to remove the field.
        value: Option<String>,
    },
    /// Replace the envelope sender's address (`""` is the null reverse-path).
    SetSender(String),
    /// Replace what the session knows of its client (XCLIENT, `inbound:*` events): later sinks
    /// of the event see it at once; the session adopts it when the reply sent is positive and
    /// starts a new transaction. The session id cannot change.
    SetClient(crate::context::SessionInfo),
}

/// A verdict and the changes to apply before acting on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// What happens next.
    pub verdict: Verdict,
    /// Changes, applied in order.
    pub changes: Vec<Change>,
}

impl Outcome {
    /// Continue with no change (allocates nothing).
    pub const fn next() -> Self {
        Self {
            verdict: Verdict::Continue,
            changes: Vec::new(),
        }
    }

    /// Send `reply` and stop the chain.
    pub fn reply(reply: Reply) -> Self {
        Self {
            verdict: Verdict::Reply(reply),
            changes: Vec::new(),
        }
    }

    /// Continue after these changes.
    pub fn changes(changes: Vec<Change>) -> Self {
        Self {
            verdict: Verdict::Continue,
            changes,
        }
    }

    /// Replaces the verdict.
    pub fn with_verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }
}
