//! HTTP hooks through real SMTP sessions: the real binary POSTs events to a real hook server
//! (tests/peers/hook.py, Python's http.server on a free loopback port) and acts on its answers.
//! Bindings are registered with the real CLI.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{certificate, free_port, which};
use common::{Postern, bind, binding, workdir};

/// A running hook server.
struct Hook {
    child: Child,
    port: u16,
    out: PathBuf,
    _temp: tempfile::TempDir,
}

impl Hook {
    /// `script` is the JSON list of rules of tests/peers/hook.py.
    fn start(script: &str) -> Hook {
        Self::start_with_tls(script, None)
    }

    fn start_with_tls(script: &str, tls: Option<(&Path, &Path)>) -> Hook {
        let temp = tempfile::tempdir().expect("temp dir");
        let out = temp.path().join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        let script_path = temp.path().join("script.json");
        std::fs::write(&script_path, script).expect("script");
        let hook_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/hook.py");
        let mut cmd = Command::new(which("python3"));
        cmd.arg(&hook_py)
            .arg("--out")
            .arg(&out)
            .arg("--script")
            .arg(&script_path);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(temp.path().join("hook.log")).expect("log"),
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
                    "hook server did not start: {}",
                    std::fs::read_to_string(temp.path().join("hook.log")).unwrap_or_default()
                )
            });
        Hook {
            child,
            port,
            out,
            _temp: temp,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Every request received so far (with its `authorization` header), in order.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.out.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("request line"))
            .collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_hook_rejects_a_sender_at_mail_with_its_own_reply() {
    let hook = Hook::start(
        r#"[{"event": "inbound:MAIL", "args_contain": "spammer@",
             "answer": {"action": "reject",
                        "response": {"code": 550, "enhanced": "5.7.1",
                                     "text": "spammer@ is not welcome here"}}}]"#,
    );
    let dir = workdir();
    let d = dir.path();
    // The `http:URL` form, with a token sent as the Authorization header.
    let target = format!("http:{}", hook.url());
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            &target,
            "--name",
            "sender-policy",
            "--prop",
            "authorization=Bearer s3cret",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let reply = c.expect("MAIL FROM:<spammer@bad.test>", 550);
    assert_eq!(reply.text(), "5.7.1 spammer@ is not welcome here");
    c.expect("MAIL FROM:<alice@good.test> SIZE=100", 250);

    let requests = hook.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let last = &requests[1];
    assert_eq!(last["authorization"], "Bearer s3cret");
    assert_eq!(last["content_type"], "application/json");
    let req = &last["request"];
    assert_eq!(req["version"], 1);
    assert_eq!(req["event"], "inbound:MAIL");
    assert_eq!(req["binding"]["name"], "sender-policy");
    assert_eq!(req["command"]["verb"], "MAIL");
    assert_eq!(req["command"]["args"], "FROM:<alice@good.test> SIZE=100");
    assert_eq!(req["session"]["remote_ip"], "127.0.0.1");
    assert_eq!(req["session"]["helo"], "client.test");
    assert_eq!(req["session"]["tls"], false);
    // The token is not echoed in the body.
    assert!(req["properties"]["binding"].get("authorization").is_none());
}

#[test]
fn a_hook_adds_a_header_and_a_recipient_at_end_of_data() {
    let hook = Hook::start(
        r#"[{"event": "end-of-data",
             "answer": {"action": "continue", "modifications": [
                 {"type": "add-header", "name": "X-Hook", "value": "checked"},
                 {"type": "add-recipient", "address": "audit@localhost"},
                 {"type": "set-property", "scope": "message", "key": "hook.seen",
                  "value": true}]}}]"#,
    );
    let dir = workdir();
    let d = dir.path();
    bind(d, &["--event", "end-of-data", "--sink", &hook.url()]);
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    let reply = c.send_message(
        "alice@example.org",
        &["bob@localhost"],
        "Subject: hello\r\n\r\nHi Bob.",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    for user in ["bob", "audit"] {
        let mail = server.wait_for_mail("localhost", user, 1);
        assert!(
            mail[0].contains("X-Hook: checked\r\n"),
            "{user}: {}",
            mail[0]
        );
        assert!(mail[0].contains("Hi Bob."), "{}", mail[0]);
    }
    let req = &hook.requests()[0]["request"];
    assert_eq!(req["event"], "end-of-data");
    assert_eq!(req["envelope"]["from"], "alice@example.org");
    assert_eq!(req["envelope"]["to"], serde_json::json!(["bob@localhost"]));
    let headers = req["message"]["headers"].as_array().expect("headers");
    assert!(
        headers.contains(&serde_json::json!(["Subject", "hello"])),
        "{headers:?}"
    );
    // Without `content=true` the raw content is not sent.
    assert!(req["message"].get("content").is_none(), "{req}");
}

#[test]
fn content_true_sends_the_raw_message_base64() {
    // The hook itself checks the content: without it, it rejects.
    let hook = Hook::start(
        r#"[{"event": "end-of-data", "content_contains": "Subject: content check",
             "answer": {"action": "continue", "modifications": [
                 {"type": "add-header", "name": "X-Content", "value": "seen"}]}}]"#,
    );
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            &hook.url(),
            "--prop",
            "content=true",
        ],
    );
    let server = Postern::start_with_dir(d);
    let reply = server.client().send_message(
        "alice@example.org",
        &["carol@localhost"],
        "Subject: content check\r\n\r\nThe body.",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "carol", 1);
    assert!(mail[0].contains("X-Content: seen\r\n"), "{}", mail[0]);
    let req = &hook.requests()[0]["request"];
    assert_eq!(req["properties"]["binding"]["content"], true);
}

#[test]
fn a_hook_that_is_down_gets_on_error() {
    // Nothing listens on this port.
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let dir = workdir();
    let d = dir.path();
    bind(d, &["--event", "inbound:NOOP", "--sink", &url]);
    bind(
        d,
        &[
            "--event",
            "end-of-data",
            "--sink",
            &url,
            "--on-error",
            "continue",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    assert!(c.expect("NOOP", 451).text().starts_with("4.3.0"));
    c.expect("RSET", 250);
    let mut c = server.client();
    let reply = c.send_message(
        "alice@example.org",
        &["dave@localhost"],
        "Subject: x\r\n\r\nx",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("localhost", "dave", 1);
    server.wait_for_log("Connection refused");
}

#[test]
fn garbage_answers_and_error_statuses_get_on_error() {
    let hook = Hook::start(
        r#"[{"event": "inbound:NOOP", "raw": "this is not JSON"},
            {"event": "inbound:RSET", "status": 500, "answer": {"action": "continue"}},
            {"event": "inbound:VRFY",
             "answer": {"action": "reject", "response": {"code": 250}}},
            {"event": "inbound:HELP",
             "answer": {"action": "continue",
                        "modifications": [{"type": "rewrite-everything"}]}}]"#,
    );
    let dir = workdir();
    let d = dir.path();
    for event in [
        "inbound:NOOP",
        "inbound:RSET",
        "inbound:VRFY",
        "inbound:HELP",
    ] {
        bind(d, &["--event", event, "--sink", &hook.url()]);
    }
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    for command in ["NOOP", "RSET", "VRFY bob", "HELP"] {
        let reply = c.expect(command, 451);
        assert!(reply.text().starts_with("4.3.0"), "{command}: {reply:?}");
    }
    let log = server.wait_for_log("HTTP status 500");
    assert!(log.contains("hook answer"), "{log}");
}

#[test]
fn a_slow_hook_past_the_binding_timeout_gets_on_error() {
    let hook = Hook::start(r#"[{"event": "inbound:NOOP", "delay": 5}]"#);
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            &hook.url(),
            "--timeout",
            "300ms",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let started = Instant::now();
    c.expect("NOOP", 451);
    assert!(started.elapsed() < Duration::from_secs(4));
    server.wait_for_log("timed out after 300 ms");
}

#[test]
fn https_needs_a_trusted_certificate_and_ca_file_supplies_one() {
    let certs = workdir();
    let (cert, key, ca) = certificate(certs.path(), "localhost");
    let hook = Hook::start_with_tls(
        r#"[{"event": "inbound:NOOP",
             "answer": {"action": "accept",
                        "response": {"code": 250, "enhanced": "2.0.0",
                                     "text": "seen over TLS"}}}]"#,
        Some((&cert, &key)),
    );
    let url = format!("https://localhost:{}/hook", hook.port);
    let dir = workdir();
    let d = dir.path();
    // A certificate of an unknown CA is refused…
    bind(d, &["--event", "inbound:RSET", "--sink", &url]);
    // …and trusted with the binding's CA file.
    let ca_prop = format!("ca_file={}", ca.display());
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            &url,
            "--prop",
            &ca_prop,
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    assert_eq!(c.expect("NOOP", 250).text(), "2.0.0 seen over TLS");
    c.expect("RSET", 451);
    server.wait_for_log("UnknownIssuer");
    assert_eq!(hook.requests().len(), 1);
}

#[test]
fn bad_urls_properties_and_ca_files_are_refused_when_the_binding_is_added() {
    let dir = workdir();
    let d = dir.path();
    let url = "http://127.0.0.1:9/hook";
    for (name, args) in [
        ("unknown key", vec!["--prop", "timeout_ms=5"]),
        ("content not a boolean", vec!["--prop", "content=maybe"]),
        ("missing CA file", vec!["--prop", "ca_file=no/such/ca.pem"]),
    ] {
        let mut all = vec!["add", "--event", "end-of-data", "--sink", url];
        all.extend(args);
        let (code, _, err) = binding(d, &all);
        assert_ne!(code, 0, "{name}: accepted");
        assert!(!err.is_empty(), "{name}: no error text");
    }
    let (code, _, err) = binding(
        d,
        &["add", "--event", "end-of-data", "--sink", "http:ftp://x/"],
    );
    assert_ne!(code, 0, "ftp accepted");
    assert!(err.contains("hook URL"), "{err}");
}
