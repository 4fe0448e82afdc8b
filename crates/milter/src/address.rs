//! Milter addresses as Sendmail and Postfix write them, and connecting to one.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::error::MilterError;

/// Where a milter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// A TCP socket (`inet:PORT@HOST`, `inet:HOST:PORT`, `inet6:…`).
    Inet { host: String, port: u16 },
    /// A Unix-domain socket (`unix:PATH`, `local:PATH`).
    Unix(PathBuf),
}

/// A connected stream, TCP or Unix.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Asks the kernel to acknowledge the next segments at once. libmilter writes each
    /// modification and the final answer as separate small writes; with Nagle's algorithm on
    /// the milter's side, the final answer waits for the ACK of the modification, which Linux
    /// delays by up to 40 ms — per message. Quick ACKs remove that stall (measured: OpenDKIM
    /// signing went from ~54 ms to a few ms a message). The mode is not sticky, so it is set
    /// before every read; failure only costs the delay.
    pub(crate) fn quick_ack(&self) {
        if let Self::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_tcp_quickack(true);
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Address {
    /// Parses the text after `milter:`.
    pub(crate) fn parse(text: &str) -> Result<Self, MilterError> {
        let bad = || MilterError::Address(text.to_owned());
        let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
        match kind.to_ascii_lowercase().as_str() {
            "unix" | "local" if !rest.is_empty() => Ok(Self::Unix(PathBuf::from(rest))),
            "inet" | "inet6" => {
                // Sendmail's PORT@HOST first; a bare `@` never appears in HOST:PORT.
                let (host, port) = match rest.split_once('@') {
                    Some((port, host)) => (host, port),
                    None => rest.rsplit_once(':').ok_or_else(bad)?,
                };
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                let port: u16 = port.parse().map_err(|_| bad())?;
                if host.is_empty() || port == 0 || host.contains(['/', ' ']) {
                    return Err(bad());
                }
                Ok(Self::Inet {
                    host: host.to_owned(),
                    port,
                })
            }
            _ => Err(bad()),
        }
    }

    /// Opens a connection.
    pub(crate) async fn connect(&self) -> Result<Stream, MilterError> {
        Ok(match self {
            Self::Inet { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                // Frames are small and answered one by one: Nagle's delay would cost ~40 ms
                // per round trip.
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            Self::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet { host, port } => write!(f, "inet:{port}@{host}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sendmail_and_postfix_forms() {
        let inet = |host: &str, port| {
            Some(Address::Inet {
                host: host.into(),
                port,
            })
        };
        let cases: &[(&str, &str, Option<Address>)] = &[
            ("sendmail", "inet:8891@127.0.0.1", inet("127.0.0.1", 8891)),
            ("postfix", "inet:localhost:8891", inet("localhost", 8891)),
            ("v6 bracketed", "inet6:[::1]:10", inet("::1", 10)),
            ("v6 at", "inet6:10@::1", inet("::1", 10)),
            (
                "unix",
                "unix:/run/m.sock",
                Some(Address::Unix("/run/m.sock".into())),
            ),
            (
                "local",
                "local:m.sock",
                Some(Address::Unix("m.sock".into())),
            ),
            ("no kind", "127.0.0.1:8891", None),
            ("no port", "inet:127.0.0.1", None),
            ("port zero", "inet:0@127.0.0.1", None),
            ("bad port", "inet:99999@h", None),
            ("empty unix", "unix:", None),
            ("other kind", "tcp:1@h", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(Address::parse(text).ok(), *want, "case {name}");
        }
    }
}
