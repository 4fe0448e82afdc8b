//! BDAT (RFC 3030 CHUNKING): byte-counted chunks, no dot-stuffing, the last one ends the message.

use postern_sink_api::{Command, Reply};
use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncWrite};

use tracing::{debug, error};

use crate::defaults::{Staged, parse_request};
use crate::intake::{Intake, IntakeError};
use crate::reply;
use crate::session::{Chunks, Flow, Phase, Session, State, data_deadline, log_refused};

/// The most digits a chunk size may have: `smtp-proto` reads sizes exactly only up to this many
/// (past it the value saturates and starts over), and no chunk that large could be kept anyway.
const MAX_SIZE_DIGITS: usize = usize::MAX.ilog10() as usize;

/// Parses a `BDAT size [LAST]` command line.
pub(crate) fn parse(line: &str) -> Option<(usize, bool)> {
    // `smtp-proto` skips a CR between digits (`1<CR>2` would be 12): the size must be what
    // was plainly sent, or the stream is not followed.
    if line.bytes().any(|b| b.is_ascii_control()) {
        return None;
    }
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
    // The first chunk starts the transfer's content.
    let fresh = if st.chunks.is_none() {
        let limits = &st.server.config.limits;
        match Intake::start(&st.server.budget, limits.spill_threshold) {
            Some(intake) => Some(intake),
            None => {
                debug!(
                    session = st.info.id,
                    "transfer refused: the memory budget is used up"
                );
                return (reply::no_memory(), Staged::Nothing);
            }
        }
    } else {
        None
    };
    (reply::chunk_received(size), Staged::Bdat(fresh))
}

impl<S> Session<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Reads a chunk (always, so the stream stays in step) and keeps it if it was accepted;
    /// `accepted` brings the intake of a new transfer.
    pub(crate) async fn receive_chunk(
        &mut self,
        size: usize,
        last: bool,
        mut reply: Reply,
        accepted: Option<Option<Intake>>,
    ) -> Flow {
        let server = self.st.server.clone();
        let limit = self.st.size_limit();
        let deadline = data_deadline(&self.st);
        self.input.for_data();
        let was_accepted = accepted.is_some();
        let mut chunks = match accepted {
            Some(fresh) => self.st.chunks.take().or_else(|| fresh.map(Chunks::new)),
            None => None,
        };
        if was_accepted && chunks.is_none() {
            // The default sink brings an intake whenever no transfer is in progress, so this
            // does not happen; should it, no 250 is said for content that is not kept.
            reply = reply::no_memory();
        }
        self.st.phase = if chunks.is_some() {
            Phase::Bdat
        } else {
            Phase::Discarding
        };
        // Set when the content could not be kept (its file failed); the chunk is still read.
        let mut lost: Option<IntakeError> = None;
        let mut remaining = size;
        loop {
            let mut take = remaining.min(self.input.pending().len());
            if let Some(c) = chunks.as_mut() {
                let room =
                    usize::try_from(limit.saturating_sub(c.content.len())).unwrap_or(usize::MAX);
                let keep = take.min(room);
                if keep > 0 && lost.is_none() {
                    match c
                        .content
                        .reserve(&server.budget, &server.spill_dir, keep)
                        .await
                    {
                        Ok(n) => {
                            if n < keep {
                                // Room for part only: the rest is taken next round.
                                take = n;
                            }
                            let piece = &self.input.pending()[..n.min(keep)];
                            c.checker.feed(piece);
                            c.content.buf().extend_from_slice(piece);
                        }
                        Err(e) => lost = Some(e),
                    }
                }
                c.seen += take as u64;
            }
            self.input.consume(take);
            remaining -= take;
            if remaining == 0 {
                break;
            }
            if !self.input.pending().is_empty() {
                continue;
            }
            if let Err(end) = self.fill_before(deadline).await {
                return Flow::Close(end);
            }
        }
        self.input.for_commands();
        self.st.phase = Phase::Command;
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
        if let Some(e) = lost {
            error!(session = self.st.info.id, "message not kept: {e}");
            self.st.reset();
            return self.error_reply(reply::queue_failed()).await;
        }
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
        if let Some(flaw) = chunks.checker.finish() {
            log_refused(&self.st, flaw.describe());
            self.st.reset();
            return self.error_reply(reply::bad_content(flaw.describe())).await;
        }
        let id = self.st.server.ids.next_id();
        self.end_of_data(id, chunks.content).await
    }
}
