//! Bindings through real SMTP sessions: priority, consume, rules, disabled, shadow, properties,
//! cached and per-event instances, blocking sinks, failures, timeouts, custom verbs, live
//! changes. Bindings are registered with the real CLI.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Postern, bind, binding, workdir};

fn header_lines(mail: &str, prefix: &str) -> Vec<String> {
    mail.lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn priority_decides_the_order_of_two_add_header_sinks() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--name",
            "late",
            "--priority",
            "200",
            "--prop",
            "name=X-Order",
            "--prop",
            "value=second",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "OnArrival",
            "--sink",
            "builtin:add-header",
            "--name",
            "early",
            "--priority",
            "100",
            "--prop",
            "name=X-Order",
            "--prop",
            "value=first ${queue_id}",
        ],
    );
    let server = Postern::start_in(d, None);
    let mut c = server.client();
    let reply = c.send_message(
        "a@example.org",
        &["order@localhost"],
        "Subject: order\r\n\r\nx",
    );
    let id = reply.queue_id();
    let mail = server.wait_for_mail("localhost", "order", 1);
    assert_eq!(
        header_lines(&mail[0], "X-Order"),
        [format!("X-Order: first {id}"), "X-Order: second".to_owned()]
    );
}

#[test]
fn a_sink_before_the_default_consumes_the_command_and_one_after_replaces_the_reply() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:reply",
            "--priority",
            "high",
            "--rule",
            "MAIL FROM=*@spam.example",
            "--prop",
            "code=550",
            "--prop",
            "enhanced=5.7.1",
            "--prop",
            "text=No spam today",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:reply",
            "--priority",
            "lowest",
            "--prop",
            "code=250",
            "--prop",
            "text=custom noop",
        ],
    );
    let server = Postern::start_in(d, None);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let refused = c.expect("MAIL FROM:<bulk@spam.example>", 550);
    assert_eq!(refused.text(), "5.7.1 No spam today");
    // The default MAIL sink did not run: there is no sender.
    c.expect("RCPT TO:<x@localhost>", 503);
    // The rule does not match other senders.
    c.expect("MAIL FROM:<friend@good.example>", 250);
    assert_eq!(c.expect("NOOP", 250).text(), "custom noop");
}

#[test]
fn rules_negation_and_the_remote_address() {
    let dir = workdir();
    let d = dir.path();
    // Never fires from loopback.
    bind(
        d,
        &[
            "--event",
            "inbound:RCPT",
            "--sink",
            "builtin:reply",
            "--rule",
            "!REMOTE=127.0.0.0/8",
            "--priority",
            "0",
            "--prop",
            "code=550",
        ],
    );
    // Fires for any recipient at the listed domain, any case.
    bind(
        d,
        &[
            "--event",
            "inbound:RCPT",
            "--sink",
            "builtin:reply",
            "--rule",
            "RCPT TO=*@BLOCKED.localhost;MAIL FROM=*",
            "--priority",
            "1",
            "--prop",
            "code=550",
            "--prop",
            "text=blocked",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<ok@localhost>", 250);
    assert_eq!(
        c.expect("RCPT TO:<x@blocked.localhost>", 550).text(),
        "blocked"
    );
}

#[test]
fn disabled_and_shadow_bindings_do_not_change_replies() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:HELP",
            "--sink",
            "builtin:reply",
            "--disabled",
            "--name",
            "off",
            "--prop",
            "code=500",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "inbound:VRFY",
            "--sink",
            "builtin:reply",
            "--shadow",
            "--name",
            "shadowed",
            "--prop",
            "code=550",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("HELP", 214);
    c.expect("VRFY bob", 252);
    server.wait_for_log("shadow outcome not applied");
}

#[test]
fn cached_sinks_keep_one_instance_and_uncached_make_one_per_event() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--prop",
            "name=X-Cached",
            "--prop",
            "value=${calls}",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--no-cache",
            "--prop",
            "name=X-Fresh",
            "--prop",
            "value=${calls}",
        ],
    );
    let server = Postern::start_with_dir(d);
    for n in 0..3 {
        let mut c = server.client();
        assert_eq!(
            c.send_message(
                "a@example.org",
                &["count@localhost"],
                &format!("Subject: {n}\r\n\r\nx")
            )
            .code,
            250
        );
        server.wait_for_mail("localhost", "count", n + 1);
    }
    let mail = server.wait_for_mail("localhost", "count", 3);
    let mut cached: Vec<String> = mail
        .iter()
        .flat_map(|m| header_lines(m, "X-Cached"))
        .collect();
    cached.sort();
    assert_eq!(cached, ["X-Cached: 1", "X-Cached: 2", "X-Cached: 3"]);
    let fresh: Vec<String> = mail
        .iter()
        .flat_map(|m| header_lines(m, "X-Fresh"))
        .collect();
    assert_eq!(fresh, ["X-Fresh: 1", "X-Fresh: 1", "X-Fresh: 1"]);
}

#[test]
fn a_blocking_sink_sleeping_in_one_session_does_not_stall_another() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:HELO",
            "--sink",
            "builtin:delay",
            "--prop",
            "ms=2000",
            "--prop",
            "blocking=true",
        ],
    );
    // Logs just before the delay starts: the signal that the slow session is in it.
    bind(
        d,
        &[
            "--event",
            "inbound:HELO",
            "--sink",
            "builtin:log",
            "--priority",
            "highest",
            "--prop",
            "label=entering-the-delay",
        ],
    );
    let server = Postern::start_with_dir(d);
    let addr = server.addr;
    let slow = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.read_reply();
        c.expect("HELO slow.test", 250);
        Instant::now()
    });
    server.wait_for_log("entering-the-delay");
    let mut c = server.client();
    assert_eq!(
        c.send_message(
            "a@example.org",
            &["fast@localhost"],
            "Subject: fast\r\n\r\nx"
        )
        .code,
        250
    );
    let fast_done = Instant::now();
    let slow_done = slow.join().unwrap();
    assert!(
        fast_done < slow_done,
        "the other session completed its transaction while the sink slept"
    );
}

#[test]
fn a_panicking_sink_follows_its_on_error_policy_and_the_server_lives_on() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=panic",
            "--on-error",
            "tempfail",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "inbound:VRFY",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=panic",
            "--prop",
            "blocking=true",
            "--on-error",
            "continue",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "inbound:HELP",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=error",
            "--on-error",
            "reject",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    assert!(c.expect("NOOP", 451).text().starts_with("4.3.0"));
    c.expect("VRFY bob", 252);
    assert!(c.expect("HELP", 550).text().starts_with("5.7.1"));
    // The same session and new ones go on.
    c.expect("RSET", 250);
    server.client().expect("RSET", 250);
    server.wait_for_log("sink panicked");
}

#[test]
fn a_sink_past_its_timeout_is_abandoned() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:RSET",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=hang",
            "--timeout",
            "300ms",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=hang",
            "--prop",
            "blocking=true",
            "--timeout",
            "300ms",
            "--on-error",
            "continue",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    assert!(c.expect("RSET", 451).text().starts_with("4.3.0"));
    c.expect("NOOP", 250);
    server.wait_for_log("timed out after 300 ms");
}

#[test]
fn a_custom_verb_is_a_new_command_even_pipelined() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:XPING",
            "--sink",
            "builtin:reply",
            "--prop",
            "code=250",
            "--prop",
            "text=PONG",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "inbound:EHLO",
            "--sink",
            "builtin:ehlo-keyword",
            "--prop",
            "keyword=XPING",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.lines.contains(&"XPING".to_owned()), "{ehlo:?}");
    c.send_raw(b"XPING\r\nNOOP\r\nXPING now\r\nXPONG\r\n");
    assert_eq!(c.read_reply().text(), "PONG");
    assert_eq!(c.read_reply().code, 250);
    assert_eq!(c.read_reply().text(), "PONG");
    assert_eq!(
        c.read_reply().code,
        500,
        "other unknown verbs are still refused"
    );
}

#[test]
fn the_cli_changes_a_running_server_without_dropping_connections() {
    let dir = workdir();
    let d = dir.path();
    let server = Postern::start_with_dir(d);
    let mut old = server.client();
    old.expect("EHLO client.test", 250);
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:reply",
            "--name",
            "live",
            "--prop",
            "code=250",
            "--prop",
            "text=first",
        ],
    );
    let wait_for = |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = server.client().cmd("NOOP").text();
            if got == text || Instant::now() > deadline {
                assert_eq!(got, text, "{}", server.log());
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("first");
    let (code, _, err) = binding(d, &["set-prop", "live", "text=second"]);
    assert_eq!(code, 0, "{err}");
    wait_for("second");
    let (code, _, err) = binding(d, &["disable", "live"]);
    assert_eq!(code, 0, "{err}");
    // Without EHLO there are no enhanced status codes (RFC 2034).
    wait_for("OK");
    // The connection opened before the changes still works, on the registry it started with.
    old.expect("MAIL FROM:<a@example.org>", 250);
    // A registry that does not load leaves the last good one in force.
    std::fs::write(d.join("data").join("bindings.toml"), "this is [not toml").unwrap();
    server.wait_for_log("the last good one stays in force");
    server.client().expect("NOOP", 250);
}

#[test]
fn the_cli_refuses_bad_arguments_with_exit_2_and_leaves_the_registry_alone() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:log",
            "--name",
            "keep",
        ],
    );
    let registry = std::fs::read_to_string(d.join("data/bindings.toml")).unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "unknown event",
            &["add", "--event", "on-nothing", "--sink", "builtin:log"],
            "unknown event",
        ),
        (
            "unknown sink",
            &["add", "--event", "inbound:MAIL", "--sink", "builtin:nope"],
            "unknown sink",
        ),
        (
            "bad rule",
            &[
                "add",
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:log",
                "--rule",
                "SIZE>lots",
            ],
            "rule",
        ),
        (
            "bad priority",
            &[
                "add",
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:log",
                "--priority",
                "40000",
            ],
            "--priority",
        ),
        (
            "missing property",
            &["add", "--event", "inbound:MAIL", "--sink", "builtin:reply"],
            "code",
        ),
        (
            "sink that does not fit",
            &[
                "add",
                "--event",
                "route",
                "--sink",
                "builtin:reply",
                "--prop",
                "code=250",
            ],
            "does not fit",
        ),
        (
            "duplicate name",
            &[
                "add",
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:log",
                "--name",
                "keep",
            ],
            "exists",
        ),
        (
            "bad property value",
            &["set-prop", "keep", "label"],
            "KEY=VALUE",
        ),
        ("no such binding", &["remove", "nothing"], "no binding"),
    ];
    for (name, args, message) in cases {
        let (code, _, err) = binding(d, args);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(message), "{name}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("data/bindings.toml")).unwrap(),
        registry
    );
}

#[test]
fn list_shows_the_effective_order_with_the_default_sinks() {
    let dir = workdir();
    let d = dir.path();
    let id = bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:log",
            "--name",
            "after",
            "--priority",
            "lowest",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "OnInboundCommand",
            "--sink",
            "builtin:log",
            "--name",
            "before",
            "--priority",
            "highest",
            "--rule",
            "MAIL,RCPT",
        ],
    );
    let (code, out, err) = binding(d, &["list", "--event", "inbound:MAIL", "--all", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before", "(default)", "after"]);
    assert_eq!(rows[1]["priority"], 16384);
    let (code, out, _) = binding(d, &["show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("name        after"), "{out}");
    let (_, table, _) = binding(d, &["list"]);
    assert!(
        table.contains("inbound:RCPT") && table.contains("before"),
        "{table}"
    );
}

#[test]
fn set_fate_sends_a_message_to_badmail_instead_of_the_mailbox() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "post-categorize",
            "--sink",
            "builtin:set-fate",
            "--rule",
            "HEADER:Subject=*virus*",
            "--prop",
            "fate=badmail",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    let reply = c.send_message(
        "a@example.org",
        &["victim@localhost"],
        "Subject: a virus here\r\n\r\nx",
    );
    let id = reply.queue_id();
    let badmail = d.join("data").join("badmail").join(format!("{id}.eml"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !badmail.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(badmail.exists(), "{}", server.log());
    let mut c = server.client();
    c.send_message(
        "a@example.org",
        &["victim@localhost"],
        "Subject: fine\r\n\r\nx",
    );
    let mail = server.wait_for_mail("localhost", "victim", 1);
    assert!(mail[0].contains("Subject: fine"));
}

#[test]
fn max_size_sinks_may_lift_the_limit_for_a_declared_size() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "MaxMsgSize",
            "--sink",
            "builtin:reply",
            "--rule",
            "MAIL FROM=*@big.example",
            "--priority",
            "high",
            "--prop",
            "code=250",
        ],
    );
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_message_size = 100\n";
    let server = Postern::start_in(d, Some(config));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<small@example.org> SIZE=500", 552);
    c.expect("MAIL FROM:<trusted@big.example> SIZE=500", 250);
    c.expect("RCPT TO:<big@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(300)).as_bytes());
    assert_eq!(c.read_reply().code, 250);
    server.wait_for_mail("localhost", "big", 1);
}

#[test]
fn a_recipient_deferred_at_categorize_is_not_delivered_in_that_pass() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "categorize",
            "--sink",
            "builtin:fault",
            "--rule",
            "RCPT TO=later@localhost",
            "--prop",
            "mode=error",
            "--on-error",
            "tempfail",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    let reply = c.send_message(
        "a@example.org",
        &["later@localhost", "now@localhost"],
        "Subject: split\r\n\r\nx",
    );
    assert_eq!(reply.code, 250);
    server.wait_for_mail("localhost", "now", 1);
    // The pass is over when the transport says so; only then is "later" known not delivered.
    server.wait_for_log("transport pass done");
    assert!(
        common::read_all(&server.new_mail("localhost", "later")).is_empty(),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("state=\"deferred\"") || server.log().contains("state=deferred"),
        "{}",
        server.log()
    );
}
