//! `rust:hello`: answers a command of its own and tags messages.
//!
//! Bound to an inbound event — typically a verb the server does not know, `inbound:HELLO` — it
//! answers `250 2.0.0 Hello NAME, GREETING` (NAME the client's EHLO name) and no later sink
//! runs. Bound to `end-of-data` it adds the header `X-Hello: GREETING`. Property `greeting`
//! (default `world`).

use std::sync::Arc;

use postern::sink_api::{
    Call, Change, Context, EnhancedCode, Event, Instance, Outcome, Reply, Sink, SinkError,
    SinkFactory, SinkSpec,
};

/// Makes `rust:hello` sinks.
pub(crate) struct Factory;

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "hello"
    }

    fn summary(&self) -> &'static str {
        "answers a command with a greeting; at end-of-data adds X-Hello"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["greeting"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Inbound(_) | Event::EndOfData)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let greeting = match spec.properties.get("greeting") {
            None => "world".to_owned(),
            Some(value) => value
                .as_str()
                .filter(|s| !s.is_empty() && !s.contains(['\r', '\n']))
                .ok_or_else(|| SinkError::Config("property `greeting`: one line of text".into()))?
                .to_owned(),
        };
        // One instance serves every call: it only reads its greeting.
        Ok(Instance::Async(Arc::new(Hello { greeting })))
    }
}

struct Hello {
    greeting: String,
}

impl Sink for Hello {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        let outcome = match ctx.event {
            Event::EndOfData => Outcome::changes(vec![Change::AddHeader {
                name: "X-Hello".into(),
                value: self.greeting.clone(),
            }]),
            _ => {
                let name = ctx
                    .session
                    .as_ref()
                    .and_then(|s| s.helo.as_deref())
                    .unwrap_or("stranger");
                Outcome::reply(Reply::new(
                    250,
                    Some(EnhancedCode::new(2, 0, 0)),
                    format!("Hello {name}, {}", self.greeting),
                ))
            }
        };
        // The answer is known at once: no future, no allocation for it.
        Call::Ready(Ok(outcome))
    }
}
