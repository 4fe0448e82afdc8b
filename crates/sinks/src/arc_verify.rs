//! `builtin:arc-verify`: validates the message's ARC chain (RFC 8617) and adds the result to
//! the `Authentication-Results:` field.
//!
//! Properties: `fail` (what to do when the chain fails: `accept`, the default, `reject`,
//! `tempfail`, `quarantine`).

use std::sync::Arc;

use mail_auth::{AuthenticatedMessage, AuthenticationResults, DkimResult};
use postern_sink_api::{
    Call, Context, EnhancedCode, Event, Instance, Outcome, Reply, Sink, SinkError, SinkFactory,
    SinkResult, SinkSpec,
};

use crate::mailauth::{self, Action, Env};

pub(crate) struct Factory(pub(crate) Arc<Env>);

struct ArcVerify {
    env: Arc<Env>,
    fail: Action,
}

fn refused() -> Reply {
    Reply::new(
        550,
        Some(EnhancedCode::new(5, 7, 29)),
        "ARC validation failed; the message is refused",
    )
}

fn deferred() -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode::new(4, 7, 29)),
        "ARC validation could not be completed now; try again later",
    )
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "arc-verify"
    }

    fn summary(&self) -> &'static str {
        "validates the ARC chain; adds the result to Authentication-Results"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["fail"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::EndOfData)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        Ok(Instance::Async(Arc::new(ArcVerify {
            env: self.0.clone(),
            fail: Action::read(&spec.properties, "fail", true)?,
        })))
    }
}

impl Sink for ArcVerify {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(self.run(ctx))
    }
}

impl ArcVerify {
    async fn run(&self, ctx: &Context) -> SinkResult {
        let auth = self.env.authenticator()?;
        let raw = ctx.message.content.bytes();
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            let changes = mailauth::record(ctx, &self.env, &["arc=permerror".to_owned()]);
            return Ok(Outcome::changes(changes));
        };
        let output = auth.verify_arc(&message).await;
        let ip = ctx
            .message
            .info
            .remote_ip
            .or_else(|| ctx.session.as_ref().map(|s| s.remote.ip()))
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let results = AuthenticationResults::new(&self.env.hostname).with_arc_result(&output, ip);
        let resinfo = mailauth::resinfo_of(&results.to_string());
        let outcome = Outcome::changes(mailauth::record(ctx, &self.env, &resinfo));
        let action = match output.result() {
            DkimResult::Pass | DkimResult::None => Action::Accept,
            _ => self.fail,
        };
        Ok(action.apply(outcome, refused(), deferred()))
    }
}
