//! The message families: what happened to messages, and how long delivery took.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The message counters and latency histograms.
#[derive(Debug)]
pub(crate) struct Messages {
    pub(crate) received: Counter,
    pub(crate) queued: Counter,
    pub(crate) delivered: Counter,
    pub(crate) deferred: Counter,
    pub(crate) bounced: Counter,
    pub(crate) badmail: Counter,
    /// From arrival to the final delivery of the message.
    pub(crate) latency: Histogram,
    /// One delivery attempt.
    pub(crate) attempt: Histogram,
}

impl Default for Messages {
    fn default() -> Self {
        Self {
            received: Counter::default(),
            queued: Counter::default(),
            delivered: Counter::default(),
            deferred: Counter::default(),
            bounced: Counter::default(),
            badmail: Counter::default(),
            // 10 ms … about 28 h: local delivery and days of retries fit the same family.
            latency: Histogram::new(exponential_buckets(0.01, 4.0, 12)),
            // 1 ms … about 4.4 min.
            attempt: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
        }
    }
}

impl Messages {
    pub(crate) fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "postern_messages_received",
                "Messages whose data the SMTP server took in",
                &self.received,
            ),
            (
                "postern_messages_queued",
                "Messages written to the queue and acknowledged",
                &self.queued,
            ),
            (
                "postern_messages_delivered",
                "Messages delivered to every recipient",
                &self.delivered,
            ),
            (
                "postern_messages_deferred",
                "Delivery attempts that left a message for a later retry",
                &self.deferred,
            ),
            (
                "postern_messages_bounced",
                "Messages that failed for good (a failure DSN went to the sender)",
                &self.bounced,
            ),
            (
                "postern_messages_badmail",
                "Messages set aside as badmail (failed, and no DSN could be sent)",
                &self.badmail,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "postern_delivery_latency_seconds",
            "Time from a message's arrival to its final delivery",
            self.latency.clone(),
        );
        registry.register(
            "postern_delivery_attempt_seconds",
            "Time of one delivery attempt",
            self.attempt.clone(),
        );
    }

    pub(crate) fn seconds(d: Duration) -> f64 {
        d.as_secs_f64()
    }
}
