//! Naming the field at a byte offset, for the errors that `toml` reports with a span only
//! (syntax errors, unknown keys, wrong types).

use std::cmp::Reverse;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A key or value of the document, with the dotted path that names it.
struct Node {
    path: String,
    span: Range<usize>,
    depth: usize,
}

/// The dotted path of the narrowest key or value of `doc` that holds `offset`; failing that,
/// of the last one that ends exactly there (an error at the end of an unfinished value).
pub(crate) fn field_at(doc: &DeTable<'_>, offset: usize) -> Option<String> {
    let mut nodes = Vec::new();
    table_nodes(doc, "", 0, &mut nodes);
    let inside = nodes
        .iter()
        .filter(|node| node.span.contains(&offset))
        .min_by_key(|node| (node.span.len(), Reverse(node.depth)));
    let ending = || {
        nodes
            .iter()
            .filter(|node| node.span.end == offset)
            .max_by_key(|node| (node.span.start, node.depth))
    };
    inside.or_else(ending).map(|node| node.path.clone())
}

/// The table named by a `[table]` or `[[array]]` header on the line of `offset`, when that line
/// is one (a syntax error in a header leaves nothing in the document to point at).
pub(crate) fn header_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text
        .get(..offset)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |newline| newline + 1);
    let line = text.get(start..)?.lines().next()?;
    let name = line.trim_start().strip_prefix('[')?;
    let name = name.trim_start_matches('[');
    let end = name.find([']', '#']).unwrap_or(name.len());
    let name = name[..end].trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn table_nodes(table: &DeTable<'_>, prefix: &str, depth: usize, nodes: &mut Vec<Node>) {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        nodes.push(Node {
            path: path.clone(),
            span: key.span(),
            depth,
        });
        value_nodes(value, path, depth, nodes);
    }
}

fn value_nodes(value: &Spanned<DeValue<'_>>, path: String, depth: usize, nodes: &mut Vec<Node>) {
    match value.get_ref() {
        DeValue::Table(table) => table_nodes(table, &path, depth + 1, nodes),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                value_nodes(item, format!("{path}[{i}]"), depth + 1, nodes);
            }
        }
        _ => {}
    }
    nodes.push(Node {
        path,
        span: value.span(),
        depth,
    });
}

/// Appends `key` to a dotted path, quoting it when it is not a bare TOML key.
fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let text = "hostname = \"mx\"\n\
                    [limits]\n\
                    max_errors = 3\n\
                    [[domain]]\n\
                    name = \"a\"\n\
                    users = [\"x\", 5]\n\
                    [[domain]]\n\
                    name = \"b\"\n\
                    \"odd key\" = 1\n";
        let doc = DeTable::parse(text).expect("valid TOML");
        let at = |needle: &str| text.find(needle).expect("needle in text");
        let cases: &[(&str, usize, Option<&str>)] = &[
            ("top-level key", at("hostname"), Some("hostname")),
            ("top-level value", at("\"mx\""), Some("hostname")),
            (
                "key in a table",
                at("max_errors"),
                Some("limits.max_errors"),
            ),
            ("value in a table", at("3\n"), Some("limits.max_errors")),
            ("array element", at("5]"), Some("domain[0].users[1]")),
            ("second array table", at("\"b\""), Some("domain[1].name")),
            ("array table header", at("[[domain]]"), Some("domain[0]")),
            (
                "quoted key",
                at("\"odd key\""),
                Some("domain[1].\"odd key\""),
            ),
            ("end of a value", at("\n[limits]"), Some("hostname")),
        ];
        for (name, offset, want) in cases {
            assert_eq!(
                field_at(doc.get_ref(), *offset).as_deref(),
                *want,
                "case {name}"
            );
        }
    }

    #[test]
    fn headers() {
        let text = "a = 1\n[limits\nb = 2\n  [[ route ]] # x\n";
        let cases: &[(&str, usize, Option<&str>)] = &[
            ("not a header", 2, None),
            ("unclosed header", 13, Some("limits")),
            ("array header with blanks", 26, Some("route")),
            ("past the end", 100, None),
        ];
        for (name, offset, want) in cases {
            assert_eq!(header_at(text, *offset).as_deref(), *want, "case {name}");
        }
    }
}
