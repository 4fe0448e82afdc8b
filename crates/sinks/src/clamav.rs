//! `builtin:clamav`: scans the message at `end-of-data` with clamd over its INSTREAM command.
//!
//! Properties: `address` (`HOST:PORT`, default `127.0.0.1:3310`, or the path of clamd's Unix
//! socket), `action` (`reject`, the default, or `quarantine`) and `timeout` (milliseconds for the
//! whole scan, default 20000). A clamd that cannot be reached, is slower than `timeout` or
//! answers something other than a scan result makes the sink fail, so the binding's `on_error`
//! decides: the message is never accepted as clean without a clean answer.

use std::sync::Arc;
use std::time::Duration;

use postern_mailmsg::Fate;
use postern_sink_api::{
    Call, Change, Context, EnhancedCode, Event, Instance, Outcome, Reply, Scope, Sink, SinkError,
    SinkFactory, SinkResult, SinkSpec,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::props;

pub(crate) struct Factory;

/// Where the sink finds clamd.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Tcp(String),
    Unix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Reject,
    Quarantine,
}

struct ClamAv {
    address: Address,
    action: Action,
    timeout: Duration,
}

/// What clamd said about the stream.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    Clean,
    Infected(String),
}

const DEFAULT_ADDRESS: &str = "127.0.0.1:3310";
/// Under the binding's default timeout (30 s), so that the sink says what clamd did before the host
/// gives up on the call.
const DEFAULT_TIMEOUT_MS: i64 = 20_000;
/// Each chunk must stay under clamd's `StreamMaxLength` (25 MB by default), and small chunks
/// keep the memory of a scan bounded; clamd enforces the total itself.
const CHUNK: usize = 64 * 1024;
/// A scan result is one short line; more than this is not clamd.
const MAX_ANSWER: usize = 4096;
/// The message property that carries the signature of a quarantined message, for later sinks.
const VIRUS_PROPERTY: &str = "clamav.virus";

fn infected(signature: &str) -> Reply {
    Reply::new(
        554,
        Some(EnhancedCode::new(5, 7, 1)),
        format!("Message refused: virus {signature} found"),
    )
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "clamav"
    }

    fn summary(&self) -> &'static str {
        "scans the message with clamd; rejects or quarantines infected mail"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["address", "action", "timeout"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::EndOfData)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let address = parse_address(
            props::text(p, "address")?
                .as_deref()
                .unwrap_or(DEFAULT_ADDRESS),
        )?;
        let action = match props::text(p, "action")?.as_deref() {
            None | Some("reject") => Action::Reject,
            Some("quarantine") => Action::Quarantine,
            Some(other) => {
                return Err(SinkError::Config(format!(
                    "property `action`: {other:?} (reject, quarantine)"
                )));
            }
        };
        let ms = props::int(p, "timeout")?.unwrap_or(DEFAULT_TIMEOUT_MS);
        let ms = u64::try_from(ms)
            .ok()
            .filter(|&ms| (1..=600_000).contains(&ms))
            .ok_or_else(|| {
                SinkError::Config(format!("property `timeout`: {ms} is not 1–600000"))
            })?;
        Ok(Instance::Async(Arc::new(ClamAv {
            address,
            action,
            timeout: Duration::from_millis(ms),
        })))
    }
}

fn parse_address(text: &str) -> Result<Address, SinkError> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("unix:").or_else(|| {
        // A bare absolute or relative path names a Unix socket.
        (text.starts_with('/') || text.starts_with('.')).then_some(text)
    }) {
        if path.is_empty() {
            return Err(SinkError::Config(
                "property `address`: empty socket path".into(),
            ));
        }
        return Ok(Address::Unix(path.to_owned()));
    }
    let text = text.strip_prefix("tcp:").unwrap_or(text);
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(Address::Tcp(text.to_owned()))
        }
        _ => Err(SinkError::Config(format!(
            "property `address`: {text:?} is neither HOST:PORT nor a socket path"
        ))),
    }
}

impl Sink for ClamAv {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(self.run(ctx))
    }
}

impl ClamAv {
    async fn run(&self, ctx: &Context) -> SinkResult {
        let content = ctx.message.content.bytes();
        let answer = tokio::time::timeout(self.timeout, self.scan(content))
            .await
            .map_err(|_| {
                SinkError::Failed(format!(
                    "clamd at {} did not answer within {} ms",
                    self.address,
                    self.timeout.as_millis()
                ))
            })??;
        Ok(match answer {
            Scan::Clean => Outcome::next(),
            Scan::Infected(name) => match self.action {
                Action::Reject => Outcome::reply(infected(&name)),
                Action::Quarantine => {
                    tracing::info!(virus = %name, "clamd found a virus; message quarantined");
                    Outcome::changes(vec![
                        Change::SetProperty {
                            scope: Scope::Message,
                            key: VIRUS_PROPERTY.to_owned(),
                            value: name.into(),
                        },
                        Change::SetFate(Fate::Quarantine),
                    ])
                }
            },
        })
    }

    async fn scan(&self, content: &[u8]) -> Result<Scan, SinkError> {
        let failed = |e: std::io::Error| {
            SinkError::Failed(format!("clamd at {} cannot be reached: {e}", self.address))
        };
        match &self.address {
            Address::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(failed)?;
                instream(stream, content, &self.address).await
            }
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(failed)?;
                instream(stream, content, &self.address).await
            }
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => f.write_str(a),
            Self::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

/// Sends `content` with `zINSTREAM` and reads the NUL-terminated answer.
async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    content: &[u8],
    address: &Address,
) -> Result<Scan, SinkError> {
    // clamd closes the connection as soon as the stream passes StreamMaxLength, after writing
    // why; so a failed write is not the end: the answer may already be waiting.
    let sent = send_stream(&mut stream, content).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if answer.is_empty() => {
                return Err(SinkError::Failed(format!(
                    "clamd at {address}: {}",
                    sent.err().unwrap_or(e)
                )));
            }
            Err(_) => 0,
        };
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.contains(&0) || answer.len() > MAX_ANSWER {
            break;
        }
    }
    if answer.is_empty() {
        let why = sent.err().map_or_else(
            || "closed the connection without an answer".to_owned(),
            |e| e.to_string(),
        );
        return Err(SinkError::Failed(format!("clamd at {address}: {why}")));
    }
    parse_answer(&answer).map_err(|why| SinkError::Failed(format!("clamd at {address}: {why}")))
}

async fn send_stream<S: AsyncWrite + Unpin>(stream: &mut S, content: &[u8]) -> std::io::Result<()> {
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in content.chunks(CHUNK) {
        // CHUNK fits in a u32.
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&[0, 0, 0, 0]).await?;
    stream.flush().await
}

/// Reads clamd's answer: `stream: OK`, `stream: NAME FOUND`, or an error (`… ERROR`).
fn parse_answer(raw: &[u8]) -> Result<Scan, String> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = std::str::from_utf8(&raw[..end])
        .map_err(|_| "answered bytes that are not a scan result".to_owned())?
        .trim_end_matches(['\n', '\r']);
    let shown: String = text.chars().take(200).collect();
    if let Some(rest) = text.strip_suffix(" ERROR") {
        return Err(format!("scan failed: {rest}"));
    }
    let Some(result) = text.strip_prefix("stream: ") else {
        return Err(format!("answered {shown:?}, not a scan result"));
    };
    if result == "OK" {
        return Ok(Scan::Clean);
    }
    match result.strip_suffix(" FOUND") {
        Some(name)
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Ok(Scan::Infected(name.to_owned()))
        }
        _ => Err(format!("answered {shown:?}, not a scan result")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_tcp_or_unix_sockets() {
        let cases = [
            ("127.0.0.1:3310", Ok(Address::Tcp("127.0.0.1:3310".into()))),
            (
                "tcp:localhost:3310",
                Ok(Address::Tcp("localhost:3310".into())),
            ),
            ("[::1]:3310", Ok(Address::Tcp("[::1]:3310".into()))),
            (
                "/run/clamav/clamd.ctl",
                Ok(Address::Unix("/run/clamav/clamd.ctl".into())),
            ),
            ("unix:clamd.sock", Ok(Address::Unix("clamd.sock".into()))),
        ];
        for (text, want) in cases {
            assert_eq!(parse_address(text), want, "{text}");
        }
        for bad in ["127.0.0.1", "host:0", "host:99999", ":3310", "unix:"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_clean_infected_or_errors() {
        assert_eq!(parse_answer(b"stream: OK\0"), Ok(Scan::Clean));
        assert_eq!(
            parse_answer(b"stream: Eicar-Signature FOUND\0"),
            Ok(Scan::Infected("Eicar-Signature".into()))
        );
        assert!(
            parse_answer(b"INSTREAM size limit exceeded. ERROR\0")
                .unwrap_err()
                .contains("size limit")
        );
        for garbage in [
            &b"HELLO\0"[..],
            b"stream: \0",
            b"stream: x FOUND\xff",
            b"\xff\xfe",
        ] {
            assert!(parse_answer(garbage).is_err(), "{garbage:?}");
        }
    }

    #[tokio::test]
    async fn the_stream_is_sent_in_length_prefixed_chunks_ending_with_zero() {
        let content = vec![b'x'; CHUNK + 10];
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let addr = Address::Tcp("test:1".into());
        let scan = tokio::spawn(async move { instream(client, &content, &addr).await });
        let mut command = [0u8; 10];
        server.read_exact(&mut command).await.unwrap();
        assert_eq!(&command, b"zINSTREAM\0");
        let mut sizes = Vec::new();
        loop {
            let mut len = [0u8; 4];
            server.read_exact(&mut len).await.unwrap();
            let len = u32::from_be_bytes(len) as usize;
            sizes.push(len);
            if len == 0 {
                break;
            }
            let mut chunk = vec![0u8; len];
            server.read_exact(&mut chunk).await.unwrap();
        }
        assert_eq!(sizes, [CHUNK, 10, 0]);
        server.write_all(b"stream: OK\0").await.unwrap();
        assert_eq!(scan.await.unwrap(), Ok(Scan::Clean));
    }
}
