//! `builtin:set-fate`: sets the message's fate from property `fate` (`abort` or
//! `abort-delivery`, `badmail`, `quarantine`, `hold`, `normal`).

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

    fn summary(&self) -> &'static str {
        "sets the message's fate: abort, badmail, quarantine, hold or normal"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["fate"])
    }

    fn fits(&self, event: &Event) -> bool {
        // The transport acts on a fate between the stages up to route; end-of-data carries it
        // into the queue. (At `store` and `track` there is no later stage to act on it.)
        matches!(
            event,
            Event::EndOfData
                | Event::Submission
                | Event::PreCategorize
                | Event::Categorize
                | Event::PostCategorize
                | Event::Route
        )
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let name = props::required(&spec.properties, "fate")?;
        let fate = Fate::parse(&name).ok_or_else(|| {
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
