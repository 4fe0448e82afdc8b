//! The default sink of every `inbound:VERB` event: the server's RFC 5321 behaviour, one verb
//! module each. A default sink never changes the session itself: it sets the reply it would
//! send and *stages* its change, which the session applies only if the final reply is positive.

use postern_mailmsg::{QueueId, Recipient, Sender};
use postern_sink_api::{Change, Command, Context, Event, Outcome, Reply};
use postern_sink_host::DefaultSink;

use crate::intake::Intake;
use crate::session::State;
use crate::{bdat, data, ehlo, mail, minor, rcpt, starttls};

/// A change to the session that waits for a positive reply.
#[derive(Debug)]
pub(crate) enum Staged {
    Nothing,
    /// EHLO/HELO: the client's name; a new EHLO also resets the transaction.
    Helo {
        name: String,
        esmtp: bool,
    },
    /// MAIL accepted; with a size limit for this transaction when a max-size sink lifted it.
    Mail(Sender, Option<u64>),
    /// MAIL declared a size over the limit; the max-size event has not decided yet.
    Oversize(Sender),
    Rcpt(Recipient),
    /// DATA accepted: the message will have this id, and its content starts in this intake.
    Data(QueueId, Intake),
    /// BDAT accepted (the session read the chunk's size before the event); the first chunk of
    /// a transfer brings the intake its content starts in.
    Bdat(Option<Intake>),
    Reset,
    Quit,
    /// STARTTLS accepted: the handshake follows the 220.
    StartTls,
}

/// The default sink of the command being handled.
pub(crate) struct Defaults<'a> {
    pub(crate) st: &'a State,
    pub(crate) staged: &'a mut Staged,
}

impl DefaultSink for Defaults<'_> {
    async fn run(&mut self, ctx: &Context) -> Outcome {
        let (mut reply, mut staged) = self.decide(ctx);
        if let Staged::Oversize(sender) = staged {
            (reply, staged) = max_size(self.st, sender).await;
        }
        *self.staged = staged;
        Outcome::changes(vec![Change::SetReply(reply)])
    }
}

impl Defaults<'_> {
    fn decide(&self, ctx: &Context) -> (Reply, Staged) {
        let Some(command) = ctx.command.as_deref() else {
            return (crate::reply::syntax_error(), Staged::Nothing);
        };
        let st = self.st;
        match command.verb.as_str() {
            "EHLO" => ehlo::ehlo(st, ctx, command),
            "HELO" => ehlo::helo(st, command),
            "MAIL" => mail::mail(st, command),
            "RCPT" => rcpt::rcpt(st, command),
            "DATA" => data::data(st, command),
            "BDAT" => bdat::bdat(st, command),
            "RSET" => minor::rset(command),
            "NOOP" => minor::noop(),
            "QUIT" => minor::quit(),
            "VRFY" => minor::vrfy(command),
            "HELP" => minor::help(),
            "STARTTLS" => starttls::starttls(st, command),
            "EXPN" | "AUTH" => minor::not_implemented(),
            _ => minor::unknown(),
        }
    }
}

/// Raises `max-size` for a MAIL whose SIZE is over the limit. The default sink refuses with
/// 552 5.3.4; a positive final reply lifts the limit to the declared size for this transaction.
async fn max_size(st: &State, sender: Sender) -> (Reply, Staged) {
    let declared = sender.params.size.unwrap_or(0);
    let mut ctx = st.context(Event::MaxSize, None);
    let mut msg = (*st.msg).clone();
    msg.sender = Some(sender);
    ctx.message = std::sync::Arc::new(msg);
    let limit = st.server.config.limits.max_message_size;
    let d = st.snapshot.dispatch(&mut ctx, &mut Refuse(limit)).await;
    let reply = d.reply.unwrap_or_else(|| crate::reply::too_big(limit));
    let sender = std::sync::Arc::unwrap_or_clone(ctx.message)
        .sender
        .unwrap_or_default();
    if reply.is_positive() {
        (
            crate::reply::sender_ok(),
            Staged::Mail(sender, Some(declared)),
        )
    } else {
        (reply, Staged::Nothing)
    }
}

/// The default sink of `max-size`: refuse.
pub(crate) struct Refuse(pub(crate) u64);

impl DefaultSink for Refuse {
    async fn run(&mut self, _ctx: &Context) -> Outcome {
        Outcome::changes(vec![Change::SetReply(crate::reply::too_big(self.0))])
    }
}

/// Refuses a MAIL or RCPT line with a control character (a bare CR, DEL, …): `smtp-proto`
/// drops some of them silently (`<a\rb@x>` would become `ab@x`) and keeps others (DEL would
/// reach a mailbox name), so either way the address would not be the one sent.
pub(crate) fn control_character(command: &Command, sender: bool) -> Option<Reply> {
    let control = |s: &str| s.bytes().any(|b| b.is_ascii_control());
    if command.path().is_some_and(control) {
        return Some(crate::reply::control_in_address(sender));
    }
    control(&command.args).then(|| {
        crate::reply::bad_arguments(if sender {
            "MAIL FROM:<address> [parameters]"
        } else {
            "RCPT TO:<address> [parameters]"
        })
    })
}

/// Parses a command line with `smtp-proto`, which wants the line end.
pub(crate) fn parse_request(line: &str) -> Result<smtp_proto::Request<String>, smtp_proto::Error> {
    let mut bytes = Vec::with_capacity(line.len() + 2);
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(b"\r\n");
    smtp_proto::Request::parse(&mut bytes.iter()).map(smtp_proto::Request::into_owned)
}
