//! A local domain's aliases file (`[[domain]] aliases`), in the format of Postfix's `aliases(5)`:
//! `name: target, target2`, `#` comments, a line starting with white space continues the one
//! before. The file is read again when it changes (its modification time or size), so an edit
//! needs no restart; an edit with errors is refused and the last good table stays in force.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tracing::error;

/// One problem in an aliases file: the line it is on and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {what}")]
pub struct AliasError {
    /// The file, as configured (resolved against the data folder).
    pub path: String,
    /// 1-based line of the entry.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

/// A parsed aliases table: lower-case names to their targets, in file order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Aliases {
    entries: HashMap<String, Vec<String>>,
}

impl Aliases {
    /// The targets of `name` (compared case-insensitively), if it is an alias.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.entries
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// How many names the table has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no names.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Parses the text of an aliases file; every problem is reported, each with its line.
    pub fn parse(path: &str, text: &str) -> Result<Aliases, Vec<AliasError>> {
        let mut errors = Vec::new();
        let mut entries: HashMap<String, Vec<String>> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        let problem = |line, what: String| AliasError {
            path: path.to_owned(),
            line,
            what,
        };
        for (line, entry) in logical_lines(text) {
            let Some((name, targets)) = entry.split_once(':') else {
                errors.push(problem(line, "expected `name: target, ...`".to_owned()));
                continue;
            };
            let name = name.trim().trim_matches('"').to_ascii_lowercase();
            if name.is_empty() || name.contains(['@', ' ', '\t', ',']) {
                errors.push(problem(
                    line,
                    format!("{name:?} is not a local part to alias"),
                ));
                continue;
            }
            let mut list = Vec::new();
            for target in targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                match check_target(target) {
                    Ok(()) => list.push(target.trim_matches('"').to_owned()),
                    Err(why) => errors.push(problem(line, format!("`{name}`: {why}"))),
                }
            }
            if list.is_empty() && targets.trim().is_empty() {
                errors.push(problem(line, format!("`{name}` has no target")));
                continue;
            }
            if let Some(first) = first_line.get(&name) {
                errors.push(problem(
                    line,
                    format!("duplicate alias `{name}` (first on line {first})"),
                ));
                continue;
            }
            first_line.insert(name.clone(), line);
            entries.insert(name, list);
        }
        if errors.is_empty() {
            Ok(Aliases { entries })
        } else {
            Err(errors)
        }
    }
}

/// Targets Postern delivers: a local part of the same domain, or an address (local or remote).
/// Postfix's program, file and include targets run as a local user, which Postern never does.
fn check_target(target: &str) -> Result<(), String> {
    if target.starts_with('|') || target.starts_with('/') || target.starts_with(":include:") {
        return Err(format!(
            "{target:?}: command, file and :include: targets are not supported"
        ));
    }
    let (local, domain) = match target.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (target, None),
    };
    if local.is_empty() || target.contains([' ', '\t', '<', '>']) {
        return Err(format!("{target:?} is not an address"));
    }
    if let Some(domain) = domain
        && let Err(why) = crate::names::domain_syntax(domain)
    {
        return Err(format!("{target:?}: {why}"));
    }
    Ok(())
}

/// Joins continuation lines (starting with white space) to the entry before them, drops
/// comments and blank lines; each logical line comes with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match out.last_mut() {
            Some((_, entry)) if raw.starts_with([' ', '\t']) => {
                entry.push(' ');
                entry.push_str(trimmed);
            }
            _ => out.push((i + 1, trimmed.to_owned())),
        }
    }
    out
}

/// An aliases file and the last good table read from it, shared by every user of the
/// configuration (RCPT checks and the categorizer).
pub struct AliasFile {
    /// As written in the configuration (relative to the data folder, or absolute).
    pub configured: PathBuf,
    /// Resolved against the data folder.
    pub path: PathBuf,
    cache: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// Modification time and length of the file the table (or the refusal) was made from.
    stamp: Option<(SystemTime, u64)>,
    table: Arc<Aliases>,
    /// A missing file is logged once, not at every recipient.
    missing_logged: bool,
}

impl AliasFile {
    /// The file `configured`, resolved against `data_dir`; nothing is read yet.
    pub fn new(data_dir: &Path, configured: PathBuf) -> AliasFile {
        AliasFile {
            path: data_dir.join(&configured),
            configured,
            cache: Mutex::new(Cached::default()),
        }
    }

    /// Reads and parses the file now (for `check-config`).
    pub fn check(&self) -> Result<Aliases, Vec<AliasError>> {
        let name = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            vec![AliasError {
                path: name.clone(),
                line: 0,
                what: format!("cannot read: {e}"),
            }]
        })?;
        Aliases::parse(&name, &text)
    }

    /// The current table: read again when the file changed since the last use. A file that
    /// cannot be read or has errors is logged (once per change) and the last good table stays.
    pub fn table(&self) -> Arc<Aliases> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut cached = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if stamp.is_some() && cached.stamp == stamp {
            return cached.table.clone();
        }
        if stamp.is_none() && cached.stamp.is_none() {
            if !cached.missing_logged {
                cached.missing_logged = true;
                error!(path = %self.path.display(), "aliases file missing: no aliases in force");
            }
            return cached.table.clone();
        }
        cached.stamp = stamp;
        match self.check() {
            Ok(table) => cached.table = Arc::new(table),
            Err(errors) => {
                for e in errors {
                    error!("aliases file refused, the last good version stays in force: {e}");
                }
            }
        }
        cached.table.clone()
    }
}

impl fmt::Debug for AliasFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AliasFile").field(&self.path).finish()
    }
}

impl PartialEq for AliasFile {
    fn eq(&self, other: &AliasFile) -> bool {
        self.path == other.path
    }
}

impl Eq for AliasFile {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_format_with_comments_and_continuations() {
        let text = "# staff\npostmaster: root\nteam: alice, bob,\n  carol@example.net\n\n\
                    Sales: \"dave\"\n";
        let aliases = Aliases::parse("aliases", text).expect("valid");
        assert_eq!(aliases.get("POSTMASTER"), Some(&["root".to_owned()][..]));
        assert_eq!(
            aliases.get("team").map(<[String]>::len),
            Some(3),
            "the continuation line belongs to `team`"
        );
        assert_eq!(aliases.get("sales"), Some(&["dave".to_owned()][..]));
        assert_eq!(aliases.get("alice"), None);
    }

    #[test]
    fn every_problem_names_its_line() {
        let text = "ok: alice\nno colon here\nrun: |/bin/sh\nok: bob\nempty:\n";
        let errors = Aliases::parse("aliases", text).expect_err("invalid");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{errors:?}");
        assert!(errors[1].to_string().starts_with("aliases:3: `run`"));
        assert!(
            errors[2]
                .what
                .contains("duplicate alias `ok` (first on line 1)")
        );
    }
}
