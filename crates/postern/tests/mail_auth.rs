//! The mail authentication sinks through real SMTP sessions: SPF, DKIM, DMARC and ARC records
//! served by a loopback dnsmasq, signatures made by dkimpy (Debian's python3-dkim) and checked
//! by it, independently of the `mail-auth` code under test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::peers::{Dns, which};
use common::{Postern, bind};

/// A private key in PEM and its DKIM key record (`v=DKIM1; k=…; p=…`).
struct DkimKey {
    pem: PathBuf,
    record: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new(which("openssl"))
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    out.stdout
}

fn rsa_key(dir: &Path, name: &str) -> DkimKey {
    let pem = dir.join(format!("{name}.pem"));
    let path = pem.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path,
    ]);
    let der = openssl(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    DkimKey {
        pem,
        record: format!("v=DKIM1; k=rsa; p={}", base64(&der)),
    }
}

fn ed25519_key(dir: &Path, name: &str) -> DkimKey {
    let pem = dir.join(format!("{name}.pem"));
    let path = pem.to_str().unwrap();
    openssl(&["genpkey", "-algorithm", "ED25519", "-out", path]);
    let der = openssl(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    // RFC 8463: the record holds the bare 32-byte key, the end of the SubjectPublicKeyInfo.
    DkimKey {
        pem,
        record: format!("v=DKIM1; k=ed25519; p={}", base64(&der[der.len() - 32..])),
    }
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A dnsmasq TXT option; strings over 255 bytes are split into several strings, which dnsmasq
/// separates by commas (the quotes of a shell command line are the shell's, and no record here
/// holds a comma).
fn txt(name: &str, value: &str) -> String {
    assert!(!value.contains(','), "{value}");
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(200)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("--txt-record={name},{}", parts.join(","))
}

/// A python3 that imports dkimpy: the one on the path, else the system's.
fn python_with_dkim() -> PathBuf {
    for python in [which("python3"), PathBuf::from("/usr/bin/python3")] {
        let ok = Command::new(&python)
            .args(["-c", "import dkim"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!("dkimpy is needed by this test (Debian python3-dkim; scripts/test installs it)");
}

/// Runs a dkimpy script with `message` on standard input; returns standard output.
fn dkimpy(script: &str, args: &[&str], message: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new(python_with_dkim())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dkimpy: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

const SIGN: &str = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[3], 'rb').read()
sig = dkim.sign(msg, sys.argv[1].encode(), sys.argv[2].encode(), key,
                include_headers=[b'from', b'to', b'subject'])
sys.stdout.write((sig + msg).decode())
"#;

const VERIFY: &str = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
record = sys.argv[2].encode()
def dns(name, timeout=5):
    return record if name.decode().rstrip('.') == sys.argv[1] else None
print('pass' if dkim.verify(msg, dnsfunc=dns) else 'fail')
"#;

/// The message a test client sends: CRLF line ends.
fn message(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <bob@localhost>\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@client.test>\r\n\r\n{body}\r\n"
    )
}

fn fields<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}:");
    text.lines()
        .filter(|l| l.len() > prefix.len() && l[..prefix.len()].eq_ignore_ascii_case(&prefix))
        .collect()
}

fn server(dir: &Path, dns: &Dns) -> Postern {
    Postern::start_in(
        dir,
        Some(&format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\
             [[domain]]\nname = \"localhost\"\nusers = \"*\"\n{}",
            dns.config()
        )),
    )
}

#[test]
fn spf_fail_with_fail_reject_refuses_mail_and_a_pass_is_recorded() {
    let dns = Dns::start(&[
        txt("pass.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("fail.test", "v=spf1 ip4:192.0.2.1 -all"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    bind(
        dir.path(),
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:spf",
            "--prop",
            "fail=reject",
        ],
    );
    bind(
        dir.path(),
        &["--event", "end-of-data", "--sink", "builtin:spf"],
    );
    let server = server(dir.path(), &dns);
    let mut c = server.client();
    c.expect("EHLO client.test", 250);
    let refused = c.cmd("MAIL FROM:<alice@fail.test>");
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(refused.text().contains("5.7.23"), "{refused:?}");
    c.expect("MAIL FROM:<alice@pass.test>", 250);
    c.expect("RCPT TO:<bob@localhost>", 250);
    c.expect("DATA", 354);
    c.send_raw(message("alice@pass.test", "spf", "hello").as_bytes());
    c.expect(".", 250);
    let mail = server.wait_for_mail("localhost", "bob", 1);
    let ar = fields(&mail[0], "Authentication-Results");
    assert_eq!(ar.len(), 1, "{}", mail[0]);
    assert!(
        ar[0].starts_with("Authentication-Results: mx.test; spf=none smtp.helo=client.test; spf=pass smtp.mailfrom=alice@pass.test"),
        "{}",
        ar[0]
    );
}

#[test]
fn spf_fail_is_recorded_when_the_policy_accepts_it() {
    let dns = Dns::start(&[txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")]);
    let dir = tempfile::tempdir().unwrap();
    bind(
        dir.path(),
        &["--event", "inbound:MAIL", "--sink", "builtin:spf"],
    );
    bind(
        dir.path(),
        &["--event", "end-of-data", "--sink", "builtin:spf"],
    );
    let server = server(dir.path(), &dns);
    let body = message("alice@fail.test", "spf-fail", "hello");
    let reply = server
        .client()
        .send_message("alice@fail.test", &["bob@localhost"], &body);
    assert_eq!(reply.code, 250);
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(
        mail[0].contains("spf=fail smtp.mailfrom=alice@fail.test"),
        "{}",
        mail[0]
    );
}

/// SPF, DKIM and DMARC for `pass.test` (p=reject) and `quar.test` (p=quarantine); `other.test`
/// passes SPF but publishes no DMARC record.
fn auth_dns(key: &DkimKey) -> Dns {
    Dns::start(&[
        txt("pass.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("other.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("quar.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt("_dmarc.pass.test", "v=DMARC1; p=reject"),
        txt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
        txt("sel._domainkey.pass.test", &key.record),
    ])
}

fn bind_checks(dir: &Path) {
    bind(dir, &["--event", "inbound:MAIL", "--sink", "builtin:spf"]);
    bind(
        dir,
        &["--event", "end-of-data", "--sink", "builtin:dkim-verify"],
    );
    bind(
        dir,
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:dmarc",
            "--prop",
            "enforce=true",
        ],
    );
}

#[test]
fn one_field_holds_spf_dkim_and_dmarc_and_a_broken_signature_fails() {
    let keys = tempfile::tempdir().unwrap();
    let key = rsa_key(keys.path(), "pass");
    let dns = auth_dns(&key);
    let dir = tempfile::tempdir().unwrap();
    bind_checks(dir.path());
    let server = server(dir.path(), &dns);
    let pem = key.pem.to_str().unwrap();
    let signed = dkimpy(
        SIGN,
        &["sel", "pass.test", pem],
        message("alice@pass.test", "signed", "hello").as_bytes(),
    );
    // A forged field claiming this server's name must not survive (RFC 8601 §5).
    let forged = format!("Authentication-Results: mx.test; dkim=pass\r\n{signed}");
    let reply = server
        .client()
        .send_message("alice@pass.test", &["bob@localhost"], &forged);
    assert_eq!(reply.code, 250, "{reply:?}");
    let altered = signed.replace("hello", "hello, altered");
    let reply = server
        .client()
        .send_message("alice@pass.test", &["bob@localhost"], &altered);
    assert_eq!(reply.code, 250, "{reply:?}");
    let mut mail = server.wait_for_mail("localhost", "bob", 2);
    mail.sort_by_key(|m| m.contains("altered"));
    let good = fields(&mail[0], "Authentication-Results");
    assert_eq!(good.len(), 1, "{}", mail[0]);
    for part in [
        "Authentication-Results: mx.test; spf=",
        "spf=pass smtp.mailfrom=alice@pass.test",
        "dkim=pass header.i=@pass.test header.s=sel",
        "dmarc=pass header.from=pass.test policy.dmarc=reject",
    ] {
        assert!(good[0].contains(part), "{part} in {}", good[0]);
    }
    let broken = fields(&mail[1], "Authentication-Results");
    assert_eq!(broken.len(), 1, "{}", mail[1]);
    // mail-auth reports a body hash mismatch as `neutral` with the reason, not as `pass`.
    assert!(
        broken[0].contains("dkim=neutral (body hash did not verify) header.i=@pass.test"),
        "{}",
        broken[0]
    );
    // SPF still passes aligned, so DMARC passes.
    assert!(broken[0].contains("dmarc=pass"), "{}", broken[0]);
}

#[test]
fn dmarc_enforce_follows_reject_and_quarantine_policies() {
    let keys = tempfile::tempdir().unwrap();
    let key = rsa_key(keys.path(), "pass");
    let dns = auth_dns(&key);
    let dir = tempfile::tempdir().unwrap();
    bind_checks(dir.path());
    let server = server(dir.path(), &dns);
    // Unsigned, and SPF passes for other.test, which is not aligned with pass.test.
    let body = message("alice@pass.test", "forged", "hello");
    let reply = server
        .client()
        .send_message("alice@other.test", &["bob@localhost"], &body);
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text().contains("5.7.1"), "{reply:?}");
    let body = message("alice@quar.test", "quarantined", "hello");
    let reply = server
        .client()
        .send_message("alice@other.test", &["bob@localhost"], &body);
    assert_eq!(reply.code, 250, "{reply:?}");
    common::peers::wait_track(&dir.path().join("data"), "quarantined", |log| {
        log.iter().any(|r| r["state"] == "quarantined")
    });
}

#[test]
fn dkim_sign_makes_a_signature_dkimpy_accepts_even_with_a_field_added_after_it() {
    let keys = tempfile::tempdir().unwrap();
    let key = rsa_key(keys.path(), "sign");
    let dns = Dns::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let pem = format!("key={}", key.pem.display());
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:dkim-sign",
            "--priority",
            "lowest",
            "--prop",
            "domain=sign.test",
            "--prop",
            "selector=s1",
            "--prop",
            &pem,
        ],
    );
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:add-header",
            "--priority",
            "lowest",
            "--prop",
            "name=X-Later",
            "--prop",
            "value=added after signing",
        ],
    );
    let server = server(dir.path(), &dns);
    let body = message("alice@sign.test", "to-sign", "hello");
    let reply = server
        .client()
        .send_message("alice@sign.test", &["bob@localhost"], &body);
    assert_eq!(reply.code, 250);
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert_eq!(fields(&mail[0], "DKIM-Signature").len(), 1, "{}", mail[0]);
    assert_eq!(fields(&mail[0], "X-Later").len(), 1, "{}", mail[0]);
    let verdict = dkimpy(
        VERIFY,
        &["s1._domainkey.sign.test", &key.record],
        mail[0].as_bytes(),
    );
    assert_eq!(verdict.trim(), "pass", "{}", mail[0]);
    // And a changed body no longer verifies: the check above is not vacuous.
    let altered = mail[0].replace("hello", "HELLO");
    let verdict = dkimpy(
        VERIFY,
        &["s1._domainkey.sign.test", &key.record],
        altered.as_bytes(),
    );
    assert_eq!(verdict.trim(), "fail");
}

#[test]
fn an_ed25519_signature_of_dkim_sign_passes_dkim_verify() {
    let keys = tempfile::tempdir().unwrap();
    let key = ed25519_key(keys.path(), "ed");
    let dns = Dns::start(&[txt("ed._domainkey.sign.test", &key.record)]);
    let dir = tempfile::tempdir().unwrap();
    let pem = format!("key={}", key.pem.display());
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:dkim-sign",
            "--priority",
            "high",
            "--prop",
            "domain=sign.test",
            "--prop",
            "selector=ed",
            "--prop",
            &pem,
        ],
    );
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:dkim-verify",
            "--priority",
            "lowest",
            "--prop",
            "fail=reject",
        ],
    );
    let server = server(dir.path(), &dns);
    let body = message("alice@sign.test", "ed", "hello");
    let reply = server
        .client()
        .send_message("alice@sign.test", &["bob@localhost"], &body);
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(
        mail[0].contains("dkim=pass header.d=sign.test header.s=ed"),
        "{}",
        mail[0]
    );
}

#[test]
fn arc_seal_makes_a_set_that_arc_verify_accepts() {
    let keys = tempfile::tempdir().unwrap();
    let key = rsa_key(keys.path(), "arc");
    let dns = Dns::start(&[
        txt("pass.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("arc._domainkey.forward.test", &key.record),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let pem = format!("key={}", key.pem.display());
    bind(
        dir.path(),
        &["--event", "inbound:MAIL", "--sink", "builtin:spf"],
    );
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:arc-seal",
            "--priority",
            "high",
            "--prop",
            "domain=forward.test",
            "--prop",
            "selector=arc",
            "--prop",
            &pem,
        ],
    );
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:arc-verify",
            "--priority",
            "lowest",
            "--prop",
            "fail=reject",
        ],
    );
    let server = server(dir.path(), &dns);
    let body = message("alice@pass.test", "forwarded", "hello");
    let reply = server
        .client()
        .send_message("alice@pass.test", &["bob@localhost"], &body);
    assert_eq!(reply.code, 250, "{reply:?}");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    for name in [
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
    ] {
        assert_eq!(fields(&mail[0], name).len(), 1, "{name}: {}", mail[0]);
    }
    let aar = fields(&mail[0], "ARC-Authentication-Results")[0];
    assert!(aar.contains("i=1; mx.test"), "{aar}");
    assert!(aar.contains("spf=pass"), "{aar}");
    assert!(mail[0].contains("arc=pass"), "{}", mail[0]);
}

#[test]
fn bad_properties_are_refused_when_the_binding_is_added() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "a key file that does not exist",
            &[
                "--event",
                "end-of-data",
                "--sink",
                "builtin:dkim-sign",
                "--prop",
                "domain=a.test",
                "--prop",
                "selector=s",
                "--prop",
                "key=no-such-key.pem",
            ],
            "property `key`",
        ),
        (
            "quarantine at MAIL, where there is no message yet",
            &[
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:spf",
                "--prop",
                "fail=quarantine",
            ],
            "property `fail`",
        ),
        (
            "a policy that is not one",
            &[
                "--event",
                "end-of-data",
                "--sink",
                "builtin:dkim-verify",
                "--prop",
                "fail=drop",
            ],
            "property `fail`",
        ),
        (
            "dmarc at an event without the message",
            &["--event", "inbound:RCPT", "--sink", "builtin:dmarc"],
            "does not fit",
        ),
    ];
    for (name, args, wanted) in cases {
        let mut full = vec!["add"];
        full.extend_from_slice(args);
        let (code, _, err) = common::binding(dir.path(), &full);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(wanted), "{name}: {err}");
    }
}
