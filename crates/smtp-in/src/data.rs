//! DATA (RFC 5321 §4.1.1.4): the message text up to `<CRLF>.<CRLF>`, then the end-of-data event
//! whose default sink queues the message. The 250 is sent only after the queue has made the
//! message durable.

use std::sync::Arc;

use postern_mailmsg::{Content, MailMsg, QueueId};
use postern_sink_api::{Change, Command, Context, Event, Outcome, Reply};
use postern_sink_host::DefaultSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, error, info};

use crate::defaults::Staged;
use crate::dot::Decoder;
use crate::intake::{Intake, IntakeError};
use crate::received;
use crate::reply;
use crate::session::{Flow, Phase, Session, State, data_deadline, log_refused};

/// The default sink of `inbound:DATA`: checks the sequence, names the message, asks for it.
pub(crate) fn data(st: &State, command: &Command) -> (Reply, Staged) {
    if !command.args.trim().is_empty() {
        return (reply::bad_arguments("DATA"), Staged::Nothing);
    }
    if st.msg.sender.is_none() {
        return (reply::bad_sequence("send MAIL first"), Staged::Nothing);
    }
    if st.chunks.is_some() {
        return (
            reply::bad_sequence("BDAT transfer in progress"),
            Staged::Nothing,
        );
    }
    if st.msg.recipients.is_empty() {
        return (reply::no_recipients(), Staged::Nothing);
    }
    let Some(intake) = Intake::start(&st.server.budget, st.server.config.limits.spill_threshold)
    else {
        debug!(
            session = st.info.id,
            "transfer refused: the memory budget is used up"
        );
        return (reply::no_memory(), Staged::Nothing);
    };
    (
        reply::start_data(),
        Staged::Data(st.server.ids.next_id(), intake),
    )
}

/// The default sink of `end-of-data`: the reply that names the queue id. The session writes
/// the message to the queue after the chain, so that changes of sinks after this one are in it.
struct EndOfData(QueueId);

impl DefaultSink for EndOfData {
    async fn run(&mut self, _ctx: &Context) -> Outcome {
        Outcome::changes(vec![Change::SetReply(reply::queued(&self.0.to_string()))])
    }
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Receives the message text after a 354.
    pub(crate) async fn receive_data(&mut self, id: QueueId, mut content: Intake) -> Flow {
        if let Err(e) = self.flush().await {
            return Flow::Close(crate::End::Io(e.to_string()));
        }
        let server = self.st.server.clone();
        let limit = self.st.size_limit();
        let mut decoder = Decoder::new(usize::try_from(limit).unwrap_or(usize::MAX));
        // Set when the content could not be kept (its file failed): the rest is read and
        // thrown away, so the session stays in step with the client.
        let mut lost: Option<IntakeError> = None;
        let mut scratch = Vec::new();
        let deadline = data_deadline(&self.st);
        self.st.phase = Phase::Data;
        self.input.for_data();
        loop {
            let pending = self.input.pending().len();
            // How much input the content's buffer has room for now.
            let mut n = pending;
            if lost.is_none() {
                match content
                    .reserve(&server.budget, &server.spill_dir, pending)
                    .await
                {
                    Ok(room) => n = room,
                    Err(e) => lost = Some(e),
                }
            }
            let out = if lost.is_some() {
                scratch.clear();
                &mut scratch
            } else {
                content.buf()
            };
            if let Some(used) = decoder.feed(&self.input.pending()[..n], out) {
                self.input.consume(used);
                break;
            }
            self.input.consume(n);
            if n < pending {
                continue;
            }
            if let Err(end) = self.fill_before(deadline).await {
                return Flow::Close(end);
            }
        }
        self.input.for_commands();
        self.st.phase = Phase::Command;
        if let Some(e) = lost {
            error!(session = self.st.info.id, queue_id = %id, "message not kept: {e}");
            self.st.reset();
            return self.error_reply(reply::queue_failed()).await;
        }
        if decoder.oversize() {
            log_refused(&self.st, "over the size limit");
            let reply = self.oversize(limit).await;
            return self.error_reply(reply).await;
        }
        if let Some(flaw) = decoder.flaw {
            log_refused(&self.st, flaw.describe());
            self.st.reset();
            return self.error_reply(reply::bad_content(flaw.describe())).await;
        }
        self.end_of_data(id, content).await
    }

    /// Raises `max-size` for a message found over the limit while it arrived. The content past
    /// the limit was not kept, so the message is refused whatever the sinks say; they see the
    /// event (to log it, or to word the refusal).
    pub(crate) async fn oversize(&mut self, limit: u64) -> Reply {
        let mut ctx = self.st.context(Event::MaxSize, None);
        let d = self
            .st
            .snapshot
            .dispatch(&mut ctx, &mut crate::defaults::Refuse(limit))
            .await;
        self.st.reset();
        d.reply
            .filter(|r| !r.is_positive())
            .unwrap_or_else(|| reply::too_big(limit))
    }

    /// Raises end-of-data for a complete message and queues it.
    pub(crate) async fn end_of_data(&mut self, id: QueueId, body: Intake) -> Flow {
        let now_ms = postern_mailmsg::now_ms();
        let mut msg: MailMsg = (*self.st.msg).clone();
        msg.id = Some(id);
        let server = self.st.server.clone();
        // The bindings that fired before the message had an id go into the decision log now.
        if let Some(log) = server.host.decisions() {
            log.attach(self.st.info.id, &id.to_string());
        }
        let name = self
            .st
            .props
            .get(received::CLIENT_NAME)
            .and_then(|v| v.as_str().map(str::to_owned));
        let trace = received::value(
            &msg,
            &self.st.info,
            name.as_deref(),
            self.st.tls.as_deref(),
            &server.hostname,
            (now_ms / 1000) as i64,
        );
        let prefix = format!("Received: {trace}\r\n");
        // A message that waited on disk comes back into memory when the budget has room.
        let wait = Instant::now() + server.config.limits.command_timeout;
        let raw = match body.finish(&server.budget, prefix.as_bytes(), wait).await {
            Ok(raw) => raw,
            Err(e) => {
                let reply = match e {
                    IntakeError::Budget => {
                        log_refused(&self.st, "the memory budget is exhausted");
                        reply::no_memory()
                    }
                    IntakeError::Io(e) => {
                        error!(session = self.st.info.id, queue_id = %id, "message not kept: {e}");
                        reply::queue_failed()
                    }
                };
                self.st.reset();
                return self.error_reply(reply).await;
            }
        };
        let st = &mut self.st;
        st.server.metrics.message_received();
        msg.content = Content::new(raw);
        let protocol = received::protocol(&st.info, &msg).to_owned();
        let info = &mut msg.info;
        info.arrival_ms = now_ms;
        info.size = msg.content.len() as u64;
        info.remote_ip = Some(st.info.remote.ip());
        info.remote_port = st.info.remote.port();
        info.helo = st.info.helo.clone().unwrap_or_default();
        info.auth_user = st.info.auth_user.clone();
        info.tls = st.tls.clone();
        info.received_by = st.server.hostname.clone();
        info.session_id = st.info.id;
        info.protocol = protocol;
        st.msg = Arc::new(msg);

        let mut ctx = st.context(Event::EndOfData, None);
        let d = st.snapshot.dispatch(&mut ctx, &mut EndOfData(id)).await;
        let mut reply = d.reply.unwrap_or_else(reply::ok);
        st.reset();
        if d.default_ran && reply.is_positive() {
            let msg = Arc::unwrap_or_clone(ctx.message);
            match st.server.spool.store(&msg).await {
                Ok(()) => {
                    info!(session = st.info.id, queue_id = %id, from = %msg.sender_address(),
                          recipients = msg.recipients.len(), size = msg.info.size,
                          remote = %st.info.remote.ip(), "message accepted");
                    st.server.metrics.message_queued();
                    st.server.submit(msg).await;
                }
                Err(e) => {
                    error!(session = st.info.id, queue_id = %id, "queue write failed: {e}");
                    reply = reply::queue_failed();
                }
            }
        }
        if d.disconnect {
            self.send(&reply);
            return Flow::Close(crate::End::Disconnected);
        }
        if reply.code >= 400 {
            return self.error_reply(reply).await;
        }
        self.send(&reply);
        Flow::Next
    }
}
