//! `builtin:xclient`: Postfix's XCLIENT. A trusted proxy (a client in property `networks`)
//! names the real client — `ADDR NAME PORT PROTO HELO LOGIN DESTADDR DESTPORT` — and the
//! session carries on as that client: a new `220` greeting, a new transaction, and every later
//! rule (`REMOTE`), sink and `Received:` field sees the forwarded client. Bound to
//! `inbound:EHLO` too, it advertises `XCLIENT` to the trusted networks only.

use std::sync::Arc;

use postern_mailmsg::Value;
use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Reply, Scope, Sink, SinkError, SinkFactory,
    SinkSpec, Verdict,
};

use crate::forward::{self, Networks};

/// The attributes XCLIENT takes, as advertised in EHLO.
const NAMES: [&str; 8] = [
    "ADDR", "NAME", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT",
];
/// The session property holding the forwarded client's host name (`NAME`).
pub(crate) const NAME_PROPERTY: &str = "xclient.name";

pub(crate) struct Factory;

struct XClient(Networks);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "xclient"
    }

    fn summary(&self) -> &'static str {
        "XCLIENT: a trusted proxy names the real client"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["networks"])
    }

    fn also_at_ehlo(&self) -> bool {
        true
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Inbound(Some(v)) if matches!(v.as_str(), "XCLIENT" | "EHLO"))
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let networks = Networks::from_props(&spec.properties)?;
        Ok(Instance::Async(Arc::new(XClient(networks))))
    }
}

impl Sink for XClient {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(self.decide(ctx)))
    }
}

impl XClient {
    fn decide(&self, ctx: &Context) -> Outcome {
        if let Some(answer) = forward::screen(&self.0, ctx, "XCLIENT", &NAMES) {
            return answer;
        }
        let (Some(session), Some(command)) = (ctx.session.as_ref(), ctx.command.as_ref()) else {
            return Outcome::next();
        };
        let attributes = match forward::attributes(&command.args, &NAMES) {
            Ok(attributes) => attributes,
            Err(text) => return Outcome::reply(forward::syntax(text)),
        };
        let mut info = (**session).clone();
        let mut changes = Vec::new();
        for (name, value) in attributes {
            let unknown = forward::unknown(&value);
            let bad = || Outcome::reply(forward::syntax(format!("Bad {name} syntax: {value}")));
            match name {
                "ADDR" | "DESTADDR" if !unknown => {
                    let Some(ip) = forward::address(&value) else {
                        return bad();
                    };
                    let side = if name == "ADDR" {
                        &mut info.remote
                    } else {
                        &mut info.local
                    };
                    *side = forward::with(*side, Some(ip), None);
                }
                "PORT" | "DESTPORT" if !unknown => {
                    let Some(port) = forward::port(&value) else {
                        return bad();
                    };
                    let side = if name == "PORT" {
                        &mut info.remote
                    } else {
                        &mut info.local
                    };
                    *side = forward::with(*side, None, Some(port));
                }
                "PROTO" if !unknown => match value.to_ascii_uppercase().as_str() {
                    "SMTP" => info.esmtp = false,
                    "ESMTP" => info.esmtp = true,
                    _ => return bad(),
                },
                "HELO" => info.helo = (!unknown).then_some(value),
                "LOGIN" => info.auth_user = (!unknown).then_some(value),
                "NAME" if unknown => changes.push(Change::RemoveProperty {
                    scope: Scope::Session,
                    key: NAME_PROPERTY.into(),
                }),
                "NAME" => changes.push(Change::SetProperty {
                    scope: Scope::Session,
                    key: NAME_PROPERTY.into(),
                    value: Value::Text(value),
                }),
                // An unknown address, port or protocol leaves the session's own.
                _ => {}
            }
        }
        changes.push(Change::SetClient(info));
        // The session answers a client change with its own greeting (see `Change::SetClient`).
        Outcome {
            verdict: Verdict::Reply(Reply::new(220, None, "XCLIENT accepted")),
            changes,
        }
    }
}
