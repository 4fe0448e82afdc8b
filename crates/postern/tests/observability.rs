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
    let text = reply.text();
    text.rsplit(' ')
        .next()
        .expect("queued as ID")
        .trim()
        .to_owned()
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
