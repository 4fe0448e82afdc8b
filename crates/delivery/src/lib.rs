//! Postern's delivery: store drivers that put a message into local mail storage, and the
//! outbound SMTP client that hands it to a remote next hop, and the delivery status
//! notifications that tell a sender what became of its message.
//!
//! # Layout
//! - [`maildir`]: the Maildir store driver (the default `store` sink).
//! - [`dsn`]: RFC 3464 delivery status notifications, honouring RFC 3461's NOTIFY, RET, ENVID
//!   and ORCPT.
//! - [`dns`]: MX and address lookups (`hickory-resolver`), null MX, implicit MX.
//! - [`outbound`]: delivery to one next hop: the `dns-resolve` event, hosts and addresses in
//!   order, pooled connections, STARTTLS policy; an `lmtp:` hop (RFC 2033) through the same
//!   client with LHLO and a reply per recipient (`outbound::lmtp`).
//! - `pool`: open connections per address, the per-host limit, idle connections kept for reuse.
//! - [`smtp`]: the client itself: bounded reply reading, the connection, one transaction with
//!   its `outbound:*` and `response` events.
//!
//! # Design
//! Delivery must be exactly-once across a crash: the queue marks a message done only after its
//! deliveries are durable, so after a crash a delivery may run again. Maildir file names are
//! therefore made from the queue id and the recipient's index, and a file is moved into `new/`
//! with `link(2)`, which fails if the name exists: a second run finds the first one's file and
//! does nothing.
//!
//! A DSN is built as an ordinary `MailMsg` from the null reverse-path, so it goes through the
//! same pipeline (and the same sinks) as any message, and a DSN about a DSN is impossible.

#![warn(missing_docs)]

pub mod dns;
pub mod dsn;
pub mod maildir;
pub mod outbound;
mod pool;
pub mod smtp;

pub use dns::{DnsError, Resolver};
pub use dsn::{DsnEntry, DsnKind, build_dsn, enhanced_status, wants_dsn};
pub use maildir::{Delivered, Maildir, MaildirError};
pub use outbound::{HopReport, Outbound};
pub use smtp::transaction::RcptOutcome;
