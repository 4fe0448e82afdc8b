//! The parts of `builtin:mailing-list` that read the list state: the members in force, VERP
//! senders, and the subscription requests by mail (see `list_subscribe`).

use postern_mailmsg::{ENVELOPE_SENDER, RELEASE_REQUEST, Value};
use postern_sink_api::{Change, Context, Outcome, Scope, SinkError, SinkResult, Verdict};
use tracing::info;

use super::{List, MailingList, VERP, bounce_address};
use crate::list_bounces::{ListState, verp_address};
use crate::list_subscribe::{
    Action, Request, approvals, confirmation, forget_expired, new_pending,
};

impl MailingList {
    /// A member a VERP list added gets its own envelope sender, `LIST-bounces+member=domain@…`.
    pub(super) fn verp_sender(&self, ctx: &Context, lists: &[List], member: &str) -> SinkResult {
        let verp = ctx.message.properties.get_str(VERP).unwrap_or("");
        for list in lists {
            if !verp
                .split(' ')
                .any(|k| list.address.eq_ignore_ascii_case(k))
            {
                continue;
            }
            let list = self.effective(list)?;
            if list.members.iter().any(|m| m.eq_ignore_ascii_case(member)) {
                return Ok(Outcome::changes(vec![Change::SetProperty {
                    scope: Scope::Recipient,
                    key: ENVELOPE_SENDER.to_owned(),
                    value: Value::from(verp_address(&bounce_address(&list.address), member)),
                }]));
            }
        }
        Ok(Outcome::next())
    }

    /// The list as in force: the file's members and those subscribed by mail, less those
    /// removed (bouncing, or unsubscribed by mail).
    pub(super) fn effective(&self, list: &List) -> Result<List, SinkError> {
        let key = list.address.to_ascii_lowercase();
        let state: ListState = self.state(|s| s.lists.get(&key).cloned().unwrap_or_default())?;
        let mut out = list.clone();
        out.members.extend(state.subscribed.iter().cloned());
        let mut seen = std::collections::BTreeSet::new();
        out.members.retain(|m| {
            let m = m.to_ascii_lowercase();
            !state.removed.contains(&m) && seen.insert(m)
        });
        Ok(out)
    }

    /// A message to `LIST-subscribe@`, `LIST-unsubscribe@` or `LIST-confirm+TOKEN@`.
    pub(super) fn request(&self, ctx: &Context, list: &List, request: Request) -> SinkResult {
        let Some(rcpt) = ctx.current_recipient() else {
            return Ok(Outcome::next());
        };
        let consume = |changes| Ok(Outcome::changes(changes).with_verdict(Verdict::Consume));
        let key = list.address.to_ascii_lowercase();
        match request {
            Request::Owner => self.approve(ctx, list),
            Request::Ask(action) => {
                let requester = ctx.message.sender_address().to_owned();
                if requester.is_empty() {
                    // No one to confirm with (a bounce of a confirmation, say): dropped.
                    info!(list = %list.address, "list request from the null sender dropped");
                    return consume(vec![Change::RemoveRecipient(rcpt.address.clone())]);
                }
                if ctx.message.recipients.len() > 1 {
                    // The request becomes the confirmation: other recipients must not get it.
                    return consume(vec![Change::FailRecipient(format!(
                        "550 5.5.4 <{}>: send a list request in a message of its own",
                        rcpt.original
                    ))]);
                }
                let (token, pending) = new_pending(&requester, action);
                self.state(|state| {
                    let entry = state.lists.entry(key).or_default();
                    forget_expired(&mut entry.pending);
                    entry.pending.insert(token.clone(), pending);
                })?;
                info!(list = %list.address, requester = %requester, action = ?action,
                      "list request: confirmation sent");
                consume(confirmation(
                    &list.address,
                    &rcpt.address,
                    &requester,
                    action,
                    &token,
                ))
            }
            Request::Confirm(token) => {
                let done = self.state(|state| {
                    let entry = state.lists.entry(key).or_default();
                    forget_expired(&mut entry.pending);
                    let pending = entry.pending.remove(&token)?;
                    let member = pending.address.clone();
                    match pending.action {
                        Action::Subscribe => {
                            entry.removed.remove(&member);
                            entry.bounces.remove(&member);
                            entry.subscribed.insert(member);
                        }
                        Action::Unsubscribe => {
                            entry.subscribed.remove(&member);
                            entry.removed.insert(member);
                        }
                    }
                    Some(pending)
                })?;
                match done {
                    Some(p) => {
                        info!(list = %list.address, member = %p.address, action = ?p.action,
                              "list request confirmed");
                        consume(vec![Change::RemoveRecipient(rcpt.address.clone())])
                    }
                    None => consume(vec![Change::FailRecipient(format!(
                        "550 5.7.1 <{}>: unknown or expired confirmation token",
                        rcpt.original
                    ))]),
                }
            }
        }
    }

    /// An owner's `approve QUEUEID` to `LIST-request@`: the held posts it names are released
    /// (through the transport, by the message property `RELEASE_REQUEST`) and expanded then.
    fn approve(&self, ctx: &Context, list: &List) -> SinkResult {
        let Some(rcpt) = ctx.current_recipient() else {
            return Ok(Outcome::next());
        };
        let consume = |changes| Ok(Outcome::changes(changes).with_verdict(Verdict::Consume));
        if !list.is_owner(ctx.message.sender_address()) {
            return consume(vec![Change::FailRecipient(format!(
                "550 5.7.1 <{}>: only the list's owners may send it commands",
                rcpt.original
            ))]);
        }
        let wanted = approvals(ctx.message.content.bytes());
        let key = list.address.to_ascii_lowercase();
        let approved: Vec<String> = self.state(|state| {
            let entry = state.lists.entry(key).or_default();
            wanted
                .iter()
                .filter(|id| entry.held.remove(id.as_str()))
                .cloned()
                .collect()
        })?;
        if approved.is_empty() {
            return consume(vec![Change::FailRecipient(format!(
                "550 5.5.2 <{}>: no post held for this list is named by an `approve QUEUEID` line",
                rcpt.original
            ))]);
        }
        info!(list = %list.address, approved = %approved.join(" "), "held posts approved by an owner");
        let mut ids = ctx
            .message
            .properties
            .get_str(RELEASE_REQUEST)
            .unwrap_or("")
            .to_owned();
        for id in &approved {
            ids = format!("{ids} {id}");
        }
        consume(vec![
            Change::SetProperty {
                scope: Scope::Message,
                key: RELEASE_REQUEST.to_owned(),
                value: Value::from(ids.trim()),
            },
            Change::RemoveRecipient(rcpt.address.clone()),
        ])
    }
}
