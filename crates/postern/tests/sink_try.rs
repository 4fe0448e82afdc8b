//! `postern sink try`: one sink, run once offline, its outcome printed as JSON.

use std::process::Command;

fn try_sink(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("sink")
        .arg("try")
        .args(args)
        .output()
        .expect("run postern sink try");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reply_sink_on_mail_prints_its_verdict() {
    let (code, out, err) = try_sink(&[
        "--event",
        "inbound:MAIL",
        "--sink",
        "builtin:reply",
        "--prop",
        "code=550",
        "--prop",
        "enhanced=5.7.1",
        "--prop",
        "text=No spam",
        "--mail-from",
        "a@spam.example",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["ran"], true);
    assert_eq!(out["event"], "inbound:MAIL");
    let verdict = &out["outcome"]["verdict"];
    assert_eq!(verdict["type"], "reply");
    assert_eq!(verdict["reply"]["code"], 550);
    assert_eq!(verdict["reply"]["enhanced"], "5.7.1");
    assert_eq!(verdict["reply"]["text"], "No spam");
}

#[test]
fn a_header_sink_sees_the_envelope_and_message_given() {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("m.eml");
    std::fs::write(&message, "Subject: hi\r\n\r\nbody\r\n").unwrap();
    let (code, out, err) = try_sink(&[
        "--event",
        "end-of-data",
        "--sink",
        "builtin:add-header",
        "--prop",
        "name=X-From",
        "--prop",
        "value=${sender} from ${helo}",
        "--mail-from",
        "a@example.org",
        "--rcpt",
        "b@example.net",
        "--message",
        message.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["outcome"]["verdict"]["type"], "continue");
    let changes = out["outcome"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{out}");
    assert_eq!(changes[0]["type"], "add-header");
    assert_eq!(changes[0]["name"], "X-From");
    assert_eq!(changes[0]["value"], "a@example.org from client.test");
}

#[test]
fn a_failing_sink_exits_1_with_the_reason() {
    for (mode, needle) in [
        ("error", "sink failed: fault injected"),
        ("panic", "sink panicked: fault injected"),
        ("hang", "sink timed out after 200 ms"),
    ] {
        let (code, out, err) = try_sink(&[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:fault",
            "--prop",
            &format!("mode={mode}"),
            "--timeout",
            "200ms",
        ]);
        assert_eq!(code, 1, "{mode}: {err}");
        assert_eq!(out["ran"], false);
        assert_eq!(out["error"], needle, "{mode}");
    }
}

#[test]
fn usage_errors_exit_2_naming_what_is_wrong() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--event", "on-nothing", "--sink", "builtin:log"],
            "--event",
        ),
        (
            &["--event", "inbound:NOOP", "--sink", "builtin:nope"],
            "unknown sink builtin:nope",
        ),
        (
            &[
                "--event",
                "inbound:NOOP",
                "--sink",
                "builtin:log",
                "--prop",
                "colour=red",
            ],
            "unknown property `colour`",
        ),
        (
            &[
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:log",
                "--command",
                "RCPT TO:<a@b>",
            ],
            "is not a MAIL command",
        ),
        (
            &[
                "--event",
                "end-of-data",
                "--sink",
                "builtin:log",
                "--message",
                "no/such/file",
            ],
            "--message no/such/file",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, err) = try_sink(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
