//! Runs a recipe of `docs/cookbook.md`: the `postern …` lines of the fenced block under a
//! level-2 heading, exactly as written there, against a server's data folder.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

/// The commands of the recipe under `## HEADING`, each split into words (single and double
/// quotes group words; a line ending in `\` goes on on the next).
pub fn commands(heading: &str) -> Vec<Vec<String>> {
    let text = include_str!("../../../../docs/cookbook.md");
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?} in docs/cookbook.md"));
    let section = &text[start + 1..];
    let section = match section[3..].find("\n## ") {
        Some(end) => &section[..end + 3],
        None => section,
    };
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        pending.push_str(line.trim_end_matches('\\'));
        pending.push(' ');
        if line.ends_with('\\') {
            continue;
        }
        let words = split(&pending);
        pending.clear();
        if words.first().map(String::as_str) == Some("postern") {
            commands.push(words);
        }
    }
    assert!(!commands.is_empty(), "no postern command under {heading:?}");
    commands
}

fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Runs each command with the real binary and `--data-dir DIR/data`; each must succeed.
pub fn run(dir: &Path, commands: &[Vec<String>]) {
    for words in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
            .args(&words[1..])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .output()
            .expect("run postern");
        assert!(
            out.status.success(),
            "{words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
