//! `builtin:add-header`: adds a header field `name: value` to the message.
//!
//! Properties: `name` (required), `value` (required; may use `${queue_id}`, `${sender}`,
//! `${remote_ip}`, `${helo}`, `${binding}`, and `${calls}` — how many events this instance has
//! handled, which shows whether the binding's instance is cached), `position` (`bottom`, the
//! default: after the existing fields, in the order sinks run; or `top`).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};

use crate::props;

pub(crate) struct Factory;

#[derive(Debug, Clone, Copy)]
enum Var {
    QueueId,
    Sender,
    RemoteIp,
    Helo,
    Binding,
    Calls,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Var(Var),
}

struct AddHeader {
    name: String,
    parts: Vec<Part>,
    top: bool,
    binding: String,
    calls: AtomicU64,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "add-header"
    }

    fn summary(&self) -> &'static str {
        "adds a header field to the message, with ${...} variables"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["name", "value", "position"])
    }

    fn fits(&self, event: &Event) -> bool {
        // Message-level events only: a per-recipient event would add the field once per
        // recipient, and `track` sees a copy of the message.
        matches!(
            event,
            Event::EndOfData | Event::Submission | Event::PreCategorize | Event::PostCategorize
        )
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let name = props::required(p, "name")?;
        if !postern_mailmsg::is_header_name(&name) {
            return Err(SinkError::Config(format!(
                "property `name`: {name:?} is not a field name"
            )));
        }
        let value = props::required(p, "value")?;
        if value.contains(['\r', '\n', '\0']) {
            return Err(SinkError::Config(
                "property `value` must be one line".into(),
            ));
        }
        let top = match props::text(p, "position")?.as_deref().unwrap_or("bottom") {
            "bottom" => false,
            "top" => true,
            other => {
                return Err(SinkError::Config(format!(
                    "property `position`: {other:?} (top or bottom)"
                )));
            }
        };
        Ok(Instance::Async(Arc::new(AddHeader {
            name: name.into_owned(),
            parts: parse_template(&value)?,
            top,
            binding: spec.binding_name.clone(),
            calls: AtomicU64::new(0),
        })))
    }
}

fn parse_template(value: &str) -> Result<Vec<Part>, SinkError> {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| SinkError::Config("property `value`: `${` without `}`".into()))?;
        let name = &rest[start + 2..start + end];
        let var = match name {
            "queue_id" => Var::QueueId,
            "sender" => Var::Sender,
            "remote_ip" => Var::RemoteIp,
            "helo" => Var::Helo,
            "binding" => Var::Binding,
            "calls" => Var::Calls,
            other => {
                return Err(SinkError::Config(format!(
                    "property `value`: unknown variable ${{{other}}} (queue_id, sender, remote_ip, helo, binding, calls)"
                )));
            }
        };
        parts.push(Part::Var(var));
        rest = &rest[start + end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

impl Sink for AddHeader {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let msg = &ctx.message;
        let mut value = String::new();
        for part in &self.parts {
            // Writing into a String cannot fail.
            let _ = match part {
                Part::Text(t) => write!(value, "{t}"),
                Part::Var(Var::QueueId) => match msg.id {
                    Some(id) => write!(value, "{id}"),
                    None => Ok(()),
                },
                Part::Var(Var::Sender) => write!(value, "{}", msg.sender_address()),
                Part::Var(Var::RemoteIp) => {
                    let ip = msg
                        .info
                        .remote_ip
                        .or_else(|| ctx.session.as_ref().map(|s| s.remote.ip()));
                    match ip {
                        Some(ip) => write!(value, "{ip}"),
                        None => Ok(()),
                    }
                }
                Part::Var(Var::Helo) => {
                    let helo = ctx
                        .session
                        .as_ref()
                        .and_then(|s| s.helo.as_deref())
                        .unwrap_or(&msg.info.helo);
                    write!(value, "{helo}")
                }
                Part::Var(Var::Binding) => write!(value, "{}", self.binding),
                Part::Var(Var::Calls) => write!(value, "{calls}"),
            };
        }
        let name = self.name.clone();
        let change = if self.top {
            Change::PrependHeader { name, value }
        } else {
            Change::AddHeader { name, value }
        };
        Call::Ready(Ok(Outcome::changes(vec![change])))
    }
}
