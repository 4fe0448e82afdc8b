//! Reading a configuration text: TOML syntax, then the shape of the file (unknown keys, wrong
//! types, missing fields), then validation. Each stage names the field of its errors.

use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

use crate::error::{ConfigError, ConfigErrors, Problems};
use crate::locate;
use crate::model::{Config, Source};
use crate::raw::RawConfig;
use crate::validate;

/// Reads the file at `path` and parses it.
pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = Source::File(path.to_path_buf());
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, origin),
        Err(error) => Err(ConfigError {
            origin,
            position: None,
            field: None,
            message: format!("cannot read the configuration file: {error}"),
        }
        .into()),
    }
}

/// Parses and validates `text`. Syntax and shape errors stop at the first one (what follows
/// cannot be trusted); validation reports every problem it finds.
pub(crate) fn parse(text: &str, origin: Source) -> Result<Config, ConfigErrors> {
    let mut problems = Problems::new(text, &origin);
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    // Later syntax errors are mostly echoes of the first one.
    if let Some(error) = syntax_errors.first() {
        let offset = error.span().map(|span| span.start);
        let field = offset.and_then(|offset| {
            locate::field_at(doc.get_ref(), offset).or_else(|| locate::header_at(text, offset))
        });
        problems.push(offset, field, format!("invalid TOML: {}", error.message()));
        return Err(problems.into_errors());
    }
    let raw = match RawConfig::deserialize(toml::de::Deserializer::from(doc.clone())) {
        Ok(raw) => raw,
        Err(error) => {
            let offset = error.span().map(|span| span.start);
            let mut field = offset.and_then(|offset| locate::field_at(doc.get_ref(), offset));
            // A missing field is reported at the table that lacks it.
            if let Some(missing) = missing_field(error.message()) {
                field = Some(match field {
                    Some(table) => format!("{table}.{missing}"),
                    None => missing.to_owned(),
                });
            }
            problems.push(offset, field, plain_words(error.message()));
            return Err(problems.into_errors());
        }
    };
    let config = validate::validate(raw, origin.clone(), &mut problems);
    problems.finish(config)
}

/// The name in serde's "missing field `NAME`".
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(name, _)| name)
}

/// Serde's messages name Rust types; say what the TOML should be instead.
fn plain_words(message: &str) -> String {
    message
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("missing", "missing field `address`", Some("address")),
            ("other", "unknown field `x`, expected `y`", None),
        ];
        for (name, message, want) in cases {
            assert_eq!(missing_field(message), *want, "case {name}");
        }
    }
}
