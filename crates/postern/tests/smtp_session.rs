//! RFC 5321 sessions against the real binary, transcript style: what the client sends, what the
//! server must answer.

mod common;

use common::Postern;

#[test]
fn a_message_is_queued_and_delivered_to_the_maildir() {
    let server = Postern::start();
    let mut c = server.client();
    let ehlo = c.expect("EHLO client.test", 250);
    for keyword in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "DSN",
    ] {
        assert!(
            ehlo.lines.iter().any(|l| l == keyword),
            "{keyword} missing: {ehlo:?}"
        );
    }
    c.expect(
        "MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=QQ314159",
        250,
    );
    c.expect(
        "RCPT TO:<bob@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@localhost",
        250,
    );
    c.expect("DATA", 354);
    c.send_raw(
        b"Subject: hello\r\nMessage-ID: <1@example.org>\r\n\r\nline one\r\n..dot line\r\n.\r\n",
    );
    let done = c.read_reply();
    assert_eq!(done.code, 250, "{done:?}");
    let id = done.queue_id();
    assert!(done.text().starts_with("2.0.0 Ok: queued as "), "{done:?}");
    c.expect("QUIT", 221);

    let mail = server.wait_for_mail("localhost", "bob", 1);
    let text = &mail[0];
    assert!(text.starts_with("Return-Path: <alice@example.org>\r\nReceived: from client.test ([127.0.0.1]) by mx.test (Postern) with ESMTP id "), "{text}");
    assert!(
        text.contains(&format!("id {id} for <bob@localhost>;")),
        "{text}"
    );
    assert!(
        text.ends_with("\r\nline one\r\n.dot line\r\n"),
        "dot-stuffing removed: {text:?}"
    );
    // A log line with the queue id.
    server.wait_for_log(&format!("queue_id={id}"));
}

#[test]
fn every_simple_verb_answers_as_rfc_5321_says() {
    let server = Postern::start();
    let mut c = server.client();
    let cases: &[(&str, &str, u16)] = &[
        ("HELO before EHLO is fine", "HELO client.test", 250),
        ("EHLO", "EHLO client.test", 250),
        ("NOOP", "NOOP", 250),
        ("NOOP with an argument", "NOOP anything", 250),
        ("VRFY gives 252", "VRFY bob", 252),
        ("VRFY without argument", "VRFY", 501),
        ("HELP", "HELP", 214),
        ("EXPN is not offered", "EXPN list", 502),
        // STARTTLS itself is offered (the self-signed default): tests/tls.rs.
        ("STARTTLS with an argument", "STARTTLS now", 501),
        ("RSET", "RSET", 250),
        ("unknown verb", "XYZZY", 500),
        ("EHLO without a domain", "EHLO", 501),
        ("DATA with an argument", "DATA now", 501),
    ];
    for (name, line, code) in cases {
        let reply = c.cmd(line);
        assert_eq!(reply.code, *code, "{name}: {line:?} -> {reply:?}");
    }
    c.expect("QUIT", 221);
    assert!(c.closed());
}

#[test]
fn commands_out_of_order_get_503_or_554() {
    let server = Postern::start();
    let mut c = server.client();
    let cases: &[(&str, &str, u16, &str)] = &[
        (
            "MAIL before EHLO (no enhanced codes before EHLO)",
            "MAIL FROM:<a@example.org>",
            503,
            "Bad sequence",
        ),
        ("greeting", "EHLO client.test", 250, ""),
        ("RCPT before MAIL", "RCPT TO:<bob@localhost>", 503, "5.5.1"),
        ("DATA before MAIL", "DATA", 503, "5.5.1"),
        ("MAIL", "MAIL FROM:<a@example.org>", 250, "2.1.0"),
        ("nested MAIL", "MAIL FROM:<b@example.org>", 503, "5.5.1"),
        ("DATA before RCPT", "DATA", 554, "5.5.1"),
        (
            "BDAT before RCPT is read, then refused",
            "BDAT 0 LAST",
            554,
            "5.5.1",
        ),
        ("RSET ends the transaction", "RSET", 250, "2.0.0"),
        (
            "MAIL again after RSET",
            "MAIL FROM:<b@example.org>",
            250,
            "2.1.0",
        ),
    ];
    for (name, line, code, enhanced) in cases {
        let reply = c.cmd(line);
        assert_eq!(reply.code, *code, "{name}: {reply:?}");
        assert!(reply.text().starts_with(enhanced), "{name}: {reply:?}");
    }
}

#[test]
fn malformed_paths_and_parameters_are_refused_with_the_right_codes() {
    // More refusals than the default error limit allows in one session.
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_errors = 100\n",
    ));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let cases: &[(&str, &str, u16)] = &[
        ("no brackets", "MAIL FROM:alice@example.org", 501),
        ("no colon", "MAIL FROM <a@example.org>", 501),
        ("garbage in the path", "MAIL FROM:<a b@example.org>", 553),
        (
            "unknown parameter",
            "MAIL FROM:<a@example.org> FOO=BAR",
            555,
        ),
        (
            "BINARYMIME is not offered",
            "MAIL FROM:<a@example.org> BODY=BINARYMIME",
            555,
        ),
        (
            "SIZE not a number",
            "MAIL FROM:<a@example.org> SIZE=big",
            501,
        ),
        (
            "UTF-8 address without SMTPUTF8",
            "MAIL FROM:<jöran@example.org>",
            553,
        ),
        ("null sender is fine", "MAIL FROM:<>", 250),
        ("RCPT without brackets", "RCPT TO:bob@localhost", 501),
        ("RCPT empty path", "RCPT TO:<>", 553),
        (
            "RCPT unknown parameter",
            "RCPT TO:<bob@localhost> FOO=1",
            555,
        ),
        (
            "RCPT to postmaster without domain",
            "RCPT TO:<postmaster>",
            250,
        ),
    ];
    for (name, line, code) in cases {
        let reply = c.cmd(line);
        assert_eq!(reply.code, *code, "{name}: {line} -> {reply:?}");
    }
}

#[test]
fn relaying_is_refused_and_unknown_users_get_550_5_1_1() {
    let server = Postern::start_with(Some(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[domain]]
name = "example.com"
users = ["alice", "Bob"]
"#,
    ));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@example.org>", 250);
    let relay = c.expect("RCPT TO:<victim@elsewhere.example>", 550);
    assert!(relay.text().starts_with("5.7.1"), "{relay:?}");
    let unknown = c.expect("RCPT TO:<mallory@example.com>", 550);
    assert!(unknown.text().starts_with("5.1.1"), "{unknown:?}");
    c.expect("RCPT TO:<BOB@Example.COM>", 250);
    c.expect("RCPT TO:<alice@example.com>", 250);
}

#[test]
fn too_many_recipients_get_452_4_5_3() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_recipients = 3\n",
    ));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@example.org>", 250);
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<u{i}@localhost>"), 250);
    }
    let reply = c.expect("RCPT TO:<u3@localhost>", 452);
    assert!(reply.text().starts_with("4.5.3"), "{reply:?}");
    // The transaction still goes through with the accepted recipients.
    c.expect("DATA", 354);
    c.send_raw(b"Subject: x\r\n\r\nx\r\n.\r\n");
    assert_eq!(c.read_reply().code, 250);
    server.wait_for_mail("localhost", "u2", 1);
}

#[test]
fn a_message_over_the_size_limit_is_refused_declared_or_discovered() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_message_size = 1000\n",
    ));
    let mut c = server.client();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.lines.contains(&"SIZE 1000".to_owned()), "{ehlo:?}");
    let declared = c.expect("MAIL FROM:<x@example.org> SIZE=5000", 552);
    assert!(declared.text().starts_with("5.3.4"), "{declared:?}");
    c.expect("MAIL FROM:<x@example.org> SIZE=500", 250);
    c.expect("RCPT TO:<big@localhost>", 250);
    c.expect("DATA", 354);
    let line = "x".repeat(70);
    for _ in 0..40 {
        c.send(&line);
    }
    c.send(".");
    let discovered = c.read_reply();
    assert_eq!(discovered.code, 552, "{discovered:?}");
    assert!(discovered.text().starts_with("5.3.4"), "{discovered:?}");
    // The session goes on.
    c.expect("NOOP", 250);
    // BDAT too.
    c.expect("MAIL FROM:<x@example.org>", 250);
    c.expect("RCPT TO:<big@localhost>", 250);
    c.send("BDAT 2000 LAST");
    c.send_raw(&[b'y'; 2000]);
    assert_eq!(c.read_reply().code, 552);
    c.expect("NOOP", 250);
    assert!(std::fs::read_dir(server.new_mail("localhost", "big")).is_err());
}

#[test]
fn over_long_lines_and_nul_bytes_are_refused() {
    let server = Postern::start();
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let long_command = format!("NOOP {}", "a".repeat(600));
    let reply = c.cmd(&long_command);
    assert_eq!(reply.code, 500, "{reply:?}");
    let huge_command = format!("NOOP {}", "a".repeat(10_000));
    assert_eq!(c.cmd(&huge_command).code, 500);
    assert_eq!(c.cmd("NO\0OP").code, 500);
    c.expect("NOOP", 250);

    c.expect("MAIL FROM:<x@example.org>", 250);
    c.expect("RCPT TO:<lines@localhost>", 250);
    c.expect("DATA", 354);
    c.send(&format!("Subject: {}", "z".repeat(1200)));
    c.send("");
    c.send(".");
    let reply = c.read_reply();
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text().contains("longer than 1000"), "{reply:?}");

    c.expect("MAIL FROM:<x@example.org>", 250);
    c.expect("RCPT TO:<lines@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(b"Subject: nul\r\n\r\na\0b\r\n.\r\n");
    let reply = c.read_reply();
    assert_eq!(reply.code, 550, "{reply:?}");
    c.expect("QUIT", 221);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(std::fs::read_dir(server.new_mail("localhost", "lines")).is_err());
}

#[test]
fn too_many_errors_close_the_session_with_421() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_errors = 3\n",
    ));
    let mut c = server.client();
    c.expect("BOGUS1", 500);
    c.expect("BOGUS2", 500);
    c.send("BOGUS3");
    assert_eq!(c.read_reply().code, 500);
    let last = c.read_reply();
    assert_eq!(last.code, 421, "{last:?}");
    assert!(c.closed());
}

#[test]
fn an_idle_client_is_timed_out_with_421() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\ncommand_timeout = \"1s\"\n",
    ));
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let reply = c.read_reply();
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text().starts_with("4.4.2"), "{reply:?}");
    assert!(c.closed());
    // A client stalling in the middle of DATA is timed out too.
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@example.org>", 250);
    c.expect("RCPT TO:<slow@localhost>", 250);
    c.expect("DATA", 354);
    c.send("Subject: half a message");
    assert_eq!(c.read_reply().code, 421);
}

#[test]
fn too_many_connections_from_one_address_get_421() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_connections_per_ip = 2\n",
    ));
    let _a = server.client();
    let _b = server.client();
    let mut c = common::Client::connect(server.addr);
    let reply = c.read_reply();
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(c.closed());
    drop(_a);
    // The place is given back when a connection closes (as soon as the server sees it close).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut d = loop {
        let mut d = common::Client::connect(server.addr);
        let greeting = d.read_reply();
        if greeting.code == 220 {
            break d;
        }
        assert_eq!(greeting.code, 421, "{greeting:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the place was not given back"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    d.expect("NOOP", 250);
}

#[test]
fn too_many_connections_in_all_get_421() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[limits]\nmax_connections = 1\n",
    ));
    let _a = server.client();
    let mut c = common::Client::connect(server.addr);
    assert_eq!(c.read_reply().code, 421);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Postern::start();
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.send_raw(b"MAIL FROM:<p@example.org>\r\nRCPT TO:<pipe@localhost>\r\nRCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<pipe2@localhost>\r\nDATA\r\n");
    let codes: Vec<u16> = (0..5).map(|_| c.read_reply().code).collect();
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    c.send_raw(b"Subject: piped\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n");
    assert_eq!(c.read_reply().code, 250);
    assert_eq!(c.read_reply().code, 250);
    assert_eq!(c.read_reply().code, 221);
    server.wait_for_mail("localhost", "pipe", 1);
    server.wait_for_mail("localhost", "pipe2", 1);
}

#[test]
fn bdat_chunks_make_one_message() {
    let server = Postern::start();
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<c@example.org>", 250);
    c.expect("RCPT TO:<chunky@localhost>", 250);
    let first = b"Subject: chunks\r\n\r\nfirst ";
    c.send(&format!("BDAT {}", first.len()));
    c.send_raw(first);
    assert_eq!(c.read_reply().code, 250);
    c.expect("DATA", 503);
    let last = b"second\r\n";
    c.send(&format!("BDAT {} LAST", last.len()));
    c.send_raw(last);
    let reply = c.read_reply();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(reply.text().contains("queued as"), "{reply:?}");
    let mail = server.wait_for_mail("localhost", "chunky", 1);
    assert!(
        mail[0].ends_with("Subject: chunks\r\n\r\nfirst second\r\n"),
        "{:?}",
        mail[0]
    );
}

#[test]
fn smtputf8_addresses_are_accepted_with_the_parameter() {
    let server = Postern::start();
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<jöran@example.org> SMTPUTF8", 250);
    c.expect("RCPT TO:<jöran@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw("Subject: grüße\r\n\r\nhej\r\n.\r\n".as_bytes());
    assert_eq!(c.read_reply().code, 250);
    let mail = server.wait_for_mail("localhost", "jöran", 1);
    assert!(mail[0].contains("with UTF8SMTP id"), "{}", mail[0]);
}

#[test]
fn bdat_content_with_a_bare_lf_is_refused_like_data() {
    let server = Postern::start();
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<victim@localhost>", 250);
    let body = b"Subject: x\r\n\r\na\n.\nMAIL FROM:<forged@example.org>\r\n";
    c.send(&format!("BDAT {} LAST", body.len()));
    c.send_raw(body);
    let reply = c.read_reply();
    assert_eq!(reply.code, 550, "{reply:?}");
    // A BDAT line that cannot be read closes the session: its chunk is never taken as commands.
    c.send(&format!("BDAT 6 LAST{}", " ".repeat(600)));
    c.send_raw(b"NOOP\r\n");
    assert_eq!(c.read_reply().code, 500);
    assert!(c.closed());
}

#[test]
fn postmaster_is_delivered_even_when_the_user_list_omits_it() {
    let server = Postern::start_with(Some(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"example.com\"\nusers = [\"alice\"]\n",
    ));
    let mut c = server.client();
    let reply = c.send_message(
        "a@example.org",
        &["postmaster@example.com."],
        "Subject: pm\r\n\r\nx",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("example.com", "postmaster", 1);
    assert!(mail[0].contains("Subject: pm"));
}
