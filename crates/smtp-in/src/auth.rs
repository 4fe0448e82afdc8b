//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.
//!
//! The session runs the SASL exchange itself (challenges and responses are not commands), and
//! raises `inbound:AUTH` once the client's credentials are complete. Sinks of that event see
//! them in the session's property bag — `auth.mechanism`, `auth.login` and `auth.password` (the
//! password is removed again when the event ends) — so a sink bound before the default one can
//! check them against another source (LDAP, HTTP) and consume the event with a 235 reply,
//! naming the user in the session property `auth.user` (else the login name is taken). The
//! default sink checks `DATA/users.toml` on the blocking pool: argon2 is slow on purpose.
//!
//! Failures are counted per client address ([`Lockouts`](crate::guard::Lockouts)): each 535 is
//! delayed, longer each time, and past `[auth] max_failures` the address gets 454 4.7.0 until
//! the lockout ends. AUTH is offered only on an encrypted connection, unless
//! `[auth] allow_plaintext` is set.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use postern_sink_api::{Change, Command, Context, Event, Outcome, Reply};
use postern_sink_host::DefaultSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::guard::Key;
use crate::input::Line;
use crate::reply;
use crate::session::{End, Flow, Phase, Session, State};
use crate::users::Users;

/// The mechanisms offered, as the EHLO keyword lists them.
pub(crate) const MECHANISMS: &str = "PLAIN LOGIN";
/// The session properties `inbound:AUTH` sinks read and set.
pub(crate) const PROP_MECHANISM: &str = "auth.mechanism";
pub(crate) const PROP_LOGIN: &str = "auth.login";
pub(crate) const PROP_PASSWORD: &str = "auth.password";
pub(crate) const PROP_USER: &str = "auth.user";
/// RFC 4954 §4: "Username:" and "Password:" in base64, LOGIN's challenges.
const USERNAME: &str = "VXNlcm5hbWU6";
const PASSWORD: &str = "UGFzc3dvcmQ6";

/// Whether this session offers AUTH.
pub(crate) fn offered(st: &State) -> bool {
    st.info.tls || st.server.config.auth.allow_plaintext
}

#[derive(Debug, Clone, Copy)]
enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What the client sent: credentials, or why the exchange stopped.
enum Exchange {
    Credentials { login: String, password: String },
    Refused(Reply),
    Closed(End),
}

/// The state an AUTH command may come in; `Err` is the reply refusing it.
fn check(st: &State, command: &Command) -> Result<(Mechanism, String), Reply> {
    if !offered(st) {
        return Err(reply::auth_needs_tls());
    }
    if st.info.helo.is_none() || !st.info.esmtp {
        return Err(reply::bad_sequence("send EHLO first"));
    }
    if st.info.auth_user.is_some() {
        return Err(reply::bad_sequence("already authenticated"));
    }
    if st.msg.sender.is_some() {
        return Err(reply::bad_sequence("not during a mail transaction"));
    }
    if st.server.lockouts.locked(&Key::client(st.info.remote.ip())) {
        return Err(reply::auth_locked());
    }
    let syntax = || reply::bad_arguments("AUTH mechanism [initial-response]");
    match crate::defaults::parse_request(&command.line) {
        Ok(smtp_proto::Request::Auth {
            mechanism,
            initial_response,
        }) => {
            let mechanism = match mechanism {
                smtp_proto::AUTH_PLAIN => Mechanism::Plain,
                smtp_proto::AUTH_LOGIN => Mechanism::Login,
                _ => return Err(reply::auth_unknown_mechanism()),
            };
            Ok((mechanism, initial_response))
        }
        _ => {
            // A mechanism the parser does not know at all, or arguments it could not read.
            let word = command.args.split_ascii_whitespace().next().unwrap_or("");
            let ours = ["PLAIN", "LOGIN"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(word));
            if word.is_empty() || ours {
                Err(syntax())
            } else {
                Err(reply::auth_unknown_mechanism())
            }
        }
    }
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Handles an AUTH command: the exchange, then `inbound:AUTH`, then the outcome.
    pub(crate) async fn auth(&mut self, command: Arc<Command>) -> Flow {
        let (mechanism, initial) = match check(&self.st, &command) {
            Ok(found) => found,
            Err(reply) => return self.error_reply(reply).await,
        };
        self.st.phase = Phase::Auth;
        let exchange = self.exchange(mechanism, &initial).await;
        self.st.phase = Phase::Command;
        let (login, password) = match exchange {
            Exchange::Credentials { login, password } => (login, password),
            Exchange::Refused(reply) => return self.error_reply(reply).await,
            Exchange::Closed(end) => return Flow::Close(end),
        };
        let props = &self.st.props;
        props.set(PROP_MECHANISM, mechanism.name());
        props.set(PROP_LOGIN, login.clone());
        props.set(PROP_PASSWORD, password.clone());
        props.remove(PROP_USER);
        let mut ctx = self
            .st
            .context(Event::Inbound(Some(command.verb.clone())), Some(command));
        let mut verify = Verify {
            users: Users::path(&self.st.server.config.data_dir),
            login: login.clone(),
            password,
        };
        let d = self.st.snapshot.dispatch(&mut ctx, &mut verify).await;
        self.st.props.remove(PROP_PASSWORD);
        let reply = d.reply.unwrap_or_else(reply::auth_failed);
        let key = Key::client(self.st.info.remote.ip());
        if reply.code == 235 {
            let user = self
                .st
                .props
                .get(PROP_USER)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or(login);
            info!(session = self.st.info.id, remote = %self.st.info.remote, user = %user,
                  mechanism = mechanism.name(), "authenticated");
            self.st.server.lockouts.succeed(&key);
            let info = Arc::make_mut(&mut self.st.info);
            info.auth_user = Some(user);
            info.may_relay = true;
            self.send(&reply);
            return if d.disconnect {
                Flow::Close(End::Disconnected)
            } else {
                Flow::Next
            };
        }
        if reply.code == 535 {
            let delay = self
                .st
                .server
                .lockouts
                .fail(key, &self.st.server.config.auth);
            warn!(session = self.st.info.id, remote = %self.st.info.remote, login = %login,
                  "authentication failed");
            // The delay slows a password guesser down; it costs the server a timer only.
            tokio::time::sleep(delay).await;
        }
        if d.disconnect {
            self.send(&reply);
            return Flow::Close(End::Disconnected);
        }
        self.error_reply(reply).await
    }

    /// Reads the client's credentials for `mechanism`, sending the challenges it needs.
    async fn exchange(&mut self, mechanism: Mechanism, initial: &str) -> Exchange {
        match mechanism {
            Mechanism::Plain => {
                let response = if initial.is_empty() {
                    match self.respond(&reply::challenge("")).await {
                        Ok(bytes) => bytes,
                        Err(stop) => return stop,
                    }
                } else {
                    match decode(initial) {
                        Ok(bytes) => bytes,
                        Err(stop) => return stop,
                    }
                };
                plain(&response)
            }
            Mechanism::Login => {
                let login = if initial.is_empty() {
                    match self.respond(&reply::challenge(USERNAME)).await {
                        Ok(bytes) => bytes,
                        Err(stop) => return stop,
                    }
                } else {
                    match decode(initial) {
                        Ok(bytes) => bytes,
                        Err(stop) => return stop,
                    }
                };
                let password = match self.respond(&reply::challenge(PASSWORD)).await {
                    Ok(bytes) => bytes,
                    Err(stop) => return stop,
                };
                match (String::from_utf8(login), String::from_utf8(password)) {
                    (Ok(login), Ok(password)) => Exchange::Credentials { login, password },
                    _ => Exchange::Refused(reply::auth_bad_response("not UTF-8")),
                }
            }
        }
    }

    /// Sends a challenge and reads the client's response, decoded.
    async fn respond(&mut self, challenge: &Reply) -> Result<Vec<u8>, Exchange> {
        self.send(challenge);
        if let Err(e) = self.flush().await {
            return Err(Exchange::Closed(End::Io(e.to_string())));
        }
        let timeout = self.st.server.config.limits.command_timeout;
        // Like a command line, a response must be complete within the command timeout.
        let deadline = Instant::now() + timeout;
        loop {
            match self.input.next_line() {
                Some(Line::Complete(range)) => {
                    let line = self.input.bytes(range);
                    let text = std::str::from_utf8(line).unwrap_or("\u{0}");
                    return decode(text);
                }
                Some(Line::TooLong) => return Err(Exchange::Refused(reply::auth_line_too_long())),
                None => {}
            }
            match tokio::time::timeout_at(deadline, self.input.fill(&mut self.stream)).await {
                Err(_) => {
                    self.send(&reply::timeout(&self.st.server.hostname));
                    return Err(Exchange::Closed(End::Timeout));
                }
                Ok(Ok(0)) => return Err(Exchange::Closed(End::ClientClosed)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Exchange::Closed(End::Io(e.to_string()))),
            }
        }
    }
}

/// Decodes a response: `*` cancels (RFC 4954 §4), `=` is an empty initial response.
fn decode(text: &str) -> Result<Vec<u8>, Exchange> {
    let text = text.trim_end();
    if text == "*" {
        return Err(Exchange::Refused(reply::auth_cancelled()));
    }
    if text == "=" {
        return Ok(Vec::new());
    }
    STANDARD
        .decode(text)
        .map_err(|_| Exchange::Refused(reply::auth_bad_response("invalid base64")))
}

/// An AUTH response through the decoders the exchange uses (for the fuzz targets).
pub(crate) fn fuzz_response(text: &str) {
    if let Ok(bytes) = decode(text) {
        let _ = plain(&bytes);
    }
}

/// PLAIN's message (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`. An authorization
/// identity other than the login name is refused: no one may act for another user.
fn plain(message: &[u8]) -> Exchange {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Exchange::Refused(reply::auth_bad_response(
            "expected [authzid] NUL user NUL password",
        ));
    };
    let (Ok(authzid), Ok(login), Ok(password)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(authcid),
        std::str::from_utf8(password),
    ) else {
        return Exchange::Refused(reply::auth_bad_response("not UTF-8"));
    };
    if !authzid.is_empty() && authzid != login {
        return Exchange::Refused(reply::auth_failed());
    }
    Exchange::Credentials {
        login: login.to_owned(),
        password: password.to_owned(),
    }
}

/// The default sink of `inbound:AUTH`: the user store.
struct Verify {
    users: std::path::PathBuf,
    login: String,
    password: String,
}

impl DefaultSink for Verify {
    async fn run(&mut self, _ctx: &Context) -> Outcome {
        let path = self.users.clone();
        let login = self.login.clone();
        let password = std::mem::take(&mut self.password);
        // Reading the store and argon2 both block: never on a runtime thread.
        let checked = tokio::task::spawn_blocking(move || {
            Users::load(&path).map(|u| u.verify(&login, &password))
        })
        .await;
        let reply = match checked {
            Ok(Ok(true)) => reply::auth_ok(),
            Ok(Ok(false)) => reply::auth_failed(),
            Ok(Err(e)) => {
                warn!("user store: {e}");
                reply::auth_unavailable()
            }
            Err(e) => {
                warn!("password check failed: {e}");
                reply::auth_unavailable()
            }
        };
        Outcome::changes(vec![Change::SetReply(reply)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case's name, the PLAIN message, and the login and password wanted.
    type Case = (
        &'static str,
        &'static [u8],
        Option<(&'static str, &'static str)>,
    );

    #[test]
    fn plain_messages_are_split_and_checked() {
        let cases: &[Case] = &[
            ("no authzid", b"\0alice\0pw", Some(("alice", "pw"))),
            ("same authzid", b"alice\0alice\0pw", Some(("alice", "pw"))),
            ("other authzid", b"bob\0alice\0pw", None),
            ("two parts", b"alice\0pw", None),
            ("four parts", b"\0a\0b\0c", None),
        ];
        for (name, message, want) in cases {
            let got = match plain(message) {
                Exchange::Credentials { login, password } => Some((login, password)),
                _ => None,
            };
            let want = want.map(|(l, p)| (l.to_owned(), p.to_owned()));
            assert_eq!(got, want, "{name}");
        }
    }
}
