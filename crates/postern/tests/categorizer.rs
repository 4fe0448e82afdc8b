//! The default categorizer against the running server: aliases in Postfix's format (nested,
//! deduplicated, remote targets), `+` sub-addressing, loops failing with 5.4.6, reloading the
//! file without a restart, and `check-config` naming the bad line.

mod common;

use std::path::Path;
use std::process::Command;

use common::Postern;
use common::peers::Mx;

const ALIASES: &str = "\
# staff
team: alice, bob,
  ops
ops: carol, alice@example.org, friend@remote.test
loop1: loop2
loop2: alice, loop1
";

fn config(mx_port: u16) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[domain]]\nname = \"example.org\"\nusers = [\"alice\", \"bob\", \"carol\", \"sender\"]\n\
         aliases = \"aliases\"\n\n[[route]]\ndomain = \"remote.test\"\n\
         smarthost = \"[127.0.0.2]:{mx_port}\"\n"
    )
}

fn start(dir: &Path, mx: &Mx) -> Postern {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/aliases"), ALIASES).unwrap();
    Postern::start_in(dir, Some(&config(mx.port)))
}

#[test]
fn aliases_expand_nested_deduplicated_and_remote_with_sub_addressing() {
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &mx);
    let mut c = server.client();
    let reply = c.send_message(
        "sender@example.org",
        &["team@example.org", "bob+news@example.org"],
        "Subject: hello team\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    for user in ["alice", "bob", "carol"] {
        // Exactly one copy each: bob is both on `team` and a recipient of his own.
        let mail = server.wait_for_mail("example.org", user, 1);
        assert!(mail[0].contains("Subject: hello team"), "{}", mail[0]);
    }
    let got = mx.wait_for(1);
    assert_eq!(got[0].0["to"], serde_json::json!(["friend@remote.test"]));
    assert_eq!(got[0].0["from"], "sender@example.org");
    assert!(!server.new_mail("example.org", "bob+news").exists());
}

#[test]
fn an_alias_loop_fails_with_5_4_6_and_the_rest_is_delivered() {
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &mx);
    let mut c = server.client();
    let reply = c.send_message(
        "sender@example.org",
        &["loop1@example.org"],
        "Subject: round and round\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("example.org", "alice", 1);
    let dsn = server.wait_for_mail("example.org", "sender", 1);
    assert!(dsn[0].contains("5.4.6"), "{}", dsn[0]);
    assert!(dsn[0].contains("loop1@example.org"), "{}", dsn[0]);
}

#[test]
fn an_edited_aliases_file_applies_without_a_restart_and_a_bad_edit_keeps_the_last_good() {
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &mx);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<sender@example.org>", 250);
    c.expect("RCPT TO:<sales@example.org>", 550);
    c.expect("RSET", 250);
    let aliases = dir.path().join("data/aliases");
    std::fs::write(&aliases, format!("{ALIASES}sales: carol\n")).unwrap();
    c.expect("MAIL FROM:<sender@example.org>", 250);
    c.expect("RCPT TO:<sales@example.org>", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: order\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    server.wait_for_mail("example.org", "carol", 1);
    // A broken edit is refused (logged with file and line); the table before it stays.
    std::fs::write(&aliases, format!("{ALIASES}sales: carol\nbroken line\n")).unwrap();
    c.expect("MAIL FROM:<sender@example.org>", 250);
    c.expect("RCPT TO:<sales@example.org>", 250);
    let log = server.wait_for_log("aliases file refused");
    assert!(
        log.contains("aliases:8: expected `name: target, ...`"),
        "{log}"
    );
}

#[test]
fn check_config_names_the_file_and_line_of_a_bad_alias() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("aliases"), "ok: alice\nrun: |/usr/bin/true\n").unwrap();
    let file = dir.path().join("postern.toml");
    std::fs::write(&file, config(25)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("check-config")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("aliases:2: `run`") && stderr.contains("not supported"),
        "{stderr}"
    );
}

/// An alias of 250 remote addresses goes to the next hop as transactions of at most 100
/// recipients (RFC 5321 only obliges a server to take 100), each recipient exactly once.
#[test]
fn a_large_remote_expansion_goes_in_transactions_of_at_most_100() {
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = (0..250).map(|n| format!("m{n}@remote.test")).collect();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/aliases"),
        format!("everyone: {}\n", targets.join(", ")),
    )
    .unwrap();
    let server = Postern::start_in(dir.path(), Some(&config(mx.port)));
    let mut c = server.client();
    let reply = c.send_message(
        "sender@example.org",
        &["everyone@example.org"],
        "Subject: to all\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = mx.wait_for(3);
    let mut sizes: Vec<usize> = got
        .iter()
        .map(|(envelope, _)| envelope["to"].as_array().expect("to").len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![50, 100, 100]);
    let mut seen: Vec<String> = got
        .iter()
        .flat_map(|(envelope, _)| envelope["to"].as_array().expect("to").clone())
        .map(|v| v.as_str().expect("address").to_owned())
        .collect();
    seen.sort();
    let mut wanted = targets.clone();
    wanted.sort();
    assert_eq!(seen, wanted);
}
