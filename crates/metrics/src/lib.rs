//! Postern's Prometheus metrics: one [`Metrics`] made by `postern serve`, shared (`Arc`) by the
//! SMTP server, the transport, the spool and the sink host, and encoded for a scraper by
//! [`Metrics::encode`] in the OpenMetrics text format.
//!
//! # Layout
//! - `smtp`: connections, sessions, commands by verb, replies by class.
//! - `messages`: messages received / queued / delivered / deferred / bounced / badmail, and
//!   the delivery latency histograms.
//! - `bindings`: the per-binding families, read from the sink host's own counters.
//! - `sources`: what is read at scrape time — the queue by state, the spool, the bindings.
//! - `text`: the older Prometheus text format, for scrapers and tools without OpenMetrics.
//!
//! # Design
//! Moving a metric is an atomic increment; nothing is counted twice. The sink host already keeps
//! per-binding counters and call-time buckets for `max_firings` and `postern binding list`, so
//! the binding families are read from them when scraped, and a sink call pays for no label
//! lookup. Gauges that describe state (the queue by state, spool bytes) are read at scrape time
//! from their owner rather than kept in step by hand.

#![warn(missing_docs)]

mod bindings;
mod messages;
mod smtp;
mod sources;
mod text;

use std::sync::Arc;
use std::time::Duration;

use postern_queue::Spool;
use postern_sink_host::Host;
use prometheus_client::registry::Registry;

pub use sources::QueueCounts;

use messages::Messages;
use smtp::Smtp;
use sources::Sources;

/// Every metric of a running server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    smtp: Smtp,
    messages: Messages,
    sources: Arc<Sources>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let smtp = Smtp::default();
        smtp.register(&mut registry);
        let messages = Messages::default();
        messages.register(&mut registry);
        let sources = Arc::new(Sources::default());
        registry.register_collector(Box::new(sources.clone()));
        Self {
            registry,
            smtp,
            messages,
            sources,
        }
    }

    /// The OpenMetrics text exposition (what `GET /metrics` serves).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; a collector's error would leave a partial text,
        // which is still better served than nothing.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The content type of [`Metrics::encode`]'s text.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// The same metrics in the Prometheus text format 0.0.4 (what `promtool check metrics`
    /// reads).
    pub fn encode_text(&self) -> String {
        text::from_openmetrics(&self.encode())
    }

    /// What `GET /metrics` answers for a request's `Accept` header: OpenMetrics to a scraper
    /// that asks for it (Prometheus does), the Prometheus text format to anyone else. Gives
    /// the content type and the body.
    pub fn exposition(&self, accept: Option<&str>) -> (&'static str, String) {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            (Self::CONTENT_TYPE, self.encode())
        } else {
            (text::CONTENT_TYPE, self.encode_text())
        }
    }

    /// Reads the per-binding families from this host's bindings at every scrape.
    pub fn watch_bindings(&self, host: Arc<Host>) {
        self.sources.set_bindings(host);
    }

    /// Reads spool bytes and syncs from this spool at every scrape.
    pub fn watch_spool(&self, spool: Spool) {
        self.sources.set_spool(spool);
    }

    /// Reads the queue by state from `count` at every scrape.
    pub fn watch_queue(&self, count: impl Fn() -> QueueCounts + Send + Sync + 'static) {
        self.sources.set_queue(Box::new(count));
    }

    /// A connection was accepted; it counts as open until the guard drops.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.smtp.connections.inc();
        self.smtp.open.inc();
        OpenConnection(self.clone())
    }

    /// A session began (the greeting was sent).
    pub fn session_started(&self) {
        self.smtp.sessions.inc();
    }

    /// A command was read; verbs outside the known set count as `other`.
    pub fn command(&self, verb: &str) {
        self.smtp.command(verb);
    }

    /// A reply was sent.
    pub fn reply(&self, code: u16) {
        self.smtp.reply(code);
    }

    /// A message's data was taken in.
    pub fn message_received(&self) {
        self.messages.received.inc();
    }

    /// A message was written to the queue and acknowledged.
    pub fn message_queued(&self) {
        self.messages.queued.inc();
    }

    /// A message was delivered to its last recipient, `since_arrival` after it arrived.
    pub fn message_delivered(&self, since_arrival: Duration) {
        self.messages.delivered.inc();
        self.messages
            .latency
            .observe(Messages::seconds(since_arrival));
    }

    /// An attempt left the message for a later retry.
    pub fn message_deferred(&self) {
        self.messages.deferred.inc();
    }

    /// The message failed for good and a DSN went to its sender.
    pub fn message_bounced(&self) {
        self.messages.bounced.inc();
    }

    /// The message failed for good and was set aside as badmail.
    pub fn message_badmail(&self) {
        self.messages.badmail.inc();
    }

    /// One delivery attempt took `took`.
    pub fn delivery_attempt(&self, took: Duration) {
        self.messages.attempt.observe(Messages::seconds(took));
    }
}

/// An open SMTP connection, counted in `postern_smtp_connections_open` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.smtp.open.dec();
    }
}

#[cfg(test)]
mod tests;
