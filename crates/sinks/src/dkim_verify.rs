//! `builtin:dkim-verify`: verifies the message's DKIM signatures (RFC 6376) and adds the result
//! of each to the `Authentication-Results:` field.
//!
//! Properties: `fail` (what to do when no signature passes and one fails: `accept`, the
//! default, `reject`, `tempfail`, `quarantine`) and `temperror` (the same, when a key could not
//! be fetched).

use std::sync::Arc;

use mail_auth::{AuthenticatedMessage, AuthenticationResults, DkimResult};
use postern_sink_api::{
    Call, Context, EnhancedCode, Event, Instance, Outcome, Reply, Sink, SinkError, SinkFactory,
    SinkResult, SinkSpec,
};

use crate::mailauth::{self, Action, Env};

pub(crate) struct Factory(pub(crate) Arc<Env>);

struct DkimVerify {
    env: Arc<Env>,
    fail: Action,
    temperror: Action,
}

fn refused() -> Reply {
    Reply::new(
        550,
        Some(EnhancedCode::new(5, 7, 20)),
        "DKIM signature verification failed; the message is refused",
    )
}

fn deferred() -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode::new(4, 7, 5)),
        "DKIM signature could not be verified now; try again later",
    )
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "dkim-verify"
    }

    fn summary(&self) -> &'static str {
        "verifies DKIM signatures; adds the results to Authentication-Results"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["fail", "temperror"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::EndOfData)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        Ok(Instance::Async(Arc::new(DkimVerify {
            env: self.0.clone(),
            fail: Action::read(p, "fail", true)?,
            temperror: Action::read(p, "temperror", true)?,
        })))
    }
}

impl Sink for DkimVerify {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(self.run(ctx))
    }
}

impl DkimVerify {
    async fn run(&self, ctx: &Context) -> SinkResult {
        let auth = self.env.authenticator()?;
        let raw = ctx.message.content.bytes();
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            let changes = mailauth::record(ctx, &self.env, &["dkim=permerror".to_owned()]);
            return Ok(Outcome::changes(changes));
        };
        let outputs = auth.verify_dkim(&message).await;
        let from = mailauth::header_from(&message);
        let results =
            AuthenticationResults::new(&self.env.hostname).with_dkim_results(&outputs, &from);
        let mut resinfo = mailauth::resinfo_of(&results.to_string());
        if resinfo.is_empty() {
            resinfo.push("dkim=none".to_owned());
        }
        let outcome = Outcome::changes(mailauth::record(ctx, &self.env, &resinfo));
        let passed = outputs.iter().any(|o| o.result() == &DkimResult::Pass);
        let action = if passed {
            Action::Accept
        } else if outputs
            .iter()
            .any(|o| matches!(o.result(), DkimResult::TempError(_)))
        {
            self.temperror
        } else if outputs.is_empty() {
            Action::Accept
        } else {
            self.fail
        };
        Ok(action.apply(outcome, refused(), deferred()))
    }
}
