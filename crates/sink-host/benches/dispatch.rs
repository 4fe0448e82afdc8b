//! The dispatcher's cost per event with 0, 1, 10 and 100 bindings whose rules match or do not.
//!
//! `cargo bench -p postern-sink-host --bench dispatch`. The sinks are no-ops (a native sink that
//! answers `Continue` at once), so what is measured is the dispatcher: walking the chain,
//! evaluating rules, calling sinks, applying outcomes.

use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use postern_mailmsg::{MailMsg, PropertyBag, Sender};
use postern_sink_api::{
    Call, Command, Context, Event, Instance, Outcome, SessionInfo, Sink, SinkError, SinkFactory,
    SinkSpec, Verb,
};
use postern_sink_host::{Binding, Catalog, NoDefault, SinkRef, Snapshot};

struct Noop;

impl Sink for Noop {
    fn on_event<'a>(&'a self, _ctx: &'a Context) -> Call<'a> {
        Call::Ready(Ok(Outcome::next()))
    }
}

struct NoopFactory;

impl SinkFactory for NoopFactory {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn create(&self, _spec: &SinkSpec) -> Result<Instance, SinkError> {
        Ok(Instance::Async(Arc::new(Noop)))
    }
}

fn snapshot(count: usize, matching: bool) -> Snapshot {
    let mut catalog = Catalog::new();
    catalog.add_rust(Arc::new(NoopFactory));
    let rule = if matching {
        "MAIL FROM=*@example.org"
    } else {
        "MAIL FROM=*@other.example"
    };
    let bindings: Vec<Binding> = (0..count)
        .map(|i| {
            let mut b = Binding::new(
                format!("b{i}"),
                Event::parse("inbound:MAIL").unwrap(),
                SinkRef::Rust("noop".into()),
            );
            b.rule = rule.into();
            b.priority = (i * 10) as u16;
            b
        })
        .collect();
    Snapshot::compile(&bindings, &catalog, 1, None).unwrap()
}

fn context() -> Context {
    let verb = Verb::parse("MAIL").unwrap();
    let mut ctx = Context::new(Event::Inbound(Some(verb.clone())), PropertyBag::new());
    ctx.command = Some(Arc::new(Command {
        verb,
        args: "FROM:<alice@example.org>".into(),
        line: "MAIL FROM:<alice@example.org>".into(),
    }));
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    ctx.session = Some(Arc::new(SessionInfo {
        id: 1,
        remote: addr,
        local: addr,
        helo: Some("client.example".into()),
        esmtp: true,
        tls: false,
        auth_user: None,
        may_relay: false,
    }));
    ctx.message = Arc::new(MailMsg {
        sender: Some(Sender::default()),
        ..MailMsg::default()
    });
    ctx
}

fn dispatch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("dispatch inbound:MAIL");
    for count in [0usize, 1, 10, 100] {
        for matching in [false, true] {
            if count == 0 && matching {
                continue;
            }
            let snap = snapshot(count, matching);
            let label = if matching { "matching" } else { "not matching" };
            group.bench_with_input(BenchmarkId::new(label, count), &count, |b, _| {
                let base = context();
                b.iter(|| {
                    let mut ctx = base.clone();
                    runtime.block_on(snap.dispatch(&mut ctx, &mut NoDefault))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
