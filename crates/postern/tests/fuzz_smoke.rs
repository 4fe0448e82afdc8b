//! The fuzz targets' entry points (see `fuzz/`) run on the stable toolchain: each is fed
//! mutations of valid inputs for a bounded time (`POSTERN_FUZZ_SECS` seconds per target,
//! default 2) and must never panic. This is no substitute for coverage-guided fuzzing with
//! cargo-fuzz, which needs a nightly toolchain; it keeps the entry points exercised in every
//! test run, and a failing input is printed so it can be added to the seeds below.

use std::path::Path;
use std::time::{Duration, Instant};

/// A small xorshift generator: reproducible runs from a fixed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens that matter to the parsers, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".",
    b"\r\n.\r\n",
    b"\0",
    b"<",
    b">",
    b"@",
    b"=",
    b"*",
    b";",
    b"!",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\\",
    b"\xff",
    b"\xc3\xa9",
    b"AUTH PLAIN ",
    b"BDAT 10 LAST",
    b"MAIL FROM:<",
    b"RCPT TO:<",
    b" SIZE=99999999999999999999",
    b"AAAAAAAAAAAAAAAAAAAAAAAA",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if at < data.len() => {
                let end = (at + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 if at < data.len() => {
                let end = (at + rng.below(64)).min(data.len());
                let copy = data[at..end].to_vec();
                for _ in 0..rng.below(40) {
                    data.splice(at..at, copy.iter().copied());
                }
            }
            _ => {
                let len = rng.below(32);
                let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                data.splice(at..at, random);
            }
        }
    }
    data
}

/// Runs `target` on the seeds and their mutations until the time budget is spent; returns
/// how many inputs ran.
fn run(name: &str, seeds: &[&[u8]], target: impl Fn(&[u8]) + std::panic::RefUnwindSafe) -> u64 {
    let secs = std::env::var("POSTERN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let mut runs = 0u64;
    while runs < seeds.len() as u64 || Instant::now() < deadline {
        let seed = seeds[runs as usize % seeds.len()];
        let input = if runs < seeds.len() as u64 {
            seed.to_vec()
        } else {
            mutate(&mut rng, seed)
        };
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            panic!(
                "{name}: input {:?} panicked",
                String::from_utf8_lossy(&input)
            );
        }
        runs += 1;
    }
    eprintln!("{name}: {runs} inputs in {secs} s, no panic");
    runs
}

#[test]
fn command_reader() {
    let seeds: &[&[u8]] = &[
        b"\x05EHLO client.test\r\nMAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d\r\nDATA\r\n",
        b"\x40AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nAUTH LOGIN\r\nYWxpY2U=\r\n*\r\n=\r\n",
        b"\x01BDAT 100 LAST\r\nBDAT 0\r\nRSET\r\nQUIT\r\nVRFY <postmaster>\r\n",
    ];
    assert!(
        run(
            "command_reader",
            seeds,
            postern_smtp_in::fuzzing::command_reader
        ) > 0
    );
}

#[test]
fn data_decoder() {
    let seeds: &[&[u8]] = &[
        b"\x03Subject: x\r\n\r\n..dot stuffed\r\nline\r\n.\r\nMAIL FROM:<a@b>\r\n",
        b"\x01a\nb\rc\r\n.\n.\r\n\0\r\n.\r\n",
        b"\x10From: a@b\r\n\r\n\r\n.\r\n",
    ];
    assert!(
        run(
            "data_decoder",
            seeds,
            postern_smtp_in::fuzzing::data_decoder
        ) > 0
    );
}

#[test]
fn rule_parser() {
    let seeds: &[&[u8]] = &[
        b"MAIL FROM=*@example.com;RCPT TO=*@example.org",
        b"!REMOTE=10.0.0.0/8;AUTH=*;TLS=true;SIZE>1000",
        b"EHLO=*example.com",
        b"HEADER:Subject=*viagra*;!AUTH=alice",
        b"MAIL,RCPT,DATA",
        // Found by the rule_parser fuzz target: they parsed, and printed as rules that did not.
        b"Ip Ip ",
        b"\x0c\x0cIp\x0c\x0ckk",
    ];
    assert!(
        run("rule_parser", seeds, |data| {
            if let Ok(text) = std::str::from_utf8(data)
                && let Ok(rule) = postern_sink_host::rule::Rule::parse(text)
            {
                // What a rule prints must parse again.
                let shown = rule.to_string();
                assert!(
                    postern_sink_host::rule::Rule::parse(&shown).is_ok(),
                    "{shown}"
                );
            }
        }) > 0
    );
}

#[test]
fn registry_parser() {
    let seeds: &[&[u8]] = &[
        b"version = 1\n[[binding]]\nid = \"6f1c2a55-4b0e-4f7e-9d7c-0a1b2c3d4e5f\"\nname = \"x\"\nevent = \"inbound:MAIL\"\nsink = \"builtin:log\"\npriority = 1\nrule = \"MAIL FROM=*@x\"\n[binding.properties]\ncode = 250\n",
        b"version = 1\n",
    ];
    assert!(
        run("registry_parser", seeds, |data| {
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = postern_sink_host::registry::parse(text, Path::new("bindings.toml"));
            }
        }) > 0
    );
}

#[test]
fn record_decoder() {
    let seeds: &[&[u8]] = &[
        b"\x01\x01\x20\0\0\0{\"id\":\"x\",\"content_len\":0}",
        b"\x02\x01{\"id\":\"0000000000000001\",\"envelope\":{},\"state\":\"queued\"}",
        b"\x03\x01{\"id\":\"0000000000000001\"}",
        b"PSPL\x01\x01\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    ];
    assert!(
        run(
            "record_decoder",
            seeds,
            postern_queue::fuzzing::record_decoder
        ) > 0
    );
}
