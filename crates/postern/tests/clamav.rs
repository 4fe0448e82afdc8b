//! `builtin:clamav` against a real clamd from Debian with a signature database the test writes
//! (the EICAR test string in a `.ndb`, a whole attachment by MD5 in a `.hdb`), over TCP and over
//! clamd's Unix socket; and against a clamd that is down, one that never answers and one that
//! answers garbage, where the binding's `on_error` decides.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::clamd::{BAD_ATTACHMENT, BAD_ATTACHMENT_NAME, Clamd, EICAR, EICAR_NAME};
use common::peers::free_port;
use common::{Postern, bind, read_all, workdir};

const CLEAN: &str = "From: alice@example.test\r\nTo: bob@localhost\r\nSubject: hello\r\n\r\nNothing to see here.\r\n";

fn with_eicar() -> String {
    format!("From: alice@example.test\r\nTo: bob@localhost\r\nSubject: test\r\n\r\n{EICAR}\r\n")
}

/// A MIME message whose base64 attachment is the file the `.hdb` knows by its MD5.
fn with_bad_attachment() -> String {
    let encoded = base64(BAD_ATTACHMENT);
    format!(
        "From: alice@example.test\r\nTo: bob@localhost\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain\r\n\r\nSee attached.\r\n--b1\r\n\
         Content-Type: application/octet-stream; name=\"report.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"report.bin\"\r\n\r\n{encoded}\r\n--b1--\r\n"
    )
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends `body` to `rcpt`; returns the reply to the end of data.
fn send(server: &Postern, rcpt: &str, body: &str) -> common::Reply {
    let mut c = server.client();
    let reply = c.send_message("alice@example.test", &[rcpt], body);
    c.expect("QUIT", 221);
    reply
}

/// The messages in `DATA/quarantine/` (each `ID.eml` beside its `ID.envelope`).
fn quarantined(server: &Postern) -> Vec<String> {
    let dir = server.dir.join("data").join("quarantine");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

fn wait_quarantined(server: &Postern, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = quarantined(server);
        if found.len() >= n {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn clean_mail_passes_and_infected_mail_is_rejected_naming_the_signature() {
    let dir = workdir();
    let d = dir.path();
    let clamd = Clamd::start(d);
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:clamav",
            "--prop",
            &format!("address=127.0.0.1:{}", clamd.port),
        ],
    );
    let server = Postern::start_in(d, None);

    let reply = send(&server, "bob@localhost", CLEAN);
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("localhost", "bob", 1);

    for (body, name) in [
        (with_eicar(), EICAR_NAME),
        (with_bad_attachment(), BAD_ATTACHMENT_NAME),
    ] {
        let reply = send(&server, "carol@localhost", &body);
        assert_eq!(reply.code, 554, "{reply:?}");
        assert_eq!(
            reply.text(),
            format!("5.7.1 Message refused: virus {name} found")
        );
    }
    assert!(read_all(&server.new_mail("localhost", "carol")).is_empty());
}

#[test]
fn quarantine_over_the_unix_socket_accepts_and_keeps_the_message_out_of_the_mailbox() {
    let dir = workdir();
    let d = dir.path();
    let clamd = Clamd::start(d);
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:clamav",
            "--prop",
            &format!("address={}", clamd.socket.display()),
            "--prop",
            "action=quarantine",
        ],
    );
    let server = Postern::start_in(d, None);

    let reply = send(&server, "bob@localhost", &with_eicar());
    assert_eq!(reply.code, 250, "{reply:?}");
    let kept = wait_quarantined(&server, 1);
    assert!(kept[0].contains(EICAR), "{}", kept[0]);
    let reply = send(&server, "bob@localhost", CLEAN);
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(mail[0].contains("Nothing to see here."));
    assert_eq!(quarantined(&server).len(), 1);
}

/// A fake clamd that reads the command and answers `answer` (None: reads and never answers).
fn fake_clamd(answer: Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut command = [0u8; 10];
            if s.read_exact(&mut command).is_ok() {
                match answer {
                    Some(a) => {
                        let _ = s.write_all(a);
                    }
                    None => held.push(s),
                }
            }
        }
    });
    port
}

#[test]
fn clamd_down_slow_or_answering_garbage_gets_the_bindings_on_error() {
    let dir = workdir();
    let d = dir.path();
    let garbage = fake_clamd(Some(b"HELLO, I AM NOT CLAMD\0"));
    let slow = fake_clamd(None);
    let down = free_port();
    for (name, port, on_error) in [
        ("garbage", garbage, "tempfail"),
        ("slow", slow, "tempfail"),
        ("down", down, "tempfail"),
        ("lenient", down, "continue"),
    ] {
        bind(
            d,
            &[
                "--event",
                "end-of-data",
                "--sink",
                "builtin:clamav",
                "--name",
                name,
                "--rule",
                &format!("RCPT={name}@localhost"),
                "--prop",
                &format!("address=127.0.0.1:{port}"),
                "--prop",
                "timeout=500",
                "--on-error",
                on_error,
            ],
        );
    }
    let server = Postern::start_in(d, None);
    for user in ["garbage", "slow", "down"] {
        let reply = send(&server, &format!("{user}@localhost"), CLEAN);
        assert_eq!(reply.code, 451, "{user}: {reply:?}");
        assert!(read_all(&server.new_mail("localhost", user)).is_empty());
    }
    server.wait_for_log("not a scan result");
    server.wait_for_log("did not answer within 500 ms");
    server.wait_for_log("cannot be reached");
    let reply = send(&server, "lenient@localhost", CLEAN);
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("localhost", "lenient", 1);
}

#[test]
fn a_clamav_binding_with_bad_properties_or_off_end_of_data_is_refused() {
    let dir = workdir();
    let d = dir.path();
    for (event, prop) in [
        ("end-of-data", "address=127.0.0.1"),
        ("end-of-data", "action=delete"),
        ("end-of-data", "timeout=0"),
        ("end-of-data", "adress=127.0.0.1:3310"),
        ("submission", "action=reject"),
        ("inbound:DATA", "action=reject"),
    ] {
        let (code, _, err) = common::binding(
            d,
            &[
                "add",
                "--event",
                event,
                "--sink",
                "builtin:clamav",
                "--prop",
                prop,
            ],
        );
        assert_eq!(code, 2, "{event} {prop}: {err}");
        assert!(!err.is_empty());
    }
}
