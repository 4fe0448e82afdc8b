//! Configuration errors: each names the file, the line and column, and the field.

use std::fmt;
use std::ops::Range;

use crate::model::Source;

/// One problem in a configuration, displayed as `FILE:LINE:COLUMN: field `FIELD`: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", Where(self))]
pub struct ConfigError {
    /// The configuration the problem is in.
    pub origin: Source,
    /// Where in the text; `None` when the text could not be read at all.
    pub position: Option<Position>,
    /// The dotted path of the field, such as `limits.command_timeout` or `domain[1].users`
    /// (indexes count from 0); `None` when the problem is not in one field (an unreadable file).
    pub field: Option<String>,
    /// What is wrong, and where it helps, how to fix it.
    pub message: String,
}

/// A place in a configuration text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text).
    pub(crate) fn of(text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// Displays the `:LINE:COLUMN` and `: field `FIELD`` parts of an error, when known.
struct Where<'a>(&'a ConfigError);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(Position { line, column }) = self.0.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.0.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

/// All the problems found in a configuration (never empty), one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(&self.0))]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in the order of the text as far as validation goes.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// The problems, by value.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects the problems found in one configuration text while it is validated.
pub(crate) struct Problems<'a> {
    text: &'a str,
    origin: &'a Source,
    errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(text: &'a str, origin: &'a Source) -> Problems<'a> {
        Problems {
            text,
            origin,
            errors: Vec::new(),
        }
    }

    /// Records a problem with `field`, whose text is at `span`.
    pub(crate) fn at(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Some(span.start), Some(field.into()), message.into());
    }

    /// Records a problem at byte `offset`, when known, in `field`, when known.
    pub(crate) fn push(&mut self, offset: Option<usize>, field: Option<String>, message: String) {
        self.errors.push(ConfigError {
            origin: self.origin.clone(),
            position: Some(Position::of(self.text, offset.unwrap_or(0))),
            field,
            message,
        });
    }

    /// The position of byte `offset`, kept in the configuration for a later check.
    pub(crate) fn position(&self, offset: usize) -> Position {
        Position::of(self.text, offset)
    }

    /// The line of byte `offset`, to point at an earlier definition.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        Position::of(self.text, offset).line
    }

    /// The problems recorded so far, when a stage cannot go on.
    pub(crate) fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.errors)
    }

    /// `Ok(value)` when no problem was recorded.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn positions() {
        let text = "a = 1\nbé = \"x\"\n";
        let cases: &[(&str, usize, (usize, usize))] = &[
            ("start", 0, (1, 1)),
            ("first line", 4, (1, 5)),
            ("second line start", 6, (2, 1)),
            ("after a two-byte character", 9, (2, 3)),
            ("inside a character", 8, (2, 2)),
            ("past the end", 100, (3, 1)),
        ];
        for (name, offset, (line, column)) in cases {
            let got = Position::of(text, *offset);
            assert_eq!((got.line, got.column), (*line, *column), "case {name}");
        }
    }

    #[test]
    fn display() {
        let error = ConfigError {
            origin: Source::File(PathBuf::from("postern.toml")),
            position: Some(Position { line: 3, column: 7 }),
            field: Some("limits.max_errors".into()),
            message: "must be at least 1".into(),
        };
        assert_eq!(
            error.to_string(),
            "postern.toml:3:7: field `limits.max_errors`: must be at least 1"
        );
        let unreadable = ConfigError {
            origin: Source::File(PathBuf::from("missing.toml")),
            position: None,
            field: None,
            message: "cannot read the file: not found".into(),
        };
        assert_eq!(
            unreadable.to_string(),
            "missing.toml: cannot read the file: not found"
        );
        let both = ConfigErrors(vec![error.clone(), unreadable]);
        assert_eq!(both.to_string().lines().count(), 2);
    }
}
