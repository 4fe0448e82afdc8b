//! The test harness: starts the real `postern` binary on a free loopback port and talks to it
//! with a raw socket, transcript style.

#![allow(dead_code, unreachable_pub)]

pub mod clamd;
pub mod cookbook;
pub mod peers;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct Postern {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin API's address (the harness always starts it on a free port).
    pub admin: SocketAddr,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Postern {
    /// The embedded default, in a fresh data folder.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// With a configuration file (TOML text; `listener` and `data_dir` are set by the harness).
    pub fn start_with(config: Option<&str>) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_owned();
        let mut server = Self::start_in(&dir, config);
        server._temp = Some(temp);
        server
    }

    /// In an existing data folder (to restart after a crash).
    pub fn start_in(dir: &Path, config: Option<&str>) -> Self {
        let data = dir.join("data");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--hostname")
            .arg("mx.test")
            .arg("--admin-listen")
            .arg("127.0.0.1:0");
        if let Some(text) = config {
            let path = dir.join("postern.toml");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(path);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log file");
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log)).env(
            "RUST_LOG",
            std::env::var("POSTERN_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        let mut child = cmd.spawn().expect("start postern");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read listening line");
        // A text line, or with a JSON log a JSON object.
        let json: Option<serde_json::Value> = serde_json::from_str(line.trim()).ok();
        let addr = line
            .trim()
            .strip_prefix("listening smtp ")
            .or_else(|| json.as_ref()?["address"].as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no listening line: {line:?}; log:\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                )
            })
            .parse()
            .expect("address");
        // The admin line follows the SMTP ones, written with them before the first is read.
        let admin = loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read admin line");
            assert!(n > 0, "no admin listening line");
            let json: Option<serde_json::Value> = serde_json::from_str(line.trim()).ok();
            let found = match &json {
                Some(j) if j["protocol"] == "admin" => j["address"].as_str().map(str::to_owned),
                Some(_) => None,
                None => line
                    .trim()
                    .strip_prefix("listening admin ")
                    .map(str::to_owned),
            };
            if let Some(address) = found {
                break address.parse().expect("admin address");
            }
        };
        Self {
            child,
            addr,
            admin,
            dir: dir.to_owned(),
            _temp: None,
        }
    }

    /// The admin API's base URL, `http://127.0.0.1:PORT`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The admin token the server made in its data folder.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("data").join("admin.token"))
            .expect("admin token")
            .trim()
            .to_owned()
    }

    /// The embedded default in an existing folder (bindings registered there beforehand).
    pub fn start_with_dir(dir: &Path) -> Self {
        Self::start_in(dir, None)
    }

    /// A new raw client, greeting read.
    pub fn client(&self) -> Client {
        let mut c = Client::connect(self.addr);
        let greeting = c.read_reply();
        assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
        c
    }

    /// The Maildir `new/` folder of a mailbox.
    pub fn new_mail(&self, domain: &str, user: &str) -> PathBuf {
        self.dir
            .join("data")
            .join("maildir")
            .join(domain)
            .join(user)
            .join("new")
    }

    /// Waits until the mailbox holds `n` messages; returns their texts.
    pub fn wait_for_mail(&self, domain: &str, user: &str, n: usize) -> Vec<String> {
        let dir = self.new_mail(domain, user);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = read_all(&dir);
            if found.len() >= n || Instant::now() > deadline {
                assert_eq!(
                    found.len(),
                    n,
                    "messages in {}; log:\n{}",
                    dir.display(),
                    self.log()
                );
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server's log holds `needle` (the log is written by a background thread,
    /// so a line can appear a moment after the event); returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Postern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file in a folder, read.
pub fn read_all(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    out.sort();
    out
}

/// An SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The queue id of `250 2.0.0 Ok: queued as ID`.
    pub fn queue_id(&self) -> String {
        let text = self.text();
        let id = text.rsplit(' ').next().unwrap_or_default().trim();
        assert!(!id.is_empty(), "no queue id in {self:?}");
        id.to_owned()
    }
}

/// A raw SMTP client.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects from a chosen loopback source address (127.0.0.2 plays an untrusted client).
    pub fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::new(source, 0))
                .expect("bind source");
            socket.connect(addr).await.expect("connect")
        });
        let stream = stream.into_std().expect("std stream");
        stream.set_nonblocking(false).expect("blocking");
        Self::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Self { stream, reader }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a line with CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one (possibly multiline) reply.
    pub fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read reply");
            assert!(
                n > 0,
                "connection closed while waiting for a reply (so far {lines:?})"
            );
            let line = line.trim_end_matches(['\r', '\n']);
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3].parse().expect("reply code");
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if last {
                return Reply { code, lines };
            }
        }
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.read_reply()
    }

    /// Sends a command and checks the reply code; returns the reply.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line:?} -> {reply:?}");
        reply
    }

    /// Whether the server has closed the connection (reads until EOF, up to a few seconds).
    pub fn closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }

    /// EHLO, MAIL, RCPT(s), DATA with a body; returns the final reply.
    pub fn send_message(&mut self, from: &str, to: &[&str], body: &str) -> Reply {
        self.expect("EHLO client.test", 250);
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in to {
            self.expect(&format!("RCPT TO:<{rcpt}>"), 250);
        }
        self.expect("DATA", 354);
        self.send_raw(body.as_bytes());
        self.send_raw(b"\r\n.\r\n");
        self.read_reply()
    }
}

/// Runs `postern binding ARGS --data-dir DIR/data`; returns (exit code, stdout, stderr).
pub fn binding(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("binding")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("run postern binding");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `postern binding add …`, which must succeed; returns the new id.
pub fn bind(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["add"];
    full.extend_from_slice(args);
    let (code, out, err) = binding(dir, &full);
    assert_eq!(code, 0, "binding add {args:?}: {err}");
    out.trim().to_owned()
}

/// A fresh data folder for bindings registered before the server starts.
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
