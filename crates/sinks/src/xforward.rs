//! `builtin:xforward`: Postfix's XFORWARD. A trusted proxy (a client in property `networks`)
//! passes what it knows of the original client — `NAME ADDR PORT PROTO HELO IDENT SOURCE` — for
//! the next transaction only: the attributes become message properties `xforward.addr`,
//! `xforward.name`, … and the `Received:` field names that client. Bound to `inbound:EHLO`
//! too, it advertises `XFORWARD` to the trusted networks only.

use std::sync::Arc;

use postern_mailmsg::Value;
use postern_sink_api::{
    Call, Change, Context, EnhancedCode, Event, Instance, Outcome, Reply, Scope, Sink, SinkError,
    SinkFactory, SinkSpec,
};

use crate::forward::{self, Networks};

/// The attributes XFORWARD takes, as advertised in EHLO.
const NAMES: [&str; 7] = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"];

pub(crate) struct Factory;

struct XForward(Networks);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "xforward"
    }

    fn summary(&self) -> &'static str {
        "XFORWARD: a trusted proxy passes the original client for the next message"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["networks"])
    }

    fn also_at_ehlo(&self) -> bool {
        true
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Inbound(Some(v)) if matches!(v.as_str(), "XFORWARD" | "EHLO"))
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let networks = Networks::from_props(&spec.properties)?;
        Ok(Instance::Async(Arc::new(XForward(networks))))
    }
}

impl Sink for XForward {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(self.decide(ctx)))
    }
}

impl XForward {
    fn decide(&self, ctx: &Context) -> Outcome {
        if let Some(answer) = forward::screen(&self.0, ctx, "XFORWARD", &NAMES) {
            return answer;
        }
        let Some(command) = ctx.command.as_ref() else {
            return Outcome::next();
        };
        let attributes = match forward::attributes(&command.args, &NAMES) {
            Ok(attributes) => attributes,
            Err(text) => return Outcome::reply(forward::syntax(text)),
        };
        let mut changes = Vec::new();
        for (name, value) in attributes {
            let key = format!("xforward.{}", name.to_ascii_lowercase());
            if forward::unknown(&value) {
                changes.push(Change::RemoveProperty {
                    scope: Scope::Message,
                    key,
                });
                continue;
            }
            let valid = match name {
                "ADDR" => forward::address(&value).is_some(),
                "PORT" => forward::port(&value).is_some(),
                "PROTO" => matches!(value.to_ascii_uppercase().as_str(), "SMTP" | "ESMTP"),
                "SOURCE" => matches!(value.to_ascii_uppercase().as_str(), "LOCAL" | "REMOTE"),
                _ => true,
            };
            if !valid {
                return Outcome::reply(forward::syntax(format!("Bad {name} syntax: {value}")));
            }
            let value = match name {
                // Kept as an address, without the IPV6: prefix.
                "ADDR" => forward::address(&value).map_or(value, |ip| ip.to_string()),
                _ => value,
            };
            changes.push(Change::SetProperty {
                scope: Scope::Message,
                key,
                value: Value::Text(value),
            });
        }
        Outcome {
            verdict: postern_sink_api::Verdict::Reply(Reply::new(
                250,
                Some(EnhancedCode::new(2, 0, 0)),
                "Ok",
            )),
            changes,
        }
    }
}
