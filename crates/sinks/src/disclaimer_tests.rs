//! `builtin:disclaimer` on the shapes of mail it meets; Python's `email` package checks that
//! each result still parses, with the footer in the part it belongs to.

use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

fn sink() -> Disclaimer {
    Disclaimer {
        text: Some(crlf("-- \nSent through Postern. Café.")),
        html: Some(crlf("<p>Sent through Postern. Café.</p>")),
    }
}

fn crlf_msg(text: &str) -> Vec<u8> {
    crlf(text).into_bytes()
}

/// Python's view: every text part's decoded content, `kind|content` a part, joined by NUL;
/// fails on any parsing defect.
fn python_parts(raw: &[u8]) -> Vec<String> {
    let script = r#"
import sys, email
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
out = []
for part in msg.walk():
    if part.defects:
        sys.exit("defects: %r" % part.defects)
    if part.get_content_maintype() == "text":
        out.append(part.get_content_type() + "|" + part.get_content().replace("\r\n", "\n"))
sys.stdout.write("\0".join(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .map(str::to_owned)
        .collect()
}

#[test]
fn plain_text_gets_the_footer_at_the_end() {
    let raw = crlf_msg(
        "From: a@x.test\nSubject: s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nHello.\n",
    );
    let out = sink().apply(&raw).unwrap();
    assert!(out.starts_with(b"From: a@x.test\r\nSubject: s\r\n"));
    let parts = python_parts(&out);
    assert_eq!(
        parts,
        ["text/plain|Hello.\n\n-- \nSent through Postern. Café.\n"]
    );
}

#[test]
fn multipart_alternative_gets_both_footers_and_keeps_other_parts_byte_identical() {
    let attachment = "--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=x.bin\r\n\r\nAAECAwQ=\r\n";
    let raw = crlf_msg(&format!(
        "From: a@x.test\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b1\n\n\
         --b1\nContent-Type: multipart/alternative; boundary=b2\n\n\
         --b2\nContent-Type: text/plain; charset=us-ascii\n\nHi there.\n\
         --b2\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
         <html><body><p>Hi there =E2=80=94 friend.</p></body></html>\n\
         --b2--\n\n{}--b1--\n",
        attachment.replace("\r\n", "\n")
    ));
    let out = sink().apply(&raw).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains(attachment), "{text}");
    let parts = python_parts(&out);
    assert_eq!(parts.len(), 2, "{parts:?}");
    // us-ascii cannot carry é: the plain part is left alone, the HTML one gets its footer.
    // The line break before a boundary belongs to the boundary, not to the part.
    assert_eq!(parts[0], "text/plain|Hi there.");
    assert!(
        parts[1].starts_with("text/html|<html><body><p>Hi there — friend.</p><p>Sent through Postern. Café.</p>\n</body></html>"),
        "{parts:?}"
    );
    let ascii = Disclaimer {
        text: Some("-- \r\nSent through Postern.".into()),
        html: None,
    };
    let parts = python_parts(&ascii.apply(&raw).unwrap());
    assert_eq!(
        parts[0],
        "text/plain|Hi there.\n\n-- \nSent through Postern."
    );
}

#[test]
fn a_base64_part_is_decoded_extended_and_encoded_again() {
    let body = base64::engine::general_purpose::STANDARD.encode("Grüße aus Köln.\r\n");
    let raw = crlf_msg(&format!(
        "From: a@x.test\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n{body}\n"
    ));
    let out = sink().apply(&raw).unwrap();
    let parts = python_parts(&out);
    assert_eq!(
        parts,
        ["text/plain|Grüße aus Köln.\n\n-- \nSent through Postern. Café.\n"]
    );
    let text = String::from_utf8(out).unwrap();
    assert!(text.lines().all(|l| l.len() <= 76), "{text}");
}

#[test]
fn an_iso_8859_1_part_gets_the_footer_in_iso_8859_1() {
    let mut raw = crlf_msg(
        "From: a@x.test\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nD=E9j=E0 vu.\n",
    );
    let out = sink().apply(&raw).unwrap();
    assert!(
        String::from_utf8_lossy(&out).contains("Caf=E9."),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let parts = python_parts(&out);
    assert_eq!(
        parts,
        ["text/plain|Déjà vu.\n\n-- \nSent through Postern. Café.\n"]
    );
    // 8bit: the octets themselves.
    raw = b"From: a@x.test\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\nD\xe9j\xe0 vu.\r\n".to_vec();
    let out = sink().apply(&raw).unwrap();
    assert!(out.ends_with(b"Caf\xe9.\r\n"));
    assert_eq!(
        python_parts(&out),
        ["text/plain|Déjà vu.\n\n-- \nSent through Postern. Café.\n"]
    );
}

#[test]
fn signed_and_encrypted_messages_are_left_alone() {
    let cases = [
        (
            "pgp signed",
            "multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=s",
            "signed",
        ),
        (
            "pgp encrypted",
            "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=s",
            "encrypted",
        ),
        (
            "s/mime",
            "application/pkcs7-mime; smime-type=enveloped-data",
            "pkcs7-mime",
        ),
    ];
    for (name, ctype, why) in cases {
        let raw = crlf_msg(&format!(
            "From: a@x.test\nContent-Type: {ctype}\n\n--s\nContent-Type: text/plain\n\nsigned text\n--s\nContent-Type: application/pgp-signature\n\nsig\n--s--\n"
        ));
        let err = sink().apply(&raw).unwrap_err();
        assert!(err.contains(why), "{name}: {err}");
    }
}

#[test]
fn a_malformed_mime_tree_is_left_alone() {
    let cases = [
        (
            "no boundary",
            "From: a@x.test\nContent-Type: multipart/mixed\n\n--x\nContent-Type: text/plain\n\nhi\n--x--\n",
        ),
        (
            "boundary never closed",
            "From: a@x.test\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nhi\n",
        ),
        (
            "base64 that does not decode",
            "From: a@x.test\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!! not base64 ****\n",
        ),
    ];
    for (name, raw) in cases {
        assert!(sink().apply(&crlf_msg(raw)).is_err(), "{name}");
    }
}

#[test]
fn quoted_printable_round_trips() {
    let text =
        "a line with = and trailing space \r\nnon-ASCII: \u{e9}\r\n".repeat(5) + &"x".repeat(200);
    let encoded = qp_encode(text.as_bytes());
    assert!(encoded.split(|&b| b == b'\n').all(|l| l.len() <= 77));
    assert_eq!(qp_decode(&encoded), text.as_bytes());
}

#[test]
fn a_binding_needs_one_footer_and_not_a_text_and_its_file() {
    use postern_mailmsg::Properties;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("footer.txt"), "From the file.\n").unwrap();
    let factory = Factory;
    let footer = dir.path().join("footer.txt").display().to_string();
    let missing = dir.path().join("missing.html").display().to_string();
    let spec = |props: &[(&str, &str)]| {
        let mut properties = Properties::default();
        for (k, v) in props {
            properties.set(*k, *v);
        }
        SinkSpec {
            binding_id: "b".into(),
            binding_name: "footer".into(),
            event: Event::Submission,
            properties,
            target: "disclaimer".into(),
        }
    };
    let why = |props: &[(&str, &str)]| match factory.create(&spec(props)) {
        Err(SinkError::Config(why)) => why,
        _ => panic!("{props:?} accepted"),
    };
    assert!(why(&[]).contains("is required"));
    assert!(why(&[("text", "a"), ("text_file", &footer)]).contains("not both"));
    assert!(why(&[("html_file", &missing)]).contains("missing.html"));
    assert!(factory.create(&spec(&[("text_file", &footer)])).is_ok());
}
