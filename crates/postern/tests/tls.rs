//! STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with real clients: Python's smtplib and ssl,
//! and swaks. The server runs on its self-signed default certificate unless a test names one.

mod common;

use std::process::Command;

use common::peers::which;
use common::tls::{ANY_CERTIFICATE, python, start_listeners};
use common::{Postern, bind, workdir};

/// One listener of each mode.
const THREE_LISTENERS: &str = r#"
[[listener]]
address = "127.0.0.1:0"

[[listener]]
address = "127.0.0.1:0"
mode = "submission"

[[listener]]
address = "127.0.0.1:0"
mode = "submissions"

[[domain]]
name = "localhost"
users = "*"
"#;

#[test]
fn smtplib_starttls_delivers_and_received_records_esmtps_with_version_and_cipher() {
    let server = Postern::start();
    let script = format!(
        "{ANY_CERTIFICATE}
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.ehlo()
assert s.has_extn('starttls'), s.esmtp_features
code, _ = s.starttls(context=ctx)
assert code == 220, code
print('version', s.sock.version())
s.ehlo()
assert not s.has_extn('starttls'), 'STARTTLS offered inside TLS'
print('again', s.docmd('STARTTLS'))
s.sendmail('alice@localhost', ['bob@localhost'], 'Subject: encrypted\\r\\n\\r\\nhello\\r\\n')
s.quit()
"
    );
    let (ok, out) = python(&script, &[&server.addr.port().to_string()]);
    assert!(ok, "{out}\nlog:\n{}", server.log());
    assert!(
        out.contains("again (503, b'5.5.1 TLS already active')"),
        "{out}"
    );
    // The self-signed default was made where the documentation says.
    let tls = server.dir.join("data").join("tls");
    assert!(tls.join("cert.pem").is_file() && tls.join("key.pem").is_file());
    let mail = server.wait_for_mail("localhost", "bob", 1);
    let received = mail[0]
        .lines()
        .find(|l| l.starts_with("Received:"))
        .expect("Received:");
    assert!(received.contains(" with ESMTPS id "), "{received}");
    assert!(
        received.contains("(using TLSv1.3 with cipher TLS_"),
        "{received}"
    );
}

#[test]
fn input_pipelined_after_starttls_is_never_answered_and_the_session_starts_afresh() {
    let server = Postern::start();
    // Read byte by byte in clear so that no reply after the 220 can hide in a buffer: a
    // reply in clear after it would also break the handshake.
    let script = format!(
        "{ANY_CERTIFICATE}
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
def clear_line():
    line = b''
    while not line.endswith(b'\\n'):
        line += s.recv(1)
    return line
def clear_reply():
    while True:
        line = clear_line()
        if line[3:4] != b'-':
            return line
clear_reply()
s.sendall(b'EHLO client.test\\r\\nMAIL FROM:<alice@localhost>\\r\\n')
clear_reply(); clear_reply()
s.sendall(b'STARTTLS\\r\\nRSET\\r\\n')
print('starttls', clear_reply())
t = ctx.wrap_socket(s)
f = t.makefile('rb')
def reply():
    lines = []
    while True:
        lines.append(f.readline())
        if lines[-1][3:4] != b'-':
            return b''.join(lines)
t.sendall(b'RCPT TO:<bob@localhost>\\r\\n')
print('rcpt', reply())
t.sendall(b'MAIL FROM:<alice@localhost>\\r\\n')
print('mail', reply())
t.sendall(b'EHLO client.test\\r\\nMAIL FROM:<alice@localhost>\\r\\nQUIT\\r\\n')
print('ehlo', reply()[:3], 'mail', reply(), 'quit', reply())
"
    );
    let (ok, out) = python(&script, &[&server.addr.port().to_string()]);
    assert!(ok, "{out}\nlog:\n{}", server.log());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "starttls b'220 2.0.0 Ready to start TLS\\r\\n'",
            // RSET was not answered: the first reply in TLS is RCPT's; the sender given
            // in clear is forgotten, and so is EHLO (no enhanced codes until it comes again).
            "rcpt b'503 Bad sequence of commands: send MAIL first\\r\\n'",
            "mail b'503 Bad sequence of commands: send EHLO or HELO first\\r\\n'",
            "ehlo b'250' mail b'250 2.1.0 Sender OK\\r\\n' quit b'221 2.0.0 Bye\\r\\n'",
        ],
        "{out}"
    );
}

#[test]
fn listener_modes_require_starttls_and_auth_before_mail() {
    let dir = workdir();
    let (server, bound) = start_listeners(dir.path(), THREE_LISTENERS);
    let modes: Vec<&str> = bound.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(modes, ["smtp", "submission", "submissions"]);
    let port = |i: usize| bound[i].1.port().to_string();
    let script = format!(
        "{ANY_CERTIFICATE}
import smtplib, sys
smtp = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
smtp.ehlo()
print('smtp mail in clear', smtp.docmd('MAIL FROM:<alice@localhost>')[0])
sub = smtplib.SMTP('127.0.0.1', int(sys.argv[2]))
sub.ehlo()
print('submission in clear', sub.docmd('MAIL FROM:<alice@localhost>'))
sub.starttls(context=ctx)
sub.ehlo()
print('submission in tls', sub.docmd('MAIL FROM:<alice@localhost>'))
subs = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[3]), context=ctx)
subs.ehlo()
print('submissions', subs.sock.version(), subs.has_extn('starttls'), subs.docmd('STARTTLS')[0])
print('submissions mail', subs.docmd('MAIL FROM:<alice@localhost>'))
"
    );
    let (ok, out) = python(&script, &[&port(0), &port(1), &port(2)]);
    assert!(ok, "{out}\nlog:\n{}", server.log());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "smtp mail in clear 250",
            "submission in clear (530, b'5.7.0 Must issue a STARTTLS command first')",
            "submission in tls (530, b'5.7.0 Authentication required')",
            "submissions TLSv1.3 False 503",
            "submissions mail (530, b'5.7.0 Authentication required')",
        ],
        "{out}"
    );
}

#[test]
fn swaks_tls_delivers_and_swaks_implicit_tls_reaches_the_auth_requirement() {
    let dir = workdir();
    let (server, bound) = start_listeners(dir.path(), THREE_LISTENERS);
    let swaks = |args: &[&str]| {
        let out = Command::new(which("swaks"))
            .args(args)
            .args(["--from", "alice@localhost", "--to", "bob@localhost"])
            .args(["--helo", "client.test", "--timeout", "20"])
            .output()
            .expect("run swaks");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let smtp = bound[0].1.to_string();
    let (ok, out) = swaks(&["--server", &smtp, "--tls"]);
    assert!(ok, "{out}");
    assert!(out.contains("TLS started"), "{out}");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(mail[0].contains(" with ESMTPS id "), "{}", mail[0]);

    let submissions = bound[2].1.to_string();
    let (ok, out) = swaks(&["--server", &submissions, "--tlsc"]);
    assert!(!ok, "MAIL without AUTH must be refused: {out}");
    assert!(out.contains("TLS started"), "{out}");
    assert!(out.contains("530 5.7.0 Authentication required"), "{out}");
}

#[test]
fn the_tls_rule_key_sees_the_encrypted_session() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:reply",
            "--rule",
            "TLS=no",
            "--prop",
            "code=530",
            "--prop",
            "enhanced=5.7.0",
            "--prop",
            "text=Encryption required",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut clear = server.client();
    clear.expect("EHLO client.test", 250);
    let refused = clear.cmd("MAIL FROM:<alice@localhost>");
    assert_eq!(refused.code, 530, "{refused:?}");
    assert!(refused.text().contains("Encryption required"));
    let script = format!(
        "{ANY_CERTIFICATE}
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.starttls(context=ctx)
s.sendmail('alice@localhost', ['bob@localhost'], 'Subject: x\\r\\n\\r\\nx\\r\\n')
s.quit()
"
    );
    let (ok, out) = python(&script, &[&server.addr.port().to_string()]);
    assert!(ok, "{out}\nlog:\n{}", server.log());
    server.wait_for_mail("localhost", "bob", 1);
}
