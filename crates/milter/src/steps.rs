//! The step mode: a milter bound to protocol events is driven step by step on one connection
//! per SMTP session. Connections live in one process-wide table keyed by (milter address,
//! session id, see `open`), so every binding of the same milter in one session shares its
//! connection and the milter sees the session's steps in order. A connection is closed
//! (SMFIC_QUIT) at `session-end` when a binding of that milter is on it, and otherwise by the
//! reaper in `open`.

use postern_mailmsg::Fate;
use postern_sink_api::{Change, Context, Event, Outcome};

use crate::address::Address;
use crate::connection::Connection;
use crate::error::MilterError;
use crate::macros;
use crate::open;
use crate::replay::{connect_data, early, from_rcpt, nul, send};
use crate::wire::{cmd, step};

/// What one protocol event asks of the milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Connect,
    Helo(String),
    Mail(String),
    Rcpt(String),
    /// End of data: the rest of the message, up to end of message.
    Message,
    Quit,
    /// A verb the milter protocol has no step for (an `inbound:*` binding).
    Nothing,
}

impl Step {
    /// The step of an event, `None` off the protocol events.
    pub(crate) fn of(ctx: &Context) -> Option<Self> {
        let command = ctx.command.as_deref();
        Some(match ctx.event {
            Event::SessionStart => Self::Connect,
            Event::EndOfData => Self::Message,
            Event::SessionEnd => Self::Quit,
            Event::Inbound(_) => {
                let Some(command) = command else {
                    return Some(Self::Nothing);
                };
                let path = || command.path().unwrap_or_default().to_owned();
                match command.verb.as_str() {
                    "HELO" | "EHLO" => Self::Helo(
                        command
                            .args
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    "MAIL" => Self::Mail(path()),
                    "RCPT" => Self::Rcpt(path()),
                    _ => Self::Nothing,
                }
            }
            _ => return None,
        })
    }
}

/// Where one session's conversation with one milter stands.
#[derive(Default)]
pub(crate) struct State {
    conn: Option<Connection>,
    connected: bool,
    helo: bool,
    /// MAIL was sent and the message is not finished.
    mail: bool,
    /// At least one RCPT of this message was sent.
    rcpts: bool,
    /// The milter is done with the session (it answered connect or helo with other than
    /// continue).
    session_done: bool,
    /// The milter is done with this message; the outcome to give at end of data.
    message_done: Option<Outcome>,
    /// A step is being run; still set when the next one starts, that one was cancelled.
    in_flight: bool,
}

/// Runs one step of a session's conversation.
pub(crate) async fn drive(
    address: &Address,
    session: u64,
    step: Step,
    ctx: &Context,
    daemon: &str,
) -> Result<Outcome, MilterError> {
    match step {
        Step::Nothing => return Ok(Outcome::next()),
        Step::Quit => {
            let gone = open::remove(address, session);
            if let Some(e) = gone {
                e.lock().await.close().await;
            }
            return Ok(Outcome::next());
        }
        _ => {}
    }
    let state = open::entry(address, session);
    let mut st = state.lock().await;
    if st.in_flight {
        // The previous step was cut short (the binding's timeout): its answer may still be on
        // the way, so the connection cannot be trusted; start over on a fresh one.
        *st = State::default();
    }
    st.in_flight = true;
    let result = st.advance(address, step, ctx, daemon).await;
    st.in_flight = false;
    if result.is_err() {
        // Start over on a fresh connection at the session's next event.
        st.conn = None;
        drop(st);
        open::remove(address, session);
    }
    result
}

impl State {
    async fn advance(
        &mut self,
        address: &Address,
        step: Step,
        ctx: &Context,
        daemon: &str,
    ) -> Result<Outcome, MilterError> {
        if self.session_done {
            return Ok(Outcome::next());
        }
        if self.conn.is_none() {
            self.conn = Some(Connection::open(address).await?);
        }
        if let Some(out) = self.ensure_connect(ctx, daemon).await? {
            return Ok(out);
        }
        match step {
            Step::Connect => Ok(Outcome::next()),
            Step::Helo(name) => {
                // A second EHLO (after STARTTLS) is passed on as Sendmail does.
                self.abort_message().await?;
                self.helo = false;
                Ok(self
                    .ensure_helo(ctx, daemon, Some(&name))
                    .await?
                    .unwrap_or_default())
            }
            Step::Mail(path) => {
                if let Some(out) = self.ensure_helo(ctx, daemon, None).await? {
                    return Ok(out);
                }
                self.abort_message().await?;
                Ok(self.mail(ctx, daemon, &path).await?.unwrap_or_default())
            }
            Step::Rcpt(path) => {
                if let Some(out) = self.ensure_mail(ctx, daemon).await? {
                    return Ok(out);
                }
                if self.message_done.is_some() {
                    return Ok(Outcome::next());
                }
                self.rcpt(ctx, daemon, &path).await
            }
            Step::Message => {
                if let Some(out) = self.ensure_mail(ctx, daemon).await? {
                    return Ok(out);
                }
                if let Some(out) = self.message_done.take() {
                    self.abort_message().await?;
                    return Ok(out);
                }
                let send_rcpts = !self.rcpts;
                let conn = self.conn()?;
                let (out, finished) = from_rcpt(conn, ctx, daemon, send_rcpts).await?;
                if finished {
                    self.mail = false;
                    self.rcpts = false;
                } else {
                    self.abort_message().await?;
                }
                Ok(out)
            }
            Step::Quit | Step::Nothing => Ok(Outcome::next()),
        }
    }

    fn conn(&mut self) -> Result<&mut Connection, MilterError> {
        self.conn.as_mut().ok_or(MilterError::Closed)
    }

    async fn ensure_connect(
        &mut self,
        ctx: &Context,
        daemon: &str,
    ) -> Result<Option<Outcome>, MilterError> {
        if self.connected {
            return Ok(None);
        }
        self.connected = true;
        let conn = self.conn()?;
        send(
            conn,
            (
                cmd::CONNECT,
                macros::for_stage(cmd::CONNECT, ctx, daemon, None),
            ),
        )
        .await?;
        let answer = conn
            .step(
                cmd::CONNECT,
                &connect_data(ctx),
                step::NOCONNECT,
                step::NR_CONN,
            )
            .await?;
        self.session_answer(answer)
    }

    /// Sends helo unless sent: the name given, else what the session knows.
    async fn ensure_helo(
        &mut self,
        ctx: &Context,
        daemon: &str,
        name: Option<&str>,
    ) -> Result<Option<Outcome>, MilterError> {
        if self.helo {
            return Ok(None);
        }
        self.helo = true;
        let name = name.map(str::to_owned).unwrap_or_else(|| {
            ctx.session
                .as_ref()
                .and_then(|s| s.helo.clone())
                .unwrap_or_else(|| ctx.message.info.helo.clone())
        });
        let conn = self.conn()?;
        send(
            conn,
            (cmd::HELO, macros::for_stage(cmd::HELO, ctx, daemon, None)),
        )
        .await?;
        let answer = conn
            .step(cmd::HELO, &nul(&name), step::NOHELO, step::NR_HELO)
            .await?;
        self.session_answer(answer)
    }

    /// Connect and helo answered with other than continue end the milter's part in the session.
    fn session_answer(
        &mut self,
        answer: crate::answer::Answer,
    ) -> Result<Option<Outcome>, MilterError> {
        let out = early(answer)?;
        if out.is_some() {
            self.session_done = true;
        }
        Ok(out)
    }

    /// Sends helo and MAIL (with the message's sender) unless sent.
    async fn ensure_mail(
        &mut self,
        ctx: &Context,
        daemon: &str,
    ) -> Result<Option<Outcome>, MilterError> {
        if let Some(out) = self.ensure_helo(ctx, daemon, None).await? {
            return Ok(Some(out));
        }
        if self.mail || self.message_done.is_some() {
            return Ok(None);
        }
        let sender = ctx.message.sender_address().to_owned();
        self.mail(ctx, daemon, &sender).await
    }

    async fn mail(
        &mut self,
        ctx: &Context,
        daemon: &str,
        path: &str,
    ) -> Result<Option<Outcome>, MilterError> {
        self.mail = true;
        self.rcpts = false;
        self.message_done = None;
        let mut pairs = macros::for_stage(cmd::MAIL, ctx, daemon, None);
        for (name, value) in &mut pairs {
            // At MAIL the message has no sender yet: the command's path is the one.
            if *name == "{mail_addr}" {
                *value = path.to_owned();
            }
        }
        let conn = self.conn()?;
        send(conn, (cmd::MAIL, pairs)).await?;
        let answer = conn
            .step(
                cmd::MAIL,
                &nul(&format!("<{path}>")),
                step::NOMAIL,
                step::NR_MAIL,
            )
            .await?;
        let out = early(answer)?;
        if let Some(out) = &out {
            self.message_done = Some(at_end_of_data(out));
            return Ok(Some(without_fate(out.clone())));
        }
        Ok(None)
    }

    /// A recipient refused is refused at RCPT; accept and discard end the message for the
    /// milter.
    async fn rcpt(
        &mut self,
        ctx: &Context,
        daemon: &str,
        path: &str,
    ) -> Result<Outcome, MilterError> {
        self.rcpts = true;
        let conn = self.conn()?;
        send(
            conn,
            (
                cmd::RCPT,
                macros::for_stage(cmd::RCPT, ctx, daemon, Some(path)),
            ),
        )
        .await?;
        let answer = conn
            .step(
                cmd::RCPT,
                &nul(&format!("<{path}>")),
                step::NORCPT,
                step::NR_RCPT,
            )
            .await?;
        let refusal = matches!(
            answer,
            crate::answer::Answer::Reject
                | crate::answer::Answer::TempFail
                | crate::answer::Answer::ReplyCode(_)
        );
        match early(answer)? {
            Some(out) if refusal => Ok(out),
            Some(out) => {
                self.message_done = Some(at_end_of_data(&out));
                Ok(without_fate(out))
            }
            None => Ok(Outcome::next()),
        }
    }

    /// Tells the milter an open message is over (RSET, a new MAIL, a message it was done with).
    async fn abort_message(&mut self) -> Result<(), MilterError> {
        if self.mail || self.message_done.is_some() {
            self.mail = false;
            self.rcpts = false;
            self.message_done = None;
            self.conn()?.abort().await?;
        }
        Ok(())
    }

    /// Ends the conversation: abort an open message, then quit.
    pub(crate) async fn close(&mut self) {
        let open = self.mail;
        if let Some(conn) = self.conn.take() {
            conn.close(open).await;
        }
        self.session_done = true;
    }
}

/// What end of data gives for a message the milter ended early: a discard drops it, anything
/// else lets it go on (a refusal was already given at its command).
fn at_end_of_data(early: &Outcome) -> Outcome {
    if early.changes.contains(&Change::SetFate(Fate::Abort)) {
        Outcome::changes(vec![Change::SetFate(Fate::Abort)])
    } else {
        Outcome::next()
    }
}

/// A discard before end of data takes effect at end of data, not at the command.
fn without_fate(out: Outcome) -> Outcome {
    if out.changes.contains(&Change::SetFate(Fate::Abort)) {
        Outcome::next()
    } else {
        out
    }
}
