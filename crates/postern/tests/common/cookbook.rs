//! The recipes of docs/cookbook.md as tests run them: the fenced blocks under a recipe's heading
//! are read from the file — TOML blocks written where their first comment line says
//! (`# postern.toml`, `# DATA/NAME`), each `postern …` line of a `sh` block run against a data
//! folder — so that a recipe is tested exactly as written. Every cookbook test reads its recipe
//! through this one reader.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Postern, binding};

/// A recipe's fenced blocks: (info string, lines).
pub fn recipe(heading: &str) -> Vec<(String, Vec<String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cookbook.md");
    let text = std::fs::read_to_string(&path).expect("docs/cookbook.md");
    let wanted = format!("## {heading}");
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim_end() != wanted)
        .skip(1)
        .take_while(|l| !l.starts_with("## "));
    let mut blocks = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let body: Vec<String> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .map(str::to_owned)
                .collect();
            blocks.push((info.to_owned(), body));
        }
    }
    assert!(
        !blocks.is_empty(),
        "no recipe {heading:?} in docs/cookbook.md"
    );
    blocks
}

/// The TOML block whose first line is `# WHERE`, with `ports` replaced.
pub fn toml_block(
    blocks: &[(String, Vec<String>)],
    place: &str,
    ports: &[(&str, String)],
) -> String {
    let (_, body) = blocks
        .iter()
        .find(|(info, body)| info == "toml" && body.first().map(String::as_str) == Some(place))
        .unwrap_or_else(|| panic!("no toml block for {place}"));
    let mut text = body.join("\n") + "\n";
    for (from, to) in ports {
        text = text.replace(from, to);
    }
    text
}

/// Runs each `postern binding …` line of the `sh` blocks against `dir`'s data folder.
pub fn run_commands(blocks: &[(String, Vec<String>)], dir: &Path) -> usize {
    let mut n = 0;
    for (_, body) in blocks.iter().filter(|(info, _)| info == "sh") {
        for line in body {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let words = shell_words(line);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let ["postern", "binding", rest @ ..] = words.as_slice() else {
                panic!("a recipe command this test cannot run: {line}");
            };
            let (code, _, err) = binding(dir, rest);
            assert_eq!(code, 0, "{line}: {err}");
            n += 1;
        }
    }
    n
}

/// Waits until the server has loaded a registry of `n` bindings (several `binding add` in a
/// row may reach it as one reload).
pub fn wait_registry_loads(server: &Postern, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = format!("bindings={n} ");
    while !server
        .log()
        .lines()
        .any(|l| l.contains("binding registry loaded") && l.contains(&wanted))
    {
        assert!(
            Instant::now() < deadline,
            "registry not reloaded:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Splits a command line into words as a shell would for the recipes' plain quoting: blanks
/// separate words, and double or single quotes group a word (`--rule "RCPT TO=a@b"`).
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The text of the recipe's first block whose info string is `info`.
pub fn block(blocks: &[(String, Vec<String>)], info: &str) -> String {
    blocks
        .iter()
        .find(|(i, _)| i.trim() == info)
        .map(|(_, body)| body.join("\n") + "\n")
        .unwrap_or_else(|| panic!("no ```{info} block in the recipe"))
}

/// The `postern …` commands of the recipe's `sh` blocks, each split into words (a line ending
/// in `\` goes on on the next; blank lines and `#` comments are skipped).
pub fn commands(heading: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for (_, body) in recipe(heading)
        .iter()
        .filter(|(info, _)| info.trim() == "sh")
    {
        let mut pending = String::new();
        for line in body {
            pending.push_str(line.trim_end_matches('\\'));
            pending.push(' ');
            if line.ends_with('\\') {
                continue;
            }
            let words = shell_words(&pending);
            pending.clear();
            if words.first().map(String::as_str) == Some("postern") {
                commands.push(words);
            }
        }
    }
    assert!(!commands.is_empty(), "no postern command under {heading:?}");
    commands
}

/// Runs each command with the real binary from `dir`, with `--data-dir DIR/data`; each must
/// succeed. Gives the standard output of the last.
pub fn run(dir: &Path, commands: &[Vec<String>]) -> String {
    let mut stdout = String::new();
    for words in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
            .current_dir(dir)
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
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    stdout
}
