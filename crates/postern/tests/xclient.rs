//! `builtin:xclient` and `builtin:xforward` over the real binary: a trusted proxy on 127.0.0.1
//! and an untrusted client bound to 127.0.0.2; EHLO advertises the commands to the trusted one
//! only; after XCLIENT a rule on `REMOTE` and the `Received:` field see the forwarded client;
//! XFORWARD's attributes go with the next message. The proxy side is Python's `smtplib`
//! (`docmd`) where a whole exchange is scripted, and the raw client where replies are checked
//! one by one.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{Client, Postern, bind, workdir};

const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const BODY: &str = "From: alice@example.test\r\nTo: bob@localhost\r\nSubject: hi\r\n\r\nHello.\r\n";

/// Binds each sink to its verb only, as an administrator would: the binding also advertises
/// the verb at EHLO.
fn bind_both(d: &std::path::Path) {
    {
        let event = "inbound:XCLIENT";
        bind(
            d,
            &[
                "--event",
                event,
                "--sink",
                "builtin:xclient",
                "--prop",
                "networks=127.0.0.1/32",
            ],
        );
    }
    {
        let event = "inbound:XFORWARD";
        bind(
            d,
            &[
                "--event",
                event,
                "--sink",
                "builtin:xforward",
                "--prop",
                "networks=127.0.0.1/32",
            ],
        );
    }
}

#[test]
fn ehlo_advertises_to_trusted_clients_only_and_others_are_refused() {
    let dir = workdir();
    let d = dir.path();
    bind_both(d);
    let server = Postern::start_in(d, None);

    let mut trusted = server.client();
    let ehlo = trusted.expect("EHLO proxy.test", 250).text();
    assert!(
        ehlo.contains("XCLIENT ADDR NAME PORT PROTO HELO LOGIN DESTADDR DESTPORT"),
        "{ehlo}"
    );
    assert!(
        ehlo.contains("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"),
        "{ehlo}"
    );

    let mut other = Client::connect_from(server.addr, UNTRUSTED);
    assert_eq!(other.read_reply().code, 220);
    let ehlo = other.expect("EHLO outsider.test", 250).text();
    assert!(
        !ehlo.contains("XCLIENT") && !ehlo.contains("XFORWARD"),
        "{ehlo}"
    );
    let refused = other.expect("XCLIENT ADDR=192.0.2.7", 550);
    assert_eq!(refused.text(), "5.7.0 Authorization required");
    let refused = other.expect("XFORWARD ADDR=192.0.2.7", 550);
    assert_eq!(refused.text(), "5.7.0 Authorization required");
    // Nothing changed: the untrusted client is still itself.
    other.expect("MAIL FROM:<a@example.test>", 250);
    other.expect("QUIT", 221);

    // Bad syntax from a trusted client: 501 5.5.4, and the session goes on.
    for bad in [
        "XCLIENT",
        "XCLIENT FOO=1",
        "XCLIENT ADDR",
        "XCLIENT ADDR=not-an-address",
        "XCLIENT PORT=99999",
        "XCLIENT PROTO=UUCP",
        "XCLIENT NAME=a+zz",
        "XFORWARD SOURCE=ELSEWHERE",
    ] {
        let reply = trusted.expect(bad, 501);
        assert!(reply.text().starts_with("5.5.4 "), "{bad}: {reply:?}");
    }
    // Not inside a transaction.
    trusted.expect("MAIL FROM:<a@example.test>", 250);
    let reply = trusted.expect("XCLIENT ADDR=192.0.2.7", 503);
    assert!(reply.text().starts_with("5.5.1 "), "{reply:?}");
    trusted.expect("QUIT", 221);
}

#[test]
fn after_xclient_rules_and_received_see_the_forwarded_client() {
    let dir = workdir();
    let d = dir.path();
    bind_both(d);
    // A rule on REMOTE refuses the forwarded network, which the proxy itself is not in.
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
            "REMOTE=198.51.100.0/24",
            "--prop",
            "code=550",
            "--prop",
            "enhanced=5.7.1",
            "--prop",
            "text=Forwarded client refused",
        ],
    );
    let server = Postern::start_in(d, None);

    // Forwarded from 203.0.113.9: the message goes through, and Received: names that client.
    let mut c = server.client();
    c.expect("EHLO proxy.test", 250);
    let greeting = c.expect(
        "XCLIENT ADDR=203.0.113.9 NAME=client+2Eexample PORT=4711 HELO=[UNAVAILABLE] PROTO=ESMTP",
        220,
    );
    assert!(greeting.text().contains("ESMTP Postern"), "{greeting:?}");
    // The session restarted: the client says EHLO again, and as 203.0.113.9 it is not offered
    // XCLIENT any more.
    let ehlo = c.expect("EHLO real-client.example", 250).text();
    assert!(!ehlo.contains("XCLIENT"), "{ehlo}");
    c.expect("MAIL FROM:<alice@example.test>", 250);
    c.expect("RCPT TO:<bob@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(BODY.as_bytes());
    c.send_raw(b"\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    c.expect("QUIT", 221);
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(
        mail[0].contains("Received: from real-client.example (client.example [203.0.113.9])"),
        "{}",
        mail[0]
    );

    // Forwarded from 198.51.100.20: the REMOTE rule sees it and refuses MAIL.
    let mut c = server.client();
    c.expect("EHLO proxy.test", 250);
    c.expect("XCLIENT ADDR=198.51.100.20", 220);
    c.expect("EHLO real-client.example", 250);
    let refused = c.expect("MAIL FROM:<alice@example.test>", 550);
    assert_eq!(refused.text(), "5.7.1 Forwarded client refused");
    c.expect("QUIT", 221);
    server.wait_for_log("client details replaced by a sink");
}

/// Python's smtplib speaks for the proxy: XFORWARD before MAIL, then one message.
#[test]
fn xforward_attributes_go_with_the_next_message() {
    let dir = workdir();
    let d = dir.path();
    bind_both(d);
    let server = Postern::start_in(d, None);
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
code, text = s.ehlo("proxy.test")
assert s.has_extn("xforward"), text
code, text = s.docmd("XFORWARD", "ADDR=IPV6:2001:db8::5 NAME=orig+2Eexample HELO=orig-helo.example PROTO=SMTP SOURCE=REMOTE")
assert code == 250, (code, text)
code, text = s.docmd("XFORWARD", "IDENT=[UNAVAILABLE] PORT=25")
assert code == 250, (code, text)
s.sendmail("alice@example.test", ["bob@localhost"], {body:?})
s.sendmail("alice@example.test", ["bob@localhost"], {body:?})
s.quit()
"#,
        port = server.addr.port(),
        body = BODY,
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut mail = server.wait_for_mail("localhost", "bob", 2);
    mail.sort_by_key(|m| !m.contains("orig-helo"));
    assert!(
        mail[0].contains("Received: from orig-helo.example (orig.example [IPv6:2001:db8::5]) by")
            && mail[0].contains("with SMTP id"),
        "{}",
        mail[0]
    );
    // The second message came after the transaction ended: the proxy's own details.
    assert!(
        mail[1].contains("Received: from proxy.test ([127.0.0.1])"),
        "{}",
        mail[1]
    );
}

#[test]
fn bad_networks_and_other_events_are_refused_when_bound() {
    let dir = workdir();
    let d = dir.path();
    let (code, _, err) = common::binding(
        d,
        &[
            "add",
            "--event",
            "inbound:XCLIENT",
            "--sink",
            "builtin:xclient",
            "--prop",
            "networks=not-a-net",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("property `networks`") && err.contains("not-a-net"),
        "{err}"
    );
    let (code, _, err) = common::binding(
        d,
        &[
            "add",
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:xforward",
            "--prop",
            "networks=127.0.0.1",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not fit"), "{err}");
}

/// Bound at EHLO as well as at its verb (two bindings), the sink still advertises once.
#[test]
fn a_second_binding_at_ehlo_does_not_advertise_twice() {
    let dir = workdir();
    let d = dir.path();
    for event in ["inbound:EHLO", "inbound:XCLIENT"] {
        bind(
            d,
            &[
                "--event",
                event,
                "--sink",
                "builtin:xclient",
                "--prop",
                "networks=127.0.0.1/32",
            ],
        );
    }
    let server = Postern::start_in(d, None);
    let mut c = server.client();
    let ehlo = c.expect("EHLO proxy.test", 250);
    let lines = ehlo
        .lines
        .iter()
        .filter(|l| l.starts_with("XCLIENT "))
        .count();
    assert_eq!(lines, 1, "{ehlo:?}");
    c.expect("QUIT", 221);
}
