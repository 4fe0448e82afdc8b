//! The hold-queue recipe of docs/cookbook.md, run as written (read from the file by
//! `common::cookbook`) against a running server.

mod common;

use common::Postern;
use common::cookbook::{recipe, run_commands, wait_registry_loads};
use common::peers::wait_track;
use std::time::{SystemTime, UNIX_EPOCH};

#[test]
fn recipe_hold_queue() {
    let blocks = recipe("Hold queue");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Postern::start_in(dir.path(), None);
    let commands = run_commands(&blocks, dir.path());
    wait_registry_loads(&server, commands);

    let send = |from: &str, to: &str| {
        let reply = server
            .client()
            .send_message(from, &[to], "Subject: recipe\r\n\r\nx\r\n");
        assert_eq!(reply.code, 250, "{reply:?}");
    };
    // Whether 22:00-06:00 UTC is open now decides what the bulk message does.
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % 1440;
    let night = !(6 * 60..22 * 60).contains(&minute);
    send("alice@example.org", "newsletter@localhost");
    send("news@bulk.example", "bob@localhost");
    send("alice@example.org", "carol@localhost");

    server.wait_for_mail("localhost", "carol", 1);
    wait_track(&data, "the newsletter post held", |log| {
        log.iter().any(|r| r["state"] == "held")
    });
    assert!(
        server
            .new_mail("localhost", "newsletter")
            .read_dir()
            .is_err()
    );
    if night {
        server.wait_for_mail("localhost", "bob", 1);
    } else {
        let log = wait_track(&data, "the bulk message deferred", |log| {
            log.iter()
                .any(|r| r["recipient"] == "bob@localhost" && r["state"] == "deferred")
        });
        let record = log
            .iter()
            .find(|r| r["recipient"] == "bob@localhost" && r["state"] == "deferred")
            .unwrap();
        assert_eq!(
            record["reply"], "451 4.3.2 held for the delivery window 22:00-06:00 UTC",
            "{record}"
        );
        // The message's own record says when it is tried next: at the opening.
        let log = wait_track(&data, "the next attempt", |log| {
            log.iter()
                .any(|r| r["state"] == "deferred" && r["next_attempt"].is_string())
        });
        let next = log
            .iter()
            .find_map(|r| r["next_attempt"].as_str())
            .unwrap_or_default();
        assert!(
            next.contains("T22:00:00"),
            "next attempt at the opening: {log:?}"
        );
        assert!(server.new_mail("localhost", "bob").read_dir().is_err());
    }
}
