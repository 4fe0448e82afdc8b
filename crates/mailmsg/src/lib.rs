//! The MailMsg: the one message object that every Postern sink sees, from the first SMTP command
//! to the last delivery attempt.
//!
//! # Layout
//! - [`queue_id`]: [`QueueId`], globally unique and time-ordered, and its generator.
//! - [`envelope`]: the sender and recipients with their ESMTP parameters and per-recipient state.
//! - [`properties`]: the property bag ([`Properties`]) and the well-known typed message properties.
//! - [`content`]: the RFC 5322 message, headers parsed on demand, header and body changes.
//! - [`fate`]: what the transport does with the message ([`Fate`]).
//! - [`durable`]: the directory sync that makes a written file's name survive a crash.
//!
//! # Design
//! A `MailMsg` is a plain value: cloning it is cheap enough (content is reference counted) that a
//! protocol session can hand a snapshot to sinks running on other threads. Mutation happens in
//! one place only — the sink host applies a sink's changes in order — so the type exposes
//! methods for each change a sink may ask for and does no I/O (`durable` is a helper beside it,
//! here because every crate that writes files depends on this one). The queue persists it through a
//! versioned wire struct of its own, so renaming a field here never breaks a spool.

#![warn(missing_docs)]

pub mod content;
pub mod durable;
pub mod envelope;
pub mod fate;
pub mod properties;
pub mod queue_id;

pub use content::{Content, HeaderError, is_header_name};
pub use envelope::{
    Body, DsnNotify, DsnRet, MailParams, RcptParams, Recipient, RecipientStatus, Sender,
};
pub use fate::Fate;
pub use properties::{MessageInfo, Properties, PropertyBag, Value, parse_bool};
pub use queue_id::{QueueId, QueueIdGenerator};

/// The time now in Unix milliseconds: the unit of [`MessageInfo::arrival_ms`], of queue ids
/// and of the queue's retry times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One message: envelope, properties, content and fate.
#[derive(Debug, Clone, Default)]
pub struct MailMsg {
    /// Set when the message is accepted into the queue; `None` while a session is still building it.
    pub id: Option<QueueId>,
    /// The reverse-path and MAIL parameters; `None` before MAIL.
    pub sender: Option<Sender>,
    /// The forward-paths in the order RCPT accepted them (plus any a sink added).
    pub recipients: Vec<Recipient>,
    /// Well-known typed properties of the message.
    pub info: MessageInfo,
    /// Sink-defined properties; they travel with the message through the queue.
    pub properties: Properties,
    /// The RFC 5322 message; empty before the end of DATA.
    pub content: Content,
    /// What the transport is to do with the message.
    pub fate: Fate,
}

impl MailMsg {
    /// Adds a recipient unless the same address (compared case-insensitively in the domain and
    /// exactly in the local part, RFC 5321 §2.4) is already there. Returns whether it was added.
    pub fn add_recipient(&mut self, recipient: Recipient) -> bool {
        if self
            .recipients
            .iter()
            .any(|r| envelope::same_address(&r.address, &recipient.address))
        {
            return false;
        }
        self.recipients.push(recipient);
        true
    }

    /// Removes every recipient with this address; returns how many were removed.
    pub fn remove_recipient(&mut self, address: &str) -> usize {
        let before = self.recipients.len();
        self.recipients
            .retain(|r| !envelope::same_address(&r.address, address));
        before - self.recipients.len()
    }

    /// The sender's address, empty for the null reverse-path and before MAIL.
    pub fn sender_address(&self) -> &str {
        self.sender.as_ref().map_or("", |s| s.address.as_str())
    }

    /// The envelope sender of recipient `index`'s copy: the recipient's own
    /// [`ENVELOPE_SENDER`] when a sink set one (VERP), else the message's sender.
    pub fn sender_for(&self, index: usize) -> &str {
        self.recipients
            .get(index)
            .and_then(|r| r.properties.get_str(ENVELOPE_SENDER))
            .unwrap_or_else(|| self.sender_address())
    }
}

/// A recipient property giving that recipient's copy its own envelope sender (a mailing list's
/// VERP address, `LIST-bounces+member=domain@…`). Delivery honours it: the Maildir's
/// `Return-Path:` and, for a remote hop, a transaction of its own with that `MAIL FROM`.
pub const ENVELOPE_SENDER: &str = "postern.envelope_sender";

/// A message property by which a sink asks the transport to release held messages (their queue
/// ids, space-separated) once the pass of the message carrying it is done: a mailing list
/// owner's `approve ID` by mail. The transport removes it and releases each as
/// `postern queue release` does.
pub const RELEASE_REQUEST: &str = "postern.release_request";
