//! Applying a sink's changes to the context, in order, attributed to the binding that made them.

use std::sync::Arc;

use postern_mailmsg::{MailMsg, Recipient, RecipientStatus};
use postern_sink_api::{Change, Command, Context, Event, Scope};

/// Applies one change. A change that cannot be made (a header with a bad name, a per-recipient
/// change outside a per-recipient event) is refused with the reason; the others still apply.
pub(crate) fn apply(ctx: &mut Context, change: Change) -> Result<(), String> {
    match change {
        Change::SetReply(reply) => ctx.reply = Some(reply),
        Change::AddEhloKeyword(keyword) => {
            let is_ehlo = matches!(&ctx.event, Event::Inbound(Some(v)) if v.as_str() == "EHLO");
            // An extension is listed once (two bindings may advertise the same verb).
            let word = keyword.split(' ').next().unwrap_or("");
            let same = |line: &String| line.split(' ').next() == Some(word);
            let listed = ctx.ehlo_keywords.iter().any(same)
                || ctx
                    .reply
                    .as_ref()
                    .is_some_and(|r| is_ehlo && r.code == 250 && r.lines.iter().skip(1).any(same));
            if listed {
                return Ok(());
            }
            match ctx.reply.as_mut() {
                Some(reply) if is_ehlo && reply.code == 250 => reply.push_line(keyword),
                _ => ctx.ehlo_keywords.push(keyword),
            }
        }
        Change::AddHeader { name, value } => message(ctx)
            .content
            .append_header(&name, &value)
            .map_err(|e| e.to_string())?,
        Change::PrependHeader { name, value } => message(ctx)
            .content
            .prepend_header(&name, &value)
            .map_err(|e| e.to_string())?,
        Change::SetHeader { name, value } => message(ctx)
            .content
            .set_header(&name, &value)
            .map_err(|e| e.to_string())?,
        Change::RemoveHeader(name) => {
            message(ctx).content.remove_header(&name);
        }
        Change::ReplaceBody(body) => message(ctx).content.replace_body(&body),
        Change::AddRecipient(address) => {
            message(ctx).add_recipient(Recipient::new(address));
        }
        Change::RemoveRecipient(address) => {
            message(ctx).remove_recipient(&address);
        }
        Change::SetRecipientAddress(address) => current(ctx)?.address = address,
        Change::SetNextHop(hop) => current(ctx)?.next_hop = Some(hop),
        Change::FailRecipient(reason) => current(ctx)?.status = RecipientStatus::Failed { reason },
        Change::SetProperty { scope, key, value } => match scope {
            Scope::Server => ctx.server.set(key, value),
            Scope::Session => session_bag(ctx)?.set(key, value),
            Scope::Message => {
                message(ctx).properties.set(key, value);
            }
            Scope::Recipient => {
                current(ctx)?.properties.set(key, value);
            }
        },
        Change::RemoveProperty { scope, key } => match scope {
            Scope::Server => {
                ctx.server.remove(&key);
            }
            Scope::Session => {
                session_bag(ctx)?.remove(&key);
            }
            Scope::Message => {
                message(ctx).properties.remove(&key);
            }
            Scope::Recipient => {
                current(ctx)?.properties.remove(&key);
            }
        },
        Change::SetFate(fate) => message(ctx).fate = fate,
        Change::SetCommand(line) => {
            if !matches!(ctx.event, Event::Outbound(_)) {
                return Err("a command change outside an outbound event".into());
            }
            let command = outbound_line(&line)?;
            ctx.command = Some(Arc::new(command));
        }
        Change::AddCommand(line) => {
            if !matches!(ctx.event, Event::Outbound(_)) {
                return Err("a command change outside an outbound event".into());
            }
            outbound_line(&line)?;
            ctx.added_commands.push(line);
        }
        Change::InsertHeader { index, name, value } => message(ctx)
            .content
            .insert_header_at(index, &name, &value)
            .map_err(|e| e.to_string())?,
        Change::ChangeHeader { name, index, value } => {
            message(ctx)
                .content
                .change_header(&name, index, value.as_deref())
                .map_err(|e| e.to_string())?;
        }
        Change::SetSender(address) => {
            let msg = message(ctx);
            match msg.sender.as_mut() {
                Some(sender) => sender.address = address,
                None => return Err("a sender change before MAIL".into()),
            }
        }
        Change::SetHosts(hosts) => {
            if ctx.event != Event::DnsResolve {
                return Err("a host list outside the dns-resolve event".into());
            }
            ctx.hosts = Some(hosts);
        }
        Change::SetClient(info) => {
            if !matches!(ctx.event, Event::Inbound(_)) {
                return Err("a client change outside an inbound event".into());
            }
            match ctx.session.as_ref() {
                Some(session) if session.id == info.id => ctx.session = Some(Arc::new(info)),
                Some(_) => return Err("a client change naming another session".into()),
                None => return Err("a client change outside a session".into()),
            }
        }
    }
    Ok(())
}

/// A command line a sink wants sent: one line of at most 512 octets (RFC 5321 §4.5.3.1.4) that
/// starts with a verb, so a sink cannot smuggle a second command or a CRLF into the session.
fn outbound_line(line: &str) -> Result<Command, String> {
    if line.len() > 510 || line.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!("not one command line: {line:?}"));
    }
    Command::parse(line).ok_or_else(|| format!("not a command: {line:?}"))
}

fn message(ctx: &mut Context) -> &mut MailMsg {
    Arc::make_mut(&mut ctx.message)
}

fn current(ctx: &mut Context) -> Result<&mut Recipient, String> {
    let index = ctx
        .recipient
        .ok_or("a per-recipient change outside a per-recipient event")?;
    message(ctx)
        .recipients
        .get_mut(index)
        .ok_or_else(|| "the current recipient was removed".to_owned())
}

fn session_bag(ctx: &Context) -> Result<&postern_mailmsg::PropertyBag, String> {
    ctx.session_props
        .as_ref()
        .ok_or_else(|| "a session property outside a session".to_owned())
}

#[cfg(test)]
mod tests {
    use postern_mailmsg::PropertyBag;
    use postern_sink_api::{SessionInfo, Verb};

    use super::*;

    fn session(id: u64) -> SessionInfo {
        SessionInfo {
            id,
            remote: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:25".parse().unwrap(),
            helo: None,
            esmtp: true,
            tls: false,
            auth_user: None,
            may_relay: false,
        }
    }

    #[test]
    fn a_client_change_applies_to_its_own_session_at_inbound_events_only() {
        let verb = Verb::parse("XCLIENT").unwrap();
        let mut ctx = Context::new(Event::Inbound(Some(verb)), PropertyBag::new());
        let forwarded = SessionInfo {
            remote: "192.0.2.7:4711".parse().unwrap(),
            ..session(1)
        };
        assert!(apply(&mut ctx, Change::SetClient(forwarded.clone())).is_err());
        ctx.session = Some(Arc::new(session(1)));
        assert!(apply(&mut ctx, Change::SetClient(session(2))).is_err());
        apply(&mut ctx, Change::SetClient(forwarded.clone())).unwrap();
        assert_eq!(ctx.session.as_deref(), Some(&forwarded));
        ctx.event = Event::SessionEnd;
        assert!(apply(&mut ctx, Change::SetClient(session(1))).is_err());
    }
}
