//! The queue's errors. Whether a failure is temporary is decided here, where it is known, so that
//! an SMTP session can turn it into 451 or 5xx without looking inside.

use std::io;
use std::path::PathBuf;

use postern_mailmsg::QueueId;

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file operation failed. Every request of a batch whose write or sync failed gets one.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A record that is not what the index says is there (reading a message's content back).
    /// Recovery never returns it: damage found at start-up is reported in
    /// [`Recovered::damage`](crate::Recovered::damage) and the spool starts with the rest.
    #[error("corrupt record in {} at offset {offset}: {reason}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Where the record starts in it.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// `store` or `update` was given a message whose `id` is `None`.
    #[error("the message has no queue id")]
    NoId,
    /// The id is not (or no longer) in the queue.
    #[error("queue id {0} is not in the queue")]
    UnknownId(QueueId),
    /// The record would not fit the 32-bit length of the record header.
    #[error("a record of {size} octets is larger than a spool record may be ({max})")]
    TooLarge {
        /// The payload size asked for.
        size: u64,
        /// The largest payload a record may carry.
        max: u64,
    },
    /// Another process has this spool open.
    #[error("the spool is in use by another process (lock {})", .0.display())]
    Locked(PathBuf),
    /// The spool was closed, or its writer stopped.
    #[error("the spool is closed")]
    Closed,
    /// The envelope could not be encoded.
    #[error("cannot encode the envelope: {0}")]
    Encode(#[source] serde_json::Error),
    /// A blocking task of the spool panicked or was cancelled.
    #[error("spool task failed: {0}")]
    Task(String),
}

impl QueueError {
    /// Whether trying again later may succeed: an SMTP session answers 451 when it is, 5xx when
    /// it is not (a message too large for the spool will never fit).
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Io { .. } | Self::Corrupt { .. } | Self::Locked(_) | Self::Closed => true,
            Self::Task(_) => true,
            Self::NoId | Self::UnknownId(_) | Self::TooLarge { .. } | Self::Encode(_) => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A copy for each request of a failed batch: `io::Error` is not `Clone`, so the copy keeps
    /// the kind and the message, which is all a caller can act on.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Io { path, source } => Self::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Self::Corrupt {
                segment,
                offset,
                reason,
            } => Self::Corrupt {
                segment: segment.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Self::NoId => Self::NoId,
            Self::UnknownId(id) => Self::UnknownId(*id),
            Self::TooLarge { size, max } => Self::TooLarge {
                size: *size,
                max: *max,
            },
            Self::Locked(path) => Self::Locked(path.clone()),
            Self::Closed => Self::Closed,
            Self::Encode(e) => Self::Task(format!("cannot encode the envelope: {e}")),
            Self::Task(reason) => Self::Task(reason.clone()),
        }
    }
}

/// Attaches the path to an `io::Error`, so every I/O failure says which file it was.
pub(crate) trait AtPath<T> {
    fn at(self, path: &std::path::Path) -> Result<T, QueueError>;
}

impl<T> AtPath<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, QueueError> {
        self.map_err(|e| QueueError::io(path, e))
    }
}
