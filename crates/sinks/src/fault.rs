//! `builtin:fault`: fails on purpose, to try a binding's `on_error` policy and timeout before
//! a real sink depends on them. Property `mode`: `error` (returns an error), `panic`, or `hang`
//! (never answers, so the binding's timeout fires). `blocking = true` runs it as a blocking sink.

use std::sync::Arc;
use std::time::Duration;

use postern_sink_api::{
    BlockingSink, Call, Context, Instance, Sink, SinkError, SinkFactory, SinkResult, SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

#[derive(Clone, Copy)]
enum Mode {
    Error,
    Panic,
    Hang,
}

struct Fault(Mode);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "fault"
    }

    fn summary(&self) -> &'static str {
        "fails, panics or hangs on purpose, to try on_error and timeouts"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["mode", "blocking"])
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let mode = match props::required(&spec.properties, "mode")?.as_ref() {
            "error" => Mode::Error,
            "panic" => Mode::Panic,
            "hang" => Mode::Hang,
            other => {
                return Err(SinkError::Config(format!(
                    "property `mode`: {other:?} (error, panic, hang)"
                )));
            }
        };
        let fault = Arc::new(Fault(mode));
        Ok(if props::boolean(&spec.properties, "blocking")? {
            Instance::Blocking(fault)
        } else {
            Instance::Async(fault)
        })
    }
}

impl Sink for Fault {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        match self.0 {
            Mode::Error => Call::Ready(Err(SinkError::Failed("fault injected".into()))),
            Mode::Panic => panic!("fault injected"),
            Mode::Hang => Call::pending(async {
                std::future::pending::<()>().await;
                Err(SinkError::Failed("unreachable".into()))
            }),
        }
    }
}

impl BlockingSink for Fault {
    fn on_event(&self, _ctx: &Context) -> SinkResult {
        match self.0 {
            Mode::Error => Err(SinkError::Failed("fault injected".into())),
            Mode::Panic => panic!("fault injected"),
            Mode::Hang => {
                // A blocking sink that never returns: the host stops waiting at the timeout.
                std::thread::sleep(Duration::from_secs(3600));
                Err(SinkError::Failed("fault injected".into()))
            }
        }
    }
}
