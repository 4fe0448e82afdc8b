//! The server's memory stays bounded whatever clients send: messages past the spill threshold
//! wait on disk while they arrive, and a memory budget caps what is held in memory.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Client, Postern};

/// A field of `/proc/PID/FILE` (`VmRSS`, `VmHWM` in kB; `rchar` in octets).
fn proc_field(pid: u32, file: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).expect("read /proc");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/{file}"))
}

/// Regression: 60 sessions each sending 24 MiB of DATA without the final dot took the server
/// from 6 MB to 1.38 GB.
#[test]
fn sixty_unfinished_24_mib_messages_keep_the_server_under_256_mib() {
    const SESSIONS: usize = 60;
    const MESSAGE: usize = 24 << 20;
    let server = Postern::start();
    let pid = server.child.id();
    let written_before = proc_field(pid, "io", "wchar");

    // Lines of 1000 octets with their CRLF, written a megabyte at a time.
    let line = [vec![b'x'; 998], b"\r\n".to_vec()].concat();
    let chunk: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let clients: Vec<Client> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..SESSIONS)
            .map(|_| {
                let (chunk, server) = (&chunk, &server);
                scope.spawn(move || {
                    let mut c = server.client();
                    c.expect("EHLO client.test", 250);
                    c.expect("MAIL FROM:<a@example.org>", 250);
                    c.expect("RCPT TO:<b@localhost>", 250);
                    c.expect("DATA", 354);
                    for _ in 0..MESSAGE / chunk.len() {
                        c.stream.write_all(chunk).expect("write");
                    }
                    c
                })
            })
            .collect();
        senders.into_iter().map(|s| s.join().unwrap()).collect()
    });

    // The server has taken what was sent (not just left it in socket buffers): it wrote it
    // to disk, all but the last write buffer of each session (less than a MiB).
    let sent = (SESSIONS * MESSAGE) as u64;
    let wanted = written_before + sent - (SESSIONS as u64 * (1 << 20));
    let deadline = Instant::now() + Duration::from_secs(60);
    while proc_field(pid, "io", "wchar") < wanted {
        assert!(
            Instant::now() < deadline,
            "the server wrote {} of {sent} octets",
            proc_field(pid, "io", "wchar") - written_before,
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss_kb = proc_field(pid, "status", "VmRSS");
    let peak_kb = proc_field(pid, "status", "VmHWM");
    eprintln!("60 x 24 MiB unfinished: VmRSS {rss_kb} kB, peak {peak_kb} kB");
    assert!(peak_kb < 256 * 1024, "peak RSS {peak_kb} kB");

    // The sessions go; the server goes on.
    drop(clients);
    let mut c = server.client();
    let reply = c.send_message(
        "a@example.org",
        &["b@localhost"],
        "Subject: after\r\n\r\nhi",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "b", 1);
    assert!(mail[0].contains("Subject: after"));
}

#[test]
fn with_a_small_budget_a_new_transfer_gets_452_4_3_1() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n\
         [limits]\nmemory_budget = \"64k\"\nspill_threshold = \"1M\"\n",
    ));
    let open: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = server.client();
            c.expect("EHLO client.test", 250);
            c.expect("MAIL FROM:<a@example.org>", 250);
            c.expect("RCPT TO:<b@localhost>", 250);
            c.expect("DATA", 354);
            c
        })
        .collect();
    let mut late = server.client();
    late.expect("EHLO client.test", 250);
    late.expect("MAIL FROM:<a@example.org>", 250);
    late.expect("RCPT TO:<b@localhost>", 250);
    let reply = late.expect("DATA", 452);
    assert!(reply.text().starts_with("4.3.1"), "{reply:?}");

    // A transfer that ends gives its share back.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = late.cmd("DATA");
        if reply.code == 354 {
            break;
        }
        assert_eq!(reply.code, 452, "{reply:?}");
        assert!(Instant::now() < deadline, "the shares did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    late.send_raw(b"Subject: late\r\n\r\nhello\r\n.\r\n");
    assert_eq!(late.read_reply().code, 250);
    server.wait_for_mail("localhost", "b", 1);
}
