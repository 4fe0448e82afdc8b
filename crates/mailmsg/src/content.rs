//! The content of a message: the RFC 5322 octets as received (dot-unstuffed, CRLF line ends),
//! with headers parsed on demand by `mail-parser` and edited in place through its byte offsets.

use bytes::Bytes;
use mail_parser::MessageParser;

/// A header change that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The name is empty or has characters outside printable US-ASCII, or a colon.
    #[error("invalid header name {0:?}")]
    InvalidName(String),
    /// The value has a NUL, or a CR or LF that is not a fold (CRLF followed by a space or tab
    /// and more text), which would break the header section.
    #[error("invalid value for header {0:?}: NUL, and CR or LF outside a fold, are not allowed")]
    InvalidValue(String),
}

/// The RFC 5322 message. Cloning shares the octets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    raw: Bytes,
}

impl Content {
    /// Wraps the octets of a message.
    pub fn new(raw: impl Into<Bytes>) -> Self {
        Self { raw: raw.into() }
    }

    /// The whole message.
    pub fn bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The size in octets.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there is no content yet.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The offset where the body starts (after the empty line ending the header section), or the
    /// length of the message when it has no body.
    pub fn body_offset(&self) -> usize {
        let raw = &self.raw[..];
        if raw.starts_with(b"\r\n") {
            return 2;
        }
        match memchr::memmem::find(raw, b"\r\n\r\n") {
            Some(pos) => pos + 4,
            None => raw.len(),
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.raw[self.body_offset()..]
    }

    /// The raw values (unfolded is left to the caller) of every header named `name`, compared
    /// without case, in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let Some(message) = MessageParser::default().parse_headers(&self.raw[..]) else {
            return Vec::new();
        };
        message
            .headers_raw()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Every header as (name, raw value), in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let Some(message) = MessageParser::default().parse_headers(&self.raw[..]) else {
            return Vec::new();
        };
        message
            .headers_raw()
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// Inserts a header field at the top of the header section (where trace fields go).
    pub fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        let field = format_field(name, value)?;
        let mut out = Vec::with_capacity(field.len() + self.raw.len());
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&self.raw);
        self.raw = out.into();
        Ok(())
    }

    /// Appends a header field at the end of the header section (after the existing fields, in
    /// the order changes are made).
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        let field = format_field(name, value)?;
        let at = self.header_section_end();
        let mut out = Vec::with_capacity(field.len() + self.raw.len() + 2);
        out.extend_from_slice(&self.raw[..at]);
        out.extend_from_slice(field.as_bytes());
        if at == self.raw.len() && !self.raw.is_empty() && !self.raw.ends_with(b"\r\n\r\n") {
            // A message with no body still needs the empty line that ends the header section.
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.raw[at..]);
        self.raw = out.into();
        Ok(())
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove_header(&mut self, name: &str) -> usize {
        let spans = self.field_spans(name);
        if spans.is_empty() {
            return 0;
        }
        let mut out = Vec::with_capacity(self.raw.len());
        let mut from = 0;
        for &(start, end) in &spans {
            out.extend_from_slice(&self.raw[from..start]);
            from = end;
        }
        out.extend_from_slice(&self.raw[from..]);
        self.raw = out.into();
        spans.len()
    }

    /// Replaces the fields named `name` by one field with `value`, where the first stood; appends
    /// it when there was none.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        let field = format_field(name, value)?;
        let spans = self.field_spans(name);
        let Some(&(first_start, _)) = spans.first() else {
            return self.append_header(name, value);
        };
        let mut out = Vec::with_capacity(self.raw.len() + field.len());
        let mut from = 0;
        for &(start, end) in &spans {
            out.extend_from_slice(&self.raw[from..start]);
            if start == first_start {
                out.extend_from_slice(field.as_bytes());
            }
            from = end;
        }
        out.extend_from_slice(&self.raw[from..]);
        self.raw = out.into();
        Ok(())
    }

    /// Replaces the body, keeping the header section.
    pub fn replace_body(&mut self, body: &[u8]) {
        let at = self.body_offset();
        let mut out = Vec::with_capacity(at + body.len() + 2);
        out.extend_from_slice(&self.raw[..at]);
        if at == self.raw.len() && !self.raw.ends_with(b"\r\n\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(body);
        self.raw = out.into();
    }

    /// Inserts a field before the field at `index` (0 is the top, counting every field); an
    /// index past the last field appends (the milter protocol's insheader).
    pub fn insert_header_at(
        &mut self,
        index: usize,
        name: &str,
        value: &str,
    ) -> Result<(), HeaderError> {
        let field = format_field(name, value)?;
        let spans = self.spans_where(|_| true);
        let Some(&(at, _)) = spans.get(index) else {
            return self.append_header(name, value);
        };
        let mut out = Vec::with_capacity(field.len() + self.raw.len());
        out.extend_from_slice(&self.raw[..at]);
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&self.raw[at..]);
        self.raw = out.into();
        Ok(())
    }

    /// Replaces the value of the `nth` field named `name` (1 is the first), or removes that
    /// field when `value` is `None`; a field that is not there is appended (the milter
    /// protocol's chgheader). Returns whether a field was found.
    pub fn change_header(
        &mut self,
        name: &str,
        nth: usize,
        value: Option<&str>,
    ) -> Result<bool, HeaderError> {
        let spans = self.field_spans(name);
        let Some(&(start, end)) = nth.checked_sub(1).and_then(|i| spans.get(i)) else {
            if let Some(value) = value {
                self.append_header(name, value)?;
            }
            return Ok(false);
        };
        let field = match value {
            Some(value) => format_field(name, value)?,
            None => String::new(),
        };
        let mut out = Vec::with_capacity(self.raw.len() + field.len());
        out.extend_from_slice(&self.raw[..start]);
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&self.raw[end..]);
        self.raw = out.into();
        Ok(true)
    }

    /// The offset just past the last header field (before the empty line).
    fn header_section_end(&self) -> usize {
        let body = self.body_offset();
        if body >= 2 && self.raw[..body].ends_with(b"\r\n\r\n") {
            body - 2
        } else if body == 2 && self.raw.starts_with(b"\r\n") {
            0
        } else {
            body
        }
    }

    /// The byte ranges (name through the final CRLF) of every field named `name`.
    fn field_spans(&self, name: &str) -> Vec<(usize, usize)> {
        self.spans_where(|field| field.eq_ignore_ascii_case(name))
    }

    /// The byte ranges of every field whose name passes `keep`, in order.
    fn spans_where(&self, keep: impl Fn(&str) -> bool) -> Vec<(usize, usize)> {
        let Some(message) = MessageParser::default().parse_headers(&self.raw[..]) else {
            return Vec::new();
        };
        message
            .headers()
            .iter()
            .filter(|h| keep(h.name.as_str()))
            .map(|h| {
                // mail-parser's `offset_end` is just past the field's final line end.
                let start = h.offset_field as usize;
                let end = (h.offset_end as usize).min(self.raw.len());
                (start, end)
            })
            .collect()
    }
}

/// Whether `name` is a header field name (RFC 5322 §3.6.8: one or more printable US-ASCII
/// characters other than the colon). Postern's one check, for header changes, the `HEADER:`
/// condition of rules and the sinks that add fields.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// One line, or lines folded the RFC 5322 way: every CR is followed by LF, every LF follows a
/// CR and is followed by a space or tab, and there is no NUL. A folded value stays folded
/// exactly as given, which keeps a DKIM signature with simple canonicalisation valid.
fn is_field_value(value: &str) -> bool {
    let b = value.as_bytes();
    b.iter().enumerate().all(|(i, &c)| match c {
        0 => false,
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && b[i - 1] == b'\r' && matches!(b.get(i + 1), Some(b' ' | b'\t')),
        _ => true,
    })
}

fn format_field(name: &str, value: &str) -> Result<String, HeaderError> {
    if !is_header_name(name) {
        return Err(HeaderError::InvalidName(name.to_owned()));
    }
    if !is_field_value(value) {
        return Err(HeaderError::InvalidValue(name.to_owned()));
    }
    Ok(format!("{name}: {value}\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str =
        "From: a@example.com\r\nSubject: hi\r\n there\r\nX-Tag: 1\r\nX-Tag: 2\r\n\r\nbody\r\n";

    fn content() -> Content {
        Content::new(MSG.as_bytes().to_vec())
    }

    #[test]
    fn header_names() {
        let cases: &[(&str, &str, bool)] = &[
            ("plain", "Subject", true),
            ("extension", "X-Spam-Score", true),
            ("punctuation", "X-a.b_c!", true),
            ("empty", "", false),
            ("colon", "Subject:", false),
            ("blank", "X Tag", false),
            ("tab", "X\tTag", false),
            ("non-ascii", "X-Tägg", false),
            ("control", "X\x7f", false),
        ];
        for (name, input, want) in cases {
            assert_eq!(is_header_name(input), *want, "case {name}");
        }
    }

    #[test]
    fn reads_header_values_in_order() {
        assert_eq!(content().header_values("x-tag"), vec!["1", "2"]);
        assert_eq!(content().body(), b"body\r\n");
    }

    #[test]
    fn appended_headers_keep_the_order_they_were_added_in() {
        let mut c = content();
        c.append_header("X-A", "first").unwrap();
        c.append_header("X-B", "second").unwrap();
        let text = String::from_utf8(c.bytes().to_vec()).unwrap();
        assert!(text.contains("X-Tag: 2\r\nX-A: first\r\nX-B: second\r\n\r\nbody"));
    }

    #[test]
    fn removes_every_field_of_a_name_with_its_folded_lines() {
        let mut c = content();
        assert_eq!(c.remove_header("subject"), 1);
        assert_eq!(c.remove_header("X-Tag"), 2);
        assert_eq!(
            c.bytes().as_ref(),
            b"From: a@example.com\r\n\r\nbody\r\n".as_slice()
        );
    }

    #[test]
    fn set_header_replaces_all_fields_of_the_name_by_one() {
        let mut c = content();
        c.set_header("X-Tag", "3").unwrap();
        assert_eq!(c.header_values("X-Tag"), vec!["3"]);
        c.set_header("X-New", "n").unwrap();
        assert_eq!(c.header_values("X-New"), vec!["n"]);
    }

    #[test]
    fn replace_body_keeps_headers() {
        let mut c = content();
        c.replace_body(b"new\r\n");
        assert_eq!(c.body(), b"new\r\n");
        assert_eq!(c.header_values("From"), vec!["a@example.com"]);
    }

    #[test]
    fn inserts_at_an_index_and_changes_the_nth_field() {
        let mut c = content();
        c.insert_header_at(1, "X-Ins", "i").unwrap();
        c.insert_header_at(99, "X-Last", "l").unwrap();
        c.change_header("X-Tag", 2, Some("two")).unwrap();
        assert!(c.change_header("X-Tag", 1, None).unwrap());
        assert!(!c.change_header("X-None", 1, None).unwrap());
        assert_eq!(
            c.bytes().as_ref(),
            b"From: a@example.com\r\nX-Ins: i\r\nSubject: hi\r\n there\r\nX-Tag: two\r\nX-Last: l\r\n\r\nbody\r\n"
                .as_slice()
        );
    }

    #[test]
    fn keeps_folded_values_and_refuses_broken_folds() {
        let mut c = content();
        c.prepend_header("X-Fold", "a;\r\n\tb=1").unwrap();
        assert!(c.bytes().starts_with(b"X-Fold: a;\r\n\tb=1\r\nFrom:"));
        for bad in ["a\r\n", "a\nb", "a\rb", "a\r\nb", "\n b", "a\0"] {
            assert!(c.append_header("X-Bad", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_values_that_would_inject_fields() {
        let mut c = content();
        assert!(c.append_header("X-Evil", "a\r\nBcc: x@y").is_err());
        assert!(c.append_header("Bad Name", "v").is_err());
    }
}
