//! `builtin:spf`: checks the HELO and MAIL FROM identities against the sender domain's SPF
//! record (RFC 7208).
//!
//! At `inbound:MAIL` it checks both identities, keeps the results in the session's bag for the
//! sinks of end-of-data, and acts on the MAIL FROM result by its policy (`fail=reject` refuses
//! the MAIL command with 550 5.7.23). At `end-of-data` it adds the results to the
//! `Authentication-Results:` field (checking now if it was not bound at MAIL).
//!
//! Properties: `fail`, `softfail`, `temperror`, `permerror`: `accept` (the default), `reject`,
//! `tempfail`, and at `end-of-data` also `quarantine`.

use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::SpfResult;
use mail_auth::spf::verify::SpfParameters;
use postern_mailmsg::Value;
use postern_sink_api::{
    Call, Change, Context, EnhancedCode, Event, Instance, Outcome, Reply, Scope, Sink, SinkError,
    SinkFactory, SinkResult, SinkSpec,
};

use crate::mailauth::{self, Action, Env, StoredSpf};

pub(crate) struct Factory(pub(crate) Arc<Env>);

struct Spf {
    env: Arc<Env>,
    at_mail: bool,
    fail: Action,
    softfail: Action,
    temperror: Action,
    permerror: Action,
}

/// RFC 7372 §3.2: the codes that name SPF as the reason.
fn refused(result: SpfResult, domain: &str) -> Reply {
    let detail = if result == SpfResult::PermError {
        24
    } else {
        23
    };
    Reply::new(
        550,
        Some(EnhancedCode::new(5, 7, detail)),
        format!(
            "SPF check of {domain} failed ({}); the sender is refused",
            mailauth::spf_name(result)
        ),
    )
}

fn deferred(result: SpfResult, domain: &str) -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode::new(4, 7, 24)),
        format!(
            "SPF check of {domain} could not be completed ({}); try again later",
            mailauth::spf_name(result)
        ),
    )
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "spf"
    }

    fn summary(&self) -> &'static str {
        "checks the HELO and MAIL FROM identities by SPF; adds the result to Authentication-Results"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["fail", "softfail", "temperror", "permerror"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::EndOfData) || is_mail(event)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let at_mail = is_mail(&spec.event);
        Ok(Instance::Async(Arc::new(Spf {
            env: self.0.clone(),
            at_mail,
            fail: Action::read(p, "fail", !at_mail)?,
            softfail: Action::read(p, "softfail", !at_mail)?,
            temperror: Action::read(p, "temperror", !at_mail)?,
            permerror: Action::read(p, "permerror", !at_mail)?,
        })))
    }
}

fn is_mail(event: &Event) -> bool {
    matches!(event, Event::Inbound(Some(v)) if v.as_str() == "MAIL")
}

impl Sink for Spf {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(self.run(ctx))
    }
}

/// The results of one check.
struct Checked {
    helo: SpfResult,
    mailfrom: SpfResult,
    domain: String,
}

impl Spf {
    async fn run(&self, ctx: &Context) -> SinkResult {
        let Some(session) = ctx.session.as_ref() else {
            return Ok(Outcome::next());
        };
        let helo = session.helo.clone().unwrap_or_default();
        let ip = session.remote.ip();
        if self.at_mail {
            // A MAIL the default sink refused (bad syntax, say) has nothing to check.
            if ctx.reply.as_ref().is_some_and(|r| !r.is_positive()) {
                return Ok(Outcome::next());
            }
            let sender = ctx
                .command
                .as_ref()
                .and_then(|c| c.path())
                .unwrap_or_default();
            let checked = self.check(ip, &helo, sender).await?;
            let mut outcome = Outcome::changes(store(sender, &checked));
            outcome = self.act(outcome, &checked);
            return Ok(outcome);
        }
        let mut changes = Vec::new();
        let mut own = Vec::new();
        let checked = match mailauth::stored_spf(ctx) {
            Some(StoredSpf {
                mailfrom, domain, ..
            }) => Checked {
                helo: SpfResult::None,
                mailfrom: mailauth::spf_parse(&mailfrom),
                domain,
            },
            None => {
                let sender = ctx.message.sender_address();
                let checked = self.check(ip, &helo, sender).await?;
                changes.extend(store(sender, &checked));
                own.push(format!(
                    "spf={} smtp.helo={}",
                    mailauth::spf_name(checked.helo),
                    mailauth::pvalue(&helo)
                ));
                let from = if sender.is_empty() {
                    "<>".to_owned()
                } else {
                    mailauth::pvalue(sender)
                };
                own.push(format!(
                    "spf={} smtp.mailfrom={from}",
                    mailauth::spf_name(checked.mailfrom)
                ));
                checked
            }
        };
        // Results stored at MAIL are copied in by whichever sink writes the field first.
        changes.extend(mailauth::record(ctx, &self.env, &own));
        Ok(self.act(Outcome::changes(changes), &checked))
    }

    async fn check(&self, ip: IpAddr, helo: &str, sender: &str) -> Result<Checked, SinkError> {
        let auth = self.env.authenticator()?;
        let host = self.env.hostname.as_str();
        let helo_result = if helo.is_empty() {
            SpfResult::None
        } else {
            auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, host))
                .await
                .result()
        };
        // The null sender's identity is the HELO name (RFC 7208 §2.4).
        let (mailfrom, domain) = if sender.is_empty() {
            (helo_result, helo.to_owned())
        } else {
            let out = auth
                .verify_spf(SpfParameters::verify_mail_from(ip, helo, host, sender))
                .await;
            (out.result(), out.domain().to_owned())
        };
        Ok(Checked {
            helo: helo_result,
            mailfrom,
            domain,
        })
    }

    fn act(&self, outcome: Outcome, checked: &Checked) -> Outcome {
        let action = match checked.mailfrom {
            SpfResult::Fail => self.fail,
            SpfResult::SoftFail => self.softfail,
            SpfResult::TempError => self.temperror,
            SpfResult::PermError => self.permerror,
            _ => Action::Accept,
        };
        action.apply(
            outcome,
            refused(checked.mailfrom, &checked.domain),
            deferred(checked.mailfrom, &checked.domain),
        )
    }
}

fn store(sender: &str, checked: &Checked) -> Vec<Change> {
    let set = |key: &str, value: String| Change::SetProperty {
        scope: Scope::Session,
        key: key.into(),
        value: Value::from(value.as_str()),
    };
    vec![
        set(mailauth::SPF_SENDER, sender.to_owned()),
        set(
            mailauth::SPF_HELO,
            mailauth::spf_name(checked.helo).to_owned(),
        ),
        set(
            mailauth::SPF_MAILFROM,
            mailauth::spf_name(checked.mailfrom).to_owned(),
        ),
        set(mailauth::SPF_DOMAIN, checked.domain.clone()),
    ]
}
