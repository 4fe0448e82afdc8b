//! The "Archiving" recipe of docs/cookbook.md, run as written against a running server.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Postern;
use common::cookbook as recipe;

fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_for_file(path: &Path, server: &Postern) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {}; log:\n{}",
            path.display(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn archiving_keeps_a_maildir_of_all_mail_and_an_mbox_of_deliveries_and_drops_old_days() {
    let server = Postern::start();
    let data = server.dir.join("data");
    // A day folder far past the 30 days of the recipe, and one inside them.
    let old = data.join("archive").join("2001-01-01");
    std::fs::create_dir_all(old.join("new")).unwrap();
    let commands = recipe::commands("Archiving");
    recipe::run(&server.dir, &commands);
    server.wait_for_log(&format!("bindings={}", commands.len()));

    let mut c = server.client();
    let reply = c.send_message(
        "alice@example.com",
        &["bob@localhost"],
        "Subject: archived\r\n\r\nFrom the start of a line\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("localhost", "bob", 1);

    let day = today();
    let new = data.join("archive").join(&day).join("new");
    let copies = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let copies = common::read_all(&new);
            if !copies.is_empty() || Instant::now() > deadline {
                break copies;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(copies.len(), 1, "{}", server.log());
    assert!(copies[0].contains("Subject: archived\r\n"));
    assert!(copies[0].contains("\r\nFrom the start of a line\r\n"));
    assert!(!old.exists(), "the 2001 archive is past the retention");

    let mbox = wait_for_file(
        &data.join("archive-delivered").join(format!("{day}.mbox")),
        &server,
    );
    assert!(mbox.starts_with("From alice@example.com "), "{mbox}");
    assert!(mbox.contains("\nSubject: archived\n"), "{mbox}");
    assert!(mbox.contains("\n>From the start of a line\n"), "{mbox}");
}
