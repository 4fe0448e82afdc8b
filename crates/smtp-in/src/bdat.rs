//! BDAT (RFC 3030 CHUNKING): byte-counted chunks, no dot-stuffing, the last one ends the message.

use postern_sink_api::{Command, Reply};
use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::defaults::{Staged, parse_request};
use crate::reply;
use crate::session::{Chunks, Flow, Session, State, data_deadline, log_refused};

/// The most digits a chunk size may have: `smtp-proto` reads sizes exactly only up to this many
/// (past it the value saturates and starts over), and no chunk that large could be kept anyway.
const MAX_SIZE_DIGITS: usize = usize::MAX.ilog10() as usize;

/// Parses a `BDAT size [LAST]` command line.
pub(crate) fn parse(line: &str) -> Option<(usize, bool)> {
    let (_, args) = line.split_once(' ')?;
    let digits = args.trim_start().split_ascii_whitespace().next()?;
    if digits.len() > MAX_SIZE_DIGITS {
        return None;
    }
    match parse_request(line) {
        Ok(Request::Bdat {
            chunk_size,
            is_last,
        }) => Some((chunk_size, is_last)),
        _ => None,
    }
}

/// The default sink of `inbound:BDAT`: checks the sequence.
pub(crate) fn bdat(st: &State, command: &Command) -> (Reply, Staged) {
    let Some((size, _last)) = parse(&command.line) else {
        return (reply::bad_arguments("BDAT size [LAST]"), Staged::Nothing);
    };
    if st.msg.sender.is_none() {
        return (reply::bad_sequence("send MAIL first"), Staged::Nothing);
    }
    if st.msg.recipients.is_empty() {
        return (reply::no_recipients(), Staged::Nothing);
    }
    (reply::chunk_received(size), Staged::Bdat)
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Reads a chunk (always, so the stream stays in step) and keeps it if it was accepted.
    pub(crate) async fn receive_chunk(
        &mut self,
        size: usize,
        last: bool,
        reply: Reply,
        accepted: bool,
    ) -> Flow {
        let limit = self.st.size_limit();
        let deadline = data_deadline(&self.st);
        self.input.for_data();
        let mut chunks = if accepted {
            Some(self.st.chunks.take().unwrap_or(Chunks {
                content: Vec::new(),
                seen: 0,
            }))
        } else {
            None
        };
        let mut remaining = size;
        loop {
            let pending = self.input.pending();
            let take = remaining.min(pending.len());
            if let Some(c) = chunks.as_mut() {
                let room = usize::try_from(limit)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(c.content.len());
                c.content.extend_from_slice(&pending[..take.min(room)]);
                c.seen += take as u64;
            }
            self.input.consume(take);
            remaining -= take;
            if remaining == 0 {
                break;
            }
            if let Err(end) = self.fill_before(deadline).await {
                return Flow::Close(end);
            }
        }
        self.input.for_commands();
        let Some(chunks) = chunks else {
            // A refused chunk ends the transfer: later chunks must not be spliced onto the
            // earlier ones with a gap (RFC 3030 §2 expects the client to RSET).
            self.st.chunks = None;
            if reply.is_positive() {
                // A sink answered for the server; the chunk was read and not kept.
                self.send(&reply);
                return Flow::Next;
            }
            return self.error_reply(reply).await;
        };
        if chunks.seen > limit {
            log_refused(&self.st, "over the size limit");
            let reply = self.oversize(limit).await;
            return self.error_reply(reply).await;
        }
        if !last {
            self.st.chunks = Some(chunks);
            self.send(&reply);
            return Flow::Next;
        }
        // The same content rules as DATA: a bare CR or LF here would be an end of data
        // (smuggling) for a next hop that receives the message with DATA.
        if let Some(flaw) = crate::dot::check(&chunks.content) {
            log_refused(&self.st, flaw.describe());
            self.st.reset();
            return self.error_reply(reply::bad_content(flaw.describe())).await;
        }
        let id = self.st.server.ids.next_id();
        self.end_of_data(id, chunks.content).await
    }
}
