//! `builtin:mailing-list` against the running server: a list expanded to Maildirs with its
//! headers and bounce address, a non-member refused with a DSN, a moderated post held and released
//! with `postern queue release`, bounces counted (with VERP, per member by address), lists naming
//! each other, subscribing and unsubscribing by mail with a confirmation round trip, a wrong token
//! refused, and a broken edit of the lists file that leaves the last good lists in force.

mod common;

use std::path::Path;
use std::process::Command;

use common::peers::{Mx, wait_track};
use common::{Postern, bind};

const LISTS: &str = r#"
[[list]]
address = "team@example.org"
members = ["alice@example.org", "bob@example.org", "carol@example.org"]
owners = ["owner@example.org"]
posting = "members"
unsubscribe_url = "https://lists.example.org/unsubscribe/team"
bounce_threshold = 2

[[list]]
address = "announce@example.org"
members = ["alice@example.org"]
owners = ["owner@example.org"]
posting = "anyone"
moderated = true

[[list]]
address = "ring1@example.org"
members = ["ring2@example.org", "alice@example.org"]
posting = "anyone"

[[list]]
address = "ring2@example.org"
members = ["ring1@example.org", "bob@example.org"]
posting = "anyone"
"#;

const CONFIG: &str = "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[domain]]\n\
     name = \"example.org\"\nusers = [\"alice\", \"bob\", \"carol\", \"owner\", \"team\", \
     \"announce\", \"stranger\", \"team-bounces\", \"ring1\", \"ring2\", \"verp\", \"verp-bounces\", \"team-subscribe\", \
     \"team-unsubscribe\", \"team-confirm\", \"dave\", \"announce-request\"]\n";

/// A list whose members' copies each go with their own envelope sender (VERP).
const VERP_LIST: &str = r#"
[[list]]
address = "verp@example.org"
members = ["alice@example.org", "bob@example.org"]
posting = "anyone"
verp = true
bounce_threshold = 1
"#;

fn start(dir: &Path) -> Postern {
    start_with(dir, LISTS)
}

fn start_with(dir: &Path, lists: &str) -> Postern {
    start_config(dir, lists, CONFIG)
}

fn start_config(dir: &Path, lists: &str, config: &str) -> Postern {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("lists.toml"), lists).unwrap();
    bind(
        dir,
        &[
            "--event",
            "categorize",
            "--sink",
            "builtin:mailing-list",
            "--prop",
            "file=lists.toml",
        ],
    );
    Postern::start_in(dir, Some(config))
}

#[test]
fn a_post_reaches_every_member_with_the_list_headers_and_bounce_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "bob@example.org",
        &["team@example.org"],
        "Subject: hello list\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    for user in ["alice", "bob", "carol"] {
        let mail = server.wait_for_mail("example.org", user, 1);
        let text = &mail[0];
        for want in [
            "Return-Path: <team-bounces@example.org>",
            "List-Id: <team.example.org>",
            "List-Post: <mailto:team@example.org>",
            "List-Unsubscribe: <https://lists.example.org/unsubscribe/team>, \
             <mailto:team-unsubscribe@example.org>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ] {
            assert!(text.contains(want), "{user} lacks {want:?}:\n{text}");
        }
    }
    assert!(!server.new_mail("example.org", "team").exists());
}

#[test]
fn a_non_member_is_refused_with_a_dsn() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["team@example.org"],
        "Subject: let me in\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let dsn = server.wait_for_mail("example.org", "stranger", 1);
    assert!(dsn[0].contains("5.7.1"), "{}", dsn[0]);
    assert!(dsn[0].contains("only its members may post"), "{}", dsn[0]);
    assert!(!server.new_mail("example.org", "alice").exists());
}

#[test]
fn a_post_to_a_moderated_list_is_held_and_released_by_the_moderator() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["announce@example.org"],
        "Subject: news\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = reply.queue_id();
    wait_track(&dir.path().join("data"), "held", |log| {
        log.iter().any(|r| r["state"] == "held")
    });
    assert!(!server.new_mail("example.org", "alice").exists());
    // Releasing the post is the moderator's approval: it is expanded, not held again.
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(["queue", "release", &id, "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = server.wait_for_mail("example.org", "alice", 1);
    assert!(
        mail[0].contains("List-Id: <announce.example.org>"),
        "{}",
        mail[0]
    );
    let state = std::fs::read_to_string(dir.path().join("data/lists.state.toml")).unwrap();
    assert!(
        !state.contains(&id),
        "a released post is no longer held:\n{state}"
    );
}

#[test]
fn a_broken_lists_file_is_refused_and_the_last_good_lists_stay() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    assert_eq!(
        c.send_message(
            "bob@example.org",
            &["team@example.org"],
            "Subject: 1\r\n\r\nx\r\n"
        )
        .code,
        250
    );
    server.wait_for_mail("example.org", "carol", 1);
    std::fs::write(
        dir.path().join("data/lists.toml"),
        format!("{LISTS}\n[[list]]\naddress = \"x@example.org\"\nposting = \"everyone\"\n"),
    )
    .unwrap();
    assert_eq!(
        c.send_message(
            "bob@example.org",
            &["team@example.org"],
            "Subject: 2\r\n\r\nx\r\n"
        )
        .code,
        250
    );
    server.wait_for_mail("example.org", "carol", 2);
    let log = server.wait_for_log("lists file refused");
    assert!(log.contains("lists.toml:29:"), "{log}");
}

/// A DSN (RFC 3464) reporting that delivery to `member` failed, as a remote server sends it.
fn dsn(member: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.remote.test\r\nTo: team-bounces@example.org\r\n\
         Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; \
         report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nNot delivered.\r\n--b\r\n\
         Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
         Final-Recipient: rfc822; {member}\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
}

#[test]
fn bounces_are_counted_per_member_and_a_member_past_the_threshold_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    for _ in 0..2 {
        let reply = c.send_message("", &["team-bounces@example.org"], &dsn("carol@example.org"));
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    server.wait_for_log("member removed for bouncing");
    let state = std::fs::read_to_string(dir.path().join("data/lists.state.toml")).unwrap();
    assert!(state.contains("\"carol@example.org\" = 2"), "{state}");
    assert!(!server.new_mail("example.org", "team-bounces").exists());
    let reply = c.send_message(
        "bob@example.org",
        &["team@example.org"],
        "Subject: after\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("example.org", "alice", 1);
    server.wait_for_mail("example.org", "bob", 1);
    assert!(!server.new_mail("example.org", "carol").exists());
}

#[test]
fn two_lists_naming_each_other_expand_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["ring1@example.org"],
        "Subject: ring\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("example.org", "alice", 1);
    server.wait_for_mail("example.org", "bob", 1);
    assert!(!server.new_mail("example.org", "ring1").exists());
    assert!(!server.new_mail("example.org", "ring2").exists());
}

#[test]
fn a_verp_list_gives_each_member_its_own_bounce_address_and_counts_its_bounces() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), VERP_LIST);
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["verp@example.org"],
        "Subject: verp\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    for user in ["alice", "bob"] {
        let mail = server.wait_for_mail("example.org", user, 1);
        let want = format!("Return-Path: <verp-bounces+{user}=example.org@example.org>\r\n");
        assert!(mail[0].starts_with(&want), "{user}:\n{}", mail[0]);
    }
    // The address names the member: a bounce counts whatever its content (threshold 1).
    let reply = c.send_message(
        "",
        &["verp-bounces+bob=example.org@example.org"],
        "Subject: failure\r\n\r\nbob@example.org: mailbox unavailable\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_log("member removed for bouncing");
    assert!(!server.new_mail("example.org", "verp-bounces").exists());
    let reply = c.send_message(
        "stranger@example.org",
        &["verp@example.org"],
        "Subject: after\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("example.org", "alice", 2);
    assert_eq!(server.wait_for_mail("example.org", "bob", 1).len(), 1);
}

/// Polls the list state file until `done` holds for its text.
fn wait_state(dir: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let path = dir.join("data/lists.state.toml");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if done(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "state never showed {what}:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The confirmation address a confirmation message gives in its `Reply-To:`.
fn confirm_address(mail: &str) -> String {
    let start = mail.find("<team-confirm+").expect("a confirmation address") + 1;
    let end = start + mail[start..].find('>').expect("the address's end");
    mail[start..end].to_owned()
}

#[test]
fn subscribing_and_unsubscribing_by_mail_take_a_confirmation_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "dave@example.org",
        &["team-subscribe@example.org"],
        "From: dave@example.org\r\nSubject: subscribe\r\n\r\nplease\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("example.org", "dave", 1);
    let confirmation = &mail[0];
    for want in [
        "Return-Path: <>\r\n",
        "From: <team-request@example.org>",
        "Auto-Submitted: auto-replied",
        "to subscribe <dave@example.org> to the list <team@example.org>",
    ] {
        assert!(confirmation.contains(want), "no {want:?}:\n{confirmation}");
    }
    assert!(!confirmation.contains("please"), "{confirmation}");
    let confirm = confirm_address(confirmation);
    assert!(
        confirmation.contains(&format!("Reply-To: <{confirm}>")),
        "{confirmation}"
    );
    // Nothing changes before the confirmation.
    assert!(
        !wait_state(dir.path(), "a pending request", |s| s.contains("pending"))
            .contains("subscribed = [\"dave")
    );
    let reply = c.send_message(
        "dave@example.org",
        &[confirm.as_str()],
        "Subject: Re: confirm\r\n\r\nyes\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    wait_state(dir.path(), "dave subscribed", |s| {
        s.contains("subscribed = [\"dave@example.org\"]")
    });
    let reply = c.send_message(
        "bob@example.org",
        &["team@example.org"],
        "Subject: welcome dave\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("example.org", "dave", 2);
    assert!(mail.iter().any(|m| m.contains("Subject: welcome dave")));

    // Unsubscribing the same way; the token is used up by its confirmation.
    let reply = c.send_message(
        "dave@example.org",
        &["team-unsubscribe@example.org"],
        "Subject: unsubscribe\r\n\r\nbye\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("example.org", "dave", 3);
    let confirmation = mail
        .iter()
        .find(|m| m.contains("to unsubscribe <dave@example.org>"))
        .expect("an unsubscribe confirmation");
    let confirm = confirm_address(confirmation);
    let reply = c.send_message(
        "dave@example.org",
        &[confirm.as_str()],
        "Subject: yes\r\n\r\nyes\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    wait_state(dir.path(), "dave removed", |s| {
        s.contains("removed = [\"dave@example.org\"]")
    });
    let reply = c.send_message(
        "bob@example.org",
        &["team@example.org"],
        "Subject: after dave\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("example.org", "alice", 2);
    assert_eq!(server.wait_for_mail("example.org", "dave", 3).len(), 3);
}

#[test]
fn a_wrong_confirmation_token_is_refused_with_a_dsn() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["team-confirm+0123456789abcdef@example.org"],
        "Subject: sneaky\r\n\r\nyes\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let dsn = server.wait_for_mail("example.org", "stranger", 1);
    assert!(
        dsn[0].contains("unknown or expired confirmation token"),
        "{}",
        dsn[0]
    );
    let state =
        std::fs::read_to_string(dir.path().join("data/lists.state.toml")).unwrap_or_default();
    assert!(!state.contains("subscribed = [\"stranger"), "{state}");
}

#[test]
fn a_verp_list_sends_each_remote_member_a_transaction_of_its_own() {
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let lists = "[[list]]\naddress = \"verp@example.org\"\n\
        members = [\"x@remote.test\", \"y@remote.test\", \"alice@example.org\"]\n\
        posting = \"anyone\"\nverp = true\n";
    let config = format!(
        "{CONFIG}\n[[route]]\ndomain = \"remote.test\"\nsmarthost = \"[127.0.0.2]:{}\"\n",
        mx.port
    );
    let server = start_config(dir.path(), lists, &config);
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["verp@example.org"],
        "Subject: verp remote\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mut got: Vec<(String, String)> = mx
        .wait_for(2)
        .iter()
        .map(|(envelope, _)| {
            let to = envelope["to"].as_array().expect("recipients");
            assert_eq!(to.len(), 1, "{envelope}");
            (
                envelope["from"].as_str().unwrap_or_default().to_owned(),
                to[0].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "verp-bounces+x=remote.test@example.org".to_owned(),
                "x@remote.test".to_owned()
            ),
            (
                "verp-bounces+y=remote.test@example.org".to_owned(),
                "y@remote.test".to_owned()
            ),
        ]
    );
    let local = server.wait_for_mail("example.org", "alice", 1);
    assert!(
        local[0].starts_with("Return-Path: <verp-bounces+alice=example.org@example.org>"),
        "{}",
        local[0]
    );
}

#[test]
fn an_owner_approves_a_held_post_by_mail() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = server.client();
    let reply = c.send_message(
        "stranger@example.org",
        &["announce@example.org"],
        "Subject: news\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = reply.queue_id();
    wait_track(&dir.path().join("data"), "held", |log| {
        log.iter().any(|r| r["state"] == "held")
    });
    // Someone who is no owner cannot approve it: refused with a DSN.
    let reply = c.send_message(
        "stranger@example.org",
        &["announce-request@example.org"],
        &format!("Subject: approve {id}\r\n\r\napprove {id}\r\n"),
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let dsn = server.wait_for_mail("example.org", "stranger", 1);
    assert!(dsn[0].contains("only the list's owners"), "{}", dsn[0]);
    assert!(!server.new_mail("example.org", "alice").exists());
    let reply = c.send_message(
        "owner@example.org",
        &["announce-request@example.org"],
        &format!("Subject: Re: held post\r\n\r\napprove {id}\r\n\r\n> quoted text\r\n"),
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("example.org", "alice", 1);
    assert!(
        mail[0].contains("List-Id: <announce.example.org>"),
        "{}",
        mail[0]
    );
    assert!(!server.new_mail("example.org", "announce-request").exists());
}
