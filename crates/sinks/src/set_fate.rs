//! `builtin:set-fate`: sets the message's fate from property `fate` (`abort`, `badmail`,
//! `quarantine`, `hold`).

use std::sync::Arc;

use postern_mailmsg::Fate;
use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

struct SetFate(Fate);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "set-fate"
    }

    fn fits(&self, event: &Event) -> bool {
        // The fate is acted on by the transport; end-of-data carries it into the queue.
        event.kind() == postern_sink_api::EventKind::Transport || *event == Event::EndOfData
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let name = props::required(&spec.properties, "fate")?;
        let fate = Fate::parse(name).ok_or_else(|| {
            SinkError::Config(format!(
                "property `fate`: {name:?} (abort, badmail, quarantine, hold, normal)"
            ))
        })?;
        Ok(Instance::Async(Arc::new(SetFate(fate))))
    }
}

impl Sink for SetFate {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(Outcome::changes(vec![Change::SetFate(self.0)])))
    }
}
