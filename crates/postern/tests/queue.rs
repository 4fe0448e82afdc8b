//! The queue from the outside: `postern queue check` on an intact and a damaged spool, a start
//! after damage, the disk reserve (452 4.3.1 while delivery goes on), and the spool's size
//! across restarts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Postern, bind, workdir};

/// Runs `postern queue check` on the data folder of `dir`; returns (exit code, stdout, stderr).
fn check(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["queue", "check", "--data-dir"])
        .arg(dir.join("data"))
        .args(extra)
        .output()
        .expect("run postern queue check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A configuration with small segments and the reserve given.
fn config(reserve: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:2525\"\n\n[[domain]]\nname = \"localhost\"\n\
         users = \"*\"\n\n[queue]\nsegment_size = \"64K\"\ndisk_reserve = \"{reserve}\"\n"
    )
}

/// Registers a binding that holds every message in the queue.
fn hold_everything(dir: &Path) {
    bind(
        dir,
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:set-fate",
            "--prop",
            "fate=hold",
        ],
    );
}

/// Sends `n` messages; returns their queue ids.
fn send(server: &Postern, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut c = server.client();
            let reply = c.send_message(
                "a@example.org",
                &["bob@localhost"],
                &format!("Subject: {i}\r\n\r\nmessage {i}"),
            );
            assert_eq!(reply.code, 250, "{reply:?}");
            reply.queue_id()
        })
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("data/queue/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Where each record of a segment's log ends, read from the framing documented in
/// docs/queue.md: a 28-octet header (magic `PSPL`, kind, …, segment number at 8, payload
/// length at 16); the log ends at an End marker (kind 0), zeros, or another segment's record.
fn record_ends(path: &Path) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let number: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut ends = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 28 && bytes[at..at + 4] == *b"PSPL" && bytes[at + 4] != 0 {
        if u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) != number {
            break;
        }
        let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
        at += 28 + len;
        ends.push(at);
    }
    ends
}

#[test]
fn queue_check_names_a_cut_segment_its_octets_and_lost_ids_and_serve_starts_with_the_rest() {
    let dir = workdir();
    let d = dir.path();
    hold_everything(d);
    let text = config("0%");
    let mut server = Postern::start_in(d, Some(&text));
    let ids = send(&server, 20);
    assert!(server.stop().success());

    let (code, out, err) = check(d, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("20 live message(s)") && out.contains("intact"),
        "{out}"
    );

    // Cut the newest segment with records at a record boundary in the middle of its log.
    let segment = segment_files(d)
        .into_iter()
        .rfind(|p| !record_ends(p).is_empty())
        .unwrap();
    let ends = record_ends(&segment);
    let (cut, end) = (ends[ends.len() / 2 - 1], *ends.last().unwrap());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(cut as u64).unwrap();

    let (code, out, err) = check(d, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(out.contains("DAMAGED") && out.contains(name), "{out}");
    assert!(out.contains(&format!("octets {cut}..{end}")), "{out}");
    let lost: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("lost "))
        .collect();
    assert!(!lost.is_empty(), "{out}");
    assert!(lost.iter().all(|id| ids.iter().any(|i| i == id)), "{out}");

    let (code, json, _) = check(d, &["--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["damage"][0]["start"], cut as u64);
    assert_eq!(report["damage"][0]["end"], end as u64);
    let live = report["live"].as_u64().unwrap() as usize;
    assert_eq!(live + lost.len(), ids.len());

    // The server starts with every intact message and says, per message, what it lost.
    let mut server = Postern::start_in(d, Some(&text));
    assert!(server.stop().success());
    let log = server.log();
    for id in &lost {
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains(id) && l.contains("lost")),
            "{id} not in the log:\n{log}"
        );
    }
    let kept = d.join("data/queue/damaged").join(name);
    assert!(kept.exists(), "{}", kept.display());
    let (code, out, err) = check(d, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{live} live message(s)")), "{out}");
    assert!(out.contains("kept from earlier damage"), "{out}");
}

#[test]
fn queue_check_refuses_a_running_server_and_bad_usage() {
    let dir = workdir();
    let d = dir.path();
    let server = Postern::start_in(d, Some(&config("0%")));
    let (code, _, err) = check(d, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("stop the server"), "{err}");
    drop(server);
    let (code, _, err) = check(d, &["--config", "/nonexistent/postern.toml"]);
    assert_eq!(code, 2, "{err}");
    let empty = workdir();
    let (code, _, err) = check(empty.path(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no spool here"), "{err}");
}

#[test]
fn below_the_disk_reserve_mail_gets_452_and_queued_mail_is_still_delivered() {
    let dir = workdir();
    let d = dir.path();
    // A message queued while there was room; the next start finds none at all.
    queue_directly(d, "Subject: queued before\r\n\r\nbody\r\n");
    let server = Postern::start_in(d, Some(&config("100%")));
    for _ in 0..3 {
        let mut c = server.client();
        c.expect("EHLO client.test", 250);
        let reply = c.cmd("MAIL FROM:<a@example.org>");
        assert_eq!(reply.code, 452, "{reply:?}");
        assert!(reply.text().contains("4.3.1"), "{reply:?}");
    }
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(mail[0].contains("Subject: queued before"), "{}", mail[0]);
    let log = server.log();
    let said = log.matches("below the spool's reserve").count();
    assert_eq!(said, 1, "said once, not per message:\n{log}");
}

/// Stores a message for bob@localhost in the spool of `dir`, as a session would have.
fn queue_directly(dir: &Path, content: &str) {
    use postern_mailmsg::{Content, MailMsg, QueueIdGenerator, Recipient, Sender};
    let msg = MailMsg {
        id: Some(QueueIdGenerator::new(9).next_id()),
        sender: Some(Sender {
            address: "a@example.org".into(),
            params: Default::default(),
        }),
        recipients: vec![Recipient::new("bob@localhost")],
        content: Content::new(content.to_owned()),
        ..MailMsg::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = postern_queue::SpoolOptions {
            segment_size: 64 << 10,
            disk_reserve: postern_queue::DiskReserve::octets(0),
            ..postern_queue::SpoolOptions::default()
        };
        let queue = dir.join("data/queue");
        let (spool, _) = postern_queue::Spool::open(&queue, options).await.unwrap();
        spool.store(&msg).await.unwrap();
        spool.close().await.unwrap();
    });
}

#[test]
fn restarts_with_a_held_message_keep_the_spool_small() {
    let dir = workdir();
    let d = dir.path();
    hold_everything(d);
    let text = config("0%");
    let mut server = Postern::start_in(d, Some(&text));
    send(&server, 1);
    assert!(server.stop().success());
    for restart in 0..7 {
        let mut server = Postern::start_in(d, Some(&text));
        assert!(server.stop().success());
        let segments = segment_files(d);
        assert_eq!(segments.len(), 1, "restart {restart}: {segments:?}");
        let octets: u64 = std::fs::read_dir(d.join("data/queue/spare"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .chain(segments.iter().map(|p| std::fs::metadata(p).unwrap().len()))
            .sum();
        // One segment and at most two spares of 64 KiB.
        assert!(
            octets <= 3 * 64 * 1024,
            "restart {restart}: {octets} octets"
        );
    }
    let (code, out, err) = check(d, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 live message(s)"), "{out}");
}

#[test]
fn after_kill_9_a_cut_segment_is_still_found_with_its_lost_ids() {
    let dir = workdir();
    let d = dir.path();
    hold_everything(d);
    let text = config("0%");
    let mut server = Postern::start_in(d, Some(&text));
    let ids = send(&server, 20);
    // The running server brings its checkpoint up to date within a second or so.
    let checkpoint = d.join("data/queue/checkpoint.json");
    let last = ids.last().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&checkpoint).is_ok_and(|t| t.contains(last.as_str())) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint lists {last}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill9();

    let segment = segment_files(d)
        .into_iter()
        .rfind(|p| !record_ends(p).is_empty())
        .unwrap();
    let ends = record_ends(&segment);
    let cut = ends[ends.len() / 2 - 1];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let (code, out, err) = check(d, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let lost = out
        .lines()
        .filter(|l| l.trim().starts_with("lost "))
        .count();
    let live: usize = out
        .split(" live message(s)")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(lost > 0, "{out}");
    assert_eq!(live + lost, ids.len(), "{out}");
}
