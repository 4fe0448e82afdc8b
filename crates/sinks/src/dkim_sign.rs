//! `builtin:dkim-sign`: signs the message with DKIM (RFC 6376; RSA-SHA256 or Ed25519-SHA256,
//! relaxed/relaxed) and puts the `DKIM-Signature:` field on top.
//!
//! Signing must come after every change to the message, so bind it last: at `end-of-data` with
//! priority `lowest`, or at `post-categorize` (the last message-level event before delivery)
//! when transport sinks change messages. A field another sink adds afterwards is outside the
//! signature unless its name is in `headers`; see `docs/sinks/dkim-sign.md`. A message already
//! signed by this domain and selector (a deferred pass run again) is not signed twice.
//!
//! Properties: `domain`, `selector`, `key` (a PEM file: RSA in PKCS #1 or PKCS #8, or Ed25519
//! in PKCS #8) — all required — and `headers` (the fields to sign, separated by `:`, `,` or
//! spaces; must include `From`).

use std::sync::Arc;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use postern_mailmsg::Value;
use postern_sink_api::{
    BlockingSink, Change, Context, Event, Instance, Outcome, Scope, SinkError, SinkFactory,
    SinkResult, SinkSpec,
};

use crate::mailauth::{self, Key};
use crate::props;

/// The fields signed when `headers` is not set (RFC 6376 §5.4.1's list, less the trace ones).
pub(crate) const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

pub(crate) struct Factory;

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

struct DkimSign {
    signer: Signer,
    /// Message property that says this domain and selector signed the message already.
    done_key: String,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "dkim-sign"
    }

    fn summary(&self) -> &'static str {
        "signs the message with DKIM (RSA or Ed25519 key from a PEM file)"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["domain", "selector", "key", "headers"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(
            event,
            Event::EndOfData | Event::Submission | Event::PreCategorize | Event::PostCategorize
        )
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let domain = props::required(p, "domain")?.into_owned();
        let selector = props::required(p, "selector")?.into_owned();
        let headers = mailauth::header_list(p, DEFAULT_HEADERS)?;
        let signer = match Key::load(&props::required(p, "key")?)? {
            Key::Rsa(key) => Signer::Rsa(
                DkimSigner::from_key(key)
                    .domain(domain.clone())
                    .selector(selector.clone())
                    .headers(headers),
            ),
            Key::Ed25519(key) => Signer::Ed25519(
                DkimSigner::from_key(key)
                    .domain(domain.clone())
                    .selector(selector.clone())
                    .headers(headers),
            ),
        };
        Ok(Instance::Blocking(Arc::new(DkimSign {
            signer,
            done_key: format!("dkim-sign.{domain}.{selector}"),
        })))
    }
}

// Runs on the blocking pool: an RSA signature is CPU work that would stall other sessions.
impl BlockingSink for DkimSign {
    fn on_event(&self, ctx: &Context) -> SinkResult {
        if ctx.message.properties.get(&self.done_key).is_some() {
            return Ok(Outcome::next());
        }
        let raw = ctx.message.content.bytes();
        let signature = match &self.signer {
            Signer::Rsa(s) => s.sign(raw),
            Signer::Ed25519(s) => s.sign(raw),
        }
        .map_err(|e| SinkError::Failed(format!("DKIM signing failed: {e}")))?;
        let mut changes: Vec<Change> = mailauth::fields(&signature.to_header())
            .into_iter()
            .map(|(name, value)| Change::PrependHeader { name, value })
            .collect();
        changes.push(Change::SetProperty {
            scope: Scope::Message,
            key: self.done_key.clone(),
            value: Value::from(true),
        });
        Ok(Outcome::changes(changes))
    }
}
