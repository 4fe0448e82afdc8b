//! Events: every step of a message that a sink can be bound to.

use std::borrow::Cow;
use std::fmt;

/// An SMTP command verb, upper case (`MAIL`, `XPING`). At most 32 octets of ASCII letters,
/// digits and `-`; anything else is not a verb.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Verb(Box<str>);

impl Verb {
    /// The longest verb accepted.
    pub const MAX_LEN: usize = 32;

    /// Parses a verb, upper-casing it; `None` when it is empty, too long or has other characters.
    pub fn parse(word: &str) -> Option<Self> {
        if word.is_empty()
            || word.len() > Self::MAX_LEN
            || !word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
        Some(Self(word.to_ascii_uppercase().into_boxed_str()))
    }

    /// The verb, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The verbs the server itself implements (RFC 5321 plus the extensions it advertises).
    pub const STANDARD: &'static [&'static str] = &[
        "EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
        "HELP", "AUTH", "STARTTLS",
    ];
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an event belongs to the SMTP dialogue or to the message pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Raised by an inbound session; the outcome decides the reply.
    Protocol,
    /// Raised by the transport; the outcome decides the message's way.
    Transport,
    /// Raised by the outbound SMTP client for a command about to be sent or a reply received;
    /// like a protocol event, the outcome decides a reply (the one Postern acts on).
    Outbound,
}

/// The step of an outbound SMTP session a command belongs to (the original's outbound events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundStep {
    /// EHLO (or HELO) is about to be sent (OnSessionStart).
    SessionStart,
    /// MAIL FROM is about to be sent (OnMessageStart).
    MessageStart,
    /// RCPT TO is about to be sent for one recipient (OnPerRecipient).
    PerRecipient,
    /// DATA or BDAT is about to be sent (OnBeforeData).
    BeforeData,
    /// QUIT is about to be sent (OnSessionEnd).
    SessionEnd,
}

impl OutboundStep {
    /// Every step, in session order.
    pub const ALL: [OutboundStep; 5] = [
        Self::SessionStart,
        Self::MessageStart,
        Self::PerRecipient,
        Self::BeforeData,
        Self::SessionEnd,
    ];

    /// The name after `outbound:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStart => "session-start",
            Self::MessageStart => "message-start",
            Self::PerRecipient => "per-recipient",
            Self::BeforeData => "before-data",
            Self::SessionEnd => "session-end",
        }
    }

    fn original(self) -> &'static str {
        match self {
            Self::SessionStart => "onsessionstart",
            Self::MessageStart => "onmessagestart",
            Self::PerRecipient => "onperrecipient",
            Self::BeforeData => "onbeforedata",
            Self::SessionEnd => "onsessionend",
        }
    }
}

/// An event a binding can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// A client connected (before the greeting).
    SessionStart,
    /// A command was received; `None` binds every verb (`inbound:*`, the original
    /// `OnInboundCommand`), a verb rule then picks the verbs.
    Inbound(Option<Verb>),
    /// The whole message has been received (end of DATA or the last BDAT chunk).
    EndOfData,
    /// The connection closed.
    SessionEnd,
    /// A message enters the transport.
    Submission,
    /// Before address resolution.
    PreCategorize,
    /// Address resolution, once per recipient.
    Categorize,
    /// After address resolution.
    PostCategorize,
    /// Choosing the next hop, once per recipient.
    Route,
    /// A recipient is handed to local delivery.
    Store,
    /// A message exceeds the size limit.
    MaxSize,
    /// A message's delivery state changes: delivered, bounced (some recipients failed) or
    /// deferred. The message the sinks see carries the state in property `track.state`.
    Track,
    /// The hosts of a remote next hop are looked up (DnsResolver).
    DnsResolve,
    /// A command is about to be sent to a remote server.
    Outbound(OutboundStep),
    /// A reply was received from a remote server (OnServerResponse); the command it answers is
    /// the context's command, and the recipient of a RCPT reply its current recipient.
    Response,
}

/// An event name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event {0:?} (see `postern binding events`)")]
pub struct UnknownEvent(pub String);

impl Event {
    /// Every event name a binding may use, with the original name it also accepts.
    pub const NAMES: &'static [(&'static str, &'static str)] = &[
        ("session-start", "OnConnect"),
        ("inbound:<VERB>", "one command, any verb, custom verbs too"),
        (
            "inbound:*",
            "OnInboundCommand, inbound (every verb, or those of a verb rule)",
        ),
        ("end-of-data", "OnEndOfData"),
        ("session-end", "OnDisconnect"),
        ("submission", "OnTransportSubmission, OnArrival"),
        ("pre-categorize", "OnPreCategorize"),
        ("categorize", "OnCategorize"),
        ("post-categorize", "OnPostCategorize"),
        ("route", "OnTransportRouter"),
        ("store", "StoreDriver"),
        ("max-size", "MaxMsgSize"),
        ("track", "MsgTrackLog"),
        ("dns-resolve", "DnsResolver"),
        (
            "outbound:session-start",
            "OnSessionStart (before EHLO is sent)",
        ),
        (
            "outbound:message-start",
            "OnMessageStart (before MAIL FROM is sent)",
        ),
        (
            "outbound:per-recipient",
            "OnPerRecipient (before each RCPT TO is sent)",
        ),
        (
            "outbound:before-data",
            "OnBeforeData (before DATA or BDAT is sent)",
        ),
        ("outbound:session-end", "OnSessionEnd (before QUIT is sent)"),
        (
            "response",
            "OnServerResponse (each reply of a remote server)",
        ),
    ];

    /// Parses an event name or an original alias, case-insensitively.
    pub fn parse(name: &str) -> Result<Self, UnknownEvent> {
        let unknown = || UnknownEvent(name.to_owned());
        let lower = name.trim().to_ascii_lowercase();
        if let Some(verb) = lower.strip_prefix("inbound:") {
            if verb == "*" {
                return Ok(Self::Inbound(None));
            }
            return Verb::parse(verb)
                .map(|v| Self::Inbound(Some(v)))
                .ok_or_else(unknown);
        }
        if let Some(step) = lower.strip_prefix("outbound:") {
            return OutboundStep::ALL
                .into_iter()
                .find(|s| s.as_str() == step)
                .map(Self::Outbound)
                .ok_or_else(unknown);
        }
        if let Some(step) = OutboundStep::ALL
            .into_iter()
            .find(|s| s.original() == lower)
        {
            return Ok(Self::Outbound(step));
        }
        Ok(match lower.as_str() {
            "session-start" | "onconnect" => Self::SessionStart,
            "oninboundcommand" | "inbound" => Self::Inbound(None),
            "end-of-data" | "onendofdata" => Self::EndOfData,
            "session-end" | "ondisconnect" => Self::SessionEnd,
            "submission" | "ontransportsubmission" | "onarrival" => Self::Submission,
            "pre-categorize" | "onprecategorize" => Self::PreCategorize,
            "categorize" | "oncategorize" => Self::Categorize,
            "post-categorize" | "onpostcategorize" => Self::PostCategorize,
            "route" | "ontransportrouter" => Self::Route,
            "store" | "storedriver" => Self::Store,
            "max-size" | "maxmsgsize" => Self::MaxSize,
            "track" | "msgtracklog" => Self::Track,
            "dns-resolve" | "dnsresolver" => Self::DnsResolve,
            "response" | "onserverresponse" => Self::Response,
            _ => return Err(unknown()),
        })
    }

    /// The canonical name (`inbound:MAIL`, `categorize`, …).
    pub fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::SessionStart => "session-start",
            Self::Inbound(None) => "inbound:*",
            Self::Inbound(Some(verb)) => return Cow::Owned(format!("inbound:{verb}")),
            Self::EndOfData => "end-of-data",
            Self::SessionEnd => "session-end",
            Self::Submission => "submission",
            Self::PreCategorize => "pre-categorize",
            Self::Categorize => "categorize",
            Self::PostCategorize => "post-categorize",
            Self::Route => "route",
            Self::Store => "store",
            Self::MaxSize => "max-size",
            Self::Track => "track",
            Self::DnsResolve => "dns-resolve",
            Self::Outbound(step) => return Cow::Owned(format!("outbound:{}", step.as_str())),
            Self::Response => "response",
        })
    }

    /// Protocol or transport.
    pub fn kind(&self) -> EventKind {
        match self {
            // max-size is raised by the session and decided by a reply.
            Self::SessionStart
            | Self::Inbound(_)
            | Self::EndOfData
            | Self::SessionEnd
            | Self::MaxSize => EventKind::Protocol,
            Self::Outbound(_) | Self::Response => EventKind::Outbound,
            _ => EventKind::Transport,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_original_aliases() {
        let cases = [
            ("inbound:mail", "inbound:MAIL"),
            ("inbound:XPING", "inbound:XPING"),
            ("OnInboundCommand", "inbound:*"),
            ("OnArrival", "submission"),
            ("OnTransportSubmission", "submission"),
            ("OnTransportRouter", "route"),
            ("StoreDriver", "store"),
            ("MsgTrackLog", "track"),
            ("MaxMsgSize", "max-size"),
            ("DnsResolver", "dns-resolve"),
            ("OnServerResponse", "response"),
            ("OnMessageStart", "outbound:message-start"),
            ("outbound:Per-Recipient", "outbound:per-recipient"),
            ("OnSessionEnd", "outbound:session-end"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Event::parse(input).map(|e| e.name().into_owned()),
                Ok(want.to_owned())
            );
        }
    }

    #[test]
    fn refuses_unknown_names_and_bad_verbs() {
        assert!(Event::parse("on-nothing").is_err());
        assert!(Event::parse("inbound:MA IL").is_err());
        assert!(Event::parse("inbound:").is_err());
        assert!(Event::parse("outbound:mail").is_err());
    }
}
