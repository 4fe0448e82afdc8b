//! The "Protocol extensions: XCLIENT" recipe of `docs/cookbook.md`, run as written against a
//! running server: the test reads the fenced `sh` block under the heading and runs each
//! `postern …` line, then plays the trusted proxy from 127.0.0.1 and an untrusted client from
//! 127.0.0.2.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{Client, Postern, cookbook, workdir};

#[test]
fn xclient_recipe() {
    let dir = workdir();
    let d = dir.path();
    let server = Postern::start_in(d, None);
    let listed = cookbook::run(d, &cookbook::commands("Protocol extensions: XCLIENT"));
    assert!(listed.contains("xclient"), "{listed}");

    // The running server picks the new registry up within a second: poll until EHLO lists it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut proxy = loop {
        let mut c = server.client();
        let ehlo = c.expect("EHLO proxy.test", 250).text();
        if ehlo.contains("XCLIENT ADDR NAME PORT PROTO HELO LOGIN DESTADDR DESTPORT") {
            break c;
        }
        assert!(Instant::now() < deadline, "never advertised: {ehlo}");
        c.expect("QUIT", 221);
        std::thread::sleep(Duration::from_millis(100));
    };
    let greeting = proxy.expect("XCLIENT ADDR=203.0.113.9 NAME=client.example", 220);
    assert!(greeting.text().ends_with("ESMTP Postern"), "{greeting:?}");
    let body = "From: alice@example.test\r\nTo: bob@localhost\r\nSubject: t\r\n\r\nHi.\r\n";
    let reply = proxy.send_message("alice@example.test", &["bob@localhost"], body);
    assert_eq!(reply.code, 250, "{reply:?}");
    proxy.expect("QUIT", 221);
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(
        mail[0].contains("Received: from client.test (client.example [203.0.113.9])"),
        "{}",
        mail[0]
    );

    let mut other = Client::connect_from(server.addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert_eq!(other.read_reply().code, 220);
    let ehlo = other.expect("EHLO outsider.test", 250).text();
    assert!(!ehlo.contains("XCLIENT"), "{ehlo}");
    let refused = other.expect("XCLIENT ADDR=203.0.113.9", 550);
    assert_eq!(refused.text(), "5.7.0 Authorization required");
    other.expect("QUIT", 221);
}
