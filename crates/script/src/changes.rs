//! The change functions a script calls before it returns: `add_header`, `set_recipient`,
//! `set_property`… Each records a [`Change`] for the host to apply, exactly as a native sink's
//! outcome would carry it.

use std::sync::{Arc, Mutex};

use postern_mailmsg::{Fate, Value, is_header_name};
use postern_sink_api::{Change, Scope};
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// The changes of one call. It rides in the call's tag, where every change function finds it;
/// a call runs on one thread, so the lock is never contended.
#[derive(Clone, Default)]
pub(crate) struct Collector(pub(crate) Arc<Mutex<Vec<Change>>>);

impl Collector {
    pub(crate) fn take(&self) -> Vec<Change> {
        match self.0.lock() {
            Ok(mut changes) => std::mem::take(&mut *changes),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

fn push(nc: &NativeCallContext, change: Change) -> Fallible<()> {
    let collector = nc
        .tag()
        .and_then(|tag| tag.read_lock::<Collector>().map(|c| c.clone()))
        .ok_or("change functions work only inside on_event")?;
    let mut changes = collector
        .0
        .lock()
        .map_err(|_| "the change list is unusable")?;
    changes.push(change);
    Ok(())
}

fn header_name(name: &str) -> Fallible<String> {
    if is_header_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!("{name:?} is not a header field name").into())
    }
}

fn one_line(what: &str, value: &str) -> Fallible<String> {
    if value.contains(['\r', '\n', '\0']) {
        Err(format!("{what} must be one line").into())
    } else {
        Ok(value.to_owned())
    }
}

pub(crate) fn parse_scope(scope: &str) -> Fallible<Scope> {
    Ok(match scope {
        "server" => Scope::Server,
        "session" => Scope::Session,
        "message" => Scope::Message,
        "recipient" => Scope::Recipient,
        other => {
            return Err(format!(
                "unknown property scope {other:?} (server, session, message or recipient)"
            )
            .into());
        }
    })
}

pub(crate) fn to_value(value: Dynamic) -> Fallible<Value> {
    let type_name = value.type_name();
    if let Some(b) = value.clone().try_cast::<bool>() {
        return Ok(Value::Bool(b));
    }
    if let Some(i) = value.clone().try_cast::<i64>() {
        return Ok(Value::Int(i));
    }
    if value.is_string() {
        return Ok(Value::Text(value.to_string()));
    }
    Err(format!("a property value is a string, an integer or a boolean, not a {type_name}").into())
}

pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_fn(
            "add_header",
            |nc: NativeCallContext, name: &str, value: &str| {
                let change = Change::AddHeader {
                    name: header_name(name)?,
                    value: one_line("a header value", value)?,
                };
                push(&nc, change)
            },
        )
        .register_fn(
            "set_header",
            |nc: NativeCallContext, name: &str, value: &str| {
                let change = Change::SetHeader {
                    name: header_name(name)?,
                    value: one_line("a header value", value)?,
                };
                push(&nc, change)
            },
        )
        .register_fn("remove_header", |nc: NativeCallContext, name: &str| {
            push(&nc, Change::RemoveHeader(header_name(name)?))
        })
        .register_fn("add_recipient", |nc: NativeCallContext, address: &str| {
            push(&nc, Change::AddRecipient(one_line("an address", address)?))
        })
        .register_fn(
            "remove_recipient",
            |nc: NativeCallContext, address: &str| {
                push(
                    &nc,
                    Change::RemoveRecipient(one_line("an address", address)?),
                )
            },
        )
        .register_fn("set_recipient", |nc: NativeCallContext, address: &str| {
            push(
                &nc,
                Change::SetRecipientAddress(one_line("an address", address)?),
            )
        })
        .register_fn("set_next_hop", |nc: NativeCallContext, hop: &str| {
            push(&nc, Change::SetNextHop(one_line("a next hop", hop)?))
        })
        .register_fn("fail_recipient", |nc: NativeCallContext, reason: &str| {
            push(&nc, Change::FailRecipient(one_line("a reason", reason)?))
        })
        .register_fn(
            "set_property",
            |nc: NativeCallContext, scope: &str, key: &str, value: Dynamic| {
                let change = Change::SetProperty {
                    scope: parse_scope(scope)?,
                    key: key.to_owned(),
                    value: to_value(value)?,
                };
                push(&nc, change)
            },
        )
        .register_fn(
            "remove_property",
            |nc: NativeCallContext, scope: &str, key: &str| {
                let change = Change::RemoveProperty {
                    scope: parse_scope(scope)?,
                    key: key.to_owned(),
                };
                push(&nc, change)
            },
        )
        .register_fn("set_fate", |nc: NativeCallContext, fate: &str| {
            let fate = Fate::parse(fate).ok_or_else(|| {
                format!("unknown fate {fate:?} (normal, abort, badmail, quarantine or hold)")
            })?;
            push(&nc, Change::SetFate(fate))
        });
}
