//! The "Virus scanning" recipe of `docs/cookbook.md`, run as written against a running server
//! and a real clamd: the test reads the fenced `sh` block under the heading and runs each
//! `postern …` line. The one substitution: clamd's documented address `127.0.0.1:3310` becomes
//! the free port the test's clamd listens on.

mod common;

use std::time::{Duration, Instant};

use common::clamd::{Clamd, EICAR, EICAR_NAME};
use common::{Postern, workdir};

/// The commands of the fenced `sh` block under `## HEADING` in docs/cookbook.md, one per line
/// (backslash continuations joined).
fn recipe(heading: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cookbook.md");
    let text = std::fs::read_to_string(path).expect("docs/cookbook.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading) && s[heading.len()..].starts_with('\n'))
        .unwrap_or_else(|| panic!("no `## {heading}` in docs/cookbook.md"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```sh block");
    block
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Runs one `postern …` line on the server's data folder.
fn run(dir: &std::path::Path, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"postern"), "{line}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(&words[1..])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("run postern");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn send(server: &Postern, body: &str) -> common::Reply {
    let mut c = server.client();
    let reply = c.send_message("alice@example.test", &["bob@localhost"], body);
    c.expect("QUIT", 221);
    reply
}

#[test]
fn virus_scanning_recipe() {
    let dir = workdir();
    let d = dir.path();
    let clamd = Clamd::start(d);
    let server = Postern::start_in(d, None);
    let commands = recipe("Virus scanning");
    assert!(!commands.is_empty());
    let mut listed = String::new();
    for line in &commands {
        let line = line.replace("127.0.0.1:3310", &format!("127.0.0.1:{}", clamd.port));
        listed = run(d, &line);
    }
    assert!(listed.contains("antivirus"), "{listed}");

    let infected =
        format!("From: alice@example.test\r\nTo: bob@localhost\r\nSubject: t\r\n\r\n{EICAR}\r\n");
    // The running server picks the new registry up within a second: poll until it refuses.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let reply = send(&server, &infected);
        if reply.code != 250 || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reply.code, 554, "{reply:?}");
    assert_eq!(
        reply.text(),
        format!("5.7.1 Message refused: virus {EICAR_NAME} found")
    );
    let before = common::read_all(&server.new_mail("localhost", "bob")).len();
    let clean = "From: alice@example.test\r\nTo: bob@localhost\r\nSubject: hi\r\n\r\nClean.\r\n";
    assert_eq!(send(&server, clean).code, 250);
    server.wait_for_mail("localhost", "bob", before + 1);

    drop(clamd);
    let reply = send(&server, clean);
    assert_eq!(reply.code, 451, "{reply:?}");
    server.wait_for_log("cannot be reached");
}
