//! Per-binding families, read at scrape time from the counters the dispatcher already keeps
//! ([`BindingStats`](postern_sink_host::BindingStats)): a sink call moves no metric of its own.

use std::sync::Arc;

use postern_sink_host::Host;
use postern_sink_host::stats::DURATION_BOUNDS_MICROS;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// Writes the binding families for every enabled binding of the host's snapshot in force.
pub(crate) fn encode(host: &Arc<Host>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
    let snapshot = host.snapshot();
    // One pass per family: the text format wants a family's samples together.
    let rows: Vec<_> = snapshot
        .bound()
        .iter()
        .map(|b| {
            (
                b.binding.name.as_str(),
                b.binding.event.name(),
                b.stats.snapshot(),
            )
        })
        .collect();

    let mut family = encoder.encode_descriptor(
        "postern_binding_calls",
        "Sink calls by binding, event and outcome (ok, error, panic, timeout, busy, open)",
        None,
        MetricType::Counter,
    )?;
    for (name, event, s) in &rows {
        let failed = s.failures + s.panics + s.timeouts + s.busy + s.broken;
        let outcomes = [
            ("ok", s.firings.saturating_sub(failed)),
            ("error", s.failures),
            ("panic", s.panics),
            ("timeout", s.timeouts),
            ("busy", s.busy),
            ("open", s.broken),
        ];
        for (outcome, value) in outcomes {
            let labels = [
                ("binding", *name),
                ("event", event.as_ref()),
                ("outcome", outcome),
            ];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "postern_binding_failures",
        "Sink calls that failed, by binding, event and kind (error, panic, timeout)",
        None,
        MetricType::Counter,
    )?;
    for (name, event, s) in &rows {
        for (kind, value) in [
            ("error", s.failures),
            ("panic", s.panics),
            ("timeout", s.timeouts),
        ] {
            let labels = [
                ("binding", *name),
                ("event", event.as_ref()),
                ("kind", kind),
            ];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        "postern_binding_shadow_decisions",
        "Outcomes of shadow-mode bindings that were logged and not applied",
        None,
        MetricType::Counter,
    )?;
    for (name, event, s) in &rows {
        let labels = [("binding", *name), ("event", event.as_ref())];
        ConstCounter::new(s.shadowed).encode(family.encode_family(&labels)?)?;
    }

    let mut family = encoder.encode_descriptor(
        "postern_binding_duration_seconds",
        "Time of a sink call, by binding and event",
        None,
        MetricType::Histogram,
    )?;
    for (name, event, s) in &rows {
        let labels = [("binding", *name), ("event", event.as_ref())];
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(s.durations.len());
        for (i, count) in s.durations.iter().enumerate() {
            cumulative += count;
            let bound = DURATION_BOUNDS_MICROS
                .get(i)
                .map_or(f64::MAX, |&m| m as f64 / 1e6);
            buckets.push((bound, *count));
        }
        let sum = s.busy_micros as f64 / 1e6;
        family
            .encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                sum, cumulative, &buckets, None,
            )?;
    }
    Ok(())
}
