//! One message to one next hop over an open connection: MAIL, RCPT for each recipient, DATA or
//! BDAT, with PIPELINING when offered; over LMTP, DATA's end has one reply per recipient. Every command is first an `outbound:*` event (a sink may
//! replace it, answer it for the remote, or add a command after it) and every reply a `response`
//! event (a sink may change the reply Postern acts on).

use std::sync::Arc;

use postern_mailmsg::MailMsg;
use postern_sink_api::{Command, Context, EnhancedCode, Event, OutboundStep, Reply};
use postern_sink_host::{NoDefault, Snapshot};

use super::ClientError;
use super::commands::{dot_stuff, mail_line, rcpt_line, refuse_locally};
use super::conn::Connection;

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    /// The next hop accepted the message for the recipient (its reply).
    Delivered(String),
    /// A temporary failure: try again later (the reply or the reason).
    Deferred(String),
    /// A permanent failure: a DSN is due (the reply or the reason).
    Failed(String),
}

impl RcptOutcome {
    fn of(reply: &Reply) -> Self {
        let text = reply_text(reply);
        match reply.code {
            200..=299 => Self::Delivered(text),
            500..=599 => Self::Failed(text),
            _ => Self::Deferred(text),
        }
    }
}

/// The events of an outbound session: the snapshot of bindings and the context every event of
/// the session starts from (the message and the peer).
pub struct Events<'a> {
    /// The bindings in force.
    pub snapshot: &'a Snapshot,
    /// The context events start from.
    pub base: Context,
}

/// What the chain of an `outbound:*` event decided.
enum Prepared {
    /// Send this line, then these added lines.
    Send(String, Vec<String>),
    /// A sink answered for the remote: nothing is sent and this reply stands.
    Answered(Reply),
}

impl Events<'_> {
    /// Raises `outbound:STEP` for a command about to be sent.
    async fn command(
        &self,
        step: OutboundStep,
        line: String,
        recipient: Option<usize>,
    ) -> Prepared {
        let event = Event::Outbound(step);
        if !self.snapshot.is_bound(&event) {
            return Prepared::Send(line, Vec::new());
        }
        let mut ctx = self.base.clone();
        ctx.event = event;
        ctx.command = Command::parse(&line).map(Arc::new);
        ctx.recipient = recipient;
        let d = self.snapshot.dispatch(&mut ctx, &mut NoDefault).await;
        if let Some(reply) = d.reply {
            return Prepared::Answered(reply);
        }
        let line = ctx.command.map(|c| c.line.clone()).unwrap_or(line);
        Prepared::Send(line, ctx.added_commands)
    }

    /// Raises `response` for a reply; returns the reply Postern acts on.
    pub(crate) async fn response(
        &self,
        command: Option<&str>,
        reply: Reply,
        recipient: Option<usize>,
    ) -> Reply {
        if !self.snapshot.is_bound(&Event::Response) {
            return reply;
        }
        let mut ctx = self.base.clone();
        ctx.event = Event::Response;
        ctx.command = command.and_then(Command::parse).map(Arc::new);
        ctx.reply = Some(reply.clone());
        ctx.recipient = recipient;
        let d = self.snapshot.dispatch(&mut ctx, &mut NoDefault).await;
        d.reply.unwrap_or(reply)
    }

    /// Raises the event of a session step that is one command (EHLO, QUIT): the line to send,
    /// the lines added after it, or the reply a sink gave for the remote.
    pub(crate) async fn session_command(
        &self,
        step: OutboundStep,
        line: String,
    ) -> Result<(String, Vec<String>), Reply> {
        match self.command(step, line, None).await {
            Prepared::Send(line, extra) => Ok((line, extra)),
            Prepared::Answered(reply) => Err(reply),
        }
    }
}

/// A command of the transaction whose reply is awaited, in the order sent.
enum Expect {
    Mail(String),
    Rcpt(usize, String),
    Data(String),
    Extra(String),
}

/// Sends `msg` to `recipients` (indices into `msg.recipients`) over `conn`; returns the outcome
/// of each recipient, in the order given. A [`ClientError`] means the connection is broken and
/// no recipient of this transaction got a final answer that was not returned with it: the
/// caller defers those.
pub async fn send(
    conn: &mut Connection,
    events: &Events<'_>,
    msg: &MailMsg,
    recipients: &[usize],
) -> Result<Vec<(usize, RcptOutcome)>, (ClientError, Vec<(usize, RcptOutcome)>)> {
    let mut done: Vec<(usize, RcptOutcome)> = Vec::new();
    if let Some(reason) = refuse_locally(conn, msg) {
        return Ok(recipients
            .iter()
            .map(|&i| (i, RcptOutcome::Failed(reason.clone())))
            .collect());
    }
    let ext = conn.extensions.clone();
    // LMTP's BDAT has its own reply rules (RFC 2033 §4.3); DATA is enough for a store.
    let chunking = ext.chunking() && !conn.lmtp;
    let content = msg.content.bytes();
    let data_line = if chunking {
        format!("BDAT {} LAST", content.len())
    } else {
        "DATA".to_owned()
    };

    // MAIL and RCPT (and DATA when pipelined): build each through its event.
    let mut batch: Vec<(Expect, Option<Reply>)> = Vec::new();
    match events
        .command(OutboundStep::MessageStart, mail_line(msg, &ext), None)
        .await
    {
        Prepared::Send(line, extra) => {
            batch.push((Expect::Mail(line), None));
            batch.extend(extra.into_iter().map(|l| (Expect::Extra(l), None)));
        }
        Prepared::Answered(reply) => batch.push((Expect::Mail(String::new()), Some(reply))),
    }
    for &i in recipients {
        let line = rcpt_line(msg, i, &ext);
        match events
            .command(OutboundStep::PerRecipient, line, Some(i))
            .await
        {
            Prepared::Send(line, extra) => {
                batch.push((Expect::Rcpt(i, line), None));
                batch.extend(extra.into_iter().map(|l| (Expect::Extra(l), None)));
            }
            Prepared::Answered(reply) => batch.push((Expect::Rcpt(i, String::new()), Some(reply))),
        }
    }
    // With PIPELINING and DATA, DATA goes in the same batch (RFC 2920 §3.1); BDAT waits for
    // the RCPT replies so that no content is sent when every recipient was refused.
    let pipelined_data = ext.pipelining() && !chunking;
    if pipelined_data {
        match events
            .command(OutboundStep::BeforeData, data_line.clone(), None)
            .await
        {
            Prepared::Send(line, extra) => {
                batch.push((Expect::Data(line), None));
                batch.extend(extra.into_iter().map(|l| (Expect::Extra(l), None)));
            }
            Prepared::Answered(reply) => batch.push((Expect::Data(String::new()), Some(reply))),
        }
    }

    let mut mail_reply: Option<Reply> = None;
    let mut accepted: Vec<usize> = Vec::new();
    let mut data_reply: Option<Reply> = None;
    let result = run_batch(
        conn,
        events,
        batch,
        ext.pipelining(),
        &mut |expect, reply| match expect {
            Expect::Mail(_) => mail_reply = Some(reply),
            Expect::Rcpt(i, _) => {
                let mail_ok = mail_reply.as_ref().is_some_and(|r| r.code / 100 == 2);
                if !mail_ok {
                    return;
                }
                match RcptOutcome::of(&reply) {
                    RcptOutcome::Delivered(_) => accepted.push(*i),
                    other => done.push((*i, other)),
                }
            }
            Expect::Data(_) => data_reply = Some(reply),
            Expect::Extra(_) => {}
        },
    )
    .await;
    if let Err(e) = result {
        return Err((e, done));
    }

    let mail_reply = mail_reply.unwrap_or_else(|| local_reply(451, "no reply to MAIL"));
    if mail_reply.code / 100 != 2 {
        // The whole transaction fails as MAIL did; a pipelined DATA may still have been
        // accepted by a lenient remote, so end it cleanly.
        if data_reply.as_ref().is_some_and(|r| r.code == 354) {
            finish_empty_data(conn).await.map_err(|e| (e, Vec::new()))?;
        }
        reset(conn).await;
        let outcome = RcptOutcome::of(&mail_reply);
        return Ok(recipients.iter().map(|&i| (i, outcome.clone())).collect());
    }
    if accepted.is_empty() {
        if data_reply.as_ref().is_some_and(|r| r.code == 354) {
            finish_empty_data(conn)
                .await
                .map_err(|e| (e, done.clone()))?;
        }
        reset(conn).await;
        return Ok(done);
    }

    // DATA or BDAT (not pipelined): its event now.
    if !pipelined_data {
        let mut batch = Vec::new();
        match events
            .command(OutboundStep::BeforeData, data_line.clone(), None)
            .await
        {
            Prepared::Send(line, extra) => {
                batch.push((Expect::Data(line), None));
                for line in extra {
                    batch.push((Expect::Extra(line), None));
                }
            }
            Prepared::Answered(reply) => batch.push((Expect::Data(String::new()), Some(reply))),
        }
        if chunking {
            // BDAT: the command and its chunk go together, the reply comes after the chunk.
            let final_reply = match bdat(conn, events, &batch, content).await {
                Ok(reply) => reply,
                Err(e) => return Err((e, done)),
            };
            let outcome = RcptOutcome::of(&final_reply);
            done.extend(accepted.into_iter().map(|i| (i, outcome.clone())));
            conn.messages += 1;
            return Ok(done);
        }
        let result = run_batch(conn, events, batch, false, &mut |expect, reply| {
            if let Expect::Data(_) = expect {
                data_reply = Some(reply);
            }
        })
        .await;
        if let Err(e) = result {
            return Err((e, done));
        }
    }
    let data_reply = data_reply.unwrap_or_else(|| local_reply(451, "no reply to DATA"));
    if data_reply.code != 354 {
        let outcome = RcptOutcome::of(&data_reply);
        let outcome = match outcome {
            // A 2xx to DATA is not an acceptance of the content.
            RcptOutcome::Delivered(text) => RcptOutcome::Deferred(text),
            other => other,
        };
        done.extend(accepted.into_iter().map(|i| (i, outcome.clone())));
        reset(conn).await;
        return Ok(done);
    }
    let stuffed = dot_stuff(content);
    if let Err(e) = conn.write(&stuffed, conn.timeouts.data_block).await {
        return Err((e, done));
    }
    if conn.lmtp {
        // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order, each its own outcome.
        for i in accepted {
            let reply = match conn.read(conn.timeouts.data_end).await {
                Ok(reply) => reply,
                Err(e) => return Err((e, done)),
            };
            let reply = events.response(Some("."), reply, Some(i)).await;
            done.push((i, RcptOutcome::of(&reply)));
        }
        conn.messages += 1;
        return Ok(done);
    }
    let reply = match conn.read(conn.timeouts.data_end).await {
        Ok(reply) => reply,
        Err(e) => return Err((e, done)),
    };
    let reply = events.response(Some("."), reply, None).await;
    let outcome = RcptOutcome::of(&reply);
    done.extend(accepted.into_iter().map(|i| (i, outcome.clone())));
    conn.messages += 1;
    Ok(done)
}

/// Writes the batch (all at once when pipelining, else one command at a time), reads a reply
/// for each command sent, raises `response` for each and hands it to `on_reply`.
async fn run_batch(
    conn: &mut Connection,
    events: &Events<'_>,
    batch: Vec<(Expect, Option<Reply>)>,
    pipelining: bool,
    on_reply: &mut (dyn FnMut(&Expect, Reply) + Send),
) -> Result<(), ClientError> {
    if pipelining {
        let mut bytes = Vec::new();
        for (expect, answered) in &batch {
            if answered.is_none() {
                bytes.extend_from_slice(line_of(expect).as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
        }
        if !bytes.is_empty() {
            conn.write(&bytes, conn.timeouts.command).await?;
        }
    }
    for (expect, answered) in batch {
        let reply = match answered {
            Some(reply) => reply,
            None => {
                let limit = limit_of(conn, &expect);
                if !pipelining {
                    let mut bytes = line_of(&expect).as_bytes().to_vec();
                    bytes.extend_from_slice(b"\r\n");
                    conn.write(&bytes, limit).await?;
                }
                let reply = conn.read(limit).await?;
                let recipient = match &expect {
                    Expect::Rcpt(i, _) => Some(*i),
                    _ => None,
                };
                events
                    .response(Some(line_of(&expect)), reply, recipient)
                    .await
            }
        };
        on_reply(&expect, reply);
    }
    Ok(())
}

/// Sends `BDAT n LAST` with the whole content as its chunk and reads the final reply.
async fn bdat(
    conn: &mut Connection,
    events: &Events<'_>,
    batch: &[(Expect, Option<Reply>)],
    content: &[u8],
) -> Result<Reply, ClientError> {
    let mut data_reply = None;
    for (expect, answered) in batch {
        match (expect, answered) {
            (Expect::Data(_), Some(reply)) => data_reply = Some(reply.clone()),
            (Expect::Data(line), None) => {
                let mut bytes = Vec::with_capacity(line.len() + 2 + content.len());
                bytes.extend_from_slice(line.as_bytes());
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(content);
                conn.write(&bytes, conn.timeouts.data_block).await?;
                let reply = conn.read(conn.timeouts.data_end).await?;
                data_reply = Some(events.response(Some(line), reply, None).await);
            }
            (Expect::Extra(line), None) => {
                let reply = conn.command(line, conn.timeouts.command).await?;
                events.response(Some(line), reply, None).await;
            }
            _ => {}
        }
    }
    Ok(data_reply.unwrap_or_else(|| local_reply(451, "no reply to BDAT")))
}

fn line_of(expect: &Expect) -> &str {
    match expect {
        Expect::Mail(l) | Expect::Rcpt(_, l) | Expect::Data(l) | Expect::Extra(l) => l,
    }
}

fn limit_of(conn: &Connection, expect: &Expect) -> std::time::Duration {
    match expect {
        Expect::Mail(_) => conn.timeouts.mail,
        Expect::Rcpt(..) => conn.timeouts.rcpt,
        Expect::Data(_) => conn.timeouts.data_init,
        Expect::Extra(_) => conn.timeouts.command,
    }
}

/// Ends a DATA that the remote accepted although no recipient was: an empty message.
async fn finish_empty_data(conn: &mut Connection) -> Result<(), ClientError> {
    conn.write(b".\r\n", conn.timeouts.data_block).await?;
    conn.read(conn.timeouts.data_end).await.map(drop)
}

/// RSET after a transaction that did not complete, so the connection can carry the next one;
/// a failure only means the connection will not be reused.
async fn reset(conn: &mut Connection) {
    let _ = conn.command("RSET", conn.timeouts.command).await;
}

fn local_reply(code: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(4, 4, 2)), text)
}

/// A reply on one line as it goes into a log, the track log and a DSN's Diagnostic-Code.
pub fn reply_text(reply: &Reply) -> String {
    let text = reply.lines.join(" ");
    match reply.enhanced {
        Some(e) => format!("{} {e} {text}", reply.code),
        None => format!("{} {text}", reply.code),
    }
}
