//! docs/sinks/http.schema.json against the JSON this crate really sends and reads: the schema,
//! the examples of docs/sinks/http.md and the serde structs must all agree.

use std::sync::Arc;

use postern_mailmsg::{Content, MailMsg, Properties, PropertyBag, Recipient};
use postern_sink_api::{Command, Context, Event, Reply, SessionInfo, Verb};

use crate::request::{self, Fixed};

const SCHEMA: &str = include_str!("../../../docs/sinks/http.schema.json");
const DOC: &str = include_str!("../../../docs/sinks/http.md");

fn validator(def: &str) -> jsonschema::Validator {
    let mut schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    // Validate against one definition: the root's `oneOf` would accept either.
    schema["oneOf"] = serde_json::json!([{ "$ref": format!("#/$defs/{def}") }]);
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn assert_valid(v: &jsonschema::Validator, instance: &serde_json::Value) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{instance:#}");
}

#[test]
fn the_examples_of_the_doc_follow_the_schema() {
    let (requests, answers) = (validator("request"), validator("answer"));
    for block in DOC.split("```json\n").skip(1) {
        let (text, _) = block.split_once("\n```").expect("closed block");
        let value: serde_json::Value = serde_json::from_str(text).expect("example is JSON");
        let v = if value.get("action").is_some() {
            &answers
        } else {
            &requests
        };
        assert_valid(v, &value);
    }
}

#[test]
fn requests_postern_builds_follow_the_schema() {
    let v = validator("request");
    let session = SessionInfo {
        id: 3,
        remote: "192.0.2.1:4000".parse().expect("address"),
        local: "192.0.2.2:25".parse().expect("address"),
        helo: Some("client.test".into()),
        esmtp: true,
        tls: false,
        auth_user: None,
        may_relay: false,
    };
    let mut msg = MailMsg::default();
    msg.recipients.push(Recipient::new("bob@example.org"));
    msg.content = Content::new(&b"Subject: hi\r\n\r\nbody\r\n"[..]);
    msg.properties.set("score", 2i64);
    let mut ctx = Context::new(Event::EndOfData, PropertyBag::new());
    ctx.session = Some(Arc::new(session));
    ctx.session_props = Some(PropertyBag::new());
    ctx.message = Arc::new(msg);
    ctx.reply = Some(Reply::new(250, None, "OK"));
    let mut props = Properties::new();
    props.set("content", true);
    let fixed = Fixed::new("id", "name", &props, true);
    assert_valid(
        &v,
        &serde_json::to_value(request::build(&ctx, &fixed)).expect("json"),
    );

    let mut ctx = Context::new(Event::Inbound(Verb::parse("RCPT")), PropertyBag::new());
    ctx.command = Command::parse("RCPT TO:<a@b>").map(Arc::new);
    let fixed = Fixed::new("id", "name", &Properties::new(), false);
    assert_valid(
        &v,
        &serde_json::to_value(request::build(&ctx, &fixed)).expect("json"),
    );
}

#[test]
fn the_schema_refuses_what_the_sink_refuses() {
    let v = validator("answer");
    for text in [
        r#"{"action":"maybe"}"#,
        r#"{"action":"continue","modifications":[{"type":"rewrite-everything"}]}"#,
        r#"{"action":"continue","modifications":[{"type":"add-header","name":"X:Y","value":"v"}]}"#,
        r#"{"action":"reject","response":{"enhanced":"x"}}"#,
        r#"{"version":2,"action":"continue"}"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        assert!(!v.is_valid(&value), "{text}");
        let parsed = serde_json::from_value::<crate::wire::Answer>(value)
            .map_err(|e| e.to_string())
            .and_then(|a| crate::answer::outcome(a, &Event::EndOfData).map_err(|e| e.to_string()));
        assert!(parsed.is_err(), "the sink accepts {text}");
    }
}
