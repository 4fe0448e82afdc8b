//! Reading one reply of a remote server, bounded: a line is at most 512 octets with its CRLF
//! (RFC 5321 §4.5.3.1.5) and a reply at most [`MAX_LINES`] lines, so a remote that sends
//! garbage, an endless multiline reply or one huge line costs a bounded buffer and ends in an
//! error. The bytes of a complete reply are parsed by `smtp-proto`.

use postern_sink_api::{EnhancedCode, Reply};
use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::ClientError;

/// The longest reply line, CRLF included (RFC 5321 §4.5.3.1.5).
pub(crate) const MAX_LINE: usize = 512;
/// The most lines of one reply (an EHLO reply has a line per extension; 128 is generous).
pub(crate) const MAX_LINES: usize = 128;

/// A buffered reader of reply lines over the connection's read half.
#[derive(Default)]
pub(crate) struct ReplyReader {
    buf: Vec<u8>,
    start: usize,
}

impl ReplyReader {
    /// Reads one whole reply and returns it with its raw bytes (for EHLO parsing).
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
    ) -> Result<(Reply, Vec<u8>), ClientError> {
        let mut raw = Vec::new();
        let mut code: Option<[u8; 3]> = None;
        for _ in 0..MAX_LINES {
            let line = self.line(io).await?;
            let (digits, last) = match line.as_slice() {
                [a, b, c, rest @ ..]
                    if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
                {
                    match rest {
                        [] | [b' ', ..] => ([*a, *b, *c], true),
                        [b'-', ..] => ([*a, *b, *c], false),
                        _ => return Err(malformed(&line)),
                    }
                }
                _ => return Err(malformed(&line)),
            };
            match code {
                None => code = Some(digits),
                Some(c) if c != digits => {
                    return Err(ClientError::Protocol(format!(
                        "reply lines with different codes: {}",
                        printable(&line)
                    )));
                }
                Some(_) => {}
            }
            raw.extend_from_slice(&line);
            raw.extend_from_slice(b"\r\n");
            if last {
                return Ok((parse(&raw)?, raw));
            }
        }
        Err(ClientError::Protocol(format!(
            "a reply of more than {MAX_LINES} lines"
        )))
    }

    /// One line without its CRLF (a bare LF is accepted as the end, as remotes do send it).
    async fn line<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<Vec<u8>, ClientError> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(at) = memchr::memchr(b'\n', pending) {
                let mut line = pending[..at].to_vec();
                self.start += at + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() + 2 > MAX_LINE {
                    return Err(ClientError::Protocol(format!(
                        "a reply line longer than {MAX_LINE} octets"
                    )));
                }
                return Ok(line);
            }
            if pending.len() >= MAX_LINE {
                return Err(ClientError::Protocol(format!(
                    "a reply line longer than {MAX_LINE} octets"
                )));
            }
            // Keep the buffer small: drop what was consumed before reading more.
            self.buf.drain(..self.start);
            self.start = 0;
            let mut chunk = [0u8; 1024];
            let n = io.read(&mut chunk).await.map_err(ClientError::Io)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the remote sent more than was asked for (bytes after the last reply); after
    /// STARTTLS such bytes must be discarded, not read as the first reply over TLS.
    pub(crate) fn has_pending(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Forgets buffered bytes (after STARTTLS).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

/// The reply as Postern's [`Reply`]: code, enhanced code when the remote gave one, text lines.
fn parse(raw: &[u8]) -> Result<Reply, ClientError> {
    let response = ResponseReceiver::default()
        .parse(&mut raw.iter())
        .map_err(|e| ClientError::Protocol(format!("unreadable reply: {e:?}")))?;
    let enhanced = match response.esc {
        [0, 0, 0] => None,
        [class, subject, detail] => Some(EnhancedCode::new(class, subject.into(), detail.into())),
    };
    let lines = response.message.split('\n').map(str::to_owned).collect();
    Ok(Reply {
        code: response.code,
        enhanced,
        lines,
    })
}

fn malformed(line: &[u8]) -> ClientError {
    ClientError::Protocol(format!("malformed reply line: {}", printable(line)))
}

/// A reply line as it may appear in a log or a DSN: printable ASCII, cut at 80 characters.
pub(crate) fn printable(line: &[u8]) -> String {
    line.iter()
        .take(80)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}
