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
