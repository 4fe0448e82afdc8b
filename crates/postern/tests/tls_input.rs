//! TLS set-up and bad TLS input: a renewed certificate is served without a restart, garbage
//! and stalled handshakes close the connection (never a panic), and `check-config` reports a
//! certificate the listeners cannot get.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::certificate;
use common::tls::{ANY_CERTIFICATE, python, start_listeners};
use common::{Client, Postern, workdir};

/// Python: prints whether the certificate the server presents after STARTTLS is the one in
/// the PEM file given.
const SERVED_IS: &str = "
import hashlib, smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.starttls(context=ctx)
served = hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()
wanted = hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(sys.argv[2]).read())).hexdigest()
print('same' if served == wanted else 'other')
s.quit()
";

/// Waits until the connection is closed by the server; panics past `within`.
fn wait_closed(stream: &mut TcpStream, within: Duration) {
    let deadline = Instant::now() + within;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Ok(_) | Err(_) => {
                assert!(Instant::now() < deadline, "the connection is still open");
            }
        }
    }
}

/// The server still serves: a STARTTLS session goes through.
fn still_serves(server: &Postern, smtp: SocketAddr) {
    let script = format!(
        "{ANY_CERTIFICATE}
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.starttls(context=ctx)
s.ehlo()
s.quit()
"
    );
    let (ok, out) = python(&script, &[&smtp.port().to_string()]);
    assert!(ok, "{out}\nlog:\n{}", server.log());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn a_replaced_certificate_is_served_at_the_next_handshake_without_a_restart() {
    let dir = workdir();
    let d = dir.path();
    let (one, two) = (d.join("one"), d.join("two"));
    for (folder, name) in [(&one, "one.test"), (&two, "two.test")] {
        std::fs::create_dir_all(folder).expect("dir");
        certificate(folder, name);
    }
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("data");
    let install = |from: &Path| {
        // As a renewal tool does it: new files renamed over the old ones.
        for file in ["cert.pem", "key.pem"] {
            std::fs::copy(from.join(file), data.join(format!("{file}.new"))).expect("copy");
            std::fs::rename(data.join(format!("{file}.new")), data.join(file)).expect("rename");
        }
    };
    install(&one);
    let server = Postern::start_in(
        d,
        Some(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n",
        ),
    );
    let served = |pem: &Path| {
        let script = format!("{ANY_CERTIFICATE}{SERVED_IS}");
        let port = server.addr.port().to_string();
        let (ok, out) = python(&script, &[&port, pem.to_str().expect("path")]);
        assert!(ok, "{out}\nlog:\n{}", server.log());
        out.trim() == "same"
    };
    assert!(served(&one.join("cert.pem")));
    install(&two);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !served(&two.join("cert.pem")) {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.wait_for_log("TLS certificate reloaded");
}

#[test]
fn garbage_in_the_handshake_closes_the_connection() {
    let dir = workdir();
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\n\n\
                  [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"submissions\"\n";
    let (server, bound) = start_listeners(dir.path(), config);
    let (smtp, submissions) = (bound[0].1, bound[1].1);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    // Implicit TLS: garbage from the first octet.
    let mut raw = TcpStream::connect(submissions).expect("connect");
    raw.write_all(&garbage).expect("write");
    wait_closed(&mut raw, Duration::from_secs(20));
    // A TLS record header announcing a record far over the limit, then more.
    let mut raw = TcpStream::connect(submissions).expect("connect");
    raw.write_all(b"\x16\x03\x01\xff\xff").expect("write");
    let _ = raw.write_all(&garbage);
    wait_closed(&mut raw, Duration::from_secs(20));
    // STARTTLS, then garbage instead of a ClientHello.
    let mut client = Client::connect(smtp);
    client.read_reply();
    client.expect("EHLO client.test", 250);
    client.expect("STARTTLS", 220);
    client.send_raw(&garbage);
    wait_closed(&mut client.stream, Duration::from_secs(20));
    server.wait_for_log("TLS handshake failed");
    still_serves(&server, smtp);
}

#[test]
fn a_client_that_stops_mid_handshake_is_closed_at_the_command_timeout() {
    let dir = workdir();
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\n\n\
                  [[listener]]\naddress = \"127.0.0.1:0\"\nmode = \"submissions\"\n\n\
                  [limits]\ncommand_timeout = \"1s\"\n";
    let (server, bound) = start_listeners(dir.path(), config);
    let (smtp, submissions) = (bound[0].1, bound[1].1);
    // The start of a ClientHello record, and no more.
    let partial = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    let mut client = Client::connect(smtp);
    client.read_reply();
    client.expect("STARTTLS", 220);
    client.send_raw(partial);
    let mut silent = TcpStream::connect(submissions).expect("connect");
    silent.write_all(partial).expect("write");
    assert!(
        client.closed(),
        "a stalled STARTTLS handshake must be closed"
    );
    wait_closed(&mut silent, Duration::from_secs(20));
    still_serves(&server, smtp);
}

#[test]
fn check_config_reports_a_certificate_the_listeners_cannot_get() {
    let dir = workdir();
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("data");
    let config = "[[listener]]\naddress = \"127.0.0.1:2525\"\n\n\
                  [[listener]]\naddress = \"127.0.0.1:4650\"\nmode = \"submissions\"\n\n\
                  [tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n";
    std::fs::write(d.join("postern.toml"), config).expect("config");
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
            .current_dir(d)
            .args(["check-config", "postern.toml", "--data-dir"])
            .arg(&data)
            .output()
            .expect("run postern");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("postern.toml:9:15: field `tls.certificate`: cannot read"),
        "{err}"
    );
    assert!(err.contains("submissions on 127.0.0.1:4650"), "{err}");

    std::fs::write(data.join("cert.pem"), "not a certificate\n").expect("write");
    std::fs::write(data.join("key.pem"), "not a key\n").expect("write");
    let (code, err) = check();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no certificate in the file"), "{err}");

    let made = d.join("made");
    std::fs::create_dir_all(&made).expect("dir");
    let (cert, _, _) = certificate(&made, "mx.test");
    std::fs::copy(&cert, data.join("cert.pem")).expect("copy");
    let (code, err) = check();
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("postern.toml:10:7: field `tls.key`: ") && err.contains("no private key"),
        "{err}"
    );

    std::fs::copy(made.join("key.pem"), data.join("key.pem")).expect("copy");
    let (code, err) = check();
    assert_eq!(code, Some(0), "{err}");
}
