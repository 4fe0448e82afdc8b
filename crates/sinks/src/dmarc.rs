//! `builtin:dmarc`: evaluates the DMARC policy (RFC 7489) of the `From:` domain from the DKIM
//! signatures and the SPF result of the MAIL FROM identity, and adds the result to the
//! `Authentication-Results:` field.
//!
//! The SPF result is the one `builtin:spf` left in the session; without it the MAIL FROM
//! identity is checked here. The DKIM signatures are verified here (the resolver's cache makes
//! a second look-up of the same key cheap).
//!
//! Properties: `enforce` (`true`: a message that fails follows the domain's `p=` policy —
//! `reject` refuses it with 550 5.7.1, `quarantine` quarantines it; default `false`, the
//! result is only recorded).

use std::sync::Arc;

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult};
use postern_sink_api::{
    Call, Context, EnhancedCode, Event, Instance, Outcome, Reply, Sink, SinkError, SinkFactory,
    SinkResult, SinkSpec,
};

use crate::mailauth::{self, Action, Env};
use crate::props;

pub(crate) struct Factory(pub(crate) Arc<Env>);

struct Dmarc {
    env: Arc<Env>,
    enforce: bool,
}

fn refused(domain: &str) -> Reply {
    Reply::new(
        550,
        Some(EnhancedCode::new(5, 7, 1)),
        format!("DMARC policy of {domain} rejects this message"),
    )
}

fn deferred(domain: &str) -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode::new(4, 7, 1)),
        format!("DMARC policy of {domain} could not be evaluated now; try again later"),
    )
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "dmarc"
    }

    fn summary(&self) -> &'static str {
        "evaluates the From: domain's DMARC policy; adds the result to Authentication-Results"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["enforce"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::EndOfData)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        Ok(Instance::Async(Arc::new(Dmarc {
            env: self.0.clone(),
            enforce: props::boolean(&spec.properties, "enforce")?,
        })))
    }
}

impl Sink for Dmarc {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(self.run(ctx))
    }
}

impl Dmarc {
    async fn run(&self, ctx: &Context) -> SinkResult {
        let auth = self.env.authenticator()?;
        let msg = &ctx.message;
        let raw = msg.content.bytes();
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            let changes = mailauth::record(ctx, &self.env, &["dmarc=permerror".to_owned()]);
            return Ok(Outcome::changes(changes));
        };
        let sender = msg.sender_address();
        let helo = msg.info.helo.as_str();
        let spf = match mailauth::stored_spf(ctx) {
            Some(stored) => mailauth::spf_output(&stored),
            None => {
                let ip = msg
                    .info
                    .remote_ip
                    .or_else(|| ctx.session.as_ref().map(|s| s.remote.ip()))
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
                let params = if sender.is_empty() {
                    SpfParameters::verify_ehlo(ip, helo, &self.env.hostname)
                } else {
                    SpfParameters::verify_mail_from(ip, helo, &self.env.hostname, sender)
                };
                auth.verify_spf(params).await
            }
        };
        let dkim = auth.verify_dkim(&message).await;
        let mail_from_domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
        let output = auth
            .verify_dmarc(DmarcParameters::new(
                &message,
                &dkim,
                mail_from_domain,
                &spf,
            ))
            .await;
        let results = AuthenticationResults::new(&self.env.hostname).with_dmarc_result(&output);
        let resinfo = mailauth::resinfo_of(&results.to_string());
        let outcome = Outcome::changes(mailauth::record(ctx, &self.env, &resinfo));
        if !self.enforce {
            return Ok(outcome);
        }
        let action = match (output.result(), output.policy()) {
            (DmarcResult::Fail(_), Policy::Reject) => Action::Reject,
            (DmarcResult::Fail(_), Policy::Quarantine) => Action::Quarantine,
            _ => Action::Accept,
        };
        let domain = output.domain();
        Ok(action.apply(outcome, refused(domain), deferred(domain)))
    }
}
