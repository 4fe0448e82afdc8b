//! Script sinks through the real binary and real SMTP sessions: the example scripts of
//! `examples/sinks/`, the operation limit with `on_error`, a syntax error refused by
//! `postern binding add`, and edits picked up (or, when broken, not) at the next event.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Postern, bind, binding, workdir};

/// A script of `examples/sinks/`, by absolute path.
fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/sinks")
        .join(name);
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .display()
        .to_string()
}

/// Writes a script into the data folder (where relative `script:` paths are taken from),
/// with a modification time later than any before, so that even an edit within the same
/// clock tick is seen as one.
fn write_script(dir: &Path, name: &str, source: &str) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let path = data.join(name);
    let previous = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    std::fs::write(&path, source).unwrap();
    if let Some(previous) = previous {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(previous + Duration::from_secs(1))
            .unwrap();
    }
    path
}

fn header_lines(mail: &str, prefix: &str) -> Vec<String> {
    mail.lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_sender_access_list_rejects_a_listed_sender_at_mail_with_its_reply() {
    let dir = workdir();
    let d = dir.path();
    let script = format!("script:{}", example("sender-access.rhai"));
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            &script,
            "--prop",
            "deny=spammer@example.com,@junk.example",
            "--prop",
            "text=Mail from you is not accepted here",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let reply = c.expect("MAIL FROM:<Spammer@Example.com>", 550);
    assert_eq!(reply.text(), "5.7.1 Mail from you is not accepted here");
    c.expect("MAIL FROM:<anyone@junk.example>", 550);
    c.expect("MAIL FROM:<friend@example.org>", 250);
    c.expect("RSET", 250);
    c.expect("MAIL FROM:<>", 250);
}

#[test]
fn the_header_tagger_adds_its_fields_at_end_of_data() {
    let dir = workdir();
    let d = dir.path();
    let script = format!("script:{}", example("tag-header.rhai"));
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            &script,
            "--prop",
            "suspect=@promo.example",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    let reply = c.send_message(
        "deals@promo.example",
        &["tag@localhost"],
        "Subject: cheap\r\n\r\nbuy",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "tag", 1);
    let origin = header_lines(&mail[0], "X-Postern-Origin");
    assert_eq!(origin.len(), 1, "{}", mail[0]);
    assert!(
        origin[0].starts_with(
            "X-Postern-Origin: ip=127.0.0.1; helo=client.test; plain; anonymous; size="
        ),
        "{origin:?}"
    );
    assert_eq!(
        header_lines(&mail[0], "Subject"),
        ["Subject: [suspect] cheap"]
    );
}

#[test]
fn the_recipient_rewriter_maps_an_alias_at_categorize() {
    let dir = workdir();
    let d = dir.path();
    let script = format!("script:{}", example("rewrite-recipient.rhai"));
    bind(
        d,
        &[
            "--event",
            "categorize",
            "--sink",
            &script,
            "--prop",
            "aliases=sales:bob,info:alice@localhost",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    let reply = c.send_message(
        "a@example.org",
        &["Sales@localhost", "info@localhost", "carol@localhost"],
        "Subject: hi\r\n\r\nx",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("localhost", "bob", 1);
    server.wait_for_mail("localhost", "alice", 1);
    server.wait_for_mail("localhost", "carol", 1);
    assert!(server.new_mail("localhost", "sales").read_dir().is_err());
}

#[test]
fn a_script_that_loops_forever_is_stopped_and_on_error_applies() {
    let dir = workdir();
    let d = dir.path();
    write_script(d, "loop.rhai", "fn on_event(ctx) { loop { } }");
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "script:loop.rhai",
            "--on-error",
            "tempfail",
            // Long enough that the operation limit, not the timeout, stops the script.
            "--timeout",
            "60s",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.send("MAIL FROM:<a@example.org>");
    // While the script runs, another session is served.
    let started = Instant::now();
    let mut other = server.client();
    other.expect("EHLO other.test", 250);
    other.expect("NOOP", 250);
    let reply = c.read_reply();
    assert_eq!(reply.code, 451, "{reply:?}");
    assert!(reply.text().starts_with("4.3.0"), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    server.wait_for_log("Too many operations");
    c.expect("RSET", 250);
}

#[test]
fn binding_add_refuses_a_script_with_a_syntax_error_naming_file_line_and_column() {
    let dir = workdir();
    let d = dir.path();
    let path = write_script(d, "broken.rhai", "fn on_event(ctx) {\n    let x = ;\n}\n");
    let (code, _, err) = binding(
        d,
        &[
            "add",
            "--event",
            "inbound:MAIL",
            "--sink",
            "script:broken.rhai",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("{}:2:13", path.display())),
        "stderr: {err}"
    );
    let (_, list, _) = binding(d, &["list"]);
    assert!(!list.contains("broken.rhai"), "{list}");
}

#[test]
fn a_registry_naming_a_script_broken_since_is_refused_when_it_loads() {
    let dir = workdir();
    let d = dir.path();
    let path = write_script(d, "later.rhai", "fn on_event(ctx) { next() }");
    bind(
        d,
        &["--event", "inbound:MAIL", "--sink", "script:later.rhai"],
    );
    write_script(d, "later.rhai", "fn on_event(ctx) {\n  next(\n}\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("check-config")
        .arg("--data-dir")
        .arg(d.join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:3:1", path.display())), "{err}");
}

#[test]
fn an_edit_is_picked_up_at_the_next_event_and_a_broken_edit_keeps_the_last_good_version() {
    let dir = workdir();
    let d = dir.path();
    let say = |text: &str| format!("fn on_event(ctx) {{ reply(250, \"2.0.0\", \"{text}\") }}");
    write_script(d, "noop.rhai", &say("first"));
    bind(
        d,
        &["--event", "inbound:NOOP", "--sink", "script:noop.rhai"],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    assert_eq!(c.expect("NOOP", 250).text(), "2.0.0 first");
    write_script(d, "noop.rhai", &say("second"));
    assert_eq!(c.expect("NOOP", 250).text(), "2.0.0 second");
    write_script(d, "noop.rhai", "fn on_event(ctx) { reply(250, ");
    assert_eq!(c.expect("NOOP", 250).text(), "2.0.0 second");
    assert_eq!(c.expect("NOOP", 250).text(), "2.0.0 second");
    let log = server.wait_for_log("the last version that loaded stays in force");
    assert_eq!(
        log.matches("the last version that loaded stays in force")
            .count(),
        1,
        "logged once per broken version:\n{log}"
    );
    write_script(d, "noop.rhai", &say("third"));
    assert_eq!(c.expect("NOOP", 250).text(), "2.0.0 third");
}
