//! Turning a hook's answer into an outcome: the action into a verdict, the modifications into
//! changes. An answer that does not make sense (a reject with a 2xx code, a header name with a
//! colon) is an error, so the binding's `on_error` applies instead of a guess.

use bytes::Bytes;
use postern_mailmsg::{Fate, Value};
use postern_sink_api::{Change, EnhancedCode, Event, EventKind, Outcome, Reply, Scope, Verdict};

use crate::error::Error;
use crate::wire::{self, Action, Modification, PropertyScope};

/// The verdict and changes an answer asks for.
pub(crate) fn outcome(answer: wire::Answer, event: &Event) -> Result<Outcome, Error> {
    if let Some(version) = answer.version
        && version != wire::VERSION
    {
        return Err(Error::Answer(format!(
            "version {version} (this Postern speaks {})",
            wire::VERSION
        )));
    }
    let mut changes = answer
        .modifications
        .into_iter()
        .map(change)
        .collect::<Result<Vec<_>, _>>()?;
    let response = answer
        .response
        .map(|r| response(r, answer.action))
        .transpose()?;
    let protocol = event.kind() != EventKind::Transport;
    let verdict = match answer.action {
        Action::Continue | Action::Accept => {
            changes.extend(response.and_then(|r| r.reply).map(Change::SetReply));
            if answer.action == Action::Accept {
                Verdict::Consume
            } else {
                Verdict::Continue
            }
        }
        Action::Reject | Action::Tempfail => match response {
            // A full reply is sent as it is on protocol events; the transport takes its text.
            Some(Given {
                reply: Some(reply), ..
            }) if protocol => Verdict::Reply(reply),
            given => {
                let text = given.and_then(|g| g.text);
                if answer.action == Action::Reject {
                    Verdict::Reject(text)
                } else {
                    Verdict::TempFail(text)
                }
            }
        },
        Action::Discard | Action::Quarantine => {
            if !fate_fits(event) {
                return Err(Error::Answer(format!(
                    "action {} has no effect at event {event}",
                    answer.action.as_str()
                )));
            }
            let fate = if answer.action == Action::Discard {
                Fate::Abort
            } else {
                Fate::Quarantine
            };
            changes.push(Change::SetFate(fate));
            changes.extend(response.and_then(|r| r.reply).map(Change::SetReply));
            Verdict::Continue
        }
        Action::Disconnect => Verdict::Disconnect(response.and_then(|r| r.reply)),
    };
    Ok(Outcome { verdict, changes })
}

/// Whether the transport still acts on a fate set at `event` (as for `builtin:set-fate`).
fn fate_fits(event: &Event) -> bool {
    matches!(
        event,
        Event::EndOfData
            | Event::Submission
            | Event::PreCategorize
            | Event::Categorize
            | Event::PostCategorize
            | Event::Route
    )
}

/// A `response` read: a whole reply when it has a code, and its text.
struct Given {
    reply: Option<Reply>,
    text: Option<String>,
}

fn response(r: wire::Response, action: Action) -> Result<Given, Error> {
    let enhanced = r
        .enhanced
        .as_deref()
        .map(|e| {
            EnhancedCode::parse(e)
                .ok_or_else(|| Error::Answer(format!("response.enhanced {e:?} is not X.Y.Z")))
        })
        .transpose()?;
    let Some(code) = r.code else {
        return Ok(Given {
            reply: None,
            text: r.text,
        });
    };
    let class_fits = match action {
        Action::Reject => (500..=599).contains(&code),
        Action::Tempfail => (400..=499).contains(&code),
        Action::Disconnect => (400..=599).contains(&code),
        Action::Continue | Action::Accept | Action::Discard | Action::Quarantine => {
            (200..=399).contains(&code)
        }
    };
    if !class_fits {
        return Err(Error::Answer(format!(
            "response.code {code} does not fit action {}",
            action.as_str()
        )));
    }
    if let Some(e) = enhanced
        && u16::from(e.class) != code / 100
    {
        return Err(Error::Answer(format!(
            "response.enhanced {e} does not fit code {code}"
        )));
    }
    let text = r
        .text
        .clone()
        .unwrap_or_else(|| default_text(code).to_owned());
    Ok(Given {
        reply: Some(Reply::multiline(
            code,
            enhanced,
            text.lines().map(str::to_owned).collect(),
        )),
        text: r.text,
    })
}

/// The text of a reply whose hook gave only a code.
fn default_text(code: u16) -> &'static str {
    match code / 100 {
        2 | 3 => "OK",
        4 => "Try again later",
        _ => "Rejected",
    }
}

fn change(m: Modification) -> Result<Change, Error> {
    Ok(match m {
        Modification::AddHeader { name, value } => {
            header(&name, &value)?;
            Change::AddHeader { name, value }
        }
        Modification::SetHeader { name, value } => {
            header(&name, &value)?;
            Change::SetHeader { name, value }
        }
        Modification::RemoveHeader { name } => {
            header(&name, "")?;
            Change::RemoveHeader(name)
        }
        Modification::AddRecipient { address } => Change::AddRecipient(address_of(address)?),
        Modification::RemoveRecipient { address } => Change::RemoveRecipient(address_of(address)?),
        Modification::ReplaceBody { body } => Change::ReplaceBody(Bytes::from(body)),
        Modification::SetProperty { scope, key, value } => Change::SetProperty {
            scope: match scope {
                PropertyScope::Server => Scope::Server,
                PropertyScope::Session => Scope::Session,
                PropertyScope::Message => Scope::Message,
                PropertyScope::Recipient => Scope::Recipient,
            },
            value: property_value(&key, value)?,
            key,
        },
    })
}

fn header(name: &str, value: &str) -> Result<(), Error> {
    if !postern_mailmsg::is_header_name(name) {
        return Err(Error::Answer(format!(
            "{name:?} is not a header field name"
        )));
    }
    if value.contains(['\r', '\n']) {
        return Err(Error::Answer(format!(
            "the value of header {name} has a line break"
        )));
    }
    Ok(())
}

fn address_of(address: String) -> Result<String, Error> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    if address.is_empty() || address.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(Error::Answer(format!("{address:?} is not an address")));
    }
    Ok(address.to_owned())
}

fn property_value(key: &str, value: serde_json::Value) -> Result<Value, Error> {
    match value {
        serde_json::Value::Bool(b) => Ok(Value::Bool(b)),
        serde_json::Value::String(s) => Ok(Value::Text(s)),
        serde_json::Value::Number(n) if n.is_i64() => Ok(Value::Int(n.as_i64().unwrap_or(0))),
        other => Err(Error::Answer(format!(
            "property {key}: {other} is not a boolean, an integer or a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, event: &Event) -> Result<Outcome, Error> {
        outcome(serde_json::from_str(text).expect("answer JSON"), event)
    }

    #[test]
    fn actions_map_onto_verdicts() {
        let eod = Event::EndOfData;
        let cases: &[(&str, &str, Verdict)] = &[
            ("continue", r#"{"action":"continue"}"#, Verdict::Continue),
            ("accept", r#"{"action":"accept"}"#, Verdict::Consume),
            (
                "reject bare",
                r#"{"action":"reject"}"#,
                Verdict::Reject(None),
            ),
            (
                "reject text",
                r#"{"action":"reject","response":{"text":"no"}}"#,
                Verdict::Reject(Some("no".into())),
            ),
            (
                "reject reply",
                r#"{"action":"reject","response":{"code":554,"enhanced":"5.7.1","text":"go away"}}"#,
                Verdict::Reply(Reply::new(554, EnhancedCode::parse("5.7.1"), "go away")),
            ),
            (
                "tempfail",
                r#"{"action":"tempfail"}"#,
                Verdict::TempFail(None),
            ),
            (
                "disconnect",
                r#"{"action":"disconnect"}"#,
                Verdict::Disconnect(None),
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(&read(text, &eod).expect(name).verdict, want, "{name}");
        }
    }

    #[test]
    fn reject_with_a_code_on_a_transport_event_keeps_the_text() {
        let out = read(
            r#"{"action":"reject","response":{"code":550,"text":"unknown user"}}"#,
            &Event::Route,
        )
        .unwrap();
        assert_eq!(out.verdict, Verdict::Reject(Some("unknown user".into())));
    }

    #[test]
    fn discard_and_quarantine_set_the_fate() {
        let out = read(r#"{"action":"discard"}"#, &Event::EndOfData).unwrap();
        assert_eq!(out.changes, vec![Change::SetFate(Fate::Abort)]);
        let out = read(r#"{"action":"quarantine"}"#, &Event::EndOfData).unwrap();
        assert_eq!(out.changes, vec![Change::SetFate(Fate::Quarantine)]);
        assert_eq!(out.verdict, Verdict::Continue);
    }

    #[test]
    fn modifications_become_changes_in_order() {
        let out = read(
            r#"{"action":"continue","modifications":[
                {"type":"add-header","name":"X-Hook","value":"seen"},
                {"type":"set-header","name":"Subject","value":"new"},
                {"type":"remove-header","name":"X-Old"},
                {"type":"add-recipient","address":"<audit@example.org>"},
                {"type":"remove-recipient","address":"bob@example.org"},
                {"type":"replace-body","body":"gone\r\n"},
                {"type":"set-property","scope":"message","key":"spam.score","value":7}
            ]}"#,
            &Event::EndOfData,
        )
        .unwrap();
        assert_eq!(
            out.changes,
            vec![
                Change::AddHeader {
                    name: "X-Hook".into(),
                    value: "seen".into()
                },
                Change::SetHeader {
                    name: "Subject".into(),
                    value: "new".into()
                },
                Change::RemoveHeader("X-Old".into()),
                Change::AddRecipient("audit@example.org".into()),
                Change::RemoveRecipient("bob@example.org".into()),
                Change::ReplaceBody(Bytes::from_static(b"gone\r\n")),
                Change::SetProperty {
                    scope: Scope::Message,
                    key: "spam.score".into(),
                    value: Value::Int(7)
                },
            ]
        );
    }

    #[test]
    fn nonsense_answers_are_errors() {
        for (name, text) in [
            (
                "reject with 250",
                r#"{"action":"reject","response":{"code":250}}"#,
            ),
            (
                "tempfail with 550",
                r#"{"action":"tempfail","response":{"code":550}}"#,
            ),
            (
                "enhanced class differs",
                r#"{"action":"reject","response":{"code":550,"enhanced":"4.7.1"}}"#,
            ),
            (
                "bad enhanced",
                r#"{"action":"reject","response":{"enhanced":"x"}}"#,
            ),
            (
                "header with colon",
                r#"{"action":"continue","modifications":[{"type":"add-header","name":"X:Y","value":"v"}]}"#,
            ),
            (
                "header value with CRLF",
                r#"{"action":"continue","modifications":[{"type":"add-header","name":"X","value":"a\r\nB: c"}]}"#,
            ),
            (
                "empty address",
                r#"{"action":"continue","modifications":[{"type":"add-recipient","address":"<>"}]}"#,
            ),
            ("future version", r#"{"version":2,"action":"continue"}"#),
        ] {
            assert!(read(text, &Event::EndOfData).is_err(), "{name}");
        }
        let at_mail = Event::Inbound(postern_sink_api::Verb::parse("MAIL"));
        assert!(read(r#"{"action":"discard"}"#, &at_mail).is_err());
    }
}
