//! Remote delivery end to end: the real binary relays to a real receiving server (aiosmtpd on
//! 127.0.0.2) found through MX records served by a real DNS server (dnsmasq), with retries,
//! DSNs back to local senders, and the outbound, response and dns-resolve events.

mod common;

use common::peers::{Dns, Mx, free_port, track_log, wait_track};
use common::{Postern, bind};
use serde_json::Value;
use std::path::Path;

/// The test domains: `remote.test` (MX on 127.0.0.2), `plain.test` (no MX, an A record),
/// `nullmx.test` (RFC 7505), `dead.test` (MX on 127.0.0.3 where nothing listens).
fn dns() -> Dns {
    Dns::start(&[
        "--mx-host=remote.test,mx1.remote.test,10".into(),
        "--host-record=mx1.remote.test,127.0.0.2".into(),
        "--host-record=plain.test,127.0.0.2".into(),
        "--dns-rr=nullmx.test,15,000000".into(),
        "--mx-host=dead.test,mx.dead.test,10".into(),
        "--host-record=mx.dead.test,127.0.0.3".into(),
    ])
}

/// A configuration relaying for loopback clients, resolving through `dns`, delivering to port
/// `mx_port`, retrying every second.
fn config(dns: &Dns, mx_port: u16, delivery: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
         [relay]\nnetworks = [\"127.0.0.0/8\"]\n\
         {}\
         [delivery]\nsmtp_port = {mx_port}\nretry_intervals = [\"1s\"]\n{delivery}\n",
        dns.config()
    )
}

fn start(dir: &Path, dns: &Dns, mx_port: u16, delivery: &str) -> Postern {
    Postern::start_in(dir, Some(&config(dns, mx_port, delivery)))
}

fn states(log: &[Value], recipient: &str) -> Vec<String> {
    log.iter()
        .filter(|r| r["recipient"] == recipient)
        .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn has_state(log: &[Value], recipient: &str, state: &str) -> bool {
    states(log, recipient).iter().any(|s| s == state)
}

/// The first track record of `recipient` in `state`.
fn record<'a>(log: &'a [Value], recipient: &str, state: &str) -> &'a Value {
    log.iter()
        .find(|r| r["recipient"] == recipient && r["state"] == state)
        .unwrap_or_else(|| panic!("no {state} record of {recipient}: {log:?}"))
}

/// A fresh folder whose registry holds one binding (`postern binding add ARGS`).
fn folder_with_binding(args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    bind(dir.path(), args);
    dir
}

/// alice@localhost sends a short message to `to`; the server must accept it.
fn send_from_alice(server: &Postern, to: &[&str]) {
    let reply = server
        .client()
        .send_message("alice@localhost", to, "Subject: test\r\n\r\nx\r\n");
    assert_eq!(reply.code, 250, "{reply:?}");
}

#[test]
fn relays_to_the_mx_of_the_domain_and_tracks_the_reply() {
    let dns = dns();
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, mx.port, "");
    let mut c = server.client();
    let reply = c.send_message(
        "alice@localhost",
        &["bob@remote.test", "carol@plain.test"],
        "Subject: out\r\n\r\nto the world\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    // One transaction per next hop: remote.test by its MX, plain.test by its A record.
    let got = mx.wait_for(2);
    let mut rcpts: Vec<String> = got
        .iter()
        .flat_map(|(env, _)| env["to"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["bob@remote.test", "carol@plain.test"]);
    for (env, content) in &got {
        assert_eq!(env["from"], "alice@localhost");
        assert_eq!(env["helo"], "mx.test");
        assert!(content.contains("to the world"), "{content}");
        assert!(content.contains("Received: from"), "{content}");
    }
    let data = dir.path().join("data");
    let log = wait_track(&data, "both delivered", |log| {
        has_state(log, "bob@remote.test", "delivered")
            && has_state(log, "carol@plain.test", "delivered")
    });
    let bob = record(&log, "bob@remote.test", "delivered");
    assert_eq!(bob["next_hop"], "mx:remote.test");
    assert!(
        bob["reply"]
            .as_str()
            .unwrap()
            .starts_with("250 2.0.0 accepted"),
        "{bob}"
    );
    assert!(has_state(&log, "bob@remote.test", "routed"));
}

#[test]
fn a_connection_is_reused_for_the_next_message_to_the_same_host() {
    let dns = dns();
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, mx.port, "idle_connection_time = \"20s\"");
    for i in 0..3 {
        let mut c = server.client();
        let reply = c.send_message(
            "alice@localhost",
            &["bob@remote.test"],
            &format!("Subject: {i}\r\n\r\nmessage {i}\r\n"),
        );
        assert_eq!(reply.code, 250);
        // Each message is delivered before the next is sent, so each finds the idle connection.
        mx.wait_for(i + 1);
    }
    let commands = mx.commands();
    let ehlo = commands.lines().filter(|l| l.starts_with("EHLO")).count();
    let mail = commands.lines().filter(|l| l.starts_with("MAIL")).count();
    assert_eq!((ehlo, mail), (1, 3), "{commands}");
}

#[test]
fn a_temporary_failure_is_retried_until_delivered() {
    let dns = dns();
    let mx = Mx::start("127.0.0.2", r#"{"data_fail_first": "451 4.3.0 not now"}"#);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, mx.port, "");
    send_from_alice(&server, &["bob@remote.test"]);
    mx.wait_for(1);
    let log = wait_track(
        &dir.path().join("data"),
        "delivered after a deferral",
        |log| has_state(log, "bob@remote.test", "delivered"),
    );
    let bob = states(&log, "bob@remote.test");
    let deferred = bob
        .iter()
        .position(|s| s == "deferred")
        .expect("deferred first");
    let delivered = bob.iter().position(|s| s == "delivered").unwrap();
    assert!(deferred < delivered, "{bob:?}");
    let reason = record(&log, "bob@remote.test", "deferred");
    assert!(
        reason["reply"]
            .as_str()
            .unwrap()
            .starts_with("451 4.3.0 not now"),
        "{reason}"
    );
    // The message-level deferral says when the next attempt is due.
    assert!(
        log.iter()
            .any(|r| r["state"] == "deferred" && r["next_attempt"].is_string())
    );
}

#[test]
fn a_permanent_failure_returns_a_dsn_to_the_local_sender() {
    let dns = dns();
    let mx = Mx::start(
        "127.0.0.2",
        r#"{"rcpt": {"nobody@remote.test": "550 5.1.1 <nobody@remote.test>: no such user"}}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, mx.port, "");
    let reply = server.client().send_message(
        "alice@localhost",
        &["nobody@remote.test", "bob@remote.test"],
        "Subject: partly\r\nMessage-ID: <orig@localhost>\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250);
    // bob gets the message, nobody bounces: the DSN reaches alice's mailbox.
    mx.wait_for(1);
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(dsn.contains("multipart/report"), "{dsn}");
    assert!(
        dsn.contains("report-type=delivery-status")
            || dsn.contains("report-type=\"delivery-status\""),
        "{dsn}"
    );
    assert!(dsn.contains("MAILER-DAEMON@mx.test"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@remote.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(
        dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: no such user"),
        "{dsn}"
    );
    assert!(
        !dsn.contains("Final-Recipient: rfc822; bob@remote.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Return-Path: <>"), "{dsn}");
    let log = track_log(&dir.path().join("data"));
    assert!(has_state(&log, "nobody@remote.test", "bounced"));
    assert!(log.iter().any(|r| r["state"] == "dsn-sent"));
}

#[test]
fn a_null_mx_fails_at_once_with_556() {
    let dns = dns();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, free_port(), "");
    send_from_alice(&server, &["x@nullmx.test"]);
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(dsn.contains("Status: 5.1.10"), "{dsn}");
    assert!(dsn.contains("556 5.1.10"), "{dsn}");
    let log = track_log(&dir.path().join("data"));
    assert!(!has_state(&log, "x@nullmx.test", "deferred"), "{log:?}");
}

#[test]
fn a_dead_host_is_retried_then_expires_with_a_dsn() {
    let dns = dns();
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &dns,
        free_port(),
        "max_age = \"3s\"\ndelay_warning = \"0\"",
    );
    send_from_alice(&server, &["x@dead.test"]);
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("x@dead.test"), "{dsn}");
    let log = track_log(&dir.path().join("data"));
    let x = states(&log, "x@dead.test");
    assert!(x.iter().filter(|s| *s == "deferred").count() >= 2, "{x:?}");
    assert_eq!(x.last().map(String::as_str), Some("expired"), "{x:?}");
    let deferred = record(&log, "x@dead.test", "deferred");
    assert!(
        deferred["reply"].as_str().unwrap().contains("127.0.0.3"),
        "the reason names the host: {deferred}"
    );
}

#[test]
fn a_delay_dsn_is_sent_once_after_delay_warning() {
    let dns = dns();
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &dns,
        free_port(),
        "delay_warning = \"1s\"\nmax_age = \"1h\"",
    );
    send_from_alice(&server, &["x@dead.test"]);
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(dsn.contains("Action: delayed"), "{dsn}");
    assert!(dsn.contains("Will-Retry-Until:"), "{dsn}");
    // Later attempts send no second delay DSN.
    let data = dir.path().join("data");
    wait_track(&data, "two more deferrals", |log| {
        states(log, "x@dead.test")
            .iter()
            .filter(|s| *s == "deferred")
            .count()
            >= 4
    });
    assert_eq!(server.wait_for_mail("localhost", "alice", 1).len(), 1);
}

#[test]
fn notify_never_and_the_null_sender_get_no_dsn() {
    let dns = dns();
    let mx = Mx::start(
        "127.0.0.2",
        r#"{"rcpt": {"nobody@remote.test": "550 5.1.1 no"}}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, mx.port, "");
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@localhost>", 250);
    c.expect("RCPT TO:<nobody@remote.test> NOTIFY=NEVER", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: never\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    // From the null sender (a bounce): no DSN, and the message goes to badmail.
    c.expect("MAIL FROM:<>", 250);
    c.expect("RCPT TO:<nobody@remote.test>", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: bounce\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    let data = dir.path().join("data");
    let log = wait_track(&data, "both bounced", |log| {
        states(log, "nobody@remote.test")
            .iter()
            .filter(|s| *s == "bounced")
            .count()
            == 2
            && log.iter().any(|r| r["state"] == "badmail")
    });
    assert!(!log.iter().any(|r| r["state"] == "dsn-sent"), "{log:?}");
    assert!(common::read_all(&server.new_mail("localhost", "alice")).is_empty());
    let badmail: Vec<_> = std::fs::read_dir(data.join("badmail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(badmail.iter().any(|n| n.ends_with(".eml")), "{badmail:?}");
    assert!(
        badmail.iter().any(|n| n.ends_with(".envelope")),
        "{badmail:?}"
    );
}

#[test]
fn an_outbound_sink_adds_a_command_after_mail_from() {
    let dns = dns();
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = folder_with_binding(&[
        "--name",
        "noop-after-mail",
        "--event",
        "outbound:message-start",
        "--sink",
        "builtin:command",
        "--prop",
        "append=NOOP from-a-sink",
    ]);
    let server = start(dir.path(), &dns, mx.port, "");
    send_from_alice(&server, &["bob@remote.test"]);
    mx.wait_for(1);
    let commands = mx.commands();
    let lines: Vec<&str> = commands.lines().collect();
    let mail = lines.iter().position(|l| l.starts_with("MAIL")).unwrap();
    assert_eq!(lines.get(mail + 1), Some(&"NOOP from-a-sink"), "{commands}");
}

#[test]
fn a_response_sink_turns_a_permanent_failure_into_a_retry() {
    let dns = dns();
    let mx = Mx::start(
        "127.0.0.2",
        r#"{"rcpt": {"nobody@remote.test": "550 5.1.1 no"}}"#,
    );
    let dir = folder_with_binding(&[
        "--name",
        "soften",
        "--event",
        "response",
        "--sink",
        "builtin:reply",
        "--prop",
        "code=451",
        "--prop",
        "text=later",
        "--rule",
        "REPLY=5*",
    ]);
    let server = start(dir.path(), &dns, mx.port, "");
    send_from_alice(&server, &["nobody@remote.test"]);
    let data = dir.path().join("data");
    let log = wait_track(&data, "two deferrals", |log| {
        states(log, "nobody@remote.test")
            .iter()
            .filter(|s| *s == "deferred")
            .count()
            >= 2
    });
    assert!(!has_state(&log, "nobody@remote.test", "bounced"), "{log:?}");
    let deferred = record(&log, "nobody@remote.test", "deferred");
    assert!(
        deferred["reply"].as_str().unwrap().starts_with("451"),
        "{deferred}"
    );
    assert!(
        deferred["reply"].as_str().unwrap().contains("later"),
        "{deferred}"
    );
}

#[test]
fn a_dns_resolve_sink_supplies_the_host() {
    let dns = dns();
    let mx = Mx::start("127.0.0.2", "{}");
    // nowhere.test does not exist in DNS: only the sink knows where its mail goes.
    let dir = folder_with_binding(&[
        "--name",
        "static-host",
        "--priority",
        "high",
        "--event",
        "dns-resolve",
        "--sink",
        "builtin:hosts",
        "--prop",
        &format!("hosts=127.0.0.2:{}", mx.port),
        "--rule",
        "RCPT TO=*@nowhere.test",
    ]);
    let server = start(dir.path(), &dns, free_port(), "");
    send_from_alice(&server, &["x@nowhere.test"]);
    let got = mx.wait_for(1);
    assert_eq!(got[0].0["to"][0], "x@nowhere.test");
}

#[test]
fn a_remote_that_sends_garbage_is_a_deferral_with_a_reason() {
    use std::io::{Read, Write};
    let dns = dns();
    // A server on 127.0.0.2 that answers the greeting with garbage, then a line over 512
    // octets, then closes.
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { return };
            let _ = match n % 2 {
                0 => s.write_all(b"HELLO THERE\r\n"),
                _ => s.write_all(format!("220-{}\r\n", "x".repeat(600)).as_bytes()),
            };
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, port, "");
    send_from_alice(&server, &["bob@remote.test"]);
    let log = wait_track(&dir.path().join("data"), "two deferrals", |log| {
        states(log, "bob@remote.test")
            .iter()
            .filter(|s| *s == "deferred")
            .count()
            >= 2
    });
    let reasons: Vec<&str> = log
        .iter()
        .filter(|r| r["recipient"] == "bob@remote.test" && r["state"] == "deferred")
        .map(|r| r["reply"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("malformed reply")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("longer than 512")),
        "{reasons:?}"
    );
    // The server is still up and takes mail.
    assert_eq!(
        server
            .client()
            .send_message(
                "alice@localhost",
                &["bob@localhost"],
                "Subject: s\r\n\r\nx\r\n"
            )
            .code,
        250
    );
    server.wait_for_mail("localhost", "bob", 1);
}

/// A route to `secure.test` through the smarthost `mx.secure.test` (127.0.0.2) with a TLS
/// policy, plus the shared test configuration.
fn tls_config(dns: &Dns, mx_port: u16, policy: &str) -> String {
    format!(
        "{}[[route]]\ndomain = \"secure.test\"\nsmarthost = \"mx.secure.test:{mx_port}\"\n{policy}\n",
        config(dns, mx_port, "")
    )
}

fn tls_dns() -> Dns {
    Dns::start(&["--host-record=mx.secure.test,127.0.0.2".into()])
}

#[test]
fn starttls_is_used_when_the_next_hop_offers_it() {
    let dns = dns();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = common::peers::certificate(certs.path(), "mx1.remote.test");
    let mx = Mx::start_with_tls("127.0.0.2", "{}", Some((&cert, &key)));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &dns, mx.port, "");
    send_from_alice(&server, &["bob@remote.test"]);
    mx.wait_for(1);
    // Opportunistic: the self-signed certificate is not checked, the session is encrypted.
    let commands = mx.commands();
    assert!(
        commands.lines().any(|l| l == "EHLO mx.test tls"),
        "{commands}"
    );
}

#[test]
fn required_tls_verifies_the_certificate_against_the_routes_ca_file() {
    let dns = tls_dns();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, ca) = common::peers::certificate(certs.path(), "mx.secure.test");
    let mx = Mx::start_with_tls("127.0.0.2", "{}", Some((&cert, &key)));
    let dir = tempfile::tempdir().unwrap();
    let policy = format!(
        "tls = \"required\"\nca_file = {:?}",
        ca.display().to_string()
    );
    let server = Postern::start_in(dir.path(), Some(&tls_config(&dns, mx.port, &policy)));
    send_from_alice(&server, &["bob@secure.test"]);
    mx.wait_for(1);
    assert!(mx.commands().lines().any(|l| l == "EHLO mx.test tls"));
}

#[test]
fn required_tls_defers_rather_than_send_in_clear_text() {
    let dns = tls_dns();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = common::peers::certificate(certs.path(), "mx.secure.test");
    // One next hop offers no STARTTLS; the other offers it with a certificate nobody trusts.
    let plain = Mx::start("127.0.0.2", "{}");
    let untrusted = Mx::start_with_tls("127.0.0.2", "{}", Some((&cert, &key)));
    for (mx, want) in [
        (&plain, "does not offer STARTTLS"),
        (&untrusted, "TLS handshake failed"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = Postern::start_in(
            dir.path(),
            Some(&tls_config(&dns, mx.port, "tls = \"required\"")),
        );
        let reply = server.client().send_message(
            "alice@localhost",
            &["bob@secure.test"],
            "Subject: s\r\n\r\nx\r\n",
        );
        assert_eq!(reply.code, 250);
        let log = wait_track(&dir.path().join("data"), "a deferral", |log| {
            has_state(log, "bob@secure.test", "deferred")
        });
        let deferred = record(&log, "bob@secure.test", "deferred");
        let reason = deferred["reply"].as_str().unwrap();
        assert!(
            reason.contains("4.7.5") && reason.contains(want),
            "{reason}"
        );
        assert!(mx.received().is_empty(), "nothing went in clear text");
    }
}

#[test]
fn a_local_delivery_that_keeps_failing_expires_with_a_dsn() {
    let dns = dns();
    // bob's mailbox cannot be written: every store of his fails temporarily.
    let dir = folder_with_binding(&[
        "--name",
        "broken-store",
        "--event",
        "store",
        "--sink",
        "builtin:fault",
        "--prop",
        "mode=error",
        "--rule",
        "RCPT TO=bob@localhost",
    ]);
    let server = start(
        dir.path(),
        &dns,
        free_port(),
        "max_age = \"3s\"\ndelay_warning = \"0\"",
    );
    send_from_alice(&server, &["bob@localhost"]);
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(
        dsn.contains("Final-Recipient: rfc822; bob@localhost"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    let log = track_log(&dir.path().join("data"));
    let bob = states(&log, "bob@localhost");
    assert!(
        bob.iter().filter(|s| *s == "deferred").count() >= 2,
        "{bob:?}"
    );
    assert_eq!(bob.last().map(String::as_str), Some("expired"), "{bob:?}");
    let deferred = record(&log, "bob@localhost", "deferred");
    assert_eq!(deferred["binding"], "broken-store", "{deferred}");
}
