//! Isolation per binding, against the real binary: `--max-concurrency`, `--breaker`, and
//! blocking sinks on a pool of their own.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Postern, bind, binding, workdir};

#[test]
fn a_call_beyond_max_concurrency_waits_then_meets_on_error() {
    let dir = workdir();
    let d = dir.path();
    // Alone, a call takes 1.5 s of its 2 s. The second waits ~1.5 s for the slot, so its sink
    // cannot finish in the 0.5 s left.
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:delay",
            "--prop",
            "ms=1500",
            "--timeout",
            "2s",
            "--on-error",
            "reject",
            "--max-concurrency",
            "1",
            "--name",
            "one-at-a-time",
        ],
    );
    let server = Postern::start_with_dir(d);
    let mut a = server.client();
    let mut b = server.client();
    a.expect("EHLO a.test", 250);
    b.expect("EHLO b.test", 250);
    a.send("NOOP");
    b.send("NOOP");
    let mut codes = [a.read_reply().code, b.read_reply().code];
    codes.sort_unstable();
    assert_eq!(codes, [250, 550], "one ran, the other met on_error");
    server.wait_for_log("one-at-a-time");

    let (code, out, err) = binding(d, &["show", "one-at-a-time", "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["max_concurrency"], 1);
    assert_eq!(shown["breaker"], serde_json::Value::Null);
}

#[test]
fn the_breaker_skips_a_failing_sink_then_tries_it_again_after_the_cool_down() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:NOOP",
            "--sink",
            "builtin:fault",
            "--prop",
            "mode=error",
            "--on-error",
            "reject",
            "--breaker",
            "2/1",
            "--name",
            "flaky",
        ],
    );
    let (code, out, _) = binding(d, &["list", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"breaker\": \"2/1\""), "{out}");
    let server = Postern::start_with_dir(d);
    // A session per command: the server closes one after too many errors.
    let noop = || {
        let mut c = server.client();
        c.expect("EHLO client.test", 250);
        c.expect("NOOP", 550);
    };
    noop();
    noop();
    server.wait_for_log("circuit breaker opened");
    // While open, on_error answers without calling the sink.
    noop();
    server.wait_for_log("circuit breaker is open");
    let failed = |log: &str| log.matches("sink failed").count();
    let before = failed(&server.log());
    // After the one-second cool-down the sink is called again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while failed(&server.log()) == before {
        assert!(Instant::now() < deadline, "the sink was never called again");
        noop();
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn isolation_settings_are_checked_when_the_binding_is_added() {
    let dir = workdir();
    let d = dir.path();
    for (flag, value) in [
        ("--max-concurrency", "0"),
        ("--breaker", "5"),
        ("--breaker", "0/60"),
    ] {
        let (code, _, err) = binding(
            d,
            &[
                "add",
                "--event",
                "inbound:NOOP",
                "--sink",
                "builtin:log",
                flag,
                value,
            ],
        );
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{err}");
    }
}

/// More slow sessions than tokio's own blocking pool has threads (512): were blocking sinks run
/// there, the spool writes and the Maildir delivery would queue behind them for the whole delay.
const SLOW_SESSIONS: usize = 600;

#[test]
fn many_blocking_sinks_on_ehlo_do_not_hold_up_an_unrelated_delivery() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:EHLO",
            "--sink",
            "builtin:delay",
            "--prop",
            "ms=60000",
            "--prop",
            "blocking=true",
            "--timeout",
            "90s",
            "--rule",
            "EHLO=slow.test",
            "--on-error",
            "continue",
        ],
    );
    // About threads, not disk space: no disk reserve, so a nearly full disk does not refuse MAIL.
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\n\
                  users = \"*\"\n[limits]\nmax_connections_per_ip = 1000\n\
                  [queue]\ndisk_reserve = \"0%\"\n";
    let server = Postern::start_in(d, Some(config));
    const { assert!(SLOW_SESSIONS > postern_sink_host::BLOCKING_THREADS) };
    let slow: Vec<Client> = (0..SLOW_SESSIONS)
        .map(|_| {
            let mut c = server.client();
            c.send("EHLO slow.test");
            c
        })
        .collect();
    let mut c = server.client();
    assert_eq!(
        c.send_message(
            "a@example.org",
            &["fast@localhost"],
            "Subject: unrelated\r\n\r\nstill delivered"
        )
        .code,
        250
    );
    // Within wait_for_mail's deadline, far shorter than the slow sinks' minute (run on tokio's
    // blocking pool, they kept this message from the mailbox past that deadline).
    let mail = server.wait_for_mail("localhost", "fast", 1);
    assert!(mail[0].contains("still delivered"));
    drop(slow);
}
