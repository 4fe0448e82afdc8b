//! The default sinks of the transport events: the categorizer (resolve local users), the router
//! (choose each recipient's next hop) and the store driver (Maildir).

use std::sync::Arc;

use postern_config::Config;
use postern_delivery::{Delivered, Maildir, MaildirError};
use postern_sink_api::{Change, Context, Outcome, Verdict};
use postern_sink_host::DefaultSink;
use tracing::debug;

/// Next hops: `local:DOMAIN`, `smtp:HOST:PORT` (a configured smarthost), `lmtp:HOST:PORT` or
/// `lmtp:unix:PATH` (an LMTP store), `mx:DOMAIN`.
pub(crate) const LOCAL: &str = "local:";

/// Default of `categorize`: a recipient in a local domain is resolved through the domain's
/// aliases and sub-addressing to the addresses it stands for; an unknown one fails.
pub(crate) struct Categorizer<'a>(pub(crate) &'a Config);

impl DefaultSink for Categorizer<'_> {
    async fn run(&mut self, ctx: &Context) -> Outcome {
        let Some(rcpt) = ctx.current_recipient() else {
            return Outcome::next();
        };
        if self.0.local_domain(rcpt.domain()).is_none() {
            return Outcome::next();
        }
        let address = rcpt.address.clone();
        let expansion = crate::expand::expand(self.0, &address);
        // Targets another recipient of the message already has are dropped (duplicates).
        let others = |target: &String| {
            ctx.message.recipients.iter().any(|r| {
                !r.address.eq_ignore_ascii_case(&address) && r.address.eq_ignore_ascii_case(target)
            })
        };
        let mut targets: Vec<String> = expansion
            .targets
            .into_iter()
            .filter(|t| !others(t))
            .collect();
        let mut changes = Vec::new();
        if !expansion.loops.is_empty() || (targets.is_empty() && !expansion.unknown.is_empty()) {
            // The recipient itself fails (one DSN); what its expansion reached is still delivered.
            changes.extend(targets.into_iter().map(Change::AddRecipient));
            let reason = if expansion.loops.is_empty() {
                crate::expand::unknown_reply(&address)
            } else {
                crate::expand::loop_reply(&address, &expansion.loops)
            };
            changes.push(Change::FailRecipient(reason));
            return Outcome::changes(changes);
        }
        if targets.is_empty() {
            return Outcome::changes(vec![Change::RemoveRecipient(address)]);
        }
        let first = targets.remove(0);
        // A difference in case only (`Alice@Example.ORG`) keeps the address as the client wrote it.
        if !first.eq_ignore_ascii_case(&address) {
            changes.push(Change::SetRecipientAddress(first));
        }
        changes.extend(targets.into_iter().map(Change::AddRecipient));
        if changes.is_empty() {
            Outcome::next()
        } else {
            Outcome::changes(changes)
        }
    }
}

/// Default of `route`: local domains to the store driver, configured routes to their
/// smarthost, everything else to the domain's MX.
pub(crate) struct Router<'a>(pub(crate) &'a Config);

impl DefaultSink for Router<'_> {
    async fn run(&mut self, ctx: &Context) -> Outcome {
        let Some(rcpt) = ctx.current_recipient() else {
            return Outcome::next();
        };
        if rcpt.next_hop.is_some() {
            // A sink before this one chose already.
            return Outcome::next();
        }
        let domain = rcpt.domain().to_ascii_lowercase();
        let hop = if self.0.local_domain(&domain).is_some() {
            format!("{LOCAL}{domain}")
        } else if let Some(route) = self.0.route_for(&domain) {
            route.next_hop()
        } else {
            format!("mx:{domain}")
        };
        Outcome::changes(vec![Change::SetNextHop(hop)])
    }
}

/// Default of `store`: delivery into the recipient's Maildir.
pub(crate) struct MaildirStore(pub(crate) Arc<Maildir>);

impl DefaultSink for MaildirStore {
    async fn run(&mut self, ctx: &Context) -> Outcome {
        let Some(index) = ctx.recipient else {
            return Outcome::next();
        };
        let driver = self.0.clone();
        let msg = ctx.message.clone();
        let result = tokio::task::spawn_blocking(move || driver.deliver(&msg, index)).await;
        match result {
            Ok(Ok(Delivered::New(path) | Delivered::AlreadyThere(path))) => {
                debug!(queue_id = ctx.message.id.as_ref().map(tracing::field::display),
                       path = %path.display(), "stored");
                Outcome::next()
            }
            Ok(Err(e @ MaildirError::BadName(_))) => {
                Outcome::next().with_verdict(Verdict::Reject(Some(format!("550 5.1.3 {e}"))))
            }
            Ok(Err(e)) => {
                Outcome::next().with_verdict(Verdict::TempFail(Some(format!("451 4.3.0 {e}"))))
            }
            Err(join) => Outcome::next().with_verdict(Verdict::TempFail(Some(format!(
                "451 4.3.0 store driver failed: {join}"
            )))),
        }
    }
}
