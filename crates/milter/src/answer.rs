//! What a milter answers: a reply to a step, or a modification at end of message; both parsed
//! from frames, with header values normalised to Postern's form.

use postern_sink_api::{EnhancedCode, Reply};

use crate::error::MilterError;
use crate::wire::{self, Frame, reply};

/// A milter's answer to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Go on with the next step.
    Continue,
    /// Accept the message (or the connection) with no further steps.
    Accept,
    /// Refuse permanently.
    Reject,
    /// Refuse temporarily.
    TempFail,
    /// Accept and drop the message silently.
    Discard,
    /// Refuse with this reply (4xx or 5xx).
    ReplyCode(Reply),
    /// Send no more body chunks (answer to a body chunk, when SKIP was negotiated).
    Skip,
    /// A modification (only at end of message).
    Modify(Modification),
}

/// A change a milter asks for at end of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Modification {
    /// SMFIR_ADDHEADER.
    AddHeader { name: String, value: String },
    /// SMFIR_INSHEADER.
    InsertHeader {
        index: usize,
        name: String,
        value: String,
    },
    /// SMFIR_CHGHEADER; an empty value removes the field.
    ChangeHeader {
        index: usize,
        name: String,
        value: String,
    },
    /// SMFIR_ADDRCPT and SMFIR_ADDRCPT_PAR (ESMTP arguments are not kept).
    AddRecipient(String),
    /// SMFIR_DELRCPT.
    RemoveRecipient(String),
    /// SMFIR_CHGFROM (ESMTP arguments are not kept).
    ChangeFrom(String),
    /// SMFIR_REPLBODY: one chunk of the new body.
    BodyChunk(Vec<u8>),
    /// SMFIR_QUARANTINE with its reason.
    Quarantine(String),
}

impl Answer {
    /// Parses an answer frame. SMFIR_SETSYMLIST is a modification only in name (libmilter
    /// sends the lists with the negotiation), SMFIR_SHUTDOWN and SMFIR_CONN_FAIL end the
    /// conversation: all three are errors here.
    pub(crate) fn parse(frame: &Frame) -> Result<Self, MilterError> {
        let strings = || wire::strings(&frame.data);
        let first = |what: &str| {
            strings()
                .into_iter()
                .next()
                .ok_or_else(|| MilterError::Protocol(format!("{what} without its argument")))
        };
        let pair = |what: &str| {
            let mut s = strings().into_iter();
            match (s.next(), s.next()) {
                (Some(name), Some(value)) => Ok((name, value)),
                _ => Err(MilterError::Protocol(format!(
                    "{what} without name and value"
                ))),
            }
        };
        let indexed = |what: &str| -> Result<(usize, String, String), MilterError> {
            let index = wire::u32_at(&frame.data, 0)? as usize;
            let mut s = wire::strings(&frame.data[4..]).into_iter();
            match (s.next(), s.next()) {
                (Some(name), value) => Ok((index, name, value.unwrap_or_default())),
                _ => Err(MilterError::Protocol(format!("{what} without a name"))),
            }
        };
        Ok(match frame.code {
            reply::CONTINUE => Self::Continue,
            reply::ACCEPT => Self::Accept,
            reply::REJECT => Self::Reject,
            reply::TEMPFAIL => Self::TempFail,
            reply::DISCARD => Self::Discard,
            reply::SKIP => Self::Skip,
            reply::REPLYCODE => Self::ReplyCode(parse_reply(&first("replycode")?)?),
            reply::ADDHEADER => {
                let (name, value) = pair("addheader")?;
                Self::Modify(Modification::AddHeader { name, value })
            }
            reply::INSHEADER => {
                let (index, name, value) = indexed("insheader")?;
                Self::Modify(Modification::InsertHeader { index, name, value })
            }
            reply::CHGHEADER => {
                let (index, name, value) = indexed("chgheader")?;
                Self::Modify(Modification::ChangeHeader { index, name, value })
            }
            reply::ADDRCPT | reply::ADDRCPT_PAR => {
                Self::Modify(Modification::AddRecipient(unbracket(first("addrcpt")?)))
            }
            reply::DELRCPT => {
                Self::Modify(Modification::RemoveRecipient(unbracket(first("delrcpt")?)))
            }
            reply::CHGFROM => Self::Modify(Modification::ChangeFrom(unbracket(first("chgfrom")?))),
            reply::REPLBODY => Self::Modify(Modification::BodyChunk(frame.data.clone())),
            reply::QUARANTINE => Self::Modify(Modification::Quarantine(
                first("quarantine").unwrap_or_default(),
            )),
            reply::SHUTDOWN | reply::CONN_FAIL => {
                return Err(MilterError::Protocol("the milter is shutting down".into()));
            }
            reply::SETSYMLIST => {
                return Err(MilterError::Protocol(
                    "setsymlist outside negotiation".into(),
                ));
            }
            other => {
                return Err(MilterError::Protocol(format!(
                    "unknown answer {:?}",
                    char::from(other)
                )));
            }
        })
    }
}

/// `<a@b>` → `a@b`; milters send addresses with or without brackets.
fn unbracket(address: String) -> String {
    match address.trim().strip_prefix('<') {
        Some(rest) => rest.split('>').next().unwrap_or_default().to_owned(),
        None => address.trim().to_owned(),
    }
}

/// Parses smfi_setreply's text: `CODE [X.Y.Z] text`, possibly several lines (`CODE-…`) joined
/// by CRLF. Only 4xx and 5xx are allowed, as libmilter enforces.
fn parse_reply(text: &str) -> Result<Reply, MilterError> {
    let bad = || MilterError::Protocol(format!("a bad replycode {text:?}"));
    let mut code = None;
    let mut enhanced = None;
    let mut lines = Vec::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        let number: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        if !(400..600).contains(&number) || code.is_some_and(|c| c != number) {
            return Err(bad());
        }
        code = Some(number);
        let rest = line[3..].trim_start_matches(['-', ' ']);
        let (esc, words) = rest.split_once(' ').unwrap_or((rest, ""));
        match EnhancedCode::parse(esc) {
            Some(e) => {
                enhanced.get_or_insert(e);
                lines.push(words.to_owned());
            }
            None => lines.push(rest.to_owned()),
        }
    }
    Ok(Reply::multiline(code.ok_or_else(bad)?, enhanced, lines))
}

/// A header value as a milter sends it (folded with bare LF; with HDR_LEADSPC, the space after
/// the colon kept) made into what Postern writes: folds as CRLF, and one leading space dropped
/// when `leading_space` was negotiated, since Postern writes `name: value` itself.
pub(crate) fn normalise_value(value: &str, leading_space: bool) -> String {
    let value = if leading_space {
        value.strip_prefix(' ').unwrap_or(value)
    } else {
        value
    };
    let value = value.trim_end_matches(['\r', '\n']);
    let mut out = String::with_capacity(value.len() + 8);
    for (i, line) in value.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
    }
    out
}

/// Body octets made into CRLF lines (a milter may send bare LF).
pub(crate) fn crlf_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 32);
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' && (i == 0 || body[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(code: u8, data: &[u8]) -> Frame {
        Frame {
            code,
            data: data.to_vec(),
        }
    }

    #[test]
    fn normalises_folded_values_with_a_leading_space() {
        let cases: &[(&str, &str, bool, &str)] = &[
            (
                "opendkim",
                " v=1; a=rsa-sha256;\n\tb=xyz",
                true,
                "v=1; a=rsa-sha256;\r\n\tb=xyz",
            ),
            ("no leadspc", "plain", false, "plain"),
            ("one space only", "  two", true, " two"),
            ("crlf kept", "a\r\n b", false, "a\r\n b"),
            ("trailing newline", "a\n", false, "a"),
        ];
        for (name, input, lead, want) in cases {
            assert_eq!(normalise_value(input, *lead), *want, "case {name}");
        }
    }

    #[test]
    fn parses_replies_and_modifications() {
        let mut ins = 0u32.to_be_bytes().to_vec();
        ins.extend_from_slice(b"DKIM-Signature\0 v=1\0");
        let cases: Vec<(&str, Frame, Answer)> = vec![
            ("continue", frame(b'c', b""), Answer::Continue),
            ("skip", frame(b's', b""), Answer::Skip),
            (
                "replycode",
                frame(b'y', b"554 5.7.1 virus found\0"),
                Answer::ReplyCode(Reply::new(
                    554,
                    Some(EnhancedCode::new(5, 7, 1)),
                    "virus found",
                )),
            ),
            (
                "replycode without enhanced",
                frame(b'y', b"451 try later\0"),
                Answer::ReplyCode(Reply::new(451, None, "try later")),
            ),
            (
                "insheader",
                frame(b'i', &ins),
                Answer::Modify(Modification::InsertHeader {
                    index: 0,
                    name: "DKIM-Signature".into(),
                    value: " v=1".into(),
                }),
            ),
            (
                "addrcpt_par",
                frame(b'2', b"<x@y.test>\0NOTIFY=NEVER\0"),
                Answer::Modify(Modification::AddRecipient("x@y.test".into())),
            ),
            (
                "chgfrom",
                frame(b'e', b"<>\0"),
                Answer::Modify(Modification::ChangeFrom(String::new())),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(Answer::parse(&input).unwrap(), want, "case {name}");
        }
    }

    #[test]
    fn refuses_garbage() {
        let cases: &[(&str, Frame)] = &[
            ("unknown code", frame(b'Z', b"")),
            ("replycode 250", frame(b'y', b"250 ok\0")),
            ("replycode text", frame(b'y', b"hello\0")),
            ("addheader no value", frame(b'h', b"X-A\0")),
            ("insheader short", frame(b'i', b"\0\0")),
            ("shutdown", frame(b'4', b"")),
        ];
        for (name, input) in cases {
            assert!(Answer::parse(input).is_err(), "case {name}");
        }
    }

    #[test]
    fn body_gets_crlf() {
        assert_eq!(crlf_body(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
