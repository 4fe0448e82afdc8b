//! A real clamd (Debian `clamav-daemon`) on a free loopback port and a Unix socket, with a
//! signature database the test writes: never freshclam, never the network.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::{free_port, which};

/// The 68-byte EICAR anti-virus test string.
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// The name clamd reports for EICAR (local signatures get `.UNOFFICIAL`).
pub const EICAR_NAME: &str = "Postern-Eicar.UNOFFICIAL";
/// An attachment matched as a whole file by an MD5 signature in a `.hdb`.
pub const BAD_ATTACHMENT: &[u8] = b"This whole file is known bad to the Postern test database.\n";
/// The name clamd reports for it.
pub const BAD_ATTACHMENT_NAME: &str = "Postern-Bad-Attachment.UNOFFICIAL";

/// A running clamd, stopped by its PID when dropped.
pub struct Clamd {
    child: Child,
    pub port: u16,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Clamd {
    /// Writes the database and configuration under `dir` and starts clamd; returns once it
    /// answers PONG.
    pub fn start(dir: &Path) -> Self {
        let db = dir.join("clamdb");
        std::fs::create_dir_all(&db).expect("db folder");
        let hex: String = EICAR.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(db.join("local.ndb"), format!("Postern-Eicar:0:*:{hex}\n")).expect("ndb");
        std::fs::write(
            db.join("local.hdb"),
            format!(
                "{}:{}:Postern-Bad-Attachment\n",
                md5_hex(BAD_ATTACHMENT),
                BAD_ATTACHMENT.len()
            ),
        )
        .expect("hdb");
        let port = free_port();
        let socket = dir.join("clamd.sock");
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLocalSocket {}\n\
                 DatabaseDirectory {}\nSelfCheck 0\nBytecode no\nScanMail yes\n\
                 StreamMaxLength 50M\n",
                socket.display(),
                db.display()
            ),
        )
        .expect("clamd.conf");
        let log = dir.join("clamd.log");
        let out = std::fs::File::create(&log).expect("clamd log");
        let child = Command::new(which("clamd"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start clamd (Debian clamav-daemon; scripts/test installs it)");
        let mut clamd = Self {
            child,
            port,
            socket,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !clamd.ready() {
            let exited = clamd.child.try_wait().expect("try_wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "clamd never answered PONG ({exited:?}):\n{}",
                std::fs::read_to_string(&clamd.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        clamd
    }

    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut answer = Vec::new();
        s.write_all(b"zPING\0").is_ok() && s.read_to_end(&mut answer).is_ok() && answer == b"PONG\0"
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
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

/// The MD5 of `data` in hex, by `md5sum` (coreutils), to avoid a crate for one test digest.
fn md5_hex(data: &[u8]) -> String {
    let mut child = Command::new(which("md5sum"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write md5sum");
    let out = child.wait_with_output().expect("md5sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}
