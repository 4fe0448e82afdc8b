//! The session's input buffer: bounded, reads command lines, and lends its bytes to the DATA
//! decoder and BDAT reader. A line longer than the buffer is discarded as it arrives, never
//! accumulated. While a message arrives the buffer may grow, under the memory budget.

use std::io;
use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::budget::{Budget, Share};

/// The buffer between commands: holds the longest command line accepted, with room to spare.
const COMMAND_BUFFER: usize = 4096;
/// The buffer while a message arrives: larger reads, fewer system calls.
const DATA_BUFFER: usize = 64 * 1024;

/// A command line taken from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line's bytes in the buffer, without the line end.
    Complete(Range<usize>),
    /// The line was longer than the buffer; it has been discarded up to its end.
    TooLong,
}

/// Buffered input.
#[derive(Debug)]
pub(crate) struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A too-long line is being thrown away until its LF.
    discarding: bool,
    /// A message is arriving: a read that fills the buffer doubles it, up to `DATA_BUFFER`.
    data: bool,
    /// The budget the buffer grows under, and the share covering it past `COMMAND_BUFFER`.
    budget: Budget,
    share: Option<Share>,
}

impl Input {
    pub(crate) fn new(budget: Budget) -> Self {
        Self {
            buf: vec![0; COMMAND_BUFFER],
            start: 0,
            end: 0,
            discarding: false,
            data: false,
            budget,
            share: None,
        }
    }

    /// Bytes read and not yet used.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether the rest of a too-long command line is being thrown away.
    pub(crate) fn discarding(&self) -> bool {
        self.discarding
    }

    /// Whether part of a command line has arrived (or a too-long one is being thrown away).
    pub(crate) fn in_line(&self) -> bool {
        self.discarding || self.start < self.end
    }

    /// Marks `n` pending bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything pending (input after STARTTLS, or before a close).
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The bytes of a line returned by [`Input::next_line`].
    pub(crate) fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Takes the next complete line from the buffer, if there is one. The caller must be done
    /// with the returned range before reading more.
    pub(crate) fn next_line(&mut self) -> Option<Line> {
        let pending = &self.buf[self.start..self.end];
        match memchr::memchr(b'\n', pending) {
            Some(pos) => {
                let line_start = self.start;
                let mut line_end = self.start + pos;
                self.start += pos + 1;
                if self.discarding {
                    self.discarding = false;
                    self.normalize();
                    return Some(Line::TooLong);
                }
                if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                Some(Line::Complete(line_start..line_end))
            }
            None => {
                if self.end - self.start >= COMMAND_BUFFER.min(self.buf.len()) {
                    // No line end in a full buffer: the line is too long. Drop what we have
                    // and keep dropping until its end.
                    self.discarding = true;
                    self.clear();
                }
                None
            }
        }
    }

    /// Reads more from the stream; returns 0 at end of stream.
    pub(crate) async fn fill<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> io::Result<usize> {
        self.normalize();
        if self.end == self.buf.len() {
            // Full: only a pending DATA/BDAT payload or a too-long line gets here; the callers
            // consume before reading again, so make room by moving to the front.
            if self.start == 0 {
                return Err(io::Error::other("input buffer full"));
            }
        }
        let room = self.buf.len() - self.end;
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        if self.data && n == room && self.buf.len() < DATA_BUFFER {
            // The client sends faster than we read: larger reads, fewer system calls, if the
            // budget allows. Small messages never pay for a large (zero-filled) buffer.
            let grown = (self.buf.len() * 2).min(DATA_BUFFER);
            let covered = match self.share.as_mut() {
                Some(share) => self.budget.try_grow(share, grown - COMMAND_BUFFER),
                None => {
                    self.share = self.budget.try_take(grown - COMMAND_BUFFER);
                    self.share.is_some()
                }
            };
            if covered {
                self.buf.resize(grown, 0);
            }
        }
        Ok(n)
    }

    /// A message starts arriving.
    pub(crate) fn for_data(&mut self) {
        self.data = true;
    }

    /// The message has arrived: back to the command buffer when what is pending fits.
    pub(crate) fn for_commands(&mut self) {
        self.data = false;
        if self.buf.len() > COMMAND_BUFFER && self.end - self.start <= COMMAND_BUFFER {
            self.normalize();
            self.buf.truncate(COMMAND_BUFFER);
            self.buf.shrink_to_fit();
            self.share = None;
        }
    }

    /// Moves pending bytes to the front of the buffer.
    fn normalize(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_lines_with_crlf_or_lf() {
        let mut input = Input::new(Budget::new(1 << 20));
        let mut stream: &[u8] = b"NOOP\r\nRSET\nQU";
        input.fill(&mut stream).await.unwrap();
        let Some(Line::Complete(r)) = input.next_line() else {
            panic!()
        };
        assert_eq!(input.bytes(r), b"NOOP");
        let Some(Line::Complete(r)) = input.next_line() else {
            panic!()
        };
        assert_eq!(input.bytes(r), b"RSET");
        assert_eq!(input.next_line(), None);
        assert_eq!(input.pending(), b"QU");
    }

    #[tokio::test]
    async fn discards_a_line_longer_than_the_buffer() {
        let mut input = Input::new(Budget::new(1 << 20));
        let mut data = vec![b'x'; COMMAND_BUFFER * 3];
        data.extend_from_slice(b"\r\nNOOP\r\n");
        let mut stream: &[u8] = &data;
        let mut lines = Vec::new();
        while lines.len() < 2 {
            if let Some(line) = input.next_line() {
                lines.push(match line {
                    Line::TooLong => "too long".to_owned(),
                    Line::Complete(r) => String::from_utf8_lossy(input.bytes(r)).into_owned(),
                });
                continue;
            }
            assert!(input.fill(&mut stream).await.unwrap() > 0);
            assert!(input.pending().len() <= COMMAND_BUFFER);
        }
        assert_eq!(lines, ["too long", "NOOP"]);
    }
}
