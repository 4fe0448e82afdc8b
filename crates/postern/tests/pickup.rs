//! The pickup folder end to end: files renamed into `DATA/pickup/` are submitted through the
//! `submission` event and delivered like SMTP mail (to a Maildir, and to a remote aiosmtpd MX
//! found through dnsmasq); unusable files move to `DATA/pickup/bad/` with a reason.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::peers::{Dns, Mx};
use common::{Postern, bind};

/// Writes `content` beside the pickup folder and renames it in, as the docs ask.
fn drop_file(data: &Path, name: &str, content: &[u8]) {
    let pickup = data.join("pickup");
    std::fs::create_dir_all(&pickup).unwrap();
    let tmp = pickup.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, pickup.join(name)).unwrap();
}

fn wait_gone(path: &Path, server: &Postern) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} stays; log:\n{}",
            path.display(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_reason(bad: &Path, name: &str, server: &Postern) -> String {
    let reason = bad.join(format!("{name}.reason"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if bad.join(name).exists()
            && let Ok(text) = std::fs::read_to_string(&reason)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {}; log:\n{}",
            reason.display(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_dropped_file_is_delivered_through_the_submission_chain_with_bcc_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    bind(
        dir.path(),
        &[
            "--event",
            "submission",
            "--sink",
            "builtin:add-header",
            "--prop",
            "name=X-Submitted",
            "--prop",
            "value=${queue_id}",
        ],
    );
    let server = Postern::start_in(dir.path(), None);
    let data = server.dir.join("data");
    drop_file(
        &data,
        "note.eml",
        b"From: Alice <alice@localhost>\nTo: bob@localhost\nBcc: carol@localhost\nSubject: picked up\n\nhello from the folder\n",
    );
    wait_gone(&data.join("pickup").join("note.eml"), &server);
    let bob = server.wait_for_mail("localhost", "bob", 1);
    let carol = server.wait_for_mail("localhost", "carol", 1);
    for text in [&bob[0], &carol[0]] {
        assert!(
            text.contains("\r\nReceived: from pickup by mx.test with local-pickup id "),
            "{text}"
        );
        assert!(text.contains("X-Submitted: "), "{text}");
        assert!(!text.contains("Bcc"), "{text}");
        assert!(
            text.contains("Subject: picked up\r\n")
                && text.ends_with("\r\n\r\nhello from the folder\r\n"),
            "{text}"
        );
    }
    let log = server.wait_for_log("message picked up");
    assert!(log.contains("from=alice@localhost"), "{log}");
}

#[test]
fn a_dropped_file_to_a_remote_address_goes_to_its_mx() {
    let dns = Dns::start(&[
        "--mx-host=remote.test,mx1.remote.test,10".into(),
        "--host-record=mx1.remote.test,127.0.0.2".into(),
    ]);
    let mx = Mx::start("127.0.0.2", "{}");
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[domain]]\nname = \"localhost\"\nusers = \"*\"\n{}[delivery]\nsmtp_port = {}\n",
        dns.config(),
        mx.port
    );
    let server = Postern::start_with(Some(&config));
    let data = server.dir.join("data");
    drop_file(
        &data,
        "out.eml",
        b"Return-Path: <bounces@localhost>\nFrom: alice@localhost\nTo: dave@remote.test\nSubject: out\n\nto the world\n",
    );
    let got = mx.wait_for(1);
    let (env, content) = &got[0];
    assert_eq!(env["from"], "bounces@localhost");
    assert_eq!(env["to"][0], "dave@remote.test");
    assert!(content.contains("to the world"), "{content}");
    assert!(!data.join("pickup").join("out.eml").exists());
}

#[test]
fn junk_and_oversized_files_move_to_bad_with_a_reason_and_nothing_is_lost() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\
         [[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_message_size = \"1M\"\n",
    ));
    let data = server.dir.join("data");
    let bad: PathBuf = data.join("pickup").join("bad");
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    drop_file(&data, "junk.bin", &junk);
    drop_file(
        &data,
        "norcpt.eml",
        b"From: a@localhost\nSubject: s\n\nbody\n",
    );
    // 100 MB, sparse: the server must refuse it on its length, never reading it.
    let pickup = data.join("pickup");
    std::fs::create_dir_all(&pickup).unwrap();
    let tmp = pickup.join(".big.tmp");
    std::fs::File::create(&tmp)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    std::fs::rename(&tmp, pickup.join("big.eml")).unwrap();

    assert!(wait_reason(&bad, "junk.bin", &server).contains("NUL"));
    assert!(wait_reason(&bad, "norcpt.eml", &server).contains("no recipients"));
    let big = wait_reason(&bad, "big.eml", &server);
    assert!(
        big.contains("over the message size limit: 104857600 octets"),
        "{big}"
    );
    assert_eq!(std::fs::read(bad.join("junk.bin")).unwrap(), junk);
    assert_eq!(
        std::fs::metadata(bad.join("big.eml")).unwrap().len(),
        100 << 20
    );
    // A name starting with a dot is not taken.
    std::fs::write(
        pickup.join(".partial"),
        "From: a@localhost\nTo: b@localhost\n\nx\n",
    )
    .unwrap();
    drop_file(
        &data,
        "after.eml",
        b"From: a@localhost\nTo: b@localhost\n\nafter\n",
    );
    server.wait_for_mail("localhost", "b", 1);
    assert!(pickup.join(".partial").exists());
}
