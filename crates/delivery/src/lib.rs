//! Postern's delivery: store drivers that put a message into local mail storage.
//!
//! # Layout
//! - [`maildir`]: the Maildir store driver (the default `store` sink).
//!
//! # Design
//! Delivery must be exactly-once across a crash: the queue marks a message done only after its
//! deliveries are durable, so after a crash a delivery may run again. Maildir file names are
//! therefore made from the queue id and the recipient's index, and a file is moved into `new/`
//! with `link(2)`, which fails if the name exists: a second run finds the first one's file and
//! does nothing.

#![warn(missing_docs)]

pub mod maildir;

pub use maildir::{Delivered, Maildir, MaildirError};
