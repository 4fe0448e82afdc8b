//! The mapping of `ctx`, the change functions and the verdicts onto the sink API, the limits,
//! and reloading.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postern_mailmsg::{Content, Fate, MailMsg, Properties, PropertyBag, Recipient, Sender, Value};
use postern_sink_api::{
    Change, Command, Context, EnhancedCode, Event, Instance, Outcome, Reply, Scope, SessionInfo,
    SinkError, SinkFactory, SinkSpec, Verdict,
};

use crate::Factory;

struct Fixture {
    dir: tempfile::TempDir,
    factory: Factory,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let factory = Factory::with_base(dir.path());
        Self { dir, factory }
    }

    fn write(&self, name: &str, source: &str) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, source).unwrap();
        // A later write in the same instant must still look like an edit.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(rand_secs()))
            .unwrap();
    }

    fn create(&self, name: &str, props: Properties) -> Result<Instance, SinkError> {
        self.factory.create(&SinkSpec {
            properties: props,
            ..spec(name)
        })
    }

    fn run(&self, source: &str, ctx: &Context) -> Result<Outcome, SinkError> {
        self.write("s.rhai", source);
        call(&self.create("s.rhai", Properties::new())?, ctx)
    }
}

fn spec(target: &str) -> SinkSpec {
    SinkSpec {
        binding_id: "b1".into(),
        binding_name: "test".into(),
        event: Event::EndOfData,
        properties: Properties::new(),
        target: target.into(),
    }
}

/// A different modification time for each write.
fn rand_secs() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn call(instance: &Instance, ctx: &Context) -> Result<Outcome, SinkError> {
    match instance {
        Instance::Blocking(sink) => sink.on_event(ctx),
        Instance::Async(_) => panic!("a script sink runs on the blocking pool"),
    }
}

fn session() -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        id: 7,
        remote: "192.0.2.1:4000".parse::<SocketAddr>().unwrap(),
        local: "127.0.0.1:25".parse::<SocketAddr>().unwrap(),
        helo: Some("client.example".into()),
        esmtp: true,
        tls: true,
        auth_user: Some("alice".into()),
        may_relay: true,
    })
}

fn message_ctx(event: Event) -> Context {
    let mut msg = MailMsg {
        sender: Some(Sender {
            address: "a@example.org".into(),
            params: Default::default(),
        }),
        ..MailMsg::default()
    };
    msg.recipients.push(Recipient::new("b@example.net"));
    msg.recipients.push(Recipient::new("c@example.net"));
    msg.content = Content::new(&b"Subject: hello\r\nX-Two: 1\r\nX-Two: 2\r\n\r\nbody\r\n"[..]);
    msg.properties.set("score", 3i64);
    let mut ctx = Context::new(event, PropertyBag::new());
    ctx.server.set("mode", "strict");
    let bag = PropertyBag::new();
    bag.set("seen", true);
    ctx.session_props = Some(bag);
    ctx.session = Some(session());
    ctx.message = Arc::new(msg);
    ctx
}

fn changes(outcome: Outcome) -> Vec<Change> {
    assert_eq!(outcome.verdict, Verdict::Continue);
    outcome.changes
}

#[test]
fn ctx_exposes_the_event_envelope_session_and_bags() {
    let f = Fixture::new();
    let mut ctx = message_ctx(Event::Categorize);
    ctx.recipient = Some(1);
    let script = r#"
        fn on_event(ctx) {
            let parts = [ctx.event, ctx.mail_from, ctx.rcpt_to, ctx.recipient, ctx.helo,
                         ctx.remote_ip, ctx.auth_user, ctx.tls, ctx.size, ctx.header("subject"),
                         ctx.headers("x-two"), ctx.header("missing"), ctx.verb,
                         ctx.session.seen, ctx.server.mode, ctx.message.score, ctx.props];
            set_property("message", "seen", `${parts}`);
        }
    "#;
    let got = changes(f.run(script, &ctx).unwrap());
    let [Change::SetProperty { value, .. }] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(
        value.as_str().unwrap(),
        r#"["categorize", "a@example.org", ["b@example.net", "c@example.net"], "c@example.net", "client.example", "192.0.2.1", "alice", true, 44, "hello", ["1", "2"], (), (), true, "strict", 3, #{}]"#
    );
}

#[test]
fn at_inbound_commands_the_path_stands_for_sender_and_recipient() {
    let f = Fixture::new();
    let mut ctx = Context::new(Event::parse("inbound:RCPT").unwrap(), PropertyBag::new());
    ctx.command = Command::parse("RCPT TO:<x@example.com> NOTIFY=NEVER").map(Arc::new);
    let script = r#"fn on_event(ctx) { reject(`${ctx.verb}|${ctx.args}|${ctx.recipient}|${ctx.mail_from}`) }"#;
    let outcome = f.run(script, &ctx).unwrap();
    assert_eq!(
        outcome.verdict,
        Verdict::Reject(Some(
            "RCPT|TO:<x@example.com> NOTIFY=NEVER|x@example.com|".into()
        ))
    );
}

#[test]
fn every_verdict_maps_onto_the_sink_api() {
    let cases: &[(&str, Verdict)] = &[
        ("", Verdict::Continue),
        ("next()", Verdict::Continue),
        ("consume()", Verdict::Consume),
        ("reject()", Verdict::Reject(None)),
        ("reject(\"no\")", Verdict::Reject(Some("no".into()))),
        (
            "tempfail(\"later\")",
            Verdict::TempFail(Some("later".into())),
        ),
        ("tempfail()", Verdict::TempFail(None)),
        ("disconnect()", Verdict::Disconnect(None)),
        (
            "reply(550, \"5.7.1\", \"go away\")",
            Verdict::Reply(Reply::new(550, Some(EnhancedCode::new(5, 7, 1)), "go away")),
        ),
        (
            "reply(250, \"\", \"fine\")",
            Verdict::Reply(Reply::new(250, None, "fine")),
        ),
        (
            "disconnect(421, \"4.7.0\", \"bye\")",
            Verdict::Disconnect(Some(Reply::new(
                421,
                Some(EnhancedCode::new(4, 7, 0)),
                "bye",
            ))),
        ),
    ];
    let f = Fixture::new();
    let ctx = message_ctx(Event::EndOfData);
    for (body, want) in cases {
        let source = format!("fn on_event(ctx) {{ {body} }}");
        let got = f.run(&source, &ctx).unwrap();
        assert_eq!(&got.verdict, want, "{body}");
    }
}

#[test]
fn every_change_function_maps_onto_a_change() {
    let f = Fixture::new();
    let script = r#"
        fn on_event(ctx) {
            add_header("X-Tag", "yes");
            set_header("Subject", "new");
            remove_header("X-Two");
            add_recipient("d@example.net");
            remove_recipient("b@example.net");
            set_recipient("e@example.net");
            set_next_hop("smtp:relay.example:2525");
            fail_recipient("no such user");
            set_property("session", "n", 1);
            set_property("server", "flag", true);
            remove_property("message", "score");
            set_fate("quarantine");
        }
    "#;
    let got = changes(f.run(script, &message_ctx(Event::Categorize)).unwrap());
    assert_eq!(
        got,
        vec![
            Change::AddHeader {
                name: "X-Tag".into(),
                value: "yes".into()
            },
            Change::SetHeader {
                name: "Subject".into(),
                value: "new".into()
            },
            Change::RemoveHeader("X-Two".into()),
            Change::AddRecipient("d@example.net".into()),
            Change::RemoveRecipient("b@example.net".into()),
            Change::SetRecipientAddress("e@example.net".into()),
            Change::SetNextHop("smtp:relay.example:2525".into()),
            Change::FailRecipient("no such user".into()),
            Change::SetProperty {
                scope: Scope::Session,
                key: "n".into(),
                value: Value::Int(1)
            },
            Change::SetProperty {
                scope: Scope::Server,
                key: "flag".into(),
                value: Value::Bool(true)
            },
            Change::RemoveProperty {
                scope: Scope::Message,
                key: "score".into()
            },
            Change::SetFate(Fate::Quarantine),
        ]
    );
}

#[test]
fn bad_arguments_and_return_values_fail_the_call() {
    let f = Fixture::new();
    let ctx = message_ctx(Event::EndOfData);
    for body in [
        "add_header(\"bad name\", \"v\")",
        "add_header(\"X-A\", \"two\\nlines\")",
        "set_property(\"galaxy\", \"k\", 1)",
        "set_property(\"message\", \"k\", [1])",
        "set_fate(\"vaporize\")",
        "reply(700, \"\", \"x\")",
        "reply(550, \"4.7.1\", \"class differs\")",
        "42",
    ] {
        let source = format!("fn on_event(ctx) {{ {body} }}");
        let err = f.run(&source, &ctx).unwrap_err();
        assert!(matches!(err, SinkError::Failed(_)), "{body}: {err:?}");
    }
}

#[test]
fn the_binding_properties_are_ctx_props() {
    let f = Fixture::new();
    f.write(
        "p.rhai",
        "fn on_event(ctx) { reject(ctx.props.deny + ctx.props.n) }",
    );
    let mut props = Properties::new();
    props.set("deny", "x");
    props.set("n", 2i64);
    let sink = f.create("p.rhai", props).unwrap();
    let got = call(&sink, &message_ctx(Event::EndOfData)).unwrap();
    assert_eq!(got.verdict, Verdict::Reject(Some("x2".into())));
}

#[test]
fn a_runaway_script_is_stopped_by_the_operation_limit() {
    let f = Fixture::new();
    let err = f
        .run(
            "fn on_event(ctx) { loop { } }",
            &message_ctx(Event::EndOfData),
        )
        .unwrap_err();
    assert!(err.to_string().contains("operations"), "{err}");
    for (body, what) in [
        ("let s = \"x\"; loop { s += s; }", "string"),
        ("let a = []; loop { a.push(1); }", "array"),
        ("fn_deep(0)", "stack"),
    ] {
        let source = format!("fn fn_deep(n) {{ fn_deep(n + 1) }}\nfn on_event(ctx) {{ {body} }}");
        let err = f.run(&source, &message_ctx(Event::EndOfData)).unwrap_err();
        assert!(
            err.to_string().to_lowercase().contains(what),
            "{what}: {err}"
        );
    }
}

#[test]
fn the_sandbox_has_no_eval_and_no_import() {
    let f = Fixture::new();
    for source in [
        "fn on_event(ctx) { eval(\"1\") }",
        "import \"other\" as o;\nfn on_event(ctx) { }",
    ] {
        f.write("x.rhai", source);
        let err = f.create("x.rhai", Properties::new()).err().unwrap();
        assert!(matches!(err, SinkError::Config(_)), "{source}: {err:?}");
    }
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let f = Fixture::new();
    f.write("bad.rhai", "fn on_event(ctx) {\n    let x = ;\n}\n");
    let err = f.create("bad.rhai", Properties::new()).err().unwrap();
    let text = err.to_string();
    let want = format!("{}:2:13", f.dir.path().join("bad.rhai").display());
    assert!(text.contains(&want), "{text}");
    f.write("none.rhai", "fn other(ctx) { }");
    let err = f.create("none.rhai", Properties::new()).err().unwrap();
    assert!(err.to_string().contains("on_event"), "{err}");
}

#[test]
fn an_edit_is_picked_up_and_a_broken_edit_keeps_the_last_good_version() {
    let f = Fixture::new();
    let ctx = message_ctx(Event::EndOfData);
    f.write("e.rhai", "fn on_event(ctx) { reject(\"one\") }");
    let sink = f.create("e.rhai", Properties::new()).unwrap();
    assert_eq!(
        call(&sink, &ctx).unwrap().verdict,
        Verdict::Reject(Some("one".into()))
    );
    f.write("e.rhai", "fn on_event(ctx) { reject(\"two\") }");
    assert_eq!(
        call(&sink, &ctx).unwrap().verdict,
        Verdict::Reject(Some("two".into()))
    );
    f.write("e.rhai", "fn on_event(ctx) { reject(\"three\" }");
    assert_eq!(
        call(&sink, &ctx).unwrap().verdict,
        Verdict::Reject(Some("two".into()))
    );
    // A binding made afresh (per event, or at a registry reload) keeps the last good version
    // too; a fresh factory, as `postern binding add` and a starting server use, refuses it.
    let again = f.create("e.rhai", Properties::new()).unwrap();
    assert_eq!(
        call(&again, &ctx).unwrap().verdict,
        Verdict::Reject(Some("two".into()))
    );
    let fresh = Factory::with_base(f.dir.path());
    assert!(fresh.create(&spec("e.rhai")).is_err());
    f.write("e.rhai", "fn on_event(ctx) { reject(\"four\") }");
    assert_eq!(
        call(&sink, &ctx).unwrap().verdict,
        Verdict::Reject(Some("four".into()))
    );
}

/// The cost of one call of the example scripts, with the context clone, the `stat` that looks
/// for an edit and the conversion of the outcome: `cargo test --release -p postern-script --
/// --ignored --nocapture per_call`.
#[test]
#[ignore = "a timing, meaningful only in a release build"]
fn per_call_cost_of_the_examples() {
    let f = Fixture::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sinks");
    let mut mail = Context::new(Event::parse("inbound:MAIL").unwrap(), PropertyBag::new());
    mail.command = Command::parse("MAIL FROM:<friend@example.org>").map(Arc::new);
    mail.session = Some(session());
    let mut props = Properties::new();
    props.set(
        "deny",
        "spammer@example.com,@junk.example,@a.example,@b.example",
    );
    for (name, ctx, props) in [
        ("sender-access.rhai", mail, props),
        (
            "tag-header.rhai",
            message_ctx(Event::EndOfData),
            Properties::new(),
        ),
        (
            "rewrite-recipient.rhai",
            {
                let mut c = message_ctx(Event::Categorize);
                c.recipient = Some(0);
                c
            },
            {
                let mut p = Properties::new();
                p.set("aliases", "sales:bob,info:alice,b:carol");
                p
            },
        ),
    ] {
        let sink = f
            .factory
            .create(&SinkSpec {
                properties: props,
                ..spec(examples.join(name).to_str().unwrap())
            })
            .unwrap();
        const N: u32 = 20_000;
        for _ in 0..100 {
            call(&sink, &ctx).unwrap();
        }
        let start = std::time::Instant::now();
        for _ in 0..N {
            call(&sink, &ctx).unwrap();
        }
        println!("{name}: {:?} per call", start.elapsed() / N);
    }
}
