//! Postern's durable spool: the queue that is the single source of truth about a message after
//! the 250 reply. An append-only log of segment files, written by one group-commit writer,
//! replayed into an in-memory index at start-up.
//!
//! # Layout
//! - `spool`: [`Spool`], the API: `open` (recovery), `store`, `update`, `set_state`,
//!   `complete`, `load`, `list`, `stats`, `close`.
//! - `writer`: the group-commit writer thread: batches, one write and one sync per batch,
//!   then housekeeping: rotation, deletion of spent segments, relocation.
//! - `active`: the segment being appended to, and how the writer carries on after a failed
//!   write or sync.
//! - `record`: framing of one record: magic, kind, version, length, batch offset, CRC-32.
//! - `payload`: the payload of each record kind, and the effect a record has on the index.
//! - `wire`: the versioned serde structs (`MessageV1`, `UpdateV1`, `DoneV1`) and their
//!   conversions to and from `postern_mailmsg` types.
//! - `envelope`: a MailMsg without content, what the index keeps per message.
//! - `index`: live messages, their latest envelope, state and content location; which
//!   segments may be deleted.
//! - `recover`: reading the segments back, torn tails versus corruption; [`Recovered`].
//! - `relocate`: rewriting long-lived messages out of old segments.
//! - `segment`: segment files and directory syncs; the lock file.
//! - `state`, `options`, `stats`, `error`: [`QueueState`] and [`QueuedMessage`],
//!   [`SpoolOptions`], [`SpoolStats`], [`QueueError`].
//!
//! # Design
//! A caller encodes its record (JSON envelope, raw content, CRC) in its own task and sends it
//! to the writer; the writer takes every request waiting, writes them with one vectored write,
//! calls `fdatasync` once, applies them to the index and answers them all. A success answer
//! therefore always follows the sync of its record, and sessions that arrive while a sync runs
//! share the next one. The writer is a dedicated thread doing blocking I/O, so the async
//! runtime never waits on the disk.
//!
//! Records are never changed in place: an Update or a Done is a new record, and the latest
//! record of an id wins. Recovery applies the records in log order with the same function the
//! writer uses, so the index after a restart equals the index before it. Only the last batch
//! can be torn by a crash, and none of it was acknowledged, so recovery cuts it off; damage
//! anywhere else stops recovery with the segment and offset. Segments are deleted oldest first,
//! once no live message's latest Message record is in them, which keeps what is left a suffix
//! of the log. `docs/queue.md` has the states, files, transitions and the crash-safety argument.
//!
//! Content is not kept in memory: `load` reads it back from the latest Message record.

#![warn(missing_docs)]

mod active;
mod envelope;
mod error;
mod index;
mod options;
mod payload;
mod record;
mod recover;
mod relocate;
mod segment;
mod spool;
mod state;
mod stats;
mod wire;
mod writer;

pub use error::QueueError;
pub use options::SpoolOptions;
pub use recover::Recovered;
pub use spool::Spool;
pub use state::{QueueState, QueuedMessage};
pub use stats::SpoolStats;
