//! The "Disclaimer" recipe of docs/cookbook.md, run as written against a running server; the
//! delivered mail is checked with Python's `email` package.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Postern;
use common::cookbook as recipe;

/// Each text part of `raw` as Python's `email` package decodes it (`type|content`), failing on
/// any parsing defect.
fn python_parts(raw: &str) -> Vec<String> {
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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
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
fn mail_from_the_domain_gets_both_footers_and_signed_mail_is_untouched() {
    let server = Postern::start();
    let commands = recipe::commands("Disclaimer");
    recipe::run(&server.dir, &commands);
    server.wait_for_log(&format!("bindings={}", commands.len()));

    let alternative = "From: alice@example.com\r\nTo: bob@localhost\r\nSubject: alt\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
        --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        SGVsbG8sIEJvYi4NCg==\r\n\
        --b\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
        <html><body><p>Hello, Bob. D=E9j=E0 vu.</p></body></html>\r\n\
        --b--\r\n";
    let signed = "From: alice@example.com\r\nTo: bob@localhost\r\nSubject: signed\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=\"s\"\r\n\r\n\
        --s\r\nContent-Type: text/plain\r\n\r\nSigned words.\r\n\
        --s\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nxx\r\n-----END PGP SIGNATURE-----\r\n\
        --s--\r\n";
    let other =
        "From: carol@other.test\r\nTo: bob@localhost\r\nSubject: other\r\n\r\nNot ours.\r\n";
    for (from, body) in [
        ("alice@example.com", alternative),
        ("alice@example.com", signed),
        ("carol@other.test", other),
    ] {
        let reply = server.client().send_message(from, &["bob@localhost"], body);
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    let mail = server.wait_for_mail("localhost", "bob", 3);
    let find = |subject: &str| {
        mail.iter()
            .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .unwrap_or_else(|| panic!("no {subject}: {mail:?}"))
            .clone()
    };
    let parts = python_parts(&find("alt"));
    assert_eq!(
        parts[0],
        "text/plain|Hello, Bob.\n\nThis message is confidential.\n"
    );
    assert!(
        parts[1].starts_with(
            "text/html|<html><body><p>Hello, Bob. Déjà vu.</p><p>This message is confidential.</p>\n</body></html>"
        ),
        "{parts:?}"
    );
    // The signed body arrives octet for octet (the store adds fields on top only).
    let signed_out = find("signed");
    assert!(
        signed_out.contains(&signed[signed.find("\r\n\r\n").unwrap()..]),
        "{signed_out:?}"
    );
    assert!(!find("other").contains("confidential"));
    server.wait_for_log("disclaimer not added: the message is signed");
}

/// A footer file is read from the data folder when it is bound: a missing one is refused then,
/// a present one accepted.
#[test]
fn binding_add_reads_a_relative_footer_file_from_the_data_folder() {
    let dir = common::workdir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let add = |file: &str| {
        common::binding(
            dir.path(),
            &[
                "add",
                "--event",
                "submission",
                "--sink",
                "builtin:disclaimer",
                "--prop",
                &format!("text_file={file}"),
            ],
        )
    };
    let (code, _, err) = add("footer.txt");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("footer.txt"), "{err}");
    std::fs::write(data.join("footer.txt"), "Sent by Postern.\n").unwrap();
    let (code, _, err) = add("footer.txt");
    assert_eq!(code, 0, "{err}");
}
