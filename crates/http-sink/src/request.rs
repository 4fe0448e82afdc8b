//! Building the request a hook receives from the context of an event.

use std::collections::BTreeMap;

use base64::Engine as _;
use postern_mailmsg::{Properties, Value};
use postern_sink_api::{Context, Reply};

use crate::wire;

/// Binding properties that are not echoed to the hook: they are for Postern (or secret).
const NOT_ECHOED: &[&str] = &["authorization"];

/// What a binding adds to every request.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    pub(crate) binding_id: String,
    pub(crate) binding_name: String,
    /// The binding's properties as JSON, secrets left out.
    pub(crate) properties: BTreeMap<String, serde_json::Value>,
    /// Whether the raw content is sent (`content=true`).
    pub(crate) content: bool,
}

impl Fixed {
    pub(crate) fn new(id: &str, name: &str, props: &Properties, content: bool) -> Self {
        Self {
            binding_id: id.to_owned(),
            binding_name: name.to_owned(),
            properties: props
                .iter()
                .filter(|(key, _)| !NOT_ECHOED.contains(key))
                .map(|(key, value)| (key.to_owned(), json(value)))
                .collect(),
            content,
        }
    }
}

/// The request for one event.
pub(crate) fn build(ctx: &Context, fixed: &Fixed) -> wire::Request {
    let msg = &ctx.message;
    let content = &msg.content;
    wire::Request {
        version: wire::VERSION,
        event: ctx.event.name().into_owned(),
        binding: wire::Binding {
            id: fixed.binding_id.clone(),
            name: fixed.binding_name.clone(),
        },
        command: ctx.command.as_ref().map(|c| wire::Command {
            verb: c.verb.as_str().to_owned(),
            args: c.args.clone(),
        }),
        envelope: wire::Envelope {
            from: msg.sender.as_ref().map(|_| msg.sender_address().to_owned()),
            to: msg.recipients.iter().map(|r| r.address.clone()).collect(),
            recipient: ctx.current_recipient().map(|r| r.address.clone()),
        },
        session: ctx.session.as_ref().map(|s| wire::Session {
            id: s.id,
            remote_ip: s.remote.ip().to_string(),
            remote_port: s.remote.port(),
            helo: s.helo.clone(),
            tls: s.tls,
            auth_user: s.auth_user.clone(),
        }),
        message: wire::Message {
            queue_id: msg.id.as_ref().map(ToString::to_string),
            size: content.len() as u64,
            headers: content.headers(),
            content: (fixed.content && !content.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(content.bytes())),
        },
        reply: ctx.reply.as_ref().map(reply),
        properties: wire::Properties {
            binding: fixed.properties.clone(),
            session: ctx
                .session_props
                .as_ref()
                .map(|bag| bag_json(&bag.snapshot())),
            message: bag_json(&msg.properties),
        },
    }
}

fn reply(reply: &Reply) -> wire::Response {
    wire::Response {
        code: Some(reply.code),
        enhanced: reply.enhanced.map(|e| e.to_string()),
        text: Some(reply.lines.join("\n")),
    }
}

fn bag_json(props: &Properties) -> BTreeMap<String, serde_json::Value> {
    props
        .iter()
        .map(|(key, value)| (key.to_owned(), json(value)))
        .collect()
}

fn json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Text(s) => s.as_str().into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use postern_mailmsg::{Content, MailMsg, PropertyBag, Recipient};
    use postern_sink_api::{Command, Event, Verb};

    use super::*;

    #[test]
    fn end_of_data_request_carries_envelope_headers_and_content_when_asked() {
        let mut msg = MailMsg::default();
        msg.recipients.push(Recipient::new("bob@example.org"));
        msg.content = Content::new(&b"Subject: hi\r\nX-A: 1\r\n\r\nbody\r\n"[..]);
        msg.properties.set("spam.score", 3i64);
        let mut ctx = Context::new(Event::EndOfData, PropertyBag::new());
        ctx.message = Arc::new(msg);
        let mut props = Properties::new();
        props.set("content", true);
        props.set("authorization", "Bearer secret");
        let fixed = Fixed::new("b1", "hook", &props, true);

        let json = serde_json::to_value(build(&ctx, &fixed)).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["event"], "end-of-data");
        assert_eq!(json["envelope"]["to"][0], "bob@example.org");
        assert_eq!(json["message"]["headers"][0][0], "Subject");
        assert_eq!(json["message"]["headers"][0][1], "hi");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(json["message"]["content"].as_str().unwrap())
            .unwrap();
        assert!(raw.starts_with(b"Subject: hi\r\n"));
        assert_eq!(json["properties"]["message"]["spam.score"], 3);
        assert_eq!(json["properties"]["binding"]["content"], true);
        assert!(json["properties"]["binding"].get("authorization").is_none());
        assert!(json.get("command").is_none());
    }

    #[test]
    fn inbound_request_carries_the_command() {
        let mut ctx = Context::new(Event::Inbound(Verb::parse("MAIL")), PropertyBag::new());
        ctx.command = Command::parse("MAIL FROM:<a@example.com> SIZE=10").map(Arc::new);
        let fixed = Fixed::new("b1", "hook", &Properties::new(), false);
        let json = serde_json::to_value(build(&ctx, &fixed)).unwrap();
        assert_eq!(json["command"]["verb"], "MAIL");
        assert_eq!(json["command"]["args"], "FROM:<a@example.com> SIZE=10");
        assert_eq!(json["envelope"]["from"], serde_json::Value::Null);
        assert!(json["message"].get("content").is_none());
    }
}
