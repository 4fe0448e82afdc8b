//! The JSON a hook receives and answers, version 1: structs of their own, so that renaming a
//! field of Postern's domain types never changes what a hook sees. `docs/sinks/http.md` and
//! `docs/sinks/http.schema.json` describe the same shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the request this crate sends (`version` in the request).
pub(crate) const VERSION: u32 = 1;

/// What is POSTed to the hook.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Request {
    /// Always [`VERSION`]; a hook checks it to notice a format it does not know.
    pub(crate) version: u32,
    /// The canonical event name (`inbound:MAIL`, `end-of-data`, `route`…).
    pub(crate) event: String,
    /// The binding that called the hook.
    pub(crate) binding: Binding,
    /// The command received, on `inbound:*` events (and the command answered at `response`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) command: Option<Command>,
    /// Sender and recipients so far.
    pub(crate) envelope: Envelope,
    /// The inbound session, while it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<Session>,
    /// The message so far.
    pub(crate) message: Message,
    /// The reply Postern will send if no sink changes it, on protocol events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reply: Option<Response>,
    /// The property bags.
    pub(crate) properties: Properties,
}

/// Which binding called.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Binding {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// An SMTP command.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Command {
    /// Upper case.
    pub(crate) verb: String,
    /// Everything after the verb and its space.
    pub(crate) args: String,
}

/// The envelope.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope {
    /// The reverse-path: `null` before MAIL, `""` for the null sender.
    pub(crate) from: Option<String>,
    /// The forward-paths, in order.
    pub(crate) to: Vec<String>,
    /// The recipient a per-recipient event (`categorize`, `route`, `store`) is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) recipient: Option<String>,
}

/// The inbound session.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) remote_ip: String,
    pub(crate) remote_port: u16,
    pub(crate) helo: Option<String>,
    pub(crate) tls: bool,
    pub(crate) auth_user: Option<String>,
}

/// The message.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Message {
    /// The queue id, once the message is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) queue_id: Option<String>,
    /// Size of the content in bytes (0 before the end of DATA).
    pub(crate) size: u64,
    /// Header fields in order, as `[name, value]` pairs (the MTA Hooks draft's shape).
    pub(crate) headers: Vec<(String, String)>,
    /// The raw content, base64, when the binding sets `content=true` and there is content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<String>,
}

/// Property bags: the binding's own properties (less secrets), the session's and the message's.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Properties {
    pub(crate) binding: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<BTreeMap<String, serde_json::Value>>,
    pub(crate) message: BTreeMap<String, serde_json::Value>,
}

/// What the hook answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Answer {
    /// The version the hook speaks; absent means [`VERSION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u32>,
    pub(crate) action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response: Option<Response>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) modifications: Vec<Modification>,
}

/// The hook's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    Continue,
    Accept,
    Reject,
    Tempfail,
    Discard,
    Quarantine,
    Disconnect,
}

impl Action {
    /// The name on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Tempfail => "tempfail",
            Self::Discard => "discard",
            Self::Quarantine => "quarantine",
            Self::Disconnect => "disconnect",
        }
    }
}

/// An SMTP reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) enhanced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
}

/// A change the hook asks for.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum Modification {
    AddHeader {
        name: String,
        value: String,
    },
    SetHeader {
        name: String,
        value: String,
    },
    RemoveHeader {
        name: String,
    },
    AddRecipient {
        address: String,
    },
    RemoveRecipient {
        address: String,
    },
    ReplaceBody {
        body: String,
    },
    SetProperty {
        scope: PropertyScope,
        key: String,
        value: serde_json::Value,
    },
}

/// Which property bag a `set-property` goes to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PropertyScope {
    Server,
    Session,
    Message,
    Recipient,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON examples of docs/sinks/http.md, each a request or an answer.
    const DOC: &str = include_str!("../../../docs/sinks/http.md");

    fn json_blocks(doc: &str) -> Vec<&str> {
        doc.split("```json\n")
            .skip(1)
            .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
            .collect()
    }

    #[test]
    fn every_example_of_the_doc_reads_as_a_request_or_an_answer() {
        let blocks = json_blocks(DOC);
        assert!(blocks.len() >= 4, "examples found: {}", blocks.len());
        let (mut requests, mut answers) = (0, 0);
        for block in blocks {
            let value: serde_json::Value =
                serde_json::from_str(block).unwrap_or_else(|e| panic!("not JSON ({e}):\n{block}"));
            if value.get("action").is_some() {
                let answer: Answer = serde_json::from_value(value)
                    .unwrap_or_else(|e| panic!("not an answer ({e}):\n{block}"));
                crate::answer::outcome(answer, &postern_sink_api::Event::EndOfData)
                    .unwrap_or_else(|e| panic!("answer refused ({e}):\n{block}"));
                answers += 1;
            } else {
                let _: Request = serde_json::from_value(value)
                    .unwrap_or_else(|e| panic!("not a request ({e}):\n{block}"));
                requests += 1;
            }
        }
        assert!(
            requests >= 1 && answers >= 2,
            "{requests} requests, {answers} answers"
        );
    }

    #[test]
    fn an_unknown_action_or_modification_is_refused() {
        for text in [
            r#"{"action":"maybe"}"#,
            r#"{"action":"continue","modifications":[{"type":"rewrite-everything"}]}"#,
            r#"{"action":"continue","modifications":[{"type":"add-header","name":"X"}]}"#,
            r#"{"actions":"continue"}"#,
        ] {
            assert!(serde_json::from_str::<Answer>(text).is_err(), "{text}");
        }
    }
}
