//! Observability end to end: the JSON log names the message (`queue_id`) on every line about
//! it, and the binding (`binding`, `binding_id`) where a sink decided; `postern trace` gives a
//! message's timeline from the logs after it left the queue.

mod common;

use common::{Postern, bind, workdir};

/// Log lines that are about one message, by their `message` field.
const ABOUT_THE_MESSAGE: [&str; 4] = [
    "message accepted",
    "sink failed: fault injected",
    "transport pass done",
    "stored",
];

#[test]
fn json_log_lines_about_a_message_carry_its_queue_id_and_the_binding_that_decided() {
    let dir = workdir();
    let binding_id = bind(
        dir.path(),
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=error",
            "--on-error",
            "continue",
            "--name",
            "flaky",
        ],
    );
    let mut server = Postern::start_in(
        dir.path(),
        Some(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
             [log]\nformat = \"json\"\n",
        ),
    );
    let mut client = server.client();
    let reply = client.send_message(
        "sender@example.org",
        &["user@localhost"],
        "Subject: traced\r\n\r\nhello\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let queue_id = queued_as(&reply);
    client.expect("QUIT", 221);
    server.wait_for_mail("localhost", "user", 1);
    server.wait_for_log("transport pass done");
    server.stop();

    let lines: Vec<serde_json::Value> = server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for wanted in [
        "message accepted",
        "sink failed: fault injected",
        "transport pass done",
    ] {
        assert!(
            lines.iter().any(|l| l["message"] == wanted),
            "no {wanted:?} line in the log:\n{}",
            server.log()
        );
    }
    for line in lines
        .iter()
        .filter(|l| ABOUT_THE_MESSAGE.iter().any(|m| l["message"] == *m))
    {
        assert_eq!(
            line["queue_id"],
            queue_id.as_str(),
            "line without its queue id: {line}"
        );
    }
    let failed = lines
        .iter()
        .find(|l| l["message"] == "sink failed: fault injected")
        .expect("the sink's failure is logged");
    assert_eq!(failed["binding"], "flaky", "{failed}");
    assert_eq!(failed["binding_id"], binding_id.as_str(), "{failed}");
}

/// Runs `postern trace ARGS --data-dir DIR/data`; returns (exit code, stdout, stderr).
fn run_trace(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("trace")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("run postern trace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn queued_as(reply: &common::Reply) -> String {
    reply.queue_id()
}

#[test]
fn trace_shows_a_remote_deferral_with_its_reply_then_the_delivery_after_the_message_left_the_queue()
{
    use common::peers::{Dns, Mx, wait_track};
    let dns = Dns::start(&[
        "--mx-host=remote.test,mx1.remote.test,10".into(),
        "--host-record=mx1.remote.test,127.0.0.2".into(),
    ]);
    let mx = Mx::start("127.0.0.2", r#"{"data_fail_first": "451 4.3.0 not now"}"#);
    let dir = workdir();
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
         [relay]\nnetworks = [\"127.0.0.0/8\"]\n\
         {}\
         [delivery]\nsmtp_port = {}\nretry_intervals = [\"1s\"]\n",
        dns.config(),
        mx.port
    );
    let mut server = Postern::start_in(dir.path(), Some(&config));
    let reply = server.client().send_message(
        "alice@localhost",
        &["bob@remote.test"],
        "Subject: traced\r\n\r\nx\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = queued_as(&reply);
    wait_track(&dir.path().join("data"), "the delivery", |log| {
        log.iter()
            .any(|r| r["recipient"] == "bob@remote.test" && r["state"] == "delivered")
    });
    server.stop();

    let (code, out, err) = run_trace(dir.path(), &[&id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let trace: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(trace["id"], id.as_str());
    assert_eq!(trace["final_state"], "delivered", "{trace:#}");
    let entries = trace["entries"].as_array().expect("entries");
    assert_eq!(entries[0]["kind"], "event", "{trace:#}");
    assert_eq!(entries[0]["state"], "received", "{trace:#}");
    let deliveries: Vec<&serde_json::Value> =
        entries.iter().filter(|e| e["kind"] == "delivery").collect();
    assert_eq!(deliveries.len(), 2, "{trace:#}");
    assert_eq!(deliveries[0]["state"], "deferred");
    assert!(
        deliveries[0]["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("451 4.3.0 not now")),
        "{trace:#}"
    );
    assert_eq!(deliveries[1]["state"], "delivered");
    assert!(deliveries[1]["next_hop"].is_string(), "{trace:#}");
    for e in entries {
        assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }

    // For people: one line per entry, the reply of each attempt, the final state.
    let (code, text, err) = run_trace(dir.path(), &[&id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("deferred") && text.contains("451 4.3.0 not now"),
        "{text}"
    );
    assert!(text.ends_with("final state: delivered\n"), "{text}");

    let (code, _, err) = run_trace(dir.path(), &["0000000000000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("no trace of 0000000000000000"), "{err}");
}

/// The decision log's entries of a trace: the bindings that fired on the message.
fn bindings_of(trace: &serde_json::Value) -> Vec<&serde_json::Value> {
    trace["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["kind"] == "binding")
        .collect()
}

#[test]
fn trace_shows_every_binding_that_fired_with_its_outcome_and_changes_and_not_the_one_that_did_not()
{
    let dir = workdir();
    let d = dir.path();
    let rcpt_id = bind(
        d,
        &[
            "--event",
            "inbound:RCPT",
            "--sink",
            "builtin:log",
            "--name",
            "rcpt-log",
        ],
    );
    let tagger_id = bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--name",
            "tagger",
            "--prop",
            "name=X-Traced",
            "--prop",
            "value=yes",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--name",
            "never",
            "--rule",
            "HEADER:Subject=*no such subject*",
            "--prop",
            "name=X-Never",
            "--prop",
            "value=no",
        ],
    );
    bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:fault",
            "--name",
            "flaky",
            "--prop",
            "mode=error",
            "--on-error",
            "continue",
        ],
    );
    let fate_id = bind(
        d,
        &[
            "--event",
            "post-categorize",
            "--sink",
            "builtin:set-fate",
            "--name",
            "jail",
            "--prop",
            "fate=badmail",
        ],
    );
    let mut server = Postern::start_in(
        d,
        Some(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [[domain]]\nname = \"localhost\"\nusers = \"*\"\n",
        ),
    );
    let reply = server.client().send_message(
        "sender@example.org",
        &["user@localhost"],
        "Subject: decided\r\n\r\nhello\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = queued_as(&reply);
    let badmail = d.join("data").join("badmail").join(format!("{id}.eml"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut trace = serde_json::Value::Null;
    // The decision log is written by a thread of its own: poll until the last binding shows.
    while std::time::Instant::now() < deadline {
        let (code, out, _) = run_trace(d, &[&id, "--json"]);
        if code == 0 && badmail.exists() {
            trace = serde_json::from_str(&out).expect("JSON");
            if bindings_of(&trace).iter().any(|b| b["binding"] == "jail") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
    let fired = bindings_of(&trace);
    let names: Vec<&str> = fired.iter().filter_map(|b| b["binding"].as_str()).collect();
    assert_eq!(names, ["rcpt-log", "tagger", "flaky", "jail"], "{trace:#}");

    let rcpt = fired[0];
    assert_eq!(rcpt["binding_id"], rcpt_id.as_str(), "{rcpt}");
    assert_eq!(rcpt["event"], "inbound:RCPT", "{rcpt}");
    assert_eq!(rcpt["outcome"], "ok", "{rcpt}");

    let tagger = fired[1];
    assert_eq!(tagger["binding_id"], tagger_id.as_str(), "{tagger}");
    assert_eq!(tagger["event"], "submission", "{tagger}");
    assert_eq!(tagger["outcome"], "ok", "{tagger}");
    let changes = tagger["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{tagger}");
    assert!(
        changes[0]
            .as_str()
            .is_some_and(|c| c.contains("X-Traced") && c.contains("yes")),
        "{tagger}"
    );

    let flaky = fired[2];
    assert_eq!(flaky["outcome"], "error", "{flaky}");
    assert!(
        flaky["error"]
            .as_str()
            .is_some_and(|e| e.contains("fault injected")),
        "{flaky}"
    );

    let jail = fired[3];
    assert_eq!(jail["binding_id"], fate_id.as_str(), "{jail}");
    assert_eq!(jail["event"], "post-categorize", "{jail}");
    assert!(
        jail["changes"][0]
            .as_str()
            .is_some_and(|c| c.contains("SetFate")),
        "{jail}"
    );
    for e in &fired {
        assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }

    // For people: one line per binding with its outcome and change.
    let (code, text, err) = run_trace(d, &[&id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.lines()
            .any(|l| l.contains("binding") && l.contains("tagger") && l.contains("X-Traced")),
        "{text}"
    );
    assert!(!text.contains("never"), "{text}");
}

#[test]
fn the_decision_log_is_rotated_by_size_and_keeps_decisions_keep_files() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--name",
            "tagger",
            "--prop",
            "name=X-Traced",
            "--prop",
            "value=a value long enough to fill the log",
        ],
    );
    let mut server = Postern::start_in(
        d,
        Some(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
             [log]\ndecisions_max_size = \"1K\"\ndecisions_keep = 2\n",
        ),
    );
    const MESSAGES: usize = 12;
    for n in 0..MESSAGES {
        let reply = server.client().send_message(
            "sender@example.org",
            &["user@localhost"],
            &format!("Subject: m{n}\r\n\r\nhello\r\n"),
        );
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    server.wait_for_mail("localhost", "user", MESSAGES);
    let log = d.join("data").join("log");
    let current = log.join("decisions.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log.join("decisions.jsonl.2").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.stop();
    assert!(
        log.join("decisions.jsonl.2").exists(),
        "two rotated files kept"
    );
    assert!(
        !log.join("decisions.jsonl.3").exists(),
        "no third rotated file"
    );
    for file in [
        current,
        log.join("decisions.jsonl.1"),
        log.join("decisions.jsonl.2"),
    ] {
        let len = std::fs::metadata(&file).expect("the file").len();
        assert!(len <= 1024, "{} has {len} octets", file.display());
    }
}
