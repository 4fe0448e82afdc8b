//! A milter driven step by step by the real binary: a scripted milter on a free loopback port,
//! bound to the session's protocol events, sees connect, helo, mail and rcpt in order on one
//! connection, and its refusal at RCPT is the reply the SMTP client gets at RCPT.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Postern, bind, workdir};

/// The commands received on each connection, in order (macros left out).
type Seen = Arc<Mutex<Vec<String>>>;

fn frame(code: u8, data: &[u8]) -> Vec<u8> {
    let mut out = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(code);
    out.extend_from_slice(data);
    out
}

/// A milter that continues at every step except RCPT to mallory, which it refuses with 550.
fn scripted_milter() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut commands = String::new();
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).is_err() {
                        break;
                    }
                    let mut data = vec![0u8; u32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut data).is_err() {
                        break;
                    }
                    let code = data.remove(0);
                    let answer = match code {
                        b'O' => {
                            let mut d = 6u32.to_be_bytes().to_vec();
                            d.extend_from_slice(&0x1ffu32.to_be_bytes());
                            d.extend_from_slice(&0u32.to_be_bytes());
                            Some(frame(b'O', &d))
                        }
                        b'D' | b'A' | b'Q' => None,
                        b'R' if data.starts_with(b"<mallory@") => {
                            Some(frame(b'y', b"550 5.7.1 mallory is not welcome\0"))
                        }
                        _ => Some(frame(b'c', b"")),
                    };
                    if code != b'D' {
                        commands.push(char::from(code));
                    }
                    if let Some(a) = answer
                        && s.write_all(&a).is_err()
                    {
                        break;
                    }
                    if code == b'Q' {
                        break;
                    }
                }
                record.lock().unwrap().push(commands);
            });
        }
    });
    (port, seen)
}

#[test]
fn a_milter_on_protocol_events_shares_one_connection_and_refuses_at_rcpt() {
    let dir = workdir();
    let d = dir.path();
    let (port, seen) = scripted_milter();
    let sink = format!("milter:inet:{port}@127.0.0.1");
    for (event, name) in [
        ("session-start", "m-connect"),
        ("inbound:EHLO", "m-helo"),
        ("inbound:MAIL", "m-mail"),
        ("inbound:RCPT", "m-rcpt"),
        ("end-of-data", "m-eod"),
        ("session-end", "m-quit"),
    ] {
        bind(d, &["--event", event, "--sink", &sink, "--name", name]);
    }
    let server = Postern::start_in(d, None);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<alice@example.test>", 250);
    let refused = c.cmd("RCPT TO:<mallory@localhost>");
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(
        refused.text().contains("mallory is not welcome"),
        "{refused:?}"
    );
    c.expect("RCPT TO:<bob@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: steps\r\n\r\nhello\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    c.expect("QUIT", 221);
    server.wait_for_mail("localhost", "bob", 1);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let conversations = seen.lock().unwrap().clone();
        if !conversations.is_empty() {
            // One connection; a header step (L) per field: Postern's Received and the Subject.
            assert_eq!(conversations.len(), 1, "{conversations:?}");
            let steps = &conversations[0];
            assert_eq!(steps.replace('L', ""), "OCHMRRTNBEQ", "{steps}");
            assert_eq!(steps.matches('L').count(), 2, "{steps}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the milter was never told to quit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
