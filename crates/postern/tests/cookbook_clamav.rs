//! The "Virus scanning" recipe of `docs/cookbook.md`, run as written against a running server
//! and a real clamd: the test reads the fenced `sh` block under the heading and runs each
//! `postern …` line. The one substitution: clamd's documented address `127.0.0.1:3310` becomes
//! the free port the test's clamd listens on.

mod common;

use std::time::{Duration, Instant};

use common::clamd::{Clamd, EICAR, EICAR_NAME};
use common::{Postern, cookbook, workdir};

fn send(server: &Postern, body: &str) -> common::Reply {
    let mut c = server.client();
    let reply = c.send_message("alice@example.test", &["bob@localhost"], body);
    c.expect("QUIT", 221);
    reply
}

#[test]
fn virus_scanning_recipe() {
    let dir = workdir();
    let d = dir.path();
    let clamd = Clamd::start(d);
    let server = Postern::start_in(d, None);
    let commands: Vec<Vec<String>> = cookbook::commands("Virus scanning")
        .into_iter()
        .map(|words| {
            words
                .iter()
                .map(|w| w.replace("127.0.0.1:3310", &format!("127.0.0.1:{}", clamd.port)))
                .collect()
        })
        .collect();
    let listed = cookbook::run(d, &commands);
    assert!(listed.contains("antivirus"), "{listed}");

    let infected =
        format!("From: alice@example.test\r\nTo: bob@localhost\r\nSubject: t\r\n\r\n{EICAR}\r\n");
    // The running server picks the new registry up within a second: poll until it refuses.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let reply = send(&server, &infected);
        if reply.code != 250 || Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(reply.code, 554, "{reply:?}");
    assert_eq!(
        reply.text(),
        format!("5.7.1 Message refused: virus {EICAR_NAME} found")
    );
    let before = common::read_all(&server.new_mail("localhost", "bob")).len();
    let clean = "From: alice@example.test\r\nTo: bob@localhost\r\nSubject: hi\r\n\r\nClean.\r\n";
    assert_eq!(send(&server, clean).code, 250);
    server.wait_for_mail("localhost", "bob", before + 1);

    drop(clamd);
    let reply = send(&server, clean);
    assert_eq!(reply.code, 451, "{reply:?}");
    server.wait_for_log("cannot be reached");
}
