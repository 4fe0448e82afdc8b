//! Real peers for delivery tests, started on loopback: dnsmasq as the DNS server that holds
//! the test domains' MX and address records, and aiosmtpd (tests/peers/mx.py) as the remote
//! mail server. Each test starts its own on free ports and they stop when dropped.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dnsmasq serving only the records given, on 127.0.0.1 and a free port.
pub struct Dns {
    child: Child,
    pub port: u16,
}

impl Dns {
    /// `records` are dnsmasq options such as `--mx-host=remote.test,mx.remote.test,10` or
    /// `--host-record=mx.remote.test,127.0.0.2`. Every other name is NXDOMAIN.
    pub fn start(records: &[String]) -> Dns {
        let binary = which("dnsmasq");
        for _ in 0..10 {
            let port = free_port();
            if UdpSocket::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let mut child = Command::new(&binary)
                .args([
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--no-negcache",
                    "--local-ttl=1",
                    "--local=/#/",
                    "--pid-file=",
                    "--user=root",
                ])
                .arg(format!("--port={port}"))
                .args(records)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start dnsmasq");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Dns { child, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start");
    }

    /// The `[dns]` section pointing Postern at this server.
    pub fn config(&self) -> String {
        format!("[dns]\nservers = [\"127.0.0.1:{}\"]\n", self.port)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receiving SMTP server (aiosmtpd) on `host` and a free port.
pub struct Mx {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
    _temp: tempfile::TempDir,
}

impl Mx {
    /// `script` is the JSON behaviour of tests/peers/mx.py (`{}` accepts everything).
    pub fn start(host: &str, script: &str) -> Mx {
        Self::start_with_tls(host, script, None)
    }

    /// Offering STARTTLS with this certificate and key (PEM files) when given.
    pub fn start_with_tls(host: &str, script: &str, tls: Option<(&Path, &Path)>) -> Mx {
        let args = tls.map_or_else(Vec::new, |(cert, key)| {
            vec![
                "--tls-cert".into(),
                cert.as_os_str().to_owned(),
                "--tls-key".into(),
                key.as_os_str().to_owned(),
            ]
        });
        Self::start_args(host, script, args)
    }

    /// An LMTP server (RFC 2033) on `host` and a free port, or on the Unix socket `unix`
    /// (`port` is 0 then).
    pub fn start_lmtp(host: &str, script: &str, unix: Option<&Path>) -> Mx {
        let mut args: Vec<std::ffi::OsString> = vec!["--lmtp".into()];
        if let Some(path) = unix {
            args.push("--unix".into());
            args.push(path.as_os_str().to_owned());
        }
        Self::start_args(host, script, args)
    }

    fn start_args(host: &str, script: &str, args: Vec<std::ffi::OsString>) -> Mx {
        let temp = tempfile::tempdir().expect("temp dir");
        let out = temp.path().join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        let script_path = temp.path().join("script.json");
        std::fs::write(&script_path, script).expect("script");
        let mx_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/mx.py");
        let mut child = Command::new(which("python3"))
            .arg(&mx_py)
            .arg("--host")
            .arg(host)
            .arg("--out")
            .arg(&out)
            .arg("--script")
            .arg(&script_path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(temp.path().join("mx.log")).expect("log"),
            ))
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read ready line");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "aiosmtpd did not start (is it installed? `python3 -m pip install aiosmtpd`): {}",
                    std::fs::read_to_string(temp.path().join("mx.log")).unwrap_or_default()
                )
            });
        Mx {
            child,
            port,
            out,
            _temp: temp,
        }
    }

    /// Waits until `n` messages were received; returns (envelope JSON, content) of each, in
    /// the order received.
    pub fn wait_for(&self, n: usize) -> Vec<(serde_json::Value, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                assert_eq!(
                    got.len(),
                    n,
                    "messages at the MX; commands:\n{}",
                    self.commands()
                );
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What was received so far.
    pub fn received(&self) -> Vec<(serde_json::Value, String)> {
        let mut got = Vec::new();
        for i in 1.. {
            let eml = self.out.join(format!("{i}.eml"));
            let Ok(content) = std::fs::read_to_string(&eml) else {
                break;
            };
            let json =
                std::fs::read_to_string(self.out.join(format!("{i}.json"))).expect("envelope");
            got.push((serde_json::from_str(&json).expect("json"), content));
        }
        got
    }

    /// Every command the server saw, one a line.
    pub fn commands(&self) -> String {
        std::fs::read_to_string(self.out.join("commands.log")).unwrap_or_default()
    }
}

impl Drop for Mx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate for `name` (and the address 127.0.0.2) signed by a CA of its own, both made
/// by openssl in `dir`; returns (certificate, key, CA certificate) paths. The CA can be a route's
/// `ca_file`.
pub fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = which("openssl");
    let run = |args: &[&str]| {
        let status = Command::new(&openssl)
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl {args:?} failed");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=Postern test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        &format!("/CN={name}"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        format!("basicConstraints=CA:FALSE\nsubjectAltName=DNS:{name},IP:127.0.0.2\n"),
    )
    .expect("extensions");
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "cert.pem",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    )
}

/// A free TCP port on 127.0.0.1 (free when asked; a test binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The path of a program the test needs; a missing one fails the test with how to get it.
pub fn which(program: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let path = Path::new(dir).join(program);
        if path.is_file() {
            return path;
        }
    }
    panic!("{program} is needed by this test and is not installed (scripts/test installs it)");
}

/// Reads the track log lines of a data folder as JSON.
pub fn track_log(data: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data.join("log").join("track.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until `pred` holds for the track log; returns the log.
pub fn wait_track(
    data: &Path,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = track_log(data);
        if pred(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "track log never showed {what}:\n{}",
            log.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
