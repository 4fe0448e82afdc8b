//! `postern queue list|show|retry|hold|release|delete|bounce` and `postern status`: through the
//! running server's admin API, and reading the spool when no server runs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Postern, bind, workdir};
use serde_json::Value;

/// `postern ARGS --data-dir DIR/data`; returns (exit code, stdout, stderr).
fn postern(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("run postern");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let (code, out, err) = postern(dir, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Polls `postern queue list --json ARGS` until it lists `n` messages.
fn wait_listed(dir: &Path, args: &[&str], n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut full = vec!["queue", "list", "--json"];
    full.extend_from_slice(args);
    loop {
        let listed = json(dir, &full);
        if listed["messages"].as_array().map(Vec::len) == Some(n) {
            return listed;
        }
        assert!(Instant::now() < deadline, "{args:?}: {listed}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hold_everything(dir: &Path) {
    bind(
        dir,
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:set-fate",
            "--prop",
            "fate=hold",
        ],
    );
}

fn send(server: &Postern, to: &str, subject: &str) -> String {
    let mut c = server.client();
    let reply = c.send_message(
        "alice@localhost",
        &[to],
        &format!("Subject: {subject}\r\n\r\nbody"),
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.queue_id()
}

#[test]
fn a_held_message_is_listed_and_released_then_delivered() {
    let dir = workdir();
    let d = dir.path();
    hold_everything(d);
    let server = Postern::start_in(d, None);
    let id = send(&server, "bob@localhost", "hello held");
    let listed = wait_listed(d, &["--state", "held"], 1);
    assert_eq!(listed["messages"][0]["id"], id.as_str());

    let (code, table, err) = postern(d, &["queue", "list", "--state", "held"]);
    assert_eq!(code, 0, "{err}");
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("held") && table.contains("bob@localhost"));

    let (code, shown, err) = postern(d, &["queue", "show", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains("recipient bob@localhost pending"), "{shown}");
    assert!(shown.contains("Subject: hello held"), "{shown}");

    let (code, status, err) = postern(d, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(status.contains("1 held"), "{status}");
    assert!(
        status.contains(&format!("listening admin {}", server.admin)),
        "{status}"
    );
    let status = json(d, &["status", "--json"]);
    assert_eq!(status["queue"]["held"], 1);

    let (code, out, err) = postern(d, &["queue", "release", &id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("{id} queued"));
    server.wait_for_mail("localhost", "bob", 1);
    wait_listed(d, &[], 0);
}

#[test]
fn delete_by_filter_with_yes_and_refusal_without_a_terminal() {
    let dir = workdir();
    let d = dir.path();
    hold_everything(d);
    let server = Postern::start_in(d, None);
    let keep = send(&server, "bob@localhost", "stays");
    // Two messages to another mailbox.
    let mut c = server.client();
    for subject in ["one", "two"] {
        let reply = c.send_message(
            "alice@localhost",
            &["carol@localhost"],
            &format!("Subject: {subject}\r\n\r\nx"),
        );
        assert_eq!(reply.code, 250);
    }
    wait_listed(d, &[], 3);
    wait_listed(d, &["--recipient", "carol"], 2);

    // Without --yes and without a terminal: nothing is done.
    let (code, _, err) = postern(d, &["queue", "delete", "--recipient", "carol"]);
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");
    wait_listed(d, &[], 3);
    // Ids and filters together are refused.
    let (code, _, _) = postern(d, &["queue", "delete", &keep, "--all"]);
    assert_eq!(code, 2);

    let (code, out, err) = postern(d, &["queue", "delete", "--recipient", "carol", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().all(|l| l.ends_with(" deleted")), "{out}");
    let left = wait_listed(d, &[], 1);
    assert_eq!(left["messages"][0]["id"], keep.as_str());

    let (code, _, err) = postern(d, &["queue", "delete", "--domain", "localhost", "--yes"]);
    assert_eq!(code, 0, "{err}");
    wait_listed(d, &[], 0);
    let (code, _, err) = postern(d, &["queue", "hold", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(code, 1);
    assert!(err.contains("no message"), "{err}");
}

#[test]
fn list_and_show_read_the_spool_when_no_server_runs() {
    let dir = workdir();
    let d = dir.path();
    hold_everything(d);
    let mut server = Postern::start_in(d, None);
    let id = send(&server, "bob@localhost", "kept offline");
    wait_listed(d, &["--state", "held"], 1);
    server.stop();

    let listed = wait_listed(d, &["--state", "held"], 1);
    assert_eq!(listed["messages"][0]["id"], id.as_str());
    assert_eq!(listed["messages"][0]["recipients"][0], "bob@localhost");
    wait_listed(d, &["--domain", "example.org"], 0);
    let shown = json(d, &["queue", "show", &id, "--json"]);
    assert_eq!(shown["recipients_detail"][0]["status"], "pending");

    for verb in ["retry", "hold", "release", "delete", "bounce"] {
        let (code, _, err) = postern(d, &["queue", verb, &id]);
        assert_eq!(code, 1, "{verb}");
        assert!(err.contains("not running"), "{verb}: {err}");
    }
    let (code, _, err) = postern(d, &["status"]);
    assert_eq!(code, 1);
    assert!(err.contains("not running"), "{err}");
    // Still there: nothing changed it.
    wait_listed(d, &["--state", "held"], 1);
}
