//! STARTTLS (RFC 3207) and the handshake of implicit-TLS listeners (RFC 8314).
//!
//! What the client sent after STARTTLS before the handshake was sent in clear and could have
//! been injected by anyone on the path (the CVE-2011-0411 class), so it is thrown away, never
//! answered. After the handshake the session forgets all it learnt from the client: the
//! client must say EHLO again (RFC 3207 §4.2).

use postern_sink_api::{Command, Reply};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tracing::info;

use crate::Server;
use crate::conn::Conn;
use crate::defaults::Staged;
use crate::reply;
use crate::session::{End, Flow, Session, State};

/// The default sink of `inbound:STARTTLS`.
pub(crate) fn starttls(st: &State, command: &Command) -> (Reply, Staged) {
    if !command.args.trim().is_empty() {
        return (reply::bad_arguments("STARTTLS"), Staged::Nothing);
    }
    if st.server.tls.is_none() {
        return (reply::not_implemented(), Staged::Nothing);
    }
    if st.info.tls {
        return (reply::tls_already_active(), Staged::Nothing);
    }
    (reply::ready_to_start_tls(), Staged::StartTls)
}

/// Whether EHLO offers STARTTLS: a certificate is there and the session is still in clear.
pub(crate) fn offered(st: &State) -> bool {
    st.server.tls.is_some() && !st.info.tls
}

/// Runs the TLS handshake on a clear stream, within the command timeout.
pub(crate) async fn handshake<S>(server: &Server, plain: S) -> Result<TlsStream<S>, End>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(tls) = &server.tls else {
        return Err(End::Tls("no certificate".to_owned()));
    };
    let acceptor = tls.acceptor();
    let timeout = server.config.limits.command_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(plain)).await {
        Err(_) => Err(End::Timeout),
        Ok(Err(e)) => Err(End::Tls(e.to_string())),
        Ok(Ok(stream)) => Ok(stream),
    }
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// After `220 Ready to start TLS`: sends it, drops pipelined input, shakes hands and
    /// starts the session afresh.
    pub(crate) async fn start_tls(&mut self, reply: Reply) -> Flow {
        // The 220 must go out alone: nothing pipelined after STARTTLS is answered.
        self.input.clear();
        self.send(&reply);
        if let Err(e) = self.flush().await {
            return Flow::Close(End::Io(e.to_string()));
        }
        let Conn::Plain(plain) = std::mem::replace(&mut self.stream, Conn::Gone) else {
            return Flow::Close(End::Tls("STARTTLS on an encrypted stream".to_owned()));
        };
        match handshake(&self.st.server, plain).await {
            Ok(stream) => {
                self.stream = Conn::Tls(Box::new(stream));
                let summary = self.stream.tls_summary();
                info!(
                    session = self.st.info.id,
                    tls = summary.as_deref().unwrap_or(""),
                    "STARTTLS done"
                );
                self.st.encrypted(summary);
                Flow::Next
            }
            Err(end) => Flow::Close(end),
        }
    }
}
