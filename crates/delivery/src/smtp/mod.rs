//! The outbound SMTP client: a connection ([`conn`]), bounded reply reading ([`reply`]), the
//! stream and its TLS settings ([`stream`]), one message's transaction with its events
//! ([`transaction`]) and the command lines it sends (`commands`).

mod commands;
pub mod conn;
pub mod reply;
pub mod stream;
pub mod transaction;

/// Why a session with a remote server broke off. Every one of them is temporary for the
/// message: its recipients are deferred (or tried at the next host).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A network error.
    #[error("network error: {0}")]
    Io(#[source] std::io::Error),
    /// The remote closed the connection.
    #[error("the remote closed the connection")]
    Closed,
    /// A step took longer than its time limit.
    #[error("time-out {0}")]
    Timeout(&'static str),
    /// The remote broke the protocol (garbage, a line too long, an endless reply).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}
