//! The example binary end to end: `rust:hello` is bound with its own `binding add`, served, and
//! seen over SMTP — the custom verb answered, and a delivered message tagged.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_postern-hello");

fn postern(args: &[&str], data: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run postern-hello")
}

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Sends a line (or nothing) and reads the whole reply: its code and its last line.
    fn cmd(&mut self, line: Option<&str>) -> (u16, String) {
        if let Some(line) = line {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .unwrap();
        }
        loop {
            let mut text = String::new();
            self.reader.read_line(&mut text).unwrap();
            assert!(text.len() >= 4, "short reply {text:?}");
            if text.as_bytes()[3] == b' ' {
                return (text[..3].parse().unwrap(), text[4..].trim_end().to_owned());
            }
        }
    }
}

#[test]
fn rust_hello_answers_its_verb_and_tags_mail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        [
            "binding",
            "add",
            "--event",
            "inbound:HELLO",
            "--sink",
            "rust:hello",
        ]
        .as_slice(),
        &[
            "binding",
            "add",
            "--event",
            "end-of-data",
            "--sink",
            "rust:hello",
            "--prop",
            "greeting=from a native sink",
        ],
    ] {
        let out = postern(args, &data);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sinks = Command::new(BIN)
        .args(["binding", "sinks"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sinks.stdout).contains("rust:hello"));

    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--hostname",
            "mx.test",
            "--admin-listen",
            "",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start postern-hello");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening smtp ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();

    let stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut c = Client {
        reader: BufReader::new(stream.try_clone().unwrap()),
        writer: stream,
    };
    assert_eq!(c.cmd(None).0, 220);
    assert_eq!(c.cmd(Some("EHLO friend.test")).0, 250);
    assert_eq!(
        c.cmd(Some("HELLO")),
        (250, "2.0.0 Hello friend.test, world".to_owned())
    );
    assert_eq!(c.cmd(Some("MAIL FROM:<a@example.org>")).0, 250);
    assert_eq!(c.cmd(Some("RCPT TO:<user@localhost>")).0, 250);
    assert_eq!(c.cmd(Some("DATA")).0, 354);
    assert_eq!(c.cmd(Some("Subject: hi\r\n\r\nbody\r\n.")).0, 250);
    assert_eq!(c.cmd(Some("QUIT")).0, 221);

    let new = data.join("maildir/localhost/user/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mail = loop {
        let found: Vec<_> = std::fs::read_dir(&new)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(path) = found.first() {
            break std::fs::read_to_string(path).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no mail delivered to {}",
            new.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(mail.contains("X-Hello: from a native sink\r\n"), "{mail}");
    drop(server);
}

#[test]
fn rust_hello_can_be_tried_offline() {
    let out = Command::new(BIN)
        .args([
            "sink",
            "try",
            "--event",
            "inbound:HELLO",
            "--sink",
            "rust:hello",
        ])
        .args(["--helo", "me.test", "--prop", "greeting=there"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Hello me.test, there"), "{stdout}");
}
