//! The routing recipes of docs/cookbook.md, run as written (read from the file by
//! `common::cookbook`) against a running server, with only the peers' ports replaced by the
//! real ones.

mod common;

use common::Postern;
use common::cookbook::{recipe, run_commands, toml_block, wait_registry_loads};
use common::peers::{Mx, wait_track};

const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1:0\"\n\
    [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
    [relay]\nnetworks = [\"127.0.0.0/8\"]\n";

fn has_state(log: &[serde_json::Value], recipient: &str, state: &str) -> bool {
    log.iter()
        .any(|r| r["recipient"] == recipient && r["state"] == state)
}

#[test]
fn recipe_lmtp_delivery_to_a_mail_store() {
    let blocks = recipe("LMTP delivery to a mail store");
    let store = Mx::start_lmtp(
        "127.0.0.1",
        r#"{"lmtp_data": {"full@store.example": "552 5.2.2 mailbox full"}}"#,
        None,
    );
    let route = toml_block(
        &blocks,
        "# postern.toml",
        &[("127.0.0.1:24\"", format!("127.0.0.1:{}\"", store.port))],
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Postern::start_in(dir.path(), Some(&format!("{LISTENER}{route}")));
    let reply = server.client().send_message(
        "alice@localhost",
        &["bob@store.example", "full@store.example"],
        "Subject: recipe\r\n\r\nfor the store\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = store.wait_for(1);
    assert_eq!(got[0].0["to"], serde_json::json!(["bob@store.example"]));
    assert!(
        store.commands().starts_with("LHLO "),
        "{}",
        store.commands()
    );
    wait_track(
        &dir.path().join("data"),
        "bob delivered, full bounced",
        |log| {
            has_state(log, "bob@store.example", "delivered")
                && has_state(log, "full@store.example", "bounced")
        },
    );
    let dsn = &server.wait_for_mail("localhost", "alice", 1)[0];
    assert!(dsn.contains("552 5.2.2 mailbox full"), "{dsn}");
}

#[test]
fn recipe_route_table() {
    let blocks = recipe("Route table");
    let eu = Mx::start("127.0.0.1", "{}");
    let audit = Mx::start("127.0.0.1", "{}");
    let table = toml_block(
        &blocks,
        "# DATA/routes.toml",
        &[
            ("127.0.0.1:2525", format!("127.0.0.1:{}", eu.port)),
            ("127.0.0.1:2526", format!("127.0.0.1:{}", audit.port)),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("routes.toml"), table).unwrap();
    let server = Postern::start_in(dir.path(), Some(LISTENER));
    let commands = run_commands(&blocks, dir.path());
    wait_registry_loads(&server, commands);

    let send = |to: &[&str], headers: &str| {
        let body = format!("{headers}Subject: recipe\r\n\r\nrouted\r\n");
        let reply = server.client().send_message("alice@localhost", to, &body);
        assert_eq!(reply.code, 250, "{reply:?}");
    };
    send(&["anna@eu.example", "noreply@eu.example"], "");
    send(&["carl@kept.example"], "");
    send(&["dora@elsewhere.test"], "X-Route: audit-2026\r\n");

    let eu_got = eu.wait_for(1);
    assert_eq!(eu_got[0].0["to"], serde_json::json!(["anna@eu.example"]));
    let audit_got = audit.wait_for(1);
    assert_eq!(
        audit_got[0].0["to"],
        serde_json::json!(["dora@elsewhere.test"])
    );
    server.wait_for_mail("kept.example", "carl", 1);
    // The dropped recipient got nothing, and its sender no bounce.
    assert!(server.new_mail("localhost", "alice").read_dir().is_err());
    assert!(!eu.commands().contains("noreply"), "{}", eu.commands());
}
