//! `builtin:log`: logs the event and its context at info level, to see what a binding sees.
//! Property `label` (optional) is logged with it.

use std::sync::Arc;

use postern_sink_api::{Call, Context, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec};
use tracing::info;

use crate::props;

pub(crate) struct Factory;

struct Log {
    label: String,
    binding: String,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "log"
    }

    fn summary(&self) -> &'static str {
        "logs the event and what the binding sees, at info level"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["label"])
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        Ok(Instance::Async(Arc::new(Log {
            label: props::text(&spec.properties, "label")?
                .map_or_else(String::new, |l| l.into_owned()),
            binding: spec.binding_name.clone(),
        })))
    }
}

impl Sink for Log {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        let msg = &ctx.message;
        let recipient = ctx.current_recipient().map(|r| r.address.as_str());
        info!(
            binding = %self.binding,
            label = %self.label,
            event = %ctx.event,
            command = ctx.command.as_ref().map(|c| c.line.as_str()),
            session = ctx.session.as_ref().map(|s| s.id),
            remote = ctx.session.as_ref().map(|s| s.remote.to_string()),
            helo = ctx.session.as_ref().and_then(|s| s.helo.as_deref()),
            queue_id = msg.id.map(|i| i.to_string()),
            sender = msg.sender.as_ref().map(|s| s.address.as_str()),
            recipients = msg.recipients.len(),
            recipient,
            size = msg.content.len(),
            reply = ctx.reply.as_ref().map(|r| r.to_string()),
            "event"
        );
        Call::Ready(Ok(Outcome::next()))
    }
}
