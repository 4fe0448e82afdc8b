//! For the TLS tests: a server with several listeners (one per mode), and Python's TLS clients.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Postern;

/// Starts the server on `config` (its listeners as written; `127.0.0.1:0` picks free ports) in
/// `dir`; returns it and each listener's mode and bound address, in file order.
pub fn start_listeners(dir: &Path, config: &str) -> (Postern, Vec<(String, SocketAddr)>) {
    let path = dir.join("postern.toml");
    std::fs::write(&path, config).expect("write config");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--hostname")
        .arg("mx.test")
        .arg("--config")
        .arg(&path)
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .env("RUST_LOG", "info")
        .spawn()
        .expect("start postern");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut bound = Vec::new();
    for _ in 0..config.matches("[[listener]]").count() {
        let mut line = String::new();
        out.read_line(&mut line).expect("read listening line");
        let mut words = line.split_whitespace().skip(1);
        let (Some(mode), Some(address)) = (words.next(), words.next()) else {
            panic!(
                "no listening line: {line:?}; log:\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        };
        bound.push((mode.to_owned(), address.parse().expect("address")));
    }
    let addr = bound[0].1;
    let mut line = String::new();
    out.read_line(&mut line).expect("read admin line");
    let admin = line
        .trim()
        .strip_prefix("listening admin ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin listening line: {line:?}"));
    (
        Postern {
            child,
            addr,
            admin,
            dir: dir.to_owned(),
            _temp: None,
        },
        bound,
    )
}

/// Runs a Python script with arguments; returns whether it succeeded and its output (both
/// streams), which the script uses to report what it saw.
pub fn python(script: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(super::peers::which("python3"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Python: an `ssl` context that accepts any certificate (the server's is self-signed).
pub const ANY_CERTIFICATE: &str = "
import ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
";
