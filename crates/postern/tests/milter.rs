//! Milter sinks against real milters from Debian, each started by the test on loopback and a
//! free port and stopped by its PID: OpenDKIM signing (the signature is checked by dkimpy, an
//! independent verifier) and verifying (a broken signature is refused), clamav-milter with
//! clamd and a local signature (a clean message gets its headers, a marked one is refused),
//! and milters that are down or send garbage (the binding's `on_error` applies).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{free_port, which};
use common::{Postern, bind, workdir};

/// A daemon the test started; stopped with SIGTERM and waited for when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(program: &str, args: &[&str], log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("daemon log");
        let child = Command::new(which(program))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        Self { child, log }
    }

    /// Waits until `port` accepts connections; fails with the daemon's output if it exits.
    fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            let exited = self.child.try_wait().expect("try_wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "daemon not listening on {port} ({exited:?}):\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Daemon {
    /// Waits until the Unix-domain socket at `path` accepts connections.
    fn wait_for_socket(&mut self, path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(path).is_err() {
            let exited = self.child.try_wait().expect("try_wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "daemon not listening on {} ({exited:?}):\n{}",
                path.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        // OpenDKIM takes about two seconds to exit after SIGTERM.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MESSAGE: &str = "From: Alice <alice@example.test>\r\nTo: bob@localhost\r\n\
Subject: milter test\r\nDate: Thu, 03 Dec 2026 09:00:00 +0000\r\n\
Message-ID: <m1@example.test>\r\n\r\nHello from a test.\r\nSecond line.\r\n";

/// Makes a DKIM key for `sel._domainkey.example.test`; returns (private key file, TXT value).
fn dkim_key(dir: &Path) -> (PathBuf, String) {
    let status = Command::new(which("opendkim-genkey"))
        .args(["-b", "2048", "-d", "example.test", "-s", "sel", "-D"])
        .arg(dir)
        .status()
        .expect("opendkim-genkey");
    assert!(status.success());
    // BIND format: the value is the concatenation of the quoted strings.
    let txt = std::fs::read_to_string(dir.join("sel.txt")).expect("sel.txt");
    let record: String = txt.split('"').skip(1).step_by(2).collect();
    assert!(record.contains("p="), "{txt}");
    (dir.join("sel.private"), record)
}

/// A Python that has Debian's dkimpy (`python3-dkim`), which installs for the system Python.
fn dkim_python() -> PathBuf {
    let candidates = [PathBuf::from("/usr/bin/python3"), which("python3")];
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import dkim"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python;
        }
    }
    panic!("python3-dkim is needed by this test and is not installed (scripts/test installs it)");
}

/// Runs dkimpy on a message file with a DNS function that returns `record`.
fn dkimpy(script: &str, message: &Path, record: &str, key: Option<&Path>) -> Vec<u8> {
    let out = Command::new(dkim_python())
        .args(["-c", script])
        .arg(message)
        .arg(record)
        .args(key)
        .output()
        .expect("run dkimpy");
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const VERIFY: &str = r#"
import sys, dkim
record = sys.argv[2].encode()
def dnsfunc(name, timeout=5):
    return record if name == b"sel._domainkey.example.test." else None
print(dkim.verify(open(sys.argv[1], "rb").read(), dnsfunc=dnsfunc))
"#;

const SIGN: &str = r#"
import sys, dkim
msg = open(sys.argv[1], "rb").read()
key = open(sys.argv[3], "rb").read()
sig = dkim.sign(msg, b"sel", b"example.test", key, include_headers=[b"from", b"to", b"subject"])
sys.stdout.buffer.write(sig + msg)
"#;

fn mail_files(server: &Postern, user: &str) -> Vec<PathBuf> {
    let dir = server.new_mail("localhost", user);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Sends `raw` (CRLF lines, no final dot) and returns the reply to the end of data.
fn send(server: &Postern, rcpt: &str, raw: &[u8]) -> common::Reply {
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.test>", 250);
    c.expect(&format!("RCPT TO:<{rcpt}>"), 250);
    c.expect("DATA", 354);
    c.send_raw(raw);
    c.send_raw(b".\r\n");
    let reply = c.read_reply();
    c.expect("QUIT", 221);
    reply
}

fn header_block(mail: &str) -> &str {
    mail.split("\r\n\r\n").next().unwrap_or_default()
}

#[test]
fn opendkim_signs_and_the_delivered_signature_verifies() {
    let dir = workdir();
    let d = dir.path();
    let (key, record) = dkim_key(d);
    let port = free_port();
    let conf = d.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Socket inet:{port}@127.0.0.1\nMode sv\nSyslog no\nKeyFile {}\nDomain example.test\n\
             Selector sel\nInternalHosts 127.0.0.0/8\nRequireSafeKeys no\n\
             Canonicalization simple/simple\n",
            key.display()
        ),
    )
    .unwrap();
    let mut opendkim = Daemon::start(
        "opendkim",
        &["-f", "-x", conf.to_str().unwrap()],
        d.join("opendkim.log"),
    );
    opendkim.wait_listening(port);
    let target = format!("milter:inet:{port}@127.0.0.1");
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            &target,
            "--name",
            "dkim-sign",
        ],
    );
    let server = Postern::start_in(d, None);

    let reply = send(&server, "bob@localhost", MESSAGE.as_bytes());
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "bob", 1).remove(0);
    let headers = header_block(&mail);
    // Inserted at index 0 (above the Received field Postern wrote), folded with CRLF + TAB,
    // the space OpenDKIM sent after the colon dropped.
    let at = headers.find("DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple;");
    assert!(at.is_some(), "{headers}");
    assert!(at < headers.find("Received:"), "{headers}");
    assert!(headers.contains(";\r\n\tt="), "{headers}");
    let file = mail_files(&server, "bob").remove(0);
    assert_eq!(dkimpy(VERIFY, &file, &record, None), b"True\n");
}

#[test]
fn opendkim_in_verify_mode_passes_a_good_signature_and_rejects_a_broken_one() {
    let dir = workdir();
    let d = dir.path();
    let (key, record) = dkim_key(d);
    let keys = d.join("keys.txt");
    std::fs::write(&keys, format!("sel._domainkey.example.test {record}\n")).unwrap();
    let port = free_port();
    let conf = d.join("opendkim.conf");
    std::fs::write(
        &conf,
        format!(
            "Socket inet:{port}@127.0.0.1\nMode v\nSyslog no\nOn-BadSignature reject\n\
             TestPublicKeys {}\n",
            keys.display()
        ),
    )
    .unwrap();
    let mut opendkim = Daemon::start(
        "opendkim",
        &["-f", "-x", conf.to_str().unwrap()],
        d.join("opendkim.log"),
    );
    opendkim.wait_listening(port);
    let unsigned = d.join("unsigned.eml");
    std::fs::write(&unsigned, MESSAGE).unwrap();
    let signed = dkimpy(SIGN, &unsigned, &record, Some(&key));
    let broken = String::from_utf8(signed.clone())
        .unwrap()
        .replace("Hello from a test.", "Hello from a forger.");

    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            &format!("milter:inet:127.0.0.1:{port}"),
            "--name",
            "dkim-verify",
        ],
    );
    let server = Postern::start_in(d, None);
    let reply = send(&server, "bob@localhost", &signed);
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "bob", 1).remove(0);
    assert!(
        header_block(&mail).contains("Authentication-Results: mx.test;\r\n\tdkim=pass"),
        "{mail}"
    );

    let reply = send(&server, "carol@localhost", broken.as_bytes());
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text().contains("bad DKIM signature"), "{reply:?}");
    assert!(mail_files(&server, "carol").is_empty());
}

/// Asks clamd for PONG.
fn clamd_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut answer = Vec::new();
    s.write_all(b"zPING\0").is_ok() && s.read_to_end(&mut answer).is_ok() && answer == b"PONG\0"
}

#[test]
fn clamav_milter_tags_clean_mail_and_rejects_a_message_with_a_local_signature() {
    let dir = workdir();
    let d = dir.path();
    let db = d.join("db");
    std::fs::create_dir(&db).unwrap();
    let marker = "POSTERN-MILTER-TEST-MARKER";
    let hex: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
    std::fs::write(db.join("local.ndb"), format!("Postern-Marker:0:*:{hex}\n")).unwrap();
    let clamd_port = free_port();
    let clamd_conf = d.join("clamd.conf");
    std::fs::write(
        &clamd_conf,
        format!(
            "Foreground yes\nTCPSocket {clamd_port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\n\
             SelfCheck 0\nBytecode no\nScanMail yes\nStreamMaxLength 50M\n",
            db.display()
        ),
    )
    .unwrap();
    let mut clamd = Daemon::start(
        "clamd",
        &["-c", clamd_conf.to_str().unwrap()],
        d.join("clamd.log"),
    );
    clamd.wait_listening(clamd_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !clamd_ready(clamd_port) {
        assert!(Instant::now() < deadline, "clamd never answered PONG");
        std::thread::sleep(Duration::from_millis(50));
    }
    // This one listens on a Unix-domain socket.
    let socket = d.join("clamav-milter.sock");
    let conf = d.join("clamav-milter.conf");
    std::fs::write(
        &conf,
        format!(
            "MilterSocket unix:{}\nClamdSocket tcp:127.0.0.1:{clamd_port}\n\
             Foreground yes\nOnInfected Reject\nAddHeader Replace\nLogInfected Basic\n\
             LogFile {}\n",
            socket.display(),
            d.join("clamav-milter.log").display()
        ),
    )
    .unwrap();
    let mut milter = Daemon::start(
        "clamav-milter",
        &["-c", conf.to_str().unwrap()],
        d.join("clamav-milter.out"),
    );
    milter.wait_for_socket(&socket);
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            &format!("milter:unix:{}", socket.display()),
            "--name",
            "antivirus",
        ],
    );
    let server = Postern::start_in(d, None);

    let reply = send(&server, "bob@localhost", MESSAGE.as_bytes());
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "bob", 1).remove(0);
    let headers = header_block(&mail);
    assert!(headers.contains("\r\nX-Virus-Status: Clean"), "{headers}");
    assert!(
        headers.contains("\r\nX-Virus-Scanned: clamav-milter"),
        "{headers}"
    );

    let infected = MESSAGE.replace("Second line.", &format!("Here: {marker}."));
    let reply = send(&server, "carol@localhost", infected.as_bytes());
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(mail_files(&server, "carol").is_empty());
}

/// A milter that answers negotiation with `answer` and then closes.
fn fake_milter(answer: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut optneg = [0u8; 17];
            if s.read_exact(&mut optneg).is_ok() {
                let _ = s.write_all(&answer);
            }
        }
    });
    port
}

#[test]
fn a_milter_that_is_down_or_sends_garbage_gets_the_bindings_on_error() {
    let dir = workdir();
    let d = dir.path();
    let huge = fake_milter(vec![0x7f, 0xff, 0xff, 0xff, b'O']);
    let garbage = fake_milter(b"\0\0\0\x05Zjunk".to_vec());
    let down = free_port();
    for (name, port, on_error) in [
        ("huge", huge, "tempfail"),
        ("garbage", garbage, "continue"),
        ("down", down, "continue"),
    ] {
        bind(
            d,
            &[
                "--event",
                "end-of-data",
                "--sink",
                &format!("milter:inet:{port}@127.0.0.1"),
                "--name",
                name,
                "--rule",
                &format!("RCPT={name}@localhost"),
                "--on-error",
                on_error,
            ],
        );
    }
    let server = Postern::start_in(d, None);
    let reply = send(&server, "huge@localhost", MESSAGE.as_bytes());
    assert_eq!(reply.code, 451, "{reply:?}");
    server.wait_for_log("over the limit");
    for user in ["garbage", "down"] {
        let reply = send(&server, &format!("{user}@localhost"), MESSAGE.as_bytes());
        assert_eq!(reply.code, 250, "{user}: {reply:?}");
        server.wait_for_mail("localhost", user, 1);
    }
    server.wait_for_log("the milter answered negotiation with 'Z'");
    server.wait_for_log("Connection refused");
}

#[test]
fn a_milter_binding_is_refused_off_the_protocol_events_or_with_a_bad_address() {
    let dir = workdir();
    let d = dir.path();
    for (event, sink) in [
        ("submission", "milter:inet:8891@127.0.0.1"),
        ("inbound:DATA", "milter:inet:8891@127.0.0.1"),
        ("end-of-data", "milter:127.0.0.1:8891"),
        ("end-of-data", "milter:inet:localhost"),
    ] {
        let (code, _, err) = common::binding(d, &["add", "--event", event, "--sink", sink]);
        assert_eq!(code, 2, "{event} {sink}: {err}");
        assert!(!err.is_empty());
    }
}
