//! The public view of the queue: a message's state and its summary.

use postern_mailmsg::QueueId;

/// Where a live message stands in the queue. Every live message is in exactly one state; a
/// message that is Done is no longer in the queue at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueState {
    /// Waiting for the transport to take it (just received, or released from Held).
    #[default]
    Queued,
    /// A delivery attempt failed temporarily; the next attempt is due at `until_ms`.
    Deferred {
        /// The next attempt, in Unix milliseconds.
        until_ms: u64,
    },
    /// Kept untouched until an administrator releases it.
    Held,
}

impl QueueState {
    /// The name used in listings and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Deferred { .. } => "deferred",
            Self::Held => "held",
        }
    }
}

/// A summary of a live message, for listings and for the transport to resume after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The queue id.
    pub id: QueueId,
    /// Where the message stands.
    pub state: QueueState,
    /// The sender's address, empty for the null reverse-path.
    pub sender: String,
    /// The number of recipients, final or not.
    pub recipients: usize,
    /// The size of the stored content in octets.
    pub size: u64,
    /// When the message was accepted, in Unix milliseconds.
    pub arrival_ms: u64,
}
