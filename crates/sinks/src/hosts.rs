//! `builtin:hosts`: supplies the hosts of a next hop at `dns-resolve`, so no MX lookup is made
//! (a static route, or a test that points a domain at a local server).
//!
//! Properties: `hosts` (required): `HOST` or `HOST:PORT` items separated by commas, tried in
//! order; an IPv6 address with a port is written `[ADDRESS]:PORT`.

use std::sync::Arc;

use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

struct Hosts(Vec<String>);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "hosts"
    }

    fn summary(&self) -> &'static str {
        "supplies the hosts of a next hop at dns-resolve, so no MX lookup is made"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["hosts"])
    }

    fn fits(&self, event: &Event) -> bool {
        *event == Event::DnsResolve
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let text = props::required(&spec.properties, "hosts")?;
        let hosts: Vec<String> = text
            .split(',')
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() {
            return Err(SinkError::Config("property `hosts` names no host".into()));
        }
        if let Some(bad) = hosts.iter().find(|h| {
            h.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        }) {
            return Err(SinkError::Config(format!(
                "property `hosts`: {bad:?} is not a host"
            )));
        }
        Ok(Instance::Async(Arc::new(Hosts(hosts))))
    }
}

impl Sink for Hosts {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(Outcome::changes(vec![Change::SetHosts(self.0.clone())])))
    }
}
