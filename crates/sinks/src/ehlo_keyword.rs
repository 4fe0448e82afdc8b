//! `builtin:ehlo-keyword`: adds property `keyword` to the EHLO reply, to advertise a command
//! extension that another sink implements.

use std::sync::Arc;

use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

struct Keyword(String);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "ehlo-keyword"
    }

    fn summary(&self) -> &'static str {
        "advertises a keyword in the EHLO reply"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["keyword"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Inbound(Some(v)) if v.as_str() == "EHLO")
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let keyword = props::required(&spec.properties, "keyword")?;
        if keyword.trim().is_empty() || !keyword.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(SinkError::Config(format!(
                "property `keyword`: {keyword:?} is not printable ASCII"
            )));
        }
        Ok(Instance::Async(Arc::new(Keyword(keyword.into_owned()))))
    }
}

impl Sink for Keyword {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(Outcome::changes(vec![Change::AddEhloKeyword(
            self.0.clone(),
        )])))
    }
}
