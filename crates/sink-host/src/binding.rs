//! A binding: one sink tied to one event, with its priority, rule, properties and policies.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use postern_mailmsg::Properties;
use postern_sink_api::Event;

pub use crate::isolation::BreakerPolicy;

/// A binding's id: a UUID made when the binding is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId(pub uuid::Uuid);

impl BindingId {
    /// A new random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for BindingId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for BindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl FromStr for BindingId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s.trim_matches(['{', '}'])).map(Self)
    }
}

/// Named priority levels (the original's `PRIO_*`).
pub mod priority {
    /// Runs first.
    pub const HIGHEST: u16 = 0;
    /// `high`.
    pub const HIGH: u16 = 8191;
    /// `medium`.
    pub const MEDIUM: u16 = 16383;
    /// Where the default sinks sit.
    pub const DEFAULT_SINK: u16 = 16384;
    /// `low`, the default for new bindings.
    pub const LOW: u16 = 24575;
    /// Runs last.
    pub const LOWEST: u16 = 32767;

    /// Parses a number 0–32767 or a level name (`highest`, `high`, `medium`, `low`, `lowest`,
    /// `default`, and the original `PRIO_*` forms).
    pub fn parse(text: &str) -> Option<u16> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.strip_prefix("prio_").unwrap_or(&t);
        let value = match t {
            "highest" | "min" => HIGHEST,
            "high" => HIGH,
            "medium" => MEDIUM,
            "low" | "default" => LOW,
            "lowest" | "max" => LOWEST,
            _ => t.parse::<u16>().ok()?,
        };
        (value <= LOWEST).then_some(value)
    }
}

/// Which kind of sink a binding calls and where to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkRef {
    /// `builtin:NAME`: a sink shipped with Postern.
    Builtin(String),
    /// `rust:NAME`: a native sink compiled into this binary.
    Rust(String),
    /// `script:PATH`: a script sink.
    Script(String),
    /// `milter:ADDRESS`: a milter.
    Milter(String),
    /// `http:URL`: an HTTP hook.
    Http(String),
}

impl SinkRef {
    /// The part after the kind: a sink's name, a script's path, a milter's address, a URL.
    pub fn target(&self) -> &str {
        match self {
            Self::Builtin(t)
            | Self::Rust(t)
            | Self::Script(t)
            | Self::Milter(t)
            | Self::Http(t) => t,
        }
    }

    /// Parses `kind:target`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kind, target) = text.split_once(':').ok_or_else(|| {
            format!("sink {text:?} has no kind (builtin:, rust:, script:, milter:, http:)")
        })?;
        if target.is_empty() {
            return Err(format!("sink {text:?} names nothing after {kind}:"));
        }
        let target = target.to_owned();
        Ok(match kind.to_ascii_lowercase().as_str() {
            "builtin" => Self::Builtin(target),
            "rust" => Self::Rust(target),
            "script" => Self::Script(target),
            "milter" => Self::Milter(target),
            // `http:URL` keeps the whole URL: `http:http://host/hook` and `http://host/hook`.
            "http" | "https" if target.starts_with("//") => Self::Http(text.to_owned()),
            "http" => Self::Http(target),
            other => return Err(format!("unknown sink kind {other:?} in {text:?}")),
        })
    }
}

impl fmt::Display for SinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(n) => write!(f, "builtin:{n}"),
            Self::Rust(n) => write!(f, "rust:{n}"),
            Self::Script(p) => write!(f, "script:{p}"),
            Self::Milter(a) => write!(f, "milter:{a}"),
            Self::Http(u) if u.starts_with("http") && u.contains("://") => write!(f, "{u}"),
            Self::Http(u) => write!(f, "http:{u}"),
        }
    }
}

/// What happens when a sink fails, panics or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// `451 4.3.0` on protocol events; the message is deferred on transport events.
    #[default]
    TempFail,
    /// As if the sink had not been bound.
    Continue,
    /// `550 5.7.1` on protocol events; the message (or recipient) fails on transport events.
    Reject,
}

impl OnError {
    /// Parses `tempfail`, `continue` or `reject`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "tempfail" => Self::TempFail,
            "continue" => Self::Continue,
            "reject" => Self::Reject,
            _ => return None,
        })
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TempFail => "tempfail",
            Self::Continue => "continue",
            Self::Reject => "reject",
        }
    }
}

/// Whether a binding's outcome is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Applied.
    #[default]
    Enforce,
    /// Run, logged and counted, never applied.
    Shadow,
}

impl Mode {
    /// Parses `enforce` or `shadow`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "enforce" => Self::Enforce,
            "shadow" => Self::Shadow,
            _ => return None,
        })
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
        }
    }
}

/// The default time a sink may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One binding, as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Made at registration.
    pub id: BindingId,
    /// Unique display name.
    pub name: String,
    /// The event.
    pub event: Event,
    /// The sink.
    pub sink: SinkRef,
    /// 0 (first) … 32767 (last).
    pub priority: u16,
    /// The rule text (parsed when the registry loads).
    pub rule: String,
    /// A disabled binding stays registered and does not fire.
    pub enabled: bool,
    /// The sink's configuration.
    pub properties: Properties,
    /// `true`: one instance is made and reused; `false`: a fresh one per event.
    pub cache: bool,
    /// How long one call may take.
    pub timeout: Duration,
    /// What a failure does.
    pub on_error: OnError,
    /// Enforce or shadow.
    pub mode: Mode,
    /// The binding stops firing after this time.
    pub expires: Option<SystemTime>,
    /// The binding stops firing after this many firings (counted per server process).
    pub max_firings: Option<u64>,
    /// At most this many calls in flight; a call beyond it waits up to the timeout, then
    /// `on_error` applies.
    pub max_concurrency: Option<u32>,
    /// The circuit breaker: enough failures in a window skip the binding for a cool-down.
    pub breaker: Option<BreakerPolicy>,
}

impl Binding {
    /// A binding with the defaults of `postern binding add`.
    pub fn new(name: impl Into<String>, event: Event, sink: SinkRef) -> Self {
        Self {
            id: BindingId::new(),
            name: name.into(),
            event,
            sink,
            priority: priority::LOW,
            rule: String::new(),
            enabled: true,
            properties: Properties::new(),
            cache: true,
            timeout: DEFAULT_TIMEOUT,
            on_error: OnError::TempFail,
            mode: Mode::Enforce,
            expires: None,
            max_firings: None,
            max_concurrency: None,
            breaker: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_parse_by_number_and_name() {
        let cases = [
            ("0", Some(0)),
            ("highest", Some(0)),
            ("PRIO_HIGH", Some(8191)),
            ("medium", Some(16383)),
            ("low", Some(24575)),
            ("lowest", Some(32767)),
            ("32768", None),
            ("-1", None),
            ("soon", None),
        ];
        for (text, want) in cases {
            assert_eq!(priority::parse(text), want, "{text}");
        }
    }

    #[test]
    fn sink_refs_round_trip() {
        for text in [
            "builtin:reply",
            "rust:x",
            "script:/a.rhai",
            "milter:inet:8891@127.0.0.1",
            "http://127.0.0.1:9/h",
        ] {
            assert_eq!(SinkRef::parse(text).unwrap().to_string(), text);
        }
        assert!(SinkRef::parse("reply").is_err());
        assert!(SinkRef::parse("com:Foo.Bar").is_err());
    }
}
