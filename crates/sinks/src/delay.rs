//! `builtin:delay`: waits `ms` milliseconds, then lets the chain go on — a tarpit for a rule's
//! clients. With `blocking = true` it sleeps on a blocking thread (the host runs blocking sinks
//! on their own pool), which is also how a slow blocking sink behaves.

use std::sync::Arc;
use std::time::Duration;

use postern_sink_api::{
    BlockingSink, Call, Context, Instance, Outcome, Sink, SinkError, SinkFactory, SinkResult,
    SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

struct Delay(Duration);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "delay"
    }

    fn summary(&self) -> &'static str {
        "waits before the chain goes on (a tarpit)"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["ms", "blocking"])
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let ms = props::int(&spec.properties, "ms")?
            .ok_or_else(|| SinkError::Config("property `ms` is required".into()))?;
        let ms = u64::try_from(ms)
            .ok()
            .filter(|&ms| ms <= 600_000)
            .ok_or_else(|| SinkError::Config(format!("property `ms`: {ms} is not 0–600000")))?;
        let delay = Arc::new(Delay(Duration::from_millis(ms)));
        Ok(if props::boolean(&spec.properties, "blocking")? {
            Instance::Blocking(delay)
        } else {
            Instance::Async(delay)
        })
    }
}

impl Sink for Delay {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        Call::pending(async move {
            tokio::time::sleep(self.0).await;
            Ok(Outcome::next())
        })
    }
}

impl BlockingSink for Delay {
    fn on_event(&self, _ctx: &Context) -> SinkResult {
        std::thread::sleep(self.0);
        Ok(Outcome::next())
    }
}
