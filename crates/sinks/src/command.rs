//! `builtin:command`: changes the command the outbound client is about to send, or sends one
//! more after it (the original's outbound command sinks).
//!
//! Properties: `replace` (a command line sent instead of the one built), `append` (a command
//! line sent after it; its reply goes through the `response` event but does not decide
//! delivery). At least one of them.

use std::sync::Arc;

use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

struct Command {
    changes: Vec<Change>,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "command"
    }

    fn summary(&self) -> &'static str {
        "replaces the command the outbound client is about to send, or sends one more after it"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["replace", "append"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Outbound(_))
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let mut changes = Vec::new();
        for (key, make) in [
            ("replace", Change::SetCommand as fn(String) -> Change),
            ("append", Change::AddCommand),
        ] {
            if let Some(line) = props::text(p, key)? {
                let line = line.trim();
                let ok = !line.is_empty()
                    && line.len() <= 510
                    && !line.bytes().any(|b| b.is_ascii_control())
                    && postern_sink_api::Command::parse(line).is_some();
                if !ok {
                    return Err(SinkError::Config(format!(
                        "property `{key}`: {line:?} is not one SMTP command line"
                    )));
                }
                changes.push(make(line.to_owned()));
            }
        }
        if changes.is_empty() {
            return Err(SinkError::Config(
                "property `replace` or `append` is required".into(),
            ));
        }
        Ok(Instance::Async(Arc::new(Command { changes })))
    }
}

impl Sink for Command {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(Outcome::changes(self.changes.clone())))
    }
}
