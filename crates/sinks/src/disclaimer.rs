//! `builtin:disclaimer`: appends a footer to the body text of matching messages: `text` (or
//! `text_file`) to the text/plain part, `html` (or `html_file`) to the text/html part, before
//! `</body>` when there is one.
//!
//! The message is read with `mail-parser`, which gives each MIME part's offsets in the raw
//! content, and the footer is spliced into the body parts in place: the part's transfer
//! encoding is undone (quoted-printable, base64), the footer appended in the part's charset,
//! and the encoding redone. Every other octet — the headers, the other parts, the boundaries —
//! stays as it was. Rebuilding the message with `mail-builder` would re-encode every part and
//! re-fold every header, changing what the sender wrote for no reason (and breaking any
//! signature of the parts left alone); the splice changes only what the footer must.
//!
//! Signed or encrypted messages (multipart/signed, multipart/encrypted, application/pkcs7-mime)
//! are left unchanged, as is a message whose MIME structure is broken, and a part whose charset
//! cannot carry the footer: each is logged, and the message goes on.

use std::sync::Arc;

use base64::Engine as _;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};
use tracing::info;

use crate::props;

/// A relative `text_file` or `html_file` is taken from the data folder (`crate::data_dir`), for
/// `postern binding add` as for the server, so a missing file is refused when it is bound.
pub(crate) struct Factory;

struct Disclaimer {
    /// The footers with CRLF line ends; `None` leaves that kind of part alone.
    text: Option<String>,
    html: Option<String>,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "disclaimer"
    }

    fn summary(&self) -> &'static str {
        "appends a text and HTML footer to the message body; leaves signed or encrypted mail alone"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["text", "text_file", "html", "html_file"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Submission | Event::PostCategorize)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let text = self.footer(spec, "text", "text_file")?;
        let html = self.footer(spec, "html", "html_file")?;
        if text.is_none() && html.is_none() {
            return Err(SinkError::Config(
                "one of the properties `text`, `text_file`, `html`, `html_file` is required".into(),
            ));
        }
        Ok(Instance::Async(Arc::new(Disclaimer { text, html })))
    }
}

impl Factory {
    fn footer(
        &self,
        spec: &SinkSpec,
        key: &str,
        file_key: &str,
    ) -> Result<Option<String>, SinkError> {
        let p = &spec.properties;
        let text = match (props::text(p, key)?, props::text(p, file_key)?) {
            (Some(_), Some(_)) => {
                return Err(SinkError::Config(format!(
                    "properties `{key}` and `{file_key}`: give one, not both"
                )));
            }
            (Some(text), None) => text.into_owned(),
            (None, Some(file)) => {
                let path = crate::data_dir::resolve(file.as_ref());
                std::fs::read_to_string(&path).map_err(|e| {
                    SinkError::Config(format!("property `{file_key}`: {}: {e}", path.display()))
                })?
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(crlf(text.trim_end_matches(['\r', '\n']))))
    }
}

impl Sink for Disclaimer {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        let content = &ctx.message.content;
        let outcome = match self.apply(content.bytes()) {
            Ok(raw) => {
                let body_at = content.body_offset();
                match raw.get(body_at..) {
                    Some(body) if raw[..body_at] == content.bytes()[..body_at] => {
                        Outcome::changes(vec![Change::ReplaceBody(body.to_vec().into())])
                    }
                    _ => Outcome::next(),
                }
            }
            Err(why) => {
                info!(queue_id = ?ctx.message.id, "disclaimer not added: {why}");
                Outcome::next()
            }
        };
        Call::Ready(Ok(outcome))
    }
}

impl Disclaimer {
    /// The message with the footers in place, or why it is left alone.
    fn apply(&self, raw: &[u8]) -> Result<Vec<u8>, String> {
        let message = MessageParser::default()
            .parse(raw)
            .ok_or("the message cannot be parsed")?;
        check_tree(&message, raw)?;
        // Splices from the end, so that earlier offsets stay valid.
        let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let mut skipped = Vec::new();
        let bodies = message.text_body.iter().chain(&message.html_body);
        let mut seen = Vec::new();
        for &id in bodies {
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            let Some(part) = message.parts.get(id as usize) else {
                continue;
            };
            let footer = match &part.body {
                PartType::Text(_) => self.text.as_deref().map(|f| (f, false)),
                PartType::Html(_) => self.html.as_deref().map(|f| (f, true)),
                _ => None,
            };
            let Some((footer, html)) = footer else {
                continue;
            };
            let (start, end) = (part.offset_body as usize, part.offset_end as usize);
            let Some(encoded) = raw.get(start..end) else {
                return Err("a part's offsets fall outside the message".into());
            };
            let charset = part
                .content_type()
                .and_then(|c| c.attribute("charset"))
                .unwrap_or("us-ascii");
            let cte = part
                .content_transfer_encoding()
                .unwrap_or("7bit")
                .to_ascii_lowercase();
            match splice_part(encoded, &cte, charset, footer, html) {
                Ok(new) => edits.push((start, end, new)),
                Err(why) => skipped.push(format!("part {id}: {why}")),
            }
        }
        if edits.is_empty() {
            return Err(if skipped.is_empty() {
                "no text or HTML body part to add a footer to".into()
            } else {
                skipped.join("; ")
            });
        }
        edits.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut out = raw.to_vec();
        for (start, end, new) in edits {
            out.splice(start..end, new);
        }
        Ok(out)
    }
}

/// Refuses signed and encrypted messages and multiparts whose boundaries are missing.
fn check_tree(message: &Message<'_>, raw: &[u8]) -> Result<(), String> {
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let ctype = ct.ctype().to_ascii_lowercase();
        let subtype = ct.subtype().unwrap_or("").to_ascii_lowercase();
        match (ctype.as_str(), subtype.as_str()) {
            ("multipart", "signed") => {
                return Err("the message is signed (multipart/signed)".into());
            }
            ("multipart", "encrypted") => {
                return Err("the message is encrypted (multipart/encrypted)".into());
            }
            ("application", "pkcs7-mime" | "x-pkcs7-mime") => {
                return Err(
                    "the message is S/MIME signed or encrypted (application/pkcs7-mime)".into(),
                );
            }
            ("multipart", _) => {
                let Some(boundary) = ct.attribute("boundary") else {
                    return Err(format!(
                        "malformed MIME: multipart/{subtype} without a boundary"
                    ));
                };
                let closing = format!("\n--{boundary}--");
                let body = raw
                    .get(part.offset_body as usize..part.offset_end as usize)
                    .unwrap_or_default();
                let opening = format!("--{boundary}");
                if !contains(body, opening.as_bytes()) || !contains(body, closing.as_bytes()) {
                    return Err(format!(
                        "malformed MIME: the boundary of multipart/{subtype} does not open and close its parts"
                    ));
                }
            }
            _ => {}
        }
        if part.is_encoding_problem {
            return Err("malformed MIME: a part's encoding cannot be decoded".into());
        }
    }
    Ok(())
}

/// A body part's encoded octets with the footer added.
fn splice_part(
    encoded: &[u8],
    cte: &str,
    charset: &str,
    footer: &str,
    html: bool,
) -> Result<Vec<u8>, String> {
    let footer = encode_charset(footer, charset)?;
    let mut decoded = match cte {
        "base64" => {
            let clean: Vec<u8> = encoded
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|e| format!("base64 that does not decode: {e}"))?
        }
        "quoted-printable" => qp_decode(encoded),
        "7bit" | "8bit" | "binary" | "" => encoded.to_vec(),
        other => return Err(format!("unknown Content-Transfer-Encoding {other:?}")),
    };
    if html {
        let at = rfind_ci(&decoded, b"</body>").unwrap_or(decoded.len());
        let mut insert = footer;
        insert.extend_from_slice(b"\r\n");
        decoded.splice(at..at, insert);
    } else {
        if !decoded.is_empty() && !decoded.ends_with(b"\n") {
            decoded.extend_from_slice(b"\r\n");
        }
        decoded.extend_from_slice(b"\r\n");
        decoded.extend_from_slice(&footer);
        decoded.extend_from_slice(b"\r\n");
    }
    // The encoded part ended with or without a line break before the boundary; keep it so.
    let trailing = if encoded.ends_with(b"\r\n") {
        "\r\n"
    } else {
        ""
    };
    let mut out = match cte {
        "base64" => base64_lines(&decoded),
        "quoted-printable" => qp_encode(&decoded),
        _ => decoded,
    };
    while out.ends_with(b"\r\n") {
        out.truncate(out.len() - 2);
    }
    out.extend_from_slice(trailing.as_bytes());
    Ok(out)
}

/// The footer in the part's charset; a charset that cannot carry it is a refusal.
fn encode_charset(footer: &str, charset: &str) -> Result<Vec<u8>, String> {
    let cs = charset.to_ascii_lowercase();
    match cs.as_str() {
        "utf-8" | "utf8" => Ok(footer.as_bytes().to_vec()),
        "us-ascii" | "ascii" if footer.is_ascii() => Ok(footer.as_bytes().to_vec()),
        "iso-8859-1" | "latin1" | "iso_8859-1" | "windows-1252" | "cp1252" => footer
            .chars()
            .map(|c| {
                u8::try_from(u32::from(c))
                    .ok()
                    .filter(|b| !(0x80..0xA0).contains(b))
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("the footer has characters {charset} cannot carry")),
        _ if footer.is_ascii() && !cs.starts_with("utf-16") && !cs.starts_with("utf-32") => {
            // ASCII is the same octets in every charset mail uses but the wide ones.
            Ok(footer.as_bytes().to_vec())
        }
        _ => Err(format!("the footer has characters {charset} cannot carry")),
    }
}

fn qp_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'=' {
            let rest = &input[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (
                rest.first().and_then(|&c| hex(c)),
                rest.get(1).and_then(|&c| hex(c)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line breaks kept as hard breaks and soft breaks
/// before 76 columns.
fn qp_encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    for (n, line) in input.split(|&b| b == b'\n').enumerate() {
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let width = if plain { 1 } else { 3 };
            if col + width > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if plain {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            col += width;
        }
    }
    out
}

fn base64_lines(data: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38 + 2);
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn rfind_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .rposition(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
#[path = "disclaimer_tests.rs"]
mod tests;
