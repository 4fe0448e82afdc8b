//! Isolation per binding, on tokio's paused clock: the limit on calls in flight and the circuit
//! breaker, driven through the dispatcher with the built-in `delay` and `fault` sinks.

use std::sync::Arc;
use std::time::Duration;

use postern_sink_api::mailmsg::PropertyBag;
use postern_sink_api::{Context, Event};
use postern_sink_host::{Binding, BreakerPolicy, Catalog, NoDefault, OnError, SinkRef, Snapshot};

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for factory in postern_sinks::all() {
        catalog.add_builtin(factory);
    }
    catalog
}

fn noop() -> Event {
    Event::parse("inbound:NOOP").unwrap()
}

fn binding(sink: &str, props: &[(&str, &str)]) -> Binding {
    let mut b = Binding::new("guarded", noop(), SinkRef::parse(sink).unwrap());
    for (k, v) in props {
        match v.parse::<i64>() {
            Ok(n) => {
                b.properties.set(*k, n);
            }
            Err(_) => {
                b.properties.set(*k, *v);
            }
        }
    }
    b.on_error = OnError::Reject;
    b
}

async fn raise(snapshot: &Snapshot) -> u16 {
    let mut ctx = Context::new(noop(), PropertyBag::new());
    let out = snapshot.dispatch(&mut ctx, &mut NoDefault).await;
    out.reply.map_or(0, |r| r.code)
}

#[tokio::test(start_paused = true)]
async fn a_call_beyond_max_concurrency_waits_then_meets_on_error() {
    let mut b = binding("builtin:delay", &[("ms", "1500")]);
    b.timeout = Duration::from_secs(2);
    b.max_concurrency = Some(1);
    let snapshot = Arc::new(
        Snapshot::compile(&[b.clone()], &catalog(), 1, None)
            .ok()
            .unwrap(),
    );
    let first = tokio::spawn({
        let s = snapshot.clone();
        async move { raise(&s).await }
    });
    tokio::task::yield_now().await;
    // The second call waits 1.5 s for the slot; 0.5 s of its timeout is left for a 1.5 s sink.
    let second = raise(&snapshot).await;
    assert_eq!(first.await.unwrap(), 0, "the first call ran and went on");
    assert_eq!(second, 550, "the second met on_error = reject");
    let stats = snapshot.stats_of(b.id).unwrap().snapshot();
    assert_eq!((stats.firings, stats.timeouts), (2, 1));

    // Without the limit both run side by side.
    b.max_concurrency = None;
    let free = Arc::new(Snapshot::compile(&[b], &catalog(), 2, None).ok().unwrap());
    let (a, c) = tokio::join!(raise(&free), raise(&free));
    assert_eq!((a, c), (0, 0));
}

// On the real clock: on a paused one the runtime, idle while the blocking thread starts, would
// jump past the timeout before the job began, and a job whose caller gave up is not run — the
// slot would then be free for the second call.
#[tokio::test]
async fn a_call_that_finds_no_slot_before_its_timeout_is_counted_busy() {
    let mut b = binding("builtin:fault", &[("mode", "hang")]);
    b.properties.set("blocking", true);
    b.timeout = Duration::from_millis(200);
    b.max_concurrency = Some(1);
    let snapshot = Arc::new(
        Snapshot::compile(&[b.clone()], &catalog(), 1, None)
            .ok()
            .unwrap(),
    );
    // A hung blocking sink keeps its slot after its timeout: its thread is still busy.
    assert_eq!(raise(&snapshot).await, 550);
    assert_eq!(raise(&snapshot).await, 550);
    let stats = snapshot.stats_of(b.id).unwrap().snapshot();
    assert_eq!((stats.timeouts, stats.busy), (1, 1), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_failures_and_closes_after_the_cool_down() {
    let mut b = binding("builtin:fault", &[("mode", "error")]);
    b.breaker = Some(BreakerPolicy::parse("3/60").unwrap());
    let snapshot = Snapshot::compile(&[b.clone()], &catalog(), 1, None)
        .ok()
        .unwrap();
    let stats = snapshot.stats_of(b.id).unwrap();
    for _ in 0..3 {
        assert_eq!(raise(&snapshot).await, 550);
    }
    assert_eq!(stats.snapshot().breaker_opened, 1);
    // Open: the sink is not called, on_error applies.
    assert_eq!(raise(&snapshot).await, 550);
    let s = stats.snapshot();
    assert_eq!((s.failures, s.broken), (3, 1), "{s:?}");

    // A reload that keeps the binding's settings keeps the breaker open.
    let reloaded = Snapshot::compile(&[b.clone()], &catalog(), 2, Some(&snapshot))
        .ok()
        .unwrap();
    assert_eq!(raise(&reloaded).await, 550);
    assert_eq!(stats.snapshot().broken, 2);

    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(raise(&reloaded).await, 550);
    let s = stats.snapshot();
    assert_eq!(
        (s.failures, s.broken),
        (4, 2),
        "called again after the cool-down: {s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_spread_wider_than_the_window_keep_the_breaker_closed() {
    let mut b = binding("builtin:fault", &[("mode", "error")]);
    b.breaker = Some(BreakerPolicy::parse("2/10").unwrap());
    let snapshot = Snapshot::compile(&[b.clone()], &catalog(), 1, None)
        .ok()
        .unwrap();
    for _ in 0..4 {
        raise(&snapshot).await;
        tokio::time::advance(Duration::from_secs(11)).await;
    }
    let s = snapshot.stats_of(b.id).unwrap().snapshot();
    assert_eq!((s.failures, s.broken, s.breaker_opened), (4, 0, 0));
}
