//! The "Mailing list" recipe of docs/cookbook.md, run as written: the test reads the recipe's
//! fenced blocks (the configuration, the lists file, the `postern` commands), sets them up, and
//! checks what the recipe says to expect.

mod common;

use std::process::Command;

use common::Postern;

const HEADING: &str = "## Mailing list";

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
fn cookbook_mailing_list() {
    let blocks = recipe();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("lists.toml"), block(&blocks, "lists")).unwrap();
    // The recipe's configuration, plus a listener and the senders of the test.
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n{}",
        block(&blocks, "toml").replace("\"team\"]", "\"team\", \"stranger\"]")
    );
    let server = Postern::start_in(dir.path(), Some(&config));
    for line in block(&blocks, "sh")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("postern"), "{line}");
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
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
    // The running server reads the changed registry on its own; its log says when.
    server.wait_for_log("bindings=1");
    let mut c = server.client();
    let reply = c.send_message(
        "bob@example.org",
        &["team@example.org"],
        "Subject: recipe post\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    for user in ["alice", "bob", "carol"] {
        let mail = server.wait_for_mail("example.org", user, 1);
        for want in [
            "Return-Path: <team-bounces@example.org>",
            "List-Id: <team.example.org>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ] {
            assert!(mail[0].contains(want), "{user}: {want:?}\n{}", mail[0]);
        }
    }
    c.send_message(
        "stranger@example.org",
        &["team@example.org"],
        "Subject: let me in\r\n\r\nbody\r\n",
    );
    let dsn = server.wait_for_mail("example.org", "stranger", 1);
    assert!(dsn[0].contains("only its members may post"), "{}", dsn[0]);
}
