//! AUTH against the real binary: `postern user`, real clients (Python's smtplib, swaks), the
//! error transcripts, an `inbound:AUTH` sink authenticating instead of the user store, and
//! relay control: no open relay from an untrusted address (127.0.0.2), with or without AUTH.

mod common;

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Client, Postern};

/// AUTH offered in clear text (no TLS in these tests); 127.0.0.1 is a relay network, so
/// 127.0.0.2 is the untrusted client.
const CONFIG: &str = r#"
[[listener]]
address = "127.0.0.1:0"

[[domain]]
name = "localhost"
users = "*"

[relay]
networks = ["127.0.0.1/32"]

[auth]
allow_plaintext = true
failure_delay = "10ms"
max_failures = 50

[limits]
max_errors = 50
"#;

const UNTRUSTED: &str = "127.0.0.2";

/// `postern user ARGS --data-dir DIR/data`, with `stdin` as standard input.
fn user(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postern user");
    let mut input = child.stdin.take().expect("stdin");
    // A command that refuses early exits without reading: a broken pipe is not a failure.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server with CONFIG and the user alice (password "s3cret pass").
fn server_with_alice() -> (tempfile::TempDir, Postern) {
    let dir = common::workdir();
    let (code, _, err) = user(
        dir.path(),
        &["add", "alice", "--password-stdin"],
        "s3cret pass\n",
    );
    assert_eq!(code, 0, "{err}");
    let server = Postern::start_in(dir.path(), Some(CONFIG));
    (dir, server)
}

fn b64(bytes: &[u8]) -> String {
    // A tiny encoder: the test must not trust the server's decoder to check it.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}

fn untrusted(server: &Postern) -> Client {
    let mut c = Client::connect_from(server.addr, UNTRUSTED.parse::<IpAddr>().unwrap());
    assert_eq!(c.read_reply().code, 220);
    c
}

/// Whether a test tool is installed; under CI a missing one fails (scripts/test installs it).
fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(!ci, "{name} is not installed, and CI needs it");
        eprintln!("skipping: {name} is not installed");
    }
    found
}

#[test]
fn user_commands_add_list_change_and_remove_users() {
    let dir = common::workdir();
    let d = dir.path();
    assert_eq!(user(d, &["add", "bob", "--password-stdin"], "pw1\n").0, 0);
    assert_eq!(user(d, &["add", "alice", "--password-stdin"], "pw2\n").0, 0);
    let (code, out, _) = user(d, &["list"], "");
    assert_eq!((code, out.as_str()), (0, "alice\nbob\n"));
    let file = std::fs::read_to_string(d.join("data/users.toml")).unwrap();
    assert!(file.contains("$argon2id$"), "{file}");
    assert!(!file.contains("pw1") && !file.contains("pw2"), "{file}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("data/users.toml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "users.toml is private: {mode:o}");

    let (code, _, err) = user(d, &["add", "bob", "--password-stdin"], "x\n");
    assert_eq!(code, 1);
    assert!(err.contains("exists"), "{err}");
    let (code, _, err) = user(d, &["passwd", "carol", "--password-stdin"], "x\n");
    assert_eq!(code, 1);
    assert!(err.contains("no user"), "{err}");
    let (code, _, err) = user(d, &["add", "carol", "--password-stdin"], "\n");
    assert_eq!(code, 1);
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = user(d, &["add", "carol"], "");
    assert_eq!(code, 1);
    assert!(err.contains("--password-stdin"), "{err}");
    let (code, _, err) = user(d, &["add", "two words", "--password-stdin"], "x\n");
    assert_eq!(code, 1);
    assert!(err.contains("invalid user name"), "{err}");

    assert_eq!(
        user(d, &["passwd", "bob", "--password-stdin"], "new\n").0,
        0
    );
    let (code, _, err) = user(d, &["remove", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(user(d, &["remove", "alice"], "").0, 1);
    assert_eq!(user(d, &["list"], "").1, "bob\n");

    // The new password works, the old one not.
    let server = Postern::start_in(d, Some(CONFIG));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect(&format!("AUTH PLAIN {}", b64(b"\0bob\0pw1")), 535);
    c.expect(&format!("AUTH PLAIN {}", b64(b"\0bob\0new")), 235);
}

#[test]
fn python_smtplib_logs_in_with_plain_and_login() {
    if !tool("python3") {
        return;
    }
    let (_dir, server) = server_with_alice();
    for (mechanism, to) in [("PLAIN", "pat"), ("LOGIN", "lou")] {
        let script = format!(
            r#"
import smtplib
with smtplib.SMTP("127.0.0.1", {port}, source_address=("127.0.0.2", 0)) as s:
    s.ehlo("python.test")
    assert "{mechanism}" in s.esmtp_features["auth"], s.esmtp_features
    s.user, s.password = "alice", "s3cret pass"
    code, text = s.auth("{mechanism}", getattr(s, "auth_{lower}"), initial_response_ok={initial})
    assert code == 235, (code, text)
    s.sendmail("alice@localhost", ["{to}@localhost", "far@elsewhere.test"],
               "Subject: authenticated\r\n\r\nvia {mechanism}\r\n")
try:
    with smtplib.SMTP("127.0.0.1", {port}, source_address=("127.0.0.2", 0)) as s:
        s.login("alice", "wrong")
    raise SystemExit("a wrong password was accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
print("ok")
"#,
            port = server.addr.port(),
            lower = mechanism.to_lowercase(),
            initial = if mechanism == "PLAIN" {
                "True"
            } else {
                "False"
            },
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mechanism}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mail = server.wait_for_mail("localhost", to, 1);
        assert!(mail[0].contains(&format!("via {mechanism}")));
        assert!(mail[0].contains("with ESMTPA"), "{}", mail[0]);
    }
}

#[test]
fn swaks_authenticates_with_plain_and_login() {
    if !tool("swaks") {
        return;
    }
    let (_dir, server) = server_with_alice();
    for (mechanism, to) in [("PLAIN", "sam"), ("LOGIN", "sid")] {
        let out = Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &server.addr.port().to_string(),
            ])
            .args(["--local-interface", UNTRUSTED])
            .args([
                "--from",
                "alice@localhost",
                "--to",
                &format!("{to}@localhost"),
            ])
            .args(["--auth", mechanism, "--auth-user", "alice"])
            .args(["--auth-password", "s3cret pass"])
            .args(["--body", "Hello from swaks with AUTH"])
            .output()
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{transcript}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(transcript.contains("<-  235 2.7.0"), "{transcript}");
        let mail = server.wait_for_mail("localhost", to, 1);
        assert!(mail[0].contains("with ESMTPA"), "{}", mail[0]);
    }
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &server.addr.port().to_string(),
        ])
        .args([
            "--to",
            "sam@localhost",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
        ])
        .args(["--auth-password", "wrong"])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(transcript.contains("<** 535 5.7.8"), "{transcript}");
}

#[test]
fn auth_errors_get_their_replies_never_a_crash() {
    let (_dir, server) = server_with_alice();
    let mut c = server.client();
    let huge = "A".repeat(100 * 1024);
    let steps: &[(&str, u16)] = &[
        ("EHLO client.test", 250),
        (&format!("AUTH PLAIN {huge}"), 500),
        ("AUTH PLAIN", 334),
        (&huge, 500),
        ("AUTH PLAIN ####", 501),
        ("AUTH LOGIN", 334),
        ("*", 501),
        (&format!("AUTH PLAIN {}", b64(b"\0alice\0nope")), 535),
        ("AUTH DIGEST-MD5", 504),
        (&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret pass")), 235),
        (&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret pass")), 503),
        ("NOOP", 250),
    ];
    for (line, code) in steps {
        c.expect(line, *code);
    }
    // Many long AUTH lines in one go: the server reads them through a bounded buffer.
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    for _ in 0..20 {
        c.send(&format!("AUTH PLAIN {huge}"));
    }
    for _ in 0..20 {
        assert_eq!(c.read_reply().code, 500);
    }
    c.expect("QUIT", 221);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn no_open_relay_from_an_untrusted_address() {
    let (_dir, server) = server_with_alice();
    let far = [
        "far@elsewhere.test",
        "far@elsewhere.test.",
        "far@[192.0.2.1]",
        "@localhost:far@elsewhere.test",
        "FAR@ELSEWHERE.TEST",
    ];
    let refused = |c: &mut Client| {
        c.expect("MAIL FROM:<someone@elsewhere.test>", 250);
        for rcpt in far {
            let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(reply.code >= 500, "{rcpt}: {reply:?}");
        }
        let reply = c.cmd("RCPT TO:<far@elsewhere.test>");
        assert_eq!(reply.code, 550, "{reply:?}");
        assert!(reply.text().starts_with("5.7.1"), "{reply:?}");
        c.expect("RSET", 250);
    };
    // Without AUTH.
    let mut c = untrusted(&server);
    c.expect("EHLO client.test", 250);
    refused(&mut c);
    // After a failed AUTH: wrong password, unknown user, a cancelled exchange, bad base64.
    for attempt in [
        format!("AUTH PLAIN {}", b64(b"\0alice\0guess")),
        format!("AUTH PLAIN {}", b64(b"\0root\0s3cret pass")),
        format!("AUTH PLAIN {}", b64(b"alice\0root\0s3cret pass")),
        "AUTH PLAIN =".to_owned(),
        "AUTH PLAIN not*base64".to_owned(),
    ] {
        let reply = c.cmd(&attempt);
        assert!(matches!(reply.code, 501 | 535), "{attempt}: {reply:?}");
        refused(&mut c);
    }
    c.send("AUTH LOGIN");
    assert_eq!(c.read_reply().code, 334);
    c.expect("*", 501);
    refused(&mut c);
    // A sender address of the server's own domain does not help.
    c.expect("MAIL FROM:<postmaster@localhost>", 250);
    c.expect("RCPT TO:<far@elsewhere.test>", 550);
    c.expect("RSET", 250);
    // The controls: the same client after a good AUTH, and a client in the relay network.
    c.expect(&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret pass")), 235);
    c.expect("MAIL FROM:<alice@localhost>", 250);
    c.expect("RCPT TO:<far@elsewhere.test>", 250);
    let mut trusted = server.client();
    trusted.expect("EHLO client.test", 250);
    trusted.expect("MAIL FROM:<a@localhost>", 250);
    trusted.expect("RCPT TO:<far@elsewhere.test>", 250);
}

#[test]
fn an_inbound_auth_sink_may_authenticate_instead_of_the_user_store() {
    let dir = common::workdir();
    // Stands for a sink asking another source (LDAP, HTTP): it accepts mallory's login for
    // any password, and consumes the event so the user store is not asked.
    common::bind(
        dir.path(),
        &[
            "--event",
            "inbound:AUTH",
            "--sink",
            "builtin:reply",
            "--priority",
            "high",
            "--prop",
            "code=235",
            "--prop",
            "enhanced=2.7.0",
            "--prop",
            "text=Authenticated elsewhere",
        ],
    );
    let server = Postern::start_in(dir.path(), Some(CONFIG));
    let mut c = untrusted(&server);
    c.expect("EHLO client.test", 250);
    c.expect(&format!("AUTH PLAIN {}", b64(b"\0mallory\0anything")), 235);
    c.expect("MAIL FROM:<mallory@localhost>", 250);
    c.expect("RCPT TO:<far@elsewhere.test>", 250);
    c.expect("RCPT TO:<max@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: x\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    let mail = server.wait_for_mail("localhost", "max", 1);
    assert!(mail[0].contains("with ESMTPA"), "{}", mail[0]);
    assert!(server.log().contains("user=mallory"), "{}", server.log());
}

#[test]
fn no_open_relay_from_an_untrusted_address_over_tls_either() {
    if !tool("python3") {
        return;
    }
    let (_dir, server) = server_with_alice();
    // From 127.0.0.2 after STARTTLS (the server's self-signed certificate, not checked): relaying
    // is refused without AUTH and after a failed AUTH, and allowed after a good one.
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", {port}, source_address=("127.0.0.2", 0)) as s:
    s.ehlo("tls.test")
    code, _ = s.starttls(context=ctx)
    assert code == 220, code
    s.ehlo("tls.test")
    def relay():
        s.mail("someone@elsewhere.test")
        code, text = s.rcpt("far@elsewhere.test")
        s.rset()
        return code, text
    code, text = relay()
    assert code == 550 and text.startswith(b"5.7.1"), (code, text)
    try:
        s.login("alice", "wrong")
        raise SystemExit("a wrong password was accepted")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
    code, text = relay()
    assert code == 550 and text.startswith(b"5.7.1"), (code, text)
    s.login("alice", "s3cret pass")
    code, text = relay()
    assert code == 250, (code, text)
print("ok")
"#,
        port = server.addr.port(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
