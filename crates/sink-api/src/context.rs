//! The context a sink is called with.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_mailmsg::{MailMsg, PropertyBag};

use crate::event::{Event, Verb};
use crate::reply::Reply;

/// A command line received from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The verb, upper case.
    pub verb: Verb,
    /// Everything after the verb and its separating space, without the CRLF.
    pub args: String,
    /// The whole line as received, without the CRLF.
    pub line: String,
}

impl Command {
    /// Splits a command line into verb and arguments; `None` when it does not start with a verb.
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (word, args) = line.split_once(' ').unwrap_or((line, ""));
        Some(Self {
            verb: Verb::parse(word)?,
            args: args.to_owned(),
            line: line.to_owned(),
        })
    }

    /// The path of `MAIL FROM:<…>` or `RCPT TO:<…>`, without brackets, if the arguments carry one.
    pub fn path(&self) -> Option<&str> {
        let open = self.args.find('<')?;
        let close = self.args[open..].find('>')? + open;
        Some(&self.args[open + 1..close])
    }
}

/// What a sink knows about the inbound session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// A number unique within this process, on every log line of the session.
    pub id: u64,
    /// The client's address.
    pub remote: SocketAddr,
    /// The listener's address.
    pub local: SocketAddr,
    /// The EHLO/HELO argument, once given.
    pub helo: Option<String>,
    /// Whether the client used EHLO (ESMTP).
    pub esmtp: bool,
    /// Whether the session is encrypted.
    pub tls: bool,
    /// The authenticated identity.
    pub auth_user: Option<String>,
    /// Whether the client may relay (its address is in a relay network or it authenticated).
    pub may_relay: bool,
}

/// The remote side of an outbound delivery, for the `dns-resolve`, `outbound:*` and `response`
/// events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peer {
    /// The next hop being delivered to (`mx:example.org`, `smtp:relay.example:25`).
    pub next_hop: String,
    /// The host connected to (a name from the host list, or an address), once connected.
    pub host: Option<String>,
    /// The address connected to, once connected.
    pub address: Option<SocketAddr>,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The remote's EHLO keywords (upper case), once it answered EHLO.
    pub extensions: Vec<String>,
}

/// What a sink sees when it is called. Built once per event; the host updates `reply` and
/// `message` between sinks as changes are applied, so each sink sees what the earlier ones did.
#[derive(Debug, Clone)]
pub struct Context {
    /// The event being raised.
    pub event: Event,
    /// The command, for `inbound:*` events.
    pub command: Option<Arc<Command>>,
    /// The session, for protocol events (and transport events raised for a message that came in
    /// over SMTP, while the session is known).
    pub session: Option<Arc<SessionInfo>>,
    /// The reply that will be sent if no later sink changes it (the native reply once the
    /// default sink has run).
    pub reply: Option<Reply>,
    /// The message so far (at EHLO it has no sender, no recipients and no content).
    pub message: Arc<MailMsg>,
    /// For per-recipient events (categorize, route, store): the index of the recipient in
    /// `message.recipients`.
    pub recipient: Option<usize>,
    /// The server-wide property bag (lives as long as the process).
    pub server: PropertyBag,
    /// The session's property bag (scratch space shared by the sinks of one connection).
    pub session_props: Option<PropertyBag>,
    /// EHLO keywords added by sinks that ran before the default EHLO sink built its reply.
    pub ehlo_keywords: Vec<String>,
    /// The remote side, for outbound events (`dns-resolve`, `outbound:*`, `response`).
    pub peer: Option<Arc<Peer>>,
    /// At `dns-resolve`: the hosts to try, in order (`HOST` or `HOST:PORT`, a name or an
    /// address); `None` until a sink or the default lookup supplied them.
    pub hosts: Option<Vec<String>>,
    /// At `outbound:*`: commands sinks asked to send after the command of the event.
    pub added_commands: Vec<String>,
}

impl Context {
    /// A context for `event` with an empty message and nothing else set.
    pub fn new(event: Event, server: PropertyBag) -> Self {
        Self {
            event,
            command: None,
            session: None,
            reply: None,
            message: Arc::new(MailMsg::default()),
            recipient: None,
            server,
            session_props: None,
            ehlo_keywords: Vec::new(),
            peer: None,
            hosts: None,
            added_commands: Vec::new(),
        }
    }

    /// The recipient a per-recipient event is about.
    pub fn current_recipient(&self) -> Option<&postern_mailmsg::Recipient> {
        self.recipient.and_then(|i| self.message.recipients.get(i))
    }

    /// The verb of the command, for inbound events.
    pub fn verb(&self) -> Option<&str> {
        self.command.as_ref().map(|c| c.verb.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_path_strips_brackets_and_parameters() {
        let verb = Verb::parse("MAIL").unwrap();
        let cmd = Command {
            verb,
            args: "FROM:<a@example.com> SIZE=10".into(),
            line: "MAIL FROM:<a@example.com> SIZE=10".into(),
        };
        assert_eq!(cmd.path(), Some("a@example.com"));
    }
}
