//! What a scrape reads from its owner: the queue by state, the spool's counters, the bindings.

use std::sync::{Arc, OnceLock};

use postern_queue::Spool;
use postern_sink_host::Host;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Messages in the queue by state, as the queue's owner counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting for their first or next attempt now.
    pub queued: u64,
    /// Waiting for a retry time.
    pub deferred: u64,
    /// Held until released.
    pub held: u64,
}

type QueueCount = Box<dyn Fn() -> QueueCounts + Send + Sync>;

/// Owners set once at start; a scrape before that shows the families at zero.
#[derive(Default)]
pub(crate) struct Sources {
    bindings: OnceLock<Arc<Host>>,
    spool: OnceLock<Spool>,
    queue: OnceLock<QueueCount>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("bindings", &self.bindings.get().is_some())
            .field("spool", &self.spool.get().is_some())
            .field("queue", &self.queue.get().is_some())
            .finish()
    }
}

impl Sources {
    pub(crate) fn set_bindings(&self, host: Arc<Host>) {
        let _ = self.bindings.set(host);
    }

    pub(crate) fn set_spool(&self, spool: Spool) {
        let _ = self.spool.set(spool);
    }

    pub(crate) fn set_queue(&self, count: QueueCount) {
        let _ = self.queue.set(count);
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counts = self.queue.get().map(|f| f()).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "postern_queue_messages",
            "Messages in the queue by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [
            ("queued", counts.queued),
            ("deferred", counts.deferred),
            ("held", counts.held),
        ] {
            let labels = [("state", state)];
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                .encode(family.encode_family(&labels)?)?;
        }

        let stats = self.spool.get().map(Spool::stats).unwrap_or_default();
        let bytes = ConstCounter::new(stats.bytes);
        bytes.encode(encoder.encode_descriptor(
            "postern_spool_written_bytes",
            "Bytes written to the spool's segments",
            None,
            bytes.metric_type(),
        )?)?;
        let syncs = ConstCounter::new(stats.syncs);
        syncs.encode(encoder.encode_descriptor(
            "postern_spool_syncs",
            "fsync calls made by the spool",
            None,
            syncs.metric_type(),
        )?)?;
        let records = ConstCounter::new(stats.records);
        records.encode(encoder.encode_descriptor(
            "postern_spool_records",
            "Records written to the spool",
            None,
            records.metric_type(),
        )?)?;
        let live = ConstGauge::new(i64::try_from(stats.live).unwrap_or(i64::MAX));
        live.encode(encoder.encode_descriptor(
            "postern_spool_live_messages",
            "Messages the spool holds (every state)",
            None,
            live.metric_type(),
        )?)?;

        if let Some(host) = self.bindings.get() {
            crate::bindings::encode(host, &mut encoder)?;
        }
        Ok(())
    }
}
