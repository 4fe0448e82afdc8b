//! The "Aliases and sub-addressing" recipe of docs/cookbook.md, run as written: the test reads
//! the recipe's fenced blocks (the configuration, the aliases file, the `postern` commands), sets
//! them up, and checks what the recipe says to expect.

mod common;

use std::process::Command;

use common::Postern;
use common::peers::Mx;

const HEADING: &str = "## Aliases and sub-addressing";

/// The fenced blocks of the recipe, as (info string, text).
fn recipe() -> Vec<(String, String)> {
    let text = include_str!("../../../docs/cookbook.md");
    let start = text.find(HEADING).expect("the recipe's heading");
    let section = &text[start + HEADING.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in section.lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(info), None) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((info, mut body))) => {
                body.push_str(line);
                body.push('\n');
                open = Some((info, body));
            }
            (None, None) => {}
        }
    }
    blocks
}

fn block(blocks: &[(String, String)], info: &str) -> String {
    blocks
        .iter()
        .find(|(i, _)| i == info)
        .map(|(_, b)| b.clone())
        .unwrap_or_else(|| panic!("no ```{info} block in the recipe"))
}

#[test]
fn cookbook_aliases_and_sub_addressing() {
    let blocks = recipe();
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("aliases"), block(&blocks, "aliases")).unwrap();
    // The recipe's configuration, plus what the harness needs: a listener, and a route that
    // takes example.net to the test's MX instead of the Internet.
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\ndomain = \"example.net\"\n\
         smarthost = \"[127.0.0.2]:{}\"\n\n{}",
        mx.port,
        block(&blocks, "toml")
    );
    let file = dir.path().join("postern.toml");
    std::fs::write(&file, &config).unwrap();
    for line in block(&blocks, "sh")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("postern"), "{line}");
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
            .current_dir(dir.path())
            .args(words)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = Postern::start_in(dir.path(), Some(&config));
    let mut c = server.client();
    let reply = c.send_message(
        "carol@example.org",
        &["support@example.org", "bob+invoices@example.org"],
        "Subject: recipe\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    // bob is on `sales` and a recipient himself: one copy.
    for user in ["alice", "bob", "carol"] {
        server.wait_for_mail("example.org", user, 1);
    }
    let got = mx.wait_for(1);
    assert_eq!(got[0].0["to"], serde_json::json!(["partner@example.net"]));
}
