//! The inbound session: reads commands, raises their events, writes replies, receives messages.
//!
//! The session is generic over its stream so tests can drive it over `tokio::io::duplex` as
//! well as TCP. Each command becomes an `inbound:VERB` event whose chain includes the default
//! sink (`defaults.rs`); what the default sink changes in the session is *staged* and takes
//! effect only if the reply finally sent is positive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postern_config::ListenerMode;
use postern_mailmsg::{MailMsg, PropertyBag};
use postern_sink_api::{Command, Context, Event, Reply, SessionInfo, Verb};
use postern_sink_host::NoDefault;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::Server;
use crate::conn::Conn;
use crate::defaults::{Defaults, Staged};
use crate::input::{Input, Line};
use crate::reply;
pub(crate) use crate::state::{Chunks, Phase, State, data_deadline, log_refused};

/// Session ids, unique within the process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
const MAX_COMMAND: usize = 510;
/// MAIL and RCPT carry ESMTP parameters, which extensions allow to lengthen the line
/// (RFC 1870 §3, RFC 3461 §4.1 and §5); allow room for SIZE, BODY, RET, ENVID, NOTIFY, ORCPT.
const MAX_PARAMETER_COMMAND: usize = 1022;
/// RFC 4954 §4 lets an AUTH line with an initial response reach 12288 octets; the input
/// buffer's limit (a line of 4 KiB) is enough for PLAIN and LOGIN and keeps memory bounded.
const MAX_AUTH_COMMAND: usize = 4094;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client sent QUIT.
    Quit,
    /// The client closed the connection.
    ClientClosed,
    /// The client was idle too long.
    Timeout,
    /// Too many errors.
    TooManyErrors,
    /// A sink (or the session-start event) closed the connection.
    Disconnected,
    /// The server is shutting down.
    Shutdown,
    /// A BDAT command whose size could not be read: the stream can no longer be followed.
    Desync,
    /// Reading or writing failed.
    Io(String),
    /// The TLS handshake failed (garbage, an unsupported client, a closed connection).
    Tls(String),
    /// The client sent before the greeting (it does not wait for replies: not an SMTP client).
    EarlyTalker,
}

/// What the command loop does next.
pub(crate) enum Flow {
    Next,
    Close(End),
}

pub(crate) struct Session<S> {
    pub(crate) stream: Conn<S>,
    pub(crate) input: Input,
    pub(crate) out: Vec<u8>,
    pub(crate) st: State,
}

/// Runs one session of an `smtp` listener to its end.
pub async fn run<S>(server: Arc<Server>, stream: S, remote: SocketAddr, local: SocketAddr) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_as(server, stream, remote, local, ListenerMode::Smtp).await
}

/// Runs one session of a listener in `mode` to its end; a `submissions` listener's session
/// starts with the TLS handshake, before session-start, so sinks see it encrypted.
pub async fn run_as<S>(
    server: Arc<Server>,
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    mode: ListenerMode,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let stream = if mode == ListenerMode::Submissions {
        match crate::starttls::handshake(&server, stream).await {
            Ok(tls) => Conn::Tls(Box::new(tls)),
            Err(end) => {
                info!(session = id, remote = %remote, end = ?end, "TLS handshake failed");
                return end;
            }
        }
    } else {
        Conn::Plain(stream)
    };
    let tls = stream.tls_summary();
    let info = SessionInfo {
        id,
        remote,
        local,
        helo: None,
        esmtp: false,
        tls: tls.is_some(),
        auth_user: None,
        may_relay: server.config.is_relay_client(remote.ip()),
    };
    let snapshot = server.host.snapshot();
    let mut session = Session {
        stream,
        input: Input::new(server.budget.clone()),
        out: Vec::with_capacity(256),
        st: State {
            phase: Phase::Greeting,
            server,
            snapshot,
            info: Arc::new(info),
            props: PropertyBag::new(),
            msg: Arc::new(MailMsg::default()),
            chunks: None,
            errors: 0,
            size_limit: None,
            mode,
            tls,
        },
    };
    let end = session.serve().await;
    // Where the session was when it ended says what a timeout or a closed connection cut off.
    let phase = session.st.phase;
    session.finish(&end).await;
    info!(session = id, remote = %remote, end = ?end, phase = ?phase, "session closed");
    end
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self) -> End {
        if let Flow::Close(end) = self.greet().await {
            return end;
        }
        self.st.phase = Phase::Command;
        let mut shutdown = self.st.server.shutdown.clone();
        // When the command line being received must be complete: the command timeout bounds a
        // whole line from its first octet, not the gaps between reads, so a client trickling
        // one octet at a time cannot hold the session longer than a silent one.
        let mut line_deadline: Option<Instant> = None;
        loop {
            match self.input.next_line() {
                Some(Line::Complete(range)) => {
                    line_deadline = None;
                    if let Flow::Close(end) = self.command(range).await {
                        return end;
                    }
                    continue;
                }
                Some(Line::TooLong) => {
                    line_deadline = None;
                    if let Flow::Close(end) = self.error_reply(reply::line_too_long()).await {
                        return end;
                    }
                    continue;
                }
                None => {}
            }
            if let Err(e) = self.flush().await {
                return End::Io(e.to_string());
            }
            self.st.phase = if self.input.discarding() {
                Phase::Discarding
            } else {
                Phase::Command
            };
            let timeout = self.st.server.config.limits.command_timeout;
            let deadline = if self.input.in_line() {
                *line_deadline.get_or_insert_with(|| Instant::now() + timeout)
            } else {
                Instant::now() + timeout
            };
            // A transaction in progress is let finish (within the shutdown grace period).
            let idle = self.st.msg.sender.is_none();
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.input.fill(&mut self.stream)) => r,
                _ = shutdown.wait_for(|stop| *stop), if idle => {
                    // Between commands nothing is in flight: tell the client and go.
                    self.send(&reply::shutting_down(&self.st.server.hostname));
                    return End::Shutdown;
                }
            };
            match read {
                Err(_) => {
                    self.send(&reply::timeout(&self.st.server.hostname));
                    return End::Timeout;
                }
                Ok(Ok(0)) => return End::ClientClosed,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return End::Io(e.to_string()),
            }
        }
    }

    /// Raises session-start; its default sink greets.
    async fn greet(&mut self) -> Flow {
        if let Flow::Close(end) = self.wait_for_greeting().await {
            return Flow::Close(end);
        }
        let mut ctx = self.st.context(Event::SessionStart, None);
        let host = self.st.server.hostname.clone();
        let mut greeting = Greeting(host);
        let d = self.st.snapshot.dispatch(&mut ctx, &mut greeting).await;
        // A sink that lets the session in without wording a greeting (a bare consume gives
        // 250) gets the server's own: a greeting is 220.
        let reply = d
            .reply
            .filter(|r| r.code == 220 || !r.is_positive())
            .unwrap_or_else(|| reply::greeting(&self.st.server.hostname));
        if reply.code == 220 && !self.input.pending().is_empty() {
            return self.refuse_early_talker();
        }
        if reply.code == 220 {
            // With no greeting delay, input already waiting as the greeting goes out was sent
            // before the client could have seen it: one read that does not wait finds it.
            // Polled once, not under a zero time-out: a zero-length tokio timer still waits for
            // the next tick of the timer wheel (up to a millisecond), which every connection
            // would pay before its greeting.
            let peeked = {
                let mut peek = std::pin::pin!(self.input.fill(&mut self.stream));
                std::future::poll_fn(|cx| std::task::Poll::Ready(peek.as_mut().poll(cx))).await
            };
            match peeked {
                std::task::Poll::Ready(Ok(0)) => return Flow::Close(End::ClientClosed),
                std::task::Poll::Ready(Ok(_)) => return self.refuse_early_talker(),
                std::task::Poll::Ready(Err(e)) => return Flow::Close(End::Io(e.to_string())),
                std::task::Poll::Pending => {}
            }
        }
        self.send(&reply);
        if reply.code == 220 {
            self.st.server.metrics.session_started();
        }
        if d.disconnect || reply.code != 220 {
            return Flow::Close(End::Disconnected);
        }
        Flow::Next
    }

    /// Waits `[limits] greeting_delay` before the greeting; a client that sends meanwhile is
    /// refused. A client that closes is let go.
    async fn wait_for_greeting(&mut self) -> Flow {
        let delay = self.st.server.config.limits.greeting_delay;
        if delay.is_zero() {
            return Flow::Next;
        }
        match tokio::time::timeout(delay, self.input.fill(&mut self.stream)).await {
            Err(_) => Flow::Next,
            Ok(Ok(0)) => Flow::Close(End::ClientClosed),
            Ok(Ok(_)) => self.refuse_early_talker(),
            Ok(Err(e)) => Flow::Close(End::Io(e.to_string())),
        }
    }

    /// 554 and close, like postscreen's pregreet test: what the client sent is not read.
    fn refuse_early_talker(&mut self) -> Flow {
        info!(session = self.st.info.id, remote = %self.st.info.remote, "client talked before the greeting");
        self.input.clear();
        self.send(&reply::early_talker(&self.st.server.hostname));
        Flow::Close(End::EarlyTalker)
    }

    /// Handles one command line.
    async fn command(&mut self, range: std::ops::Range<usize>) -> Flow {
        let line = self.input.bytes(range);
        // A BDAT line that cannot be read is followed by a chunk that must not be taken for
        // commands: any error in it closes the session.
        let bdat_line = line.len() >= 4
            && line[..4].eq_ignore_ascii_case(b"BDAT")
            && line.get(4).is_none_or(|b| b.is_ascii_whitespace());
        if line.contains(&0) {
            return self.refuse_line(reply::syntax_error(), bdat_line).await;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return self.refuse_line(reply::syntax_error(), bdat_line).await;
        };
        let (word, args) = text.split_once(' ').unwrap_or((text, ""));
        let Some(verb) = Verb::parse(word) else {
            self.st.server.metrics.command(word);
            return self.refuse_line(reply::syntax_error(), bdat_line).await;
        };
        self.st.server.metrics.command(verb.as_str());
        let limit = match verb.as_str() {
            "MAIL" | "RCPT" => MAX_PARAMETER_COMMAND,
            "AUTH" => MAX_AUTH_COMMAND,
            _ => MAX_COMMAND,
        };
        if text.len() > limit {
            return self.refuse_line(reply::line_too_long(), bdat_line).await;
        }
        // A BDAT chunk follows its command whatever the reply, so its size is read before any
        // sink runs; when it cannot be read the stream can no longer be followed.
        let bdat = if verb.as_str() == "BDAT" {
            match crate::bdat::parse(text) {
                Some(chunk) => Some(chunk),
                None => {
                    self.send(&reply::bad_arguments("BDAT size [LAST]"));
                    return Flow::Close(End::Desync);
                }
            }
        } else {
            None
        };
        let command = Arc::new(Command {
            verb: verb.clone(),
            args: args.to_owned(),
            line: text.to_owned(),
        });
        if verb.as_str() == "AUTH" {
            // A SASL exchange: the event is raised once the credentials are in (`auth.rs`).
            return self.auth(command).await;
        }
        let mut ctx = self.st.context(Event::Inbound(Some(verb)), Some(command));
        let mut staged = Staged::Nothing;
        let d = {
            let mut defaults = Defaults {
                st: &self.st,
                staged: &mut staged,
            };
            self.st.snapshot.dispatch(&mut ctx, &mut defaults).await
        };
        let mut reply = d.reply.unwrap_or_else(reply::ok);
        // Sinks may have changed the transaction (recipients, properties).
        self.st.msg = ctx.message;
        // A sink that names another client and answers 220 restarts the session as Postfix's
        // XCLIENT does: the client gets this server's greeting and says EHLO again.
        if reply.is_positive() && self.st.adopt_client(ctx.session) && reply.code == 220 {
            reply = reply::greeting(&self.st.server.hostname);
        }
        if !d.default_ran || !reply.is_positive() {
            staged = Staged::Nothing;
        }
        self.finish_command(reply, d.disconnect, staged, bdat).await
    }

    /// Sends a command's reply and carries out what the default sink staged.
    async fn finish_command(
        &mut self,
        reply: Reply,
        disconnect: bool,
        staged: Staged,
        bdat: Option<(usize, bool)>,
    ) -> Flow {
        let code = reply.code;
        if let Some((size, last)) = bdat {
            // RFC 3030 §2: the chunk is read whatever the reply; the reply comes after it.
            let accepted = match staged {
                Staged::Bdat(fresh) => Some(fresh),
                _ => None,
            };
            let flow = self.receive_chunk(size, last, reply, accepted).await;
            return if disconnect {
                Flow::Close(End::Disconnected)
            } else {
                flow
            };
        }
        if disconnect {
            self.send(&reply);
            return Flow::Close(End::Disconnected);
        }
        match staged {
            Staged::Quit => {
                self.send(&reply);
                return Flow::Close(End::Quit);
            }
            Staged::StartTls if code == 220 => return self.start_tls(reply).await,
            Staged::Data(id, intake) if code == 354 => {
                self.send(&reply);
                return self.receive_data(id, intake).await;
            }
            other => self.st.apply(other),
        }
        if code >= 400 {
            return self.error_reply(reply).await;
        }
        self.send(&reply);
        Flow::Next
    }

    /// Refuses a command line; a refused BDAT line closes the session (see `command`).
    async fn refuse_line(&mut self, reply: Reply, bdat_line: bool) -> Flow {
        if bdat_line {
            self.send(&reply);
            return Flow::Close(End::Desync);
        }
        self.error_reply(reply).await
    }

    /// Sends an error reply and counts it; past the limit the session closes.
    pub(crate) async fn error_reply(&mut self, reply: Reply) -> Flow {
        self.send(&reply);
        // 452 4.5.3 asks a pipelining client to send the other recipients later; not an error.
        if reply.code != 452 {
            self.st.errors += 1;
        }
        if self.st.errors >= self.st.server.config.limits.max_errors {
            self.send(&reply::too_many_errors(&self.st.server.hostname));
            return Flow::Close(End::TooManyErrors);
        }
        Flow::Next
    }

    /// Queues a reply for sending (flushed when no more pipelined input waits).
    pub(crate) fn send(&mut self, reply: &Reply) {
        // RFC 2034 §3: enhanced codes go to clients that saw ENHANCEDSTATUSCODES in EHLO.
        reply.write_to(&mut self.out, self.st.info.esmtp);
        self.st.server.metrics.reply(reply.code);
    }

    /// Writes the pending replies. A client that does not read its replies is given the
    /// command timeout, like one that does not send.
    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let timeout = self.st.server.config.limits.command_timeout;
            let write = async {
                self.stream.write_all(&self.out).await?;
                self.stream.flush().await
            };
            tokio::time::timeout(timeout, write).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "client does not read replies")
            })??;
            self.out.clear();
        }
        Ok(())
    }

    /// Flushes what is left and raises session-end.
    async fn finish(&mut self, end: &End) {
        self.st.phase = Phase::Closing;
        let _ = self.flush().await;
        let timeout = self.st.server.config.limits.command_timeout;
        let _ = tokio::time::timeout(timeout, self.stream.shutdown()).await;
        let mut ctx = self.st.context(Event::SessionEnd, None);
        self.st.snapshot.dispatch(&mut ctx, &mut NoDefault).await;
        if let Some(log) = self.st.server.host.decisions() {
            log.session_closed(self.st.info.id);
        }
        debug!(session = self.st.info.id, end = ?end, "session-end raised");
    }

    /// Reads with the command timeout and the whole-transfer deadline of DATA/BDAT.
    pub(crate) async fn fill_before(&mut self, deadline: Instant) -> Result<(), End> {
        let timeout = self.st.server.config.limits.command_timeout;
        let until = deadline.min(Instant::now() + timeout);
        match tokio::time::timeout_at(until, self.input.fill(&mut self.stream)).await {
            Err(_) => {
                self.send(&reply::timeout(&self.st.server.hostname));
                Err(End::Timeout)
            }
            Ok(Ok(0)) => Err(End::ClientClosed),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(End::Io(e.to_string())),
        }
    }
}

/// The default sink of session-start: the greeting.
struct Greeting(String);

impl postern_sink_host::DefaultSink for Greeting {
    async fn run(&mut self, _ctx: &Context) -> postern_sink_api::Outcome {
        postern_sink_api::Outcome::changes(vec![postern_sink_api::Change::SetReply(
            reply::greeting(&self.0),
        )])
    }
}
