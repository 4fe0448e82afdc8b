//! Milter addresses as Sendmail and Postfix write them, and connecting to one.

use std::fmt;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
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
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

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
    pub(crate) async fn connect(&self) -> Result<Box<dyn Stream>, MilterError> {
        Ok(match self {
            Self::Inet { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                // Frames are small and answered one by one: Nagle's delay would cost ~40 ms
                // per round trip.
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            Self::Unix(path) => Box::new(UnixStream::connect(path).await?),
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
