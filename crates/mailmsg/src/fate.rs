//! The fate of a message: what the transport does with it after the current stage.

/// What the transport is to do with a message. Sinks set it with a change; the transport acts on
/// it between stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fate {
    /// Go on through the pipeline.
    #[default]
    Normal,
    /// Drop the message silently: no delivery, no DSN.
    Abort,
    /// Move the message to the badmail folder (malformed or undeliverable, kept for an admin).
    Badmail,
    /// Move the message to quarantine (suspect content, kept for review).
    Quarantine,
    /// Keep the message in the queue, untouched, until an admin releases it.
    Hold,
}

impl Fate {
    /// The name used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Abort => "abort",
            Self::Badmail => "badmail",
            Self::Quarantine => "quarantine",
            Self::Hold => "hold",
        }
    }

    /// Parses a fate name (`abort` also accepts `abort-delivery`, as the original's
    /// "abort delivery" status).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "normal" => Self::Normal,
            "abort" | "abort-delivery" => Self::Abort,
            "badmail" => Self::Badmail,
            "quarantine" => Self::Quarantine,
            "hold" => Self::Hold,
            _ => return None,
        })
    }
}
