//! `builtin:hold-queue` end to end: a message held for approval stays in the queue untouched,
//! and one held for a delivery window is deferred to the window's opening — the scheduler
//! wakes it then, with no task waiting for it — while a window that is open lets mail through.

mod common;

use common::peers::wait_track;
use common::{Postern, bind};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn has_state(log: &[serde_json::Value], recipient: &str, state: &str) -> bool {
    log.iter()
        .any(|r| r["recipient"] == recipient && r["state"] == state)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `HH:MM` of the minute `minutes` after the current UTC minute.
fn clock(minutes: u64) -> String {
    let m = (now_s() / 60 + minutes) % 1440;
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Sends a message to `to`; returns its queue id (the last word of the 250 reply).
fn send(server: &Postern, to: &str) -> String {
    let reply =
        server
            .client()
            .send_message("alice@example.org", &[to], "Subject: hold\r\n\r\nx\r\n");
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.queue_id()
}

/// `postern queue VERB ID` against the running server, which must succeed.
fn queue(dir: &Path, verb: &str, id: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["queue", verb, id, "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .expect("run postern");
    assert!(
        out.status.success(),
        "queue {verb} {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hold_binding(dir: &Path, prop: &str, rcpt: &str) {
    let rule = format!("RCPT TO={rcpt}");
    let mut args = vec!["--event", "post-categorize", "--sink", "builtin:hold-queue"];
    for p in prop.split(' ') {
        args.extend(["--prop", p]);
    }
    args.extend(["--rule", &rule]);
    bind(dir, &args);
}

#[test]
fn a_message_held_for_approval_is_delivered_once_released_and_not_held_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    hold_binding(dir.path(), "mode=approval", "held@localhost");
    let server = Postern::start_in(dir.path(), None);
    let id = send(&server, "held@localhost");
    let data = dir.path().join("data");
    wait_track(&data, "held", |log| {
        log.iter().any(|r| r["state"] == "held")
    });
    assert!(server.new_mail("localhost", "held").read_dir().is_err());
    queue(dir.path(), "release", &id);
    server.wait_for_mail("localhost", "held", 1);
}

#[test]
fn a_message_waiting_for_its_window_goes_at_once_when_retried_by_an_administrator() {
    goes_at_once_when("retry");
}

#[test]
fn a_message_waiting_for_its_window_goes_at_once_when_released_by_an_administrator() {
    goes_at_once_when("release");
}

/// A message waiting for its window, brought back by `postern queue VERB ID`.
fn goes_at_once_when(verb: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // Opens in two hours: only the administrator can bring the message back before.
    let window = format!("window={}-{} timezone=UTC", clock(120), clock(180));
    hold_binding(dir.path(), &window, "later@localhost");
    let server = Postern::start_in(dir.path(), None);
    let id = send(&server, "later@localhost");
    let data = dir.path().join("data");
    // The message's own record (no recipient) comes once the queue has it deferred.
    wait_track(&data, "deferred to the window", |log| {
        has_state(log, "later@localhost", "deferred")
            && log
                .iter()
                .any(|r| r["state"] == "deferred" && r["recipient"].is_null())
    });
    assert!(server.new_mail("localhost", "later").read_dir().is_err());
    queue(dir.path(), verb, &id);
    server.wait_for_mail("localhost", "later", 1);
}

#[test]
fn a_message_held_for_approval_stays_in_the_queue_undelivered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    bind(
        dir.path(),
        &[
            "--event",
            "post-categorize",
            "--sink",
            "builtin:hold-queue",
            "--prop",
            "mode=approval",
            "--rule",
            "RCPT TO=held@localhost",
        ],
    );
    let server = Postern::start_in(dir.path(), None);
    send(&server, "held@localhost");
    send(&server, "free@localhost");
    server.wait_for_mail("localhost", "free", 1);
    let data = dir.path().join("data");
    wait_track(&data, "the held message", |log| {
        log.iter().any(|r| r["state"] == "held")
    });
    assert!(server.new_mail("localhost", "held").read_dir().is_err());
}

#[test]
fn a_message_outside_its_window_waits_for_the_opening_and_one_inside_goes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // A window that opens at the next minute but one (so that it is surely closed when the
    // message arrives) and one that is open now.
    let opening_s = (now_s() / 60 + 2) * 60;
    let later = format!("window={}-{}", clock(2), clock(4));
    let open = format!("window={}-{}", clock(1439), clock(5));
    for (window, rcpt) in [(&later, "later@localhost"), (&open, "now@localhost")] {
        let rule = format!("RCPT TO={rcpt}");
        bind(
            dir.path(),
            &[
                "--event",
                "post-categorize",
                "--sink",
                "builtin:hold-queue",
                "--prop",
                window,
                "--prop",
                "timezone=UTC",
                "--rule",
                &rule,
            ],
        );
    }
    let server = Postern::start_in(dir.path(), None);
    send(&server, "later@localhost");
    send(&server, "now@localhost");
    server.wait_for_mail("localhost", "now", 1);
    let data = dir.path().join("data");
    let log = wait_track(&data, "later deferred", |log| {
        has_state(log, "later@localhost", "deferred")
    });
    let deferred = log
        .iter()
        .find(|r| r["recipient"] == "later@localhost" && r["state"] == "deferred")
        .unwrap();
    assert!(
        deferred["reply"]
            .as_str()
            .unwrap()
            .contains("held for the delivery window"),
        "{deferred}"
    );
    assert!(server.new_mail("localhost", "later").read_dir().is_err());
    // The scheduler wakes it at the opening (within the next two minutes).
    let deadline = Instant::now() + Duration::from_secs(200);
    while server.new_mail("localhost", "later").read_dir().is_err() {
        assert!(
            Instant::now() < deadline,
            "never delivered:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(now_s() >= opening_s, "delivered before the window opened");
}
