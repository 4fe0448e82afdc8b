//! Delivery to an LMTP store (RFC 2033) end to end: the real binary hands mail to aiosmtpd's
//! LMTP server (tests/peers/mx.py --lmtp), over TCP through a configured route and over a Unix
//! socket chosen by a sink at `route`; each recipient gets the store's own reply after DATA.

mod common;

use common::peers::{Mx, wait_track};
use common::{Postern, bind};
use serde_json::Value;
use std::path::Path;

/// The store's script: `refused@store.test` is refused after DATA, everybody else stored.
const REFUSES_ONE: &str =
    r#"{"lmtp_data": {"refused@store.test": "550 5.2.1 <refused@store.test>: mailbox disabled"}}"#;

fn config(route: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
         [relay]\nnetworks = [\"127.0.0.0/8\"]\n\
         {route}\
         [delivery]\nretry_intervals = [\"1s\"]\n"
    )
}

fn has_state(log: &[Value], recipient: &str, state: &str) -> bool {
    log.iter()
        .any(|r| r["recipient"] == recipient && r["state"] == state)
}

/// Sends one message from alice@localhost to a stored and a refused recipient, then checks:
/// the store got the message for `kept` only, `kept` is delivered with the store's reply, and
/// alice's DSN names `refused` with the store's own 550.
fn one_delivered_one_bounced(server: &Postern, data: &Path, store: &Mx, next_hop: &str) {
    let reply = server.client().send_message(
        "alice@localhost",
        &["kept@store.test", "refused@store.test"],
        "Subject: to the store\r\n\r\nper-recipient replies\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = store.wait_for(1);
    assert_eq!(got[0].0["to"], serde_json::json!(["kept@store.test"]));
    assert!(got[0].1.contains("per-recipient replies"), "{}", got[0].1);
    let commands = store.commands();
    assert!(commands.starts_with("LHLO mx.test\n"), "{commands}");
    assert!(
        commands.contains("RCPT refused@store.test"),
        "both recipients in one transaction: {commands}"
    );
    assert_eq!(commands.matches("DATA").count(), 1, "{commands}");

    let log = wait_track(data, "kept delivered, refused bounced", |log| {
        has_state(log, "kept@store.test", "delivered")
            && has_state(log, "refused@store.test", "bounced")
    });
    let kept = log
        .iter()
        .find(|r| r["recipient"] == "kept@store.test" && r["state"] == "delivered")
        .unwrap();
    assert_eq!(kept["next_hop"], next_hop, "{kept}");
    assert!(
        kept["reply"]
            .as_str()
            .unwrap()
            .starts_with("250 2.0.0 accepted"),
        "{kept}"
    );
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(
        dsn.contains("Final-Recipient: rfc822; refused@store.test"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Diagnostic-Code: smtp; 550 5.2.1 <refused@store.test>: mailbox disabled"),
        "{dsn}"
    );
    assert!(
        !dsn.contains("Final-Recipient: rfc822; kept@store.test"),
        "{dsn}"
    );
}

#[test]
fn a_route_to_an_lmtp_store_over_tcp_gives_each_recipient_its_own_reply() {
    let store = Mx::start_lmtp("127.0.0.1", REFUSES_ONE, None);
    let hop = format!("lmtp:127.0.0.1:{}", store.port);
    let route = format!("[[route]]\ndomain = \"store.test\"\nsmarthost = \"{hop}\"\n");
    let dir = tempfile::tempdir().unwrap();
    let server = Postern::start_in(dir.path(), Some(&config(&route)));
    one_delivered_one_bounced(&server, &dir.path().join("data"), &store, &hop);
}

#[test]
fn a_sink_at_route_sends_recipients_to_an_lmtp_store_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The socket lies in DATA, so the relative `lmtp:unix:lmtp.sock` finds it.
    let store = Mx::start_lmtp("127.0.0.1", REFUSES_ONE, Some(&data.join("lmtp.sock")));
    std::fs::write(
        data.join("to-store.rhai"),
        "fn on_event(ctx) {\n    if ctx.recipient.ends_with(\"@store.test\") {\n        \
         set_next_hop(\"lmtp:unix:lmtp.sock\");\n    }\n    next()\n}\n",
    )
    .unwrap();
    bind(
        dir.path(),
        &["--event", "route", "--sink", "script:to-store.rhai"],
    );
    let server = Postern::start_in(dir.path(), Some(&config("")));
    one_delivered_one_bounced(&server, &data, &store, "lmtp:unix:lmtp.sock");
}

#[test]
fn a_store_that_is_down_defers_and_delivery_resumes_when_it_is_back() {
    // Nothing listens on the socket at first: the recipient waits in the queue.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let route = "[[route]]\ndomain = \"store.test\"\nsmarthost = \"lmtp:unix:lmtp.sock\"\n";
    let server = Postern::start_in(dir.path(), Some(&config(route)));
    let reply = server.client().send_message(
        "alice@localhost",
        &["kept@store.test"],
        "Subject: later\r\n\r\nx\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    wait_track(&data, "kept deferred", |log| {
        has_state(log, "kept@store.test", "deferred")
    });
    let store = Mx::start_lmtp("127.0.0.1", "{}", Some(&data.join("lmtp.sock")));
    store.wait_for(1);
    wait_track(&data, "kept delivered", |log| {
        has_state(log, "kept@store.test", "delivered")
    });
}
