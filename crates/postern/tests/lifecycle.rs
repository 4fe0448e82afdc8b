//! The server's life: durability across kill -9, graceful shutdown, configuration errors.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, Postern};

/// Sends messages with unique tokens on several connections until told to stop; returns the
/// tokens the server acknowledged with 250.
fn load(addr: std::net::SocketAddr, workers: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let token = format!("tok-{w}-{n}");
                    // Any failure (the server was killed) ends this worker's run.
                    let result = std::panic::catch_unwind(|| {
                        let mut c = Client::connect(addr);
                        if c.read_reply().code != 220 {
                            return false;
                        }
                        let body = format!("Subject: {token}\r\n\r\n{token}\r\n");
                        c.send_message("load@example.org", &["crash@localhost"], &body)
                            .code
                            == 250
                    });
                    match result {
                        Ok(true) => acked.lock().unwrap().push(token),
                        Ok(false) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[test]
fn kill_9_during_load_loses_nothing_acknowledged_and_delivers_nothing_twice() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = Postern::start_in(temp.path(), None);
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || load(addr, 8, stop))
    };
    // Kill it under load: once enough messages are delivered, more are in flight.
    let delivered = server.new_mail("localhost", "crash");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while common::read_all(&delivered).len() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load did not get going:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked = loader.join().unwrap();
    assert!(
        acked.len() > 20,
        "the load got going: {} messages",
        acked.len()
    );

    // Restart on the same data: recovery delivers what was queued.
    let server = Postern::start_in(temp.path(), None);
    let dir = server.new_mail("localhost", "crash");
    let mut counts: HashMap<String, usize> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        counts.clear();
        for text in common::read_all(&dir) {
            let token = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .to_owned();
            *counts.entry(token).or_default() += 1;
        }
        if acked.iter().all(|t| counts.contains_key(t)) || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing: Vec<_> = acked.iter().filter(|t| !counts.contains_key(*t)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost: {missing:?}\n{}",
        server.log()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
}

#[test]
fn sigterm_lets_a_transaction_in_flight_finish_and_keeps_the_queue() {
    let mut server = Postern::start();
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<late@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: during shutdown\r\n\r\n");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status();
    // New connections are soon no longer accepted...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(server.addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...but the transaction in flight completes.
    c.send_raw(b"still here\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    c.send("QUIT");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", server.log());
}

#[test]
fn check_config_names_file_line_and_field() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\naddress = \"127.0.0.1:2525\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_recipents = 5\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:7:") && err.contains("limits.max_recipents"),
        "{err}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("check-config")
        .arg("--data-dir")
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<embedded default>: ok"));

    // `serve` refuses a bad file the same way, before opening anything.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
