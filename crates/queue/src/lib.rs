//! Postern's durable spool: the queue that is the single source of truth about a message after
//! the 250 reply. A log of segment files, written by one group-commit writer, replayed into an
//! in-memory index at start-up.
//!
//! # Layout
//! - `spool`: [`Spool`], the API: `open`, `store`, `update`, `set_state`, `complete`, `load`,
//!   `list`, `stats`, `close`.
//! - `open`: start-up: recovery, the first segment, the writer and preparer threads.
//! - `writer`: the group-commit writer thread: batches, one write and one sync per batch,
//!   then housekeeping: retiring spent segments, rotation, relocation.
//! - `active`: the segment being written, where each batch goes (the logical end, followed by
//!   an End marker), and how the writer carries on after a failed write or sync.
//! - `spare`: pre-written files for the next segments: spent segments kept instead of deleted,
//!   zero-filled ones; `spare::preparer`, the thread that keeps one ready.
//! - `record`: framing of one record: magic, kind, version, segment, length, batch offset,
//!   CRC-32; the End marker.
//! - `scan`: reading one segment's log: where it ends cleanly, what is damage.
//! - `payload`: the payload of each record kind, and the effect a record has on the index.
//! - `wire`: the versioned serde structs (`MessageV1`, `UpdateV1`, `DoneV1`) and their
//!   conversions to and from `postern_mailmsg` types.
//! - `fuzzing`: entry points for the fuzz targets (`fuzz/`); not an API.
//! - `envelope`: a MailMsg without content, what Message and Update records carry.
//! - `index`: live messages, their state, where their content and latest envelope are on disk,
//!   and what a listing shows; which segments may go.
//! - `recover`: reading the segments back, torn tails versus damage, lost messages;
//!   [`Recovered`].
//! - `checkpoint`: `checkpoint.json`, what the spool knew to be on disk, which recovery holds the
//!   log against (a segment cut at a record boundary reads as a clean end otherwise).
//! - `damage`: [`Damage`], and the copies and reports kept in `damaged/`.
//! - `check`: [`check`], the read-only verification behind `postern queue check`; [`Report`].
//! - `offline`: [`read_offline`], the live messages of a spool no server has open (read only).
//! - `relocate`: rewriting live messages out of old segments: compaction, and the policy of
//!   when.
//! - `space`: free space against [`DiskReserve`]; [`Spool::accepting`].
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
//! Segments are written into pre-written files (a recycled spent segment, or zeros), so that
//! the sync each transaction waits for overwrites blocks already on disk and changes no file
//! size: no journal commit per batch. Since a file may hold an earlier use's records after the
//! new log, every record names its segment, and every batch is followed by an End marker: the
//! log of a segment ends at its marker (or at zeros, or at another segment's record), never
//! where the file happens to end.
//!
//! Records are never changed in place: an Update or a Done is a new record, and the latest
//! record of an id wins. Recovery applies the records in log order with the same function the
//! writer uses, so the index after a restart equals the index before it. Only the last batch
//! can be torn by a crash, and none of it was acknowledged, so recovery cuts it off; damage
//! anywhere else stops recovery with the segment and offset. Segments go oldest first, once no
//! live message's latest Message record is in them, which keeps what is left a suffix of the
//! log. `docs/queue.md` has the states, files, transitions and the crash-safety argument.
//!
//! Neither content nor envelopes are kept in memory: `load` reads the content back from the
//! latest Message record and the envelope from the latest record carrying one, so a deferred
//! message costs the index a small, fixed amount whatever its envelope holds.

#![warn(missing_docs)]

mod active;
mod check;
mod checkpoint;
mod damage;
mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod offline;
mod open;
mod options;
mod payload;
mod record;
mod recover;
mod relocate;
mod scan;
mod segment;
mod space;
mod spare;
mod spool;
mod state;
mod stats;
mod wire;
mod writer;

pub use check::{Report, SegmentReport, check};
pub use damage::Damage;
pub use error::QueueError;
pub use offline::read_offline;
pub use options::SpoolOptions;
pub use recover::Recovered;
pub use space::DiskReserve;
pub use spool::Spool;
pub use state::{QueueState, QueuedMessage};
pub use stats::SpoolStats;
