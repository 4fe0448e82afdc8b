//! `ctx`: what a script sees of the event, as read-only properties and `header(name)`.

use std::sync::Arc;

use postern_mailmsg::{Properties, PropertyBag, Value};
use postern_sink_api::Context;
use rhai::{Array, Dynamic, Engine, Map};

/// The script's view of a [`Context`]. Cloned by Rhai when passed around, so it holds the
/// context behind an `Arc`.
#[derive(Clone)]
pub(crate) struct ScriptCtx {
    ctx: Arc<Context>,
    /// The binding's properties, converted once when the sink was made.
    props: Arc<Map>,
}

impl ScriptCtx {
    pub(crate) fn new(ctx: Arc<Context>, props: Arc<Map>) -> Self {
        Self { ctx, props }
    }

    /// The sender: the message's once MAIL was accepted, at `inbound:MAIL` the command's path.
    fn mail_from(&self) -> Dynamic {
        if let Some(sender) = &self.ctx.message.sender {
            return sender.address.clone().into();
        }
        self.command_path("MAIL")
    }

    /// The recipient the event is about: the current one of a per-recipient event, at
    /// `inbound:RCPT` the command's path.
    fn recipient(&self) -> Dynamic {
        match self.ctx.current_recipient() {
            Some(r) => r.address.clone().into(),
            None => self.command_path("RCPT"),
        }
    }

    fn command_path(&self, verb: &str) -> Dynamic {
        self.ctx
            .command
            .as_ref()
            .filter(|c| c.verb.as_str() == verb)
            .and_then(|c| c.path())
            .map_or(Dynamic::UNIT, |p| p.to_owned().into())
    }

    fn session<T>(&self, f: impl FnOnce(&postern_sink_api::SessionInfo) -> T) -> Option<T> {
        self.ctx.session.as_deref().map(f)
    }
}

/// `()` for nothing, else the text.
fn text(value: Option<impl Into<String>>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |v| Dynamic::from(v.into()))
}

pub(crate) fn value_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Text(s) => s.clone().into(),
    }
}

pub(crate) fn properties_to_map(props: &Properties) -> Map {
    props
        .iter()
        .map(|(k, v)| (k.into(), value_to_dynamic(v)))
        .collect()
}

fn bag_to_map(bag: Option<&PropertyBag>) -> Map {
    bag.map(|b| properties_to_map(&b.snapshot()))
        .unwrap_or_default()
}

pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptCtx>("Context");
    engine
        .register_get("event", |c: &mut ScriptCtx| c.ctx.event.name().into_owned())
        .register_get("verb", |c: &mut ScriptCtx| text(c.ctx.verb()))
        .register_get("args", |c: &mut ScriptCtx| {
            text(c.ctx.command.as_ref().map(|c| c.args.as_str()))
        })
        .register_get("mail_from", |c: &mut ScriptCtx| c.mail_from())
        .register_get("rcpt_to", |c: &mut ScriptCtx| -> Array {
            c.ctx
                .message
                .recipients
                .iter()
                .map(|r| r.address.clone().into())
                .collect()
        })
        .register_get("recipient", |c: &mut ScriptCtx| c.recipient())
        .register_get("helo", |c: &mut ScriptCtx| {
            let helo = c.session(|s| s.helo.clone()).flatten();
            match helo {
                Some(h) => h.into(),
                // A queued message still knows the HELO it came with.
                None => text(Some(c.ctx.message.info.helo.clone()).filter(|h| !h.is_empty())),
            }
        })
        .register_get("remote_ip", |c: &mut ScriptCtx| {
            let ip = c
                .session(|s| s.remote.ip())
                .or(c.ctx.message.info.remote_ip);
            text(ip.map(|ip| ip.to_string()))
        })
        .register_get("auth_user", |c: &mut ScriptCtx| {
            let user = c.session(|s| s.auth_user.clone()).flatten();
            text(user.or_else(|| c.ctx.message.info.auth_user.clone()))
        })
        .register_get("tls", |c: &mut ScriptCtx| {
            c.session(|s| s.tls)
                .unwrap_or(c.ctx.message.info.tls.is_some())
        })
        .register_get("size", |c: &mut ScriptCtx| -> i64 {
            let m = &c.ctx.message;
            let size = if m.content.is_empty() {
                m.info.size
            } else {
                m.content.len() as u64
            };
            i64::try_from(size).unwrap_or(i64::MAX)
        })
        .register_get("queue_id", |c: &mut ScriptCtx| {
            text(c.ctx.message.id.map(|id| id.to_string()))
        })
        .register_get("props", |c: &mut ScriptCtx| (*c.props).clone())
        .register_get("session", |c: &mut ScriptCtx| {
            bag_to_map(c.ctx.session_props.as_ref())
        })
        .register_get("server", |c: &mut ScriptCtx| {
            bag_to_map(Some(&c.ctx.server))
        })
        .register_get("message", |c: &mut ScriptCtx| {
            properties_to_map(&c.ctx.message.properties)
        })
        .register_get("recipient_props", |c: &mut ScriptCtx| {
            c.ctx
                .current_recipient()
                .map(|r| properties_to_map(&r.properties))
                .unwrap_or_default()
        })
        .register_fn("header", |c: &mut ScriptCtx, name: &str| {
            text(c.ctx.message.content.header_values(name).into_iter().next())
        })
        .register_fn("headers", |c: &mut ScriptCtx, name: &str| -> Array {
            c.ctx
                .message
                .content
                .header_values(name)
                .into_iter()
                .map(Dynamic::from)
                .collect()
        });
}
