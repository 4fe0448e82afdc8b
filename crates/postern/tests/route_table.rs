//! `builtin:route-table` end to end: a table refused at `binding add` with its file and line,
//! and a running server that reads the table again when it changes — and keeps the last good
//! one when the new one has an error.

mod common;

use common::peers::Mx;
use common::{Postern, bind, binding};
use std::path::Path;
use std::time::Duration;

const CONFIG: &str = "[[listener]]\naddress = \"127.0.0.1:0\"\n\
    [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
    [relay]\nnetworks = [\"127.0.0.0/8\"]\n";

/// Writes DATA/routes.toml with a modification time later than the last one, so that an edit
/// within the same clock tick is seen as one.
fn write_table(data: &Path, text: &str) {
    let path = data.join("routes.toml");
    let previous = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    std::fs::write(&path, text).unwrap();
    if let Some(previous) = previous {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(previous + Duration::from_secs(1))
            .unwrap();
    }
}

fn to_peer(port: u16) -> String {
    format!("[[rule]]\ndomain = \"partner.test\"\nsmarthost = \"smtp:127.0.0.1:{port}\"\n")
}

const ARGS: &[&str] = &[
    "--event",
    "route",
    "--sink",
    "builtin:route-table",
    "--priority",
    "high",
    "--prop",
    "file=routes.toml",
];

#[test]
fn binding_add_refuses_a_table_with_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_table(
        &data,
        "[[rule]]\ndomain = \"partner.test\"\nsmarthost = \"smtp:127.0.0.1:25\"\n\n[[rule]]\ndomain = \"other.test\"\n",
    );
    let mut args = vec!["add"];
    args.extend_from_slice(ARGS);
    let (code, _, err) = binding(dir.path(), &args);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("routes.toml: line 5: the rule has no action"),
        "{err}"
    );
    // A missing file is refused too.
    std::fs::remove_file(data.join("routes.toml")).unwrap();
    let (code, _, err) = binding(dir.path(), &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("routes.toml"), "{err}");
}

#[test]
fn check_config_reports_a_bound_table_that_has_gone_bad() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_table(&data, "[[rule]]\ndomain = \"partner.test\"\ndrop = true\n");
    bind(dir.path(), ARGS);
    write_table(&data, "[[rule]]\ndomain = \"partner.test\"\ndrop = maybe\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["check-config", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("routes.toml: line 3"), "{err}");
}

#[test]
fn an_edited_table_applies_to_the_next_message_and_a_bad_edit_keeps_the_last_good_one() {
    let first = Mx::start("127.0.0.1", "{}");
    let second = Mx::start("127.0.0.1", "{}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_table(&data, &to_peer(first.port));
    bind(dir.path(), ARGS);
    let server = Postern::start_in(dir.path(), Some(CONFIG));
    let send = || {
        let reply = server.client().send_message(
            "alice@localhost",
            &["bob@partner.test"],
            "Subject: t\r\n\r\nx\r\n",
        );
        assert_eq!(reply.code, 250, "{reply:?}");
    };
    send();
    first.wait_for(1);

    write_table(&data, &to_peer(second.port));
    send();
    second.wait_for(1);

    // A broken edit: logged with file and line, and the table before it still routes.
    write_table(&data, "[[rule]]\ndomain = \"partner.test\"\nsmarthost = \n");
    send();
    second.wait_for(2);
    let log = server.wait_for_log("the last good route table stays in force");
    assert!(log.contains("routes.toml: line 3"), "{log}");
    assert_eq!(first.received().len(), 1);
}
