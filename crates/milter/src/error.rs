//! Why a milter conversation failed. Every one of these ends the call with an error, so the
//! binding's `on_error` policy decides what happens to the message.

/// A failed conversation with a milter.
#[derive(Debug, thiserror::Error)]
pub enum MilterError {
    /// The address after `milter:` is not `inet:PORT@HOST`, `inet:HOST:PORT` or `unix:PATH`.
    #[error("bad milter address {0:?}: expected inet:PORT@HOST, inet:HOST:PORT or unix:PATH")]
    Address(String),
    /// Connecting or talking failed.
    #[error("milter I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The milter closed the connection in the middle of the conversation.
    #[error("the milter closed the connection")]
    Closed,
    /// A frame longer than Postern accepts.
    #[error("a milter frame of {0} octets is over the limit")]
    FrameTooLarge(usize),
    /// Anything else the protocol does not allow.
    #[error("milter protocol error: {0}")]
    Protocol(String),
}
