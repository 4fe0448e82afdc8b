//! `builtin:reply`: answers a protocol event with a fixed reply and consumes it. With a rule it
//! is an access list; bound to a verb the server does not know, it is a new SMTP command. Bound
//! to `response` it replaces the remote's reply that delivery acts on (`REPLY=5*` with code 451
//! turns permanent failures into retries); bound to `outbound:*` it answers for the remote, and
//! the command is not sent.
//!
//! Properties: `code` (200–599, required), `enhanced` (`X.Y.Z`, optional), `text` (optional),
//! `disconnect` (`true` closes the connection after the reply).

use postern_sink_api::{
    Call, Context, EnhancedCode, Event, EventKind, Instance, Outcome, Reply, Sink, SinkError,
    SinkFactory, SinkSpec, Verdict,
};
use std::sync::Arc;

use crate::props;

pub(crate) struct Factory;

struct ReplySink {
    reply: Reply,
    disconnect: bool,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "reply"
    }

    fn summary(&self) -> &'static str {
        "answers a protocol event with a fixed reply (access lists, new SMTP commands)"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["code", "enhanced", "text", "disconnect"])
    }

    fn fits(&self, event: &Event) -> bool {
        event.kind() != EventKind::Transport && *event != Event::SessionEnd
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let code = props::int(p, "code")?
            .ok_or_else(|| SinkError::Config("property `code` is required".into()))?;
        let code = u16::try_from(code)
            .ok()
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| SinkError::Config(format!("property `code`: {code} is not 200–599")))?;
        let enhanced = match props::text(p, "enhanced")? {
            None => None,
            Some(t) => Some(EnhancedCode::parse(&t).ok_or_else(|| {
                SinkError::Config(format!(
                    "property `enhanced`: {t:?} is not X.Y.Z with X 2, 4 or 5"
                ))
            })?),
        };
        if enhanced.is_some_and(|e| u16::from(e.class) != code / 100) {
            return Err(SinkError::Config(
                "property `enhanced` must be of the same class as `code`".into(),
            ));
        }
        let text = props::text(p, "text")?.map_or_else(|| "OK".to_owned(), |t| t.into_owned());
        Ok(Instance::Async(Arc::new(ReplySink {
            reply: Reply::new(code, enhanced, text),
            disconnect: props::boolean(p, "disconnect")?,
        })))
    }
}

impl Sink for ReplySink {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        let verdict = if self.disconnect {
            Verdict::Disconnect(Some(self.reply.clone()))
        } else {
            Verdict::Reply(self.reply.clone())
        };
        Call::Ready(Ok(Outcome::next().with_verdict(verdict)))
    }
}
