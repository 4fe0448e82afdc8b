//! Abuse limits against the real binary: early talkers, message and recipient rates.

mod common;

use common::{Client, Postern};

#[test]
fn a_client_talking_before_the_delayed_greeting_gets_554_and_is_closed() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
         [limits]\ngreeting_delay = \"300ms\"\n",
    ));
    let mut eager = Client::connect(server.addr);
    eager.send("EHLO eager.test");
    let reply = eager.read_reply();
    assert_eq!(reply.code, 554, "{reply:?}");
    assert!(eager.closed());
    // A client that waits is greeted as usual.
    let mut patient = server.client();
    patient.expect("EHLO patient.test", 250);
    server.wait_for_log("client talked before the greeting");
}

#[test]
fn message_and_recipient_rates_per_address_answer_450() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
         [limits]\nmessage_rate_per_ip = 2\nrecipient_rate_per_ip = 3\n",
    ));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@example.org>", 250);
    for rcpt in ["a", "b", "c"] {
        c.expect(&format!("RCPT TO:<{rcpt}@localhost>"), 250);
    }
    let reply = c.expect("RCPT TO:<d@localhost>", 450);
    assert!(reply.text().starts_with("4.7.1"), "{reply:?}");
    c.expect("RSET", 250);
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RSET", 250);
    // A new connection from the same address does not start afresh.
    let mut d = server.client();
    d.expect("EHLO client.test", 250);
    d.expect("MAIL FROM:<a@example.org>", 450);
}
