//! Why a hook call or a binding failed.

use postern_sink_api::SinkError;

/// A failure of the HTTP sink. Every runtime failure becomes [`SinkError::Failed`], so the
/// dispatcher applies the binding's `on_error`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binding cannot make a working sink (URL, property, CA file).
    #[error("{0}")]
    Config(String),
    /// The hook could not be reached, or the transfer broke off.
    #[error("hook {url}: {why}")]
    Transport {
        /// The hook's URL.
        url: String,
        /// What went wrong, with its causes.
        why: String,
    },
    /// The hook answered with a status other than 2xx.
    #[error("hook {url}: HTTP status {status}")]
    Status {
        /// The hook's URL.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The answer is not a valid version 1 answer.
    #[error("hook answer: {0}")]
    Answer(String),
}

impl From<Error> for SinkError {
    fn from(e: Error) -> Self {
        match e {
            Error::Config(why) => SinkError::Config(why),
            other => SinkError::Failed(other.to_string()),
        }
    }
}

/// A reqwest error with its chain of causes (its own text alone says little: "error sending
/// request").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
