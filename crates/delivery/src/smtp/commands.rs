//! The command lines of a transaction as the next hop's extensions allow them (SIZE, BODY,
//! SMTPUTF8, RET, ENVID, NOTIFY, ORCPT), what must be refused before anything is sent, and the
//! content as DATA carries it.

use postern_mailmsg::{Body, DsnRet, MailMsg};

use super::conn::{Connection, Extensions};

/// What the next hop said it cannot take, decided before anything is sent.
pub(super) fn refuse_locally(conn: &Connection, msg: &MailMsg) -> Option<String> {
    let ext = &conn.extensions;
    let size = msg.content.len();
    if ext.size() && ext.size > 0 && size > ext.size {
        return Some(format!(
            "552 5.3.4 message size {size} exceeds the limit of {} of the next hop",
            ext.size
        ));
    }
    if needs_smtputf8(msg) && !ext.smtputf8() {
        return Some(
            "553 5.6.7 the message needs SMTPUTF8, which the next hop does not support".into(),
        );
    }
    None
}

fn needs_smtputf8(msg: &MailMsg) -> bool {
    let sender = msg.sender.as_ref();
    sender.is_some_and(|s| s.params.smtputf8 || !s.address.is_ascii())
        || msg.recipients.iter().any(|r| !r.address.is_ascii())
}

pub(super) fn mail_line(msg: &MailMsg, ext: &Extensions) -> String {
    let sender = msg.sender.as_ref();
    let mut line = format!("MAIL FROM:<{}>", msg.sender_address());
    if ext.size() {
        line.push_str(&format!(" SIZE={}", msg.content.len()));
    }
    if let Some(s) = sender {
        if s.params.body != Body::SevenBit && ext.eight_bit() {
            line.push_str(" BODY=8BITMIME");
        }
        if needs_smtputf8(msg) && ext.smtputf8() {
            line.push_str(" SMTPUTF8");
        }
        if ext.dsn() {
            match s.params.ret {
                Some(DsnRet::Full) => line.push_str(" RET=FULL"),
                Some(DsnRet::Headers) => line.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = &s.params.envid {
                line.push_str(" ENVID=");
                line.push_str(&xtext(envid));
            }
        }
    }
    line
}

pub(super) fn rcpt_line(msg: &MailMsg, i: usize, ext: &Extensions) -> String {
    let Some(r) = msg.recipients.get(i) else {
        return String::from("RCPT TO:<>");
    };
    let mut line = format!("RCPT TO:<{}>", r.address);
    if ext.dsn() {
        let n = r.params.notify;
        if n.never {
            line.push_str(" NOTIFY=NEVER");
        } else if n.is_set() {
            let words: Vec<&str> = [
                (n.success, "SUCCESS"),
                (n.failure, "FAILURE"),
                (n.delay, "DELAY"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect();
            line.push_str(" NOTIFY=");
            line.push_str(&words.join(","));
        }
        if let Some(orcpt) = &r.params.orcpt {
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            line.push_str(&format!(" ORCPT={kind};{}", xtext(address)));
        }
    }
    line
}

/// xtext (RFC 3461 §4): `+` and `=`, controls, space and non-ASCII as `+HH`.
fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The content for DATA: lines starting with `.` get one more (RFC 5321 §4.5.2), the content
/// ends with CRLF, then the `.` line.
pub(crate) fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("plain", b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
            ("leading dot", b".a\r\n..b\r\n", b"..a\r\n...b\r\n.\r\n"),
            ("no final CRLF", b"a", b"a\r\n.\r\n"),
            ("dot inside a line", b"a.b\r\n", b"a.b\r\n.\r\n"),
            ("empty", b"", b".\r\n"),
        ];
        for (name, input, want) in cases {
            assert_eq!(dot_stuff(input), *want, "{name}");
        }
    }

    #[test]
    fn xtext_encodes_plus_equals_and_controls() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("rfc822;x@y"), "rfc822;x@y");
    }
}
