//! The pattern of a rule condition: `*` globs compared without ASCII case, lowered once when the
//! rule is parsed so that matching compares in place and allocates nothing.

use std::fmt;

use super::ErrorKind;

/// One pattern of a `KEY=PATTERN,PATTERN…` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*` (or `**`…): anything, the empty string included.
    Any,
    /// `<>` in an address condition: only the empty string (the null reverse-path).
    Null,
    /// Text with `*` wildcards.
    Glob(Glob),
}

impl Pattern {
    /// Parses one item of a pattern list. `address` enables the address forms: `<>` for the null
    /// path, and `<a@b>` meaning `a@b`.
    pub(crate) fn parse(item: &str, address: bool) -> Result<Self, ErrorKind> {
        let mut text = item.trim();
        if text.is_empty() {
            return Err(ErrorKind::EmptyPattern);
        }
        if address {
            if text == "<>" {
                return Ok(Self::Null);
            }
            if let Some(inner) = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                text = inner.trim();
                if text.is_empty() {
                    return Ok(Self::Null);
                }
            }
        }
        if text.bytes().all(|b| b == b'*') {
            return Ok(Self::Any);
        }
        Ok(Self::Glob(Glob::new(text)))
    }

    /// Whether `subject` matches.
    pub(crate) fn matches(&self, subject: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Null => subject.is_empty(),
            Self::Glob(glob) => glob.matches(subject.as_bytes()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Null => f.write_str("<>"),
            Self::Glob(glob) => f.write_str(&glob.text),
        }
    }
}

/// A list of patterns; it matches when any of them does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Patterns(Box<[Pattern]>);

impl Patterns {
    /// Parses a comma-separated list; an empty item is an error.
    pub(crate) fn parse(list: &str, address: bool) -> Result<Self, ErrorKind> {
        list.split(',')
            .map(|item| Pattern::parse(item, address))
            .collect::<Result<Box<[_]>, _>>()
            .map(Self)
    }

    /// Whether any pattern matches `subject`.
    pub(crate) fn matches(&self, subject: &str) -> bool {
        self.0.iter().any(|p| p.matches(subject))
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pattern) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{pattern}")?;
        }
        Ok(())
    }
}

/// Text with at least one character other than `*`, lower-cased (ASCII) when parsed.
///
/// Matching splits it at the first and the last `*`: the part before must start the subject, the
/// part after must end it, and the `*`-separated pieces between must occur in order in what is
/// left. Taking the leftmost occurrence of each piece is enough when `*` is the only wildcard, so
/// matching is a few linear scans, with no backtracking and no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    /// The pattern, lower case.
    text: Box<str>,
    /// Where the first `*` is (the length of the prefix), or `None` when there is no `*`.
    first_star: Option<usize>,
    /// Just past the last `*` (where the suffix starts).
    suffix_start: usize,
}

impl Glob {
    fn new(text: &str) -> Self {
        let text: Box<str> = text.to_ascii_lowercase().into();
        let first_star = text.find('*');
        let suffix_start = text.rfind('*').map_or(0, |i| i + 1);
        Self {
            text,
            first_star,
            suffix_start,
        }
    }

    fn matches(&self, subject: &[u8]) -> bool {
        let pattern = self.text.as_bytes();
        let Some(first_star) = self.first_star else {
            return pattern.eq_ignore_ascii_case(subject);
        };
        let prefix = &pattern[..first_star];
        let suffix = &pattern[self.suffix_start..];
        if subject.len() < prefix.len() + suffix.len()
            || !subject[..prefix.len()].eq_ignore_ascii_case(prefix)
            || !subject[subject.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        {
            return false;
        }
        let mut rest = &subject[prefix.len()..subject.len() - suffix.len()];
        // Between the first and the last star (empty when there is only one star).
        let middle: &[u8] = if self.suffix_start > first_star + 1 {
            &pattern[first_star + 1..self.suffix_start - 1]
        } else {
            &[]
        };
        for piece in middle.split(|&b| b == b'*').filter(|p| !p.is_empty()) {
            match find_ignore_case(rest, piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The first position of `needle` in `haystack`, ignoring ASCII case.
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}
