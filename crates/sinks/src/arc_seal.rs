//! `builtin:arc-seal`: adds an ARC set (RFC 8617: `ARC-Seal:`, `ARC-Message-Signature:`,
//! `ARC-Authentication-Results:`) to a message this server forwards, recording the results it
//! found (DKIM, the existing ARC chain, and the SPF result `builtin:spf` left in the session).
//!
//! A chain that already failed (`cv=fail`) is not extended: the message goes on unsealed and
//! the reason is logged.
//!
//! Properties: `domain`, `selector`, `key` (a PEM file; ARC signs with RSA-SHA256 or
//! Ed25519-SHA256) — required — and `headers` (the fields the message signature covers).

use std::sync::Arc;

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::Done;
use mail_auth::{AuthenticatedMessage, AuthenticationResults};
use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkResult,
    SinkSpec,
};
use tracing::info;

use crate::dkim_sign::DEFAULT_HEADERS;
use crate::mailauth::{self, Env, Key};
use crate::props;

pub(crate) struct Factory(pub(crate) Arc<Env>);

enum Sealer {
    Rsa(ArcSealer<RsaKey<Sha256>, Done>),
    Ed25519(ArcSealer<Ed25519Key, Done>),
}

struct ArcSeal {
    env: Arc<Env>,
    sealer: Sealer,
    binding: String,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "arc-seal"
    }

    fn summary(&self) -> &'static str {
        "seals a forwarded message with an ARC set recording the authentication results"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["domain", "selector", "key", "headers"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::EndOfData)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let domain = props::required(p, "domain")?.into_owned();
        let selector = props::required(p, "selector")?.into_owned();
        let headers = mailauth::header_list(p, DEFAULT_HEADERS)?;
        let sealer = match Key::load(&props::required(p, "key")?)? {
            Key::Rsa(key) => Sealer::Rsa(
                ArcSealer::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(headers),
            ),
            Key::Ed25519(key) => Sealer::Ed25519(
                ArcSealer::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(headers),
            ),
        };
        Ok(Instance::Async(Arc::new(ArcSeal {
            env: self.0.clone(),
            sealer,
            binding: spec.binding_name.clone(),
        })))
    }
}

impl Sink for ArcSeal {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        Call::pending(self.run(ctx))
    }
}

impl ArcSeal {
    async fn run(&self, ctx: &Context) -> SinkResult {
        let auth = self.env.authenticator()?;
        let msg = &ctx.message;
        let Some(message) = AuthenticatedMessage::parse(msg.content.bytes()) else {
            return Ok(Outcome::next());
        };
        let arc = auth.verify_arc(&message).await;
        let dkim = auth.verify_dkim(&message).await;
        let ip = msg
            .info
            .remote_ip
            .or_else(|| ctx.session.as_ref().map(|s| s.remote.ip()))
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let from = mailauth::header_from(&message);
        let mut results = AuthenticationResults::new(&self.env.hostname)
            .with_dkim_results(&dkim, &from)
            .with_arc_result(&arc, ip);
        if let Some(stored) = mailauth::stored_spf(ctx) {
            results = results.with_spf_mailfrom_result(
                &mailauth::spf_output(&stored),
                ip,
                msg.sender_address(),
                &msg.info.helo,
            );
        }
        if !arc.can_be_sealed() {
            info!(binding = %self.binding, "ARC chain failed before this hop: not sealed");
            return Ok(Outcome::next());
        }
        let set = match &self.sealer {
            Sealer::Rsa(s) => s.seal(&message, &results, &arc),
            Sealer::Ed25519(s) => s.seal(&message, &results, &arc),
        }
        .map_err(|e| SinkError::Failed(format!("ARC sealing failed: {e}")))?;
        // Prepended in reverse, so the set reads seal, message signature, results from the top.
        let changes = mailauth::fields(&set.to_header())
            .into_iter()
            .rev()
            .map(|(name, value)| Change::PrependHeader { name, value })
            .collect();
        Ok(Outcome::changes(changes))
    }
}
