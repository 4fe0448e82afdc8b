//! The "Pickup folder" recipe of docs/cookbook.md: its `postern` command run as written against
//! a running server, then the file of the recipe's `printf` written and renamed in as its `mv`
//! does.

mod common;

use std::time::{Duration, Instant};

use common::Postern;
use common::cookbook as recipe;

#[test]
fn a_report_renamed_into_pickup_reaches_both_mailboxes_marked_and_without_bcc() {
    let server = Postern::start();
    let commands = recipe::commands("Pickup folder");
    recipe::run(&server.dir, &commands);
    server.wait_for_log(&format!("bindings={}", commands.len()));

    let pickup = server.dir.join("data").join("pickup");
    let tmp = pickup.join(".report.tmp");
    std::fs::write(
        &tmp,
        "From: alice@localhost\nTo: bob@localhost\nBcc: audit@localhost\nSubject: nightly report\n\nAll good.\n",
    )
    .unwrap();
    std::fs::rename(&tmp, pickup.join("report.eml")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while pickup.join("report.eml").exists() {
        assert!(
            Instant::now() < deadline,
            "not picked up:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for user in ["bob", "audit"] {
        let mail = server.wait_for_mail("localhost", user, 1);
        assert!(mail[0].contains("X-Submitted-Id: "), "{}", mail[0]);
        assert!(!mail[0].contains("Bcc:"), "{}", mail[0]);
        assert!(mail[0].contains("\r\n\r\nAll good.\r\n"), "{}", mail[0]);
    }
}
