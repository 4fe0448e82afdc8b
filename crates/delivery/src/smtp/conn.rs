//! One outbound SMTP connection: greeting, EHLO (HELO fallback), STARTTLS, and commands with a
//! time limit per step.

use std::sync::Arc;
use std::time::Duration;

use postern_sink_api::Reply;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use smtp_proto::{
    EXT_8BIT_MIME, EXT_CHUNKING, EXT_DSN, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS,
};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use super::ClientError;
use super::reply::ReplyReader;
use super::stream::BoxStream;

/// The time limits of a session's steps (RFC 5321 §4.5.3.2).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening the TCP connection.
    pub connect: Duration,
    /// The 220 greeting.
    pub greeting: Duration,
    /// EHLO, HELO, STARTTLS, RSET, QUIT and commands added by sinks.
    pub command: Duration,
    /// MAIL FROM.
    pub mail: Duration,
    /// RCPT TO.
    pub rcpt: Duration,
    /// The 354 after DATA.
    pub data_init: Duration,
    /// Writing each block of the content.
    pub data_block: Duration,
    /// The reply after the end of the content (or after a BDAT chunk).
    pub data_end: Duration,
    /// The TLS handshake.
    pub tls: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self {
            connect: Duration::from_secs(30),
            greeting: minutes(5),
            command: minutes(5),
            mail: minutes(5),
            rcpt: minutes(5),
            data_init: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
            tls: Duration::from_secs(60),
        }
    }
}

/// What the remote offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// Whether it answered EHLO (ESMTP) rather than only HELO.
    pub esmtp: bool,
    /// The `smtp-proto` capability bits.
    pub bits: u32,
    /// SIZE's limit; 0 when none was given.
    pub size: usize,
    /// The keywords, upper case, for the sinks.
    pub keywords: Vec<String>,
}

impl Extensions {
    /// PIPELINING (RFC 2920).
    pub fn pipelining(&self) -> bool {
        self.bits & EXT_PIPELINING != 0
    }
    /// CHUNKING (RFC 3030).
    pub fn chunking(&self) -> bool {
        self.bits & EXT_CHUNKING != 0
    }
    /// 8BITMIME (RFC 6152).
    pub fn eight_bit(&self) -> bool {
        self.bits & EXT_8BIT_MIME != 0
    }
    /// SMTPUTF8 (RFC 6531).
    pub fn smtputf8(&self) -> bool {
        self.bits & EXT_SMTP_UTF8 != 0
    }
    /// DSN (RFC 3461).
    pub fn dsn(&self) -> bool {
        self.bits & EXT_DSN != 0
    }
    /// SIZE (RFC 1870).
    pub fn size(&self) -> bool {
        self.bits & EXT_SIZE != 0
    }
    /// STARTTLS (RFC 3207).
    pub fn starttls(&self) -> bool {
        self.bits & EXT_START_TLS != 0
    }
}

/// A connection in the command phase.
pub struct Connection {
    io: BoxStream,
    reader: ReplyReader,
    /// What the remote offered (after the last EHLO).
    pub extensions: Extensions,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The time limits.
    pub timeouts: Timeouts,
    /// Messages sent over this connection (for reuse accounting).
    pub messages: u32,
    /// Whether the remote speaks LMTP (RFC 2033): LHLO, and one reply per recipient after
    /// the content. Set by whoever opens the connection, before `hello`.
    pub lmtp: bool,
}

impl Connection {
    /// Wraps a stream whose remote has not yet greeted.
    pub fn new(io: BoxStream, timeouts: Timeouts) -> Self {
        Self {
            io,
            reader: ReplyReader::default(),
            extensions: Extensions::default(),
            tls: false,
            timeouts,
            messages: 0,
            lmtp: false,
        }
    }

    /// Reads the greeting; anything but 220 is returned as the remote's refusal.
    pub async fn greeting(&mut self) -> Result<Reply, ClientError> {
        self.read(self.timeouts.greeting).await
    }

    /// Sends bytes as they are (one or more command lines, or content).
    pub async fn write(&mut self, bytes: &[u8], limit: Duration) -> Result<(), ClientError> {
        let io = &mut self.io;
        tokio::time::timeout(limit, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| ClientError::Timeout("sending"))?
        .map_err(ClientError::Io)
    }

    /// Reads one reply within `limit`.
    pub async fn read(&mut self, limit: Duration) -> Result<Reply, ClientError> {
        Ok(self.read_raw(limit).await?.0)
    }

    async fn read_raw(&mut self, limit: Duration) -> Result<(Reply, Vec<u8>), ClientError> {
        tokio::time::timeout(limit, self.reader.read(&mut self.io))
            .await
            .map_err(|_| ClientError::Timeout("waiting for a reply"))?
    }

    /// Sends one command line (without CRLF) and reads its reply.
    pub async fn command(&mut self, line: &str, limit: Duration) -> Result<Reply, ClientError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes, limit).await?;
        self.read(limit).await
    }

    /// Sends EHLO (or the line a sink made of it) and records the extensions; falls back to
    /// HELO when EHLO is refused (RFC 5321 §3.2). An LMTP server gets LHLO, which has no
    /// fallback: LMTP has no HELO (RFC 2033 §4.1).
    pub async fn hello(&mut self, line: &str, helo_name: &str) -> Result<Reply, ClientError> {
        let limit = self.timeouts.command;
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes, limit).await?;
        let (reply, raw) = self.read_raw(limit).await?;
        let verb = line.get(..4).unwrap_or_default();
        let lhlo = verb.eq_ignore_ascii_case("LHLO");
        if reply.code == 250 && (lhlo || verb.eq_ignore_ascii_case("EHLO")) {
            self.extensions = parse_ehlo(&raw);
            return Ok(reply);
        }
        if !lhlo && ((500..=502).contains(&reply.code) || reply.code == 504) {
            self.extensions = Extensions::default();
            return self.command(&format!("HELO {helo_name}"), limit).await;
        }
        Ok(reply)
    }

    /// Upgrades to TLS after a 220 to STARTTLS. Bytes the remote sent after its 220 are
    /// discarded, as RFC 3207 §4.2 requires of the client too.
    pub async fn start_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<(), ClientError> {
        self.reader.clear();
        let connector = TlsConnector::from(config);
        // A closed placeholder stands in while the stream is moved into the handshake.
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let tls = tokio::time::timeout(self.timeouts.tls, connector.connect(name, io))
            .await
            .map_err(|_| ClientError::Timeout("the TLS handshake"))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        self.io = Box::new(tls);
        self.tls = true;
        self.extensions = Extensions::default();
        Ok(())
    }

    /// Whether the remote sent bytes nobody asked for (a protocol violation after STARTTLS).
    pub fn has_unread(&self) -> bool {
        self.reader.has_pending()
    }

    /// Sends QUIT and closes, ignoring what the remote answers.
    pub async fn quit(mut self, line: &str) {
        let _ = self.command(line, Duration::from_secs(10)).await;
        let _ = self.io.shutdown().await;
    }
}

fn parse_ehlo(raw: &[u8]) -> Extensions {
    let mut ext = Extensions {
        esmtp: true,
        ..Extensions::default()
    };
    if let Ok(parsed) = smtp_proto::EhloResponse::parse(&mut raw.iter()) {
        ext.bits = parsed.capabilities;
        ext.size = parsed.size;
    }
    // The keywords as the remote wrote them, for sinks and logs.
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if let Some(word) = text.get(4..).and_then(|t| t.split_whitespace().next()) {
            ext.keywords.push(word.to_ascii_uppercase());
        }
    }
    ext
}
