//! Mail sent by clients we did not write: lettre (Rust), Python's smtplib, swaks.

mod common;

use std::process::Command;

use common::Postern;

/// Whether a test tool is installed. Under CI (`CI` set, and not `false` or `0`) a missing tool
/// fails the test, since `scripts/test` installs them: a green run must mean the client ran.
/// Elsewhere the test is skipped with a note.
fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !under_ci(),
            "{name} is not installed, and CI needs every client (scripts/test installs it)"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[test]
fn a_missing_client_fails_under_ci() {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "missing_client_probe", "--include-ignored"])
        .env("CI", "true")
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "a missing client passed under CI=true:\n{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "missing_client_probe", "--include-ignored"])
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(status.status.success(), "skipped outside CI");
}

/// Run only by `a_missing_client_fails_under_ci`, in a child process.
#[test]
#[ignore = "a probe run by a_missing_client_fails_under_ci"]
fn missing_client_probe() {
    assert!(!tool("postern-no-such-client"));
}

#[test]
fn lettre_sends_a_message() {
    use lettre::message::Mailbox;
    use lettre::{Message, SmtpTransport, Transport};
    let server = Postern::start();
    let email = Message::builder()
        .from("Alice <alice@example.org>".parse::<Mailbox>().unwrap())
        .to("Carol <carol@localhost>".parse::<Mailbox>().unwrap())
        .subject("from lettre")
        .body("Hello from lettre\r\n".to_owned())
        .unwrap();
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.addr.port())
        .build();
    let response = mailer.send(&email).expect("lettre send");
    assert!(response.is_positive());
    assert!(response.message().any(|l| l.contains("queued as")));
    let mail = server.wait_for_mail("localhost", "carol", 1);
    assert!(mail[0].contains("Subject: from lettre"));
    assert!(mail[0].contains("Hello from lettre"));
}

#[test]
fn python_smtplib_sends_a_message_with_pipelining_and_bdat_style_sizes() {
    if !tool("python3") {
        return;
    }
    let server = Postern::start();
    let script = format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "py@example.org"
m["To"] = "dave@localhost, erin@localhost"
m["Subject"] = "from smtplib"
m.set_content("Hello from Python\n" * 50)
with smtplib.SMTP("127.0.0.1", {port}) as s:
    code, caps = s.ehlo("python.test")
    assert code == 250, code
    assert s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("smtputf8")
    refused = s.send_message(m)
    assert refused == {{}}, refused
    try:
        s.sendmail("py@example.org", ["nobody@elsewhere.example"], "Subject: x\r\n\r\nx\r\n")
        raise SystemExit("relay was allowed")
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients["nobody@elsewhere.example"][0] == 550
print("ok")
"#,
        port = server.addr.port()
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
    let dave = server.wait_for_mail("localhost", "dave", 1);
    server.wait_for_mail("localhost", "erin", 1);
    assert!(dave[0].contains("Hello from Python"));
    assert!(
        !dave[0].contains(" for <"),
        "no for clause with two recipients"
    );
}

#[test]
fn swaks_sends_a_message_and_with_chunking() {
    if !tool("swaks") {
        return;
    }
    let server = Postern::start();
    for (extra, user) in [(&[][..], "frank"), (&["--pipeline"][..], "grace")] {
        let out = Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &server.addr.port().to_string(),
            ])
            .args([
                "--from",
                "swaks@example.org",
                "--to",
                &format!("{user}@localhost"),
            ])
            .args([
                "--header",
                "Subject: from swaks",
                "--body",
                "Hello from swaks",
            ])
            .args(extra)
            .output()
            .unwrap();
        let transcript = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{transcript}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            transcript.contains("<-  250 2.0.0 Ok: queued as"),
            "{transcript}"
        );
        let mail = server.wait_for_mail("localhost", user, 1);
        assert!(mail[0].contains("Hello from swaks"));
    }
}
