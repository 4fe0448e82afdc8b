//! SMTP smuggling: a bare LF or bare CR never ends DATA early, so no input turns one message
//! into two. Each variant is sent with a "smuggled" second transaction inside the data; the
//! server must refuse the whole message (5xx) and deliver nothing to the smuggled recipient.

mod common;

use common::Postern;

#[test]
fn end_of_data_variants_never_split_a_message() {
    let server = Postern::start();
    let variants: &[(&str, &[u8])] = &[
        ("LF . CRLF", b"\n.\r\n"),
        ("CR . CRLF", b"\r.\r\n"),
        ("LF . LF", b"\n.\n"),
        ("CRLF . LF", b"\r\n.\n"),
        ("CR . CR", b"\r.\r"),
        ("CRLF . CR", b"\r\n.\r"),
        ("LF . CR", b"\n.\r"),
    ];
    for (name, end) in variants {
        let mut c = server.client();
        c.expect("EHLO client.test", 250);
        c.expect("MAIL FROM:<a@example.org>", 250);
        c.expect("RCPT TO:<victim@localhost>", 250);
        c.expect("DATA", 354);
        let mut data = b"Subject: first\r\n\r\nfirst".to_vec();
        data.extend_from_slice(end);
        data.extend_from_slice(
            b"MAIL FROM:<forged@example.org>\r\nRCPT TO:<smuggled@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n",
        );
        c.send_raw(&data);
        let reply = c.read_reply();
        assert_eq!(reply.code, 550, "{name}: {reply:?}");
        // Nothing more comes: the smuggled commands were part of the refused data.
        c.expect("NOOP", 250);
        c.expect("QUIT", 221);
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(common::read_all(&server.new_mail("localhost", "smuggled")).is_empty());
    assert!(common::read_all(&server.new_mail("localhost", "victim")).is_empty());
}
