//! The exposition after real increments: every family is there, with the values moved.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use postern_sink_api::Event;
use postern_sink_host::{Binding, Catalog, Host, SinkRef, registry};

use crate::{Metrics, QueueCounts};

/// A host with one binding named `tag` on `inbound:MAIL`, its counters moved as two calls, one
/// of which timed out, would move them.
fn host(dir: &std::path::Path) -> Arc<Host> {
    let path = dir.join("bindings.toml");
    let mut catalog = Catalog::new();
    for factory in postern_sinks::all() {
        catalog.add_builtin(factory);
    }
    let binding = Binding::new(
        "tag",
        Event::parse("inbound:MAIL").unwrap(),
        SinkRef::parse("builtin:log").unwrap(),
    );
    registry::save(&path, &[binding]).unwrap();
    let host = Arc::new(Host::load(&path, catalog).unwrap());
    let snapshot = host.snapshot();
    let stats = &snapshot.bound()[0].stats;
    stats.firings.fetch_add(2, Ordering::Relaxed);
    stats.timeouts.fetch_add(1, Ordering::Relaxed);
    stats.durations[3].fetch_add(2, Ordering::Relaxed);
    stats.busy_micros.fetch_add(1_500, Ordering::Relaxed);
    host
}

#[test]
fn exposition_carries_every_family_after_real_increments() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    metrics.watch_bindings(host(dir.path()));
    metrics.watch_queue(|| QueueCounts {
        queued: 3,
        deferred: 1,
        held: 2,
    });
    let open = metrics.connection_opened();
    metrics.session_started();
    metrics.command("ehlo");
    metrics.command("XFOO");
    metrics.reply(250);
    metrics.reply(550);
    metrics.message_received();
    metrics.message_queued();
    metrics.message_delivered(Duration::from_millis(30));
    metrics.message_deferred();
    metrics.message_bounced();
    metrics.message_badmail();
    metrics.delivery_attempt(Duration::from_millis(5));

    let text = metrics.encode();
    for line in [
        "postern_smtp_connections_total 1",
        "postern_smtp_connections_open 1",
        "postern_smtp_sessions_total 1",
        "postern_smtp_commands_total{verb=\"EHLO\"} 1",
        "postern_smtp_commands_total{verb=\"other\"} 1",
        "postern_smtp_replies_total{class=\"2xx\"} 1",
        "postern_smtp_replies_total{class=\"5xx\"} 1",
        "postern_messages_received_total 1",
        "postern_messages_queued_total 1",
        "postern_messages_delivered_total 1",
        "postern_messages_deferred_total 1",
        "postern_messages_bounced_total 1",
        "postern_messages_badmail_total 1",
        "postern_delivery_latency_seconds_count 1",
        "postern_delivery_attempt_seconds_count 1",
        "postern_queue_messages{state=\"queued\"} 3",
        "postern_queue_messages{state=\"held\"} 2",
        "postern_binding_calls_total{binding=\"tag\",event=\"inbound:MAIL\",outcome=\"ok\"} 1",
        "postern_binding_calls_total{binding=\"tag\",event=\"inbound:MAIL\",outcome=\"timeout\"} 1",
        "postern_binding_failures_total{binding=\"tag\",event=\"inbound:MAIL\",kind=\"timeout\"} 1",
        "postern_binding_shadow_decisions_total{binding=\"tag\",event=\"inbound:MAIL\"} 0",
        "postern_binding_duration_seconds_count{binding=\"tag\",event=\"inbound:MAIL\"} 2",
        "postern_binding_duration_seconds_bucket{le=\"0.001\",binding=\"tag\",event=\"inbound:MAIL\"} 2",
        "postern_spool_syncs_total 0",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    drop(open);
    assert!(
        metrics
            .encode()
            .lines()
            .any(|l| l == "postern_smtp_connections_open 0")
    );
}

/// `promtool check metrics` (Debian package `prometheus`) accepts the exposition in the text
/// format it reads.
#[test]
fn promtool_accepts_the_exposition() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    metrics.watch_bindings(host(dir.path()));
    metrics.command("MAIL");
    metrics.reply(451);
    metrics.message_delivered(Duration::from_secs(2));
    let text = metrics.encode_text();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the exposition:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sink call through the real dispatcher moves the binding families: one `ok` call, one
/// duration observation, no failure.
#[tokio::test]
async fn a_dispatched_call_shows_in_the_binding_families() {
    use postern_sink_host::NoDefault;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bindings.toml");
    let mut catalog = Catalog::new();
    for factory in postern_sinks::all() {
        catalog.add_builtin(factory);
    }
    let mut binding = Binding::new(
        "stamp",
        Event::parse("submission").unwrap(),
        SinkRef::parse("builtin:add-header").unwrap(),
    );
    binding.properties.set("name", "X-Stamp");
    binding.properties.set("value", "yes");
    registry::save(&path, &[binding]).unwrap();
    let host = Arc::new(Host::load(&path, catalog).unwrap());
    let metrics = Metrics::new();
    metrics.watch_bindings(host.clone());

    let mut ctx = postern_sink_api::Context::new(
        Event::parse("submission").unwrap(),
        host.server_props.clone(),
    );
    host.snapshot().dispatch(&mut ctx, &mut NoDefault).await;

    let text = metrics.encode();
    let labels = "binding=\"stamp\",event=\"submission\"";
    for line in [
        format!("postern_binding_calls_total{{{labels},outcome=\"ok\"}} 1"),
        format!("postern_binding_calls_total{{{labels},outcome=\"error\"}} 0"),
        format!("postern_binding_failures_total{{{labels},kind=\"panic\"}} 0"),
        format!("postern_binding_duration_seconds_count{{{labels}}} 1"),
        format!("postern_binding_duration_seconds_bucket{{le=\"+Inf\",{labels}}} 1"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
}
