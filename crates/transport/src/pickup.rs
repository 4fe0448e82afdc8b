//! The pickup folder, `DATA/pickup/`: an RFC 5322 file dropped there is submitted like mail
//! that came in over SMTP. The envelope comes from the header: the sender from `Return-Path:`,
//! `Sender:` or `From:` (the first present), the recipients from `To:`, `Cc:` and `Bcc:`; the
//! `Bcc:` fields are removed from the stored content. The message gets a queue id from the same
//! generator as SMTP mail, is written to the queue (synced) and handed to the transport, whose
//! pass starts with the `submission` event; only then is the file deleted.
//!
//! Files are expected to be written elsewhere and renamed in (a rename is atomic, so a half
//! written file is never seen); names starting with `.` are skipped, which covers the usual
//! temporary names. A file that cannot be submitted — over the size limit (refused on its
//! length, never read), with NUL octets, with no header section, no sender or no recipient —
//! moves to `DATA/pickup/bad/` with `NAME.reason` beside it: nothing is lost.
//!
//! Polling, not inotify: it is portable, costs one directory read per interval, and a folder
//! written while the server was down is picked up the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{Address, HeaderName, HeaderValue, MessageParser};
use postern_config::Config;
use postern_mailmsg::{Content, MailMsg, QueueIdGenerator, Recipient, Sender};
use postern_queue::Spool;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// How often the folder is read.
pub const PICKUP_POLL: Duration = Duration::from_millis(500);

/// The protocol a picked-up message is recorded with (`Received: … with local-pickup`).
const PROTOCOL: &str = "local-pickup";

/// The pickup folder's watcher.
pub struct Pickup {
    dir: PathBuf,
    max_size: u64,
    hostname: String,
    spool: Spool,
    ids: Arc<QueueIdGenerator>,
    inbox: mpsc::Sender<MailMsg>,
}

/// What was wrong with a file, for its `.reason` file.
#[derive(Debug, PartialEq, Eq)]
struct Unusable(String);

impl Pickup {
    /// A watcher of `DATA/pickup/` that hands messages to the transport through `inbox`.
    pub fn new(
        config: &Config,
        spool: Spool,
        ids: Arc<QueueIdGenerator>,
        inbox: mpsc::Sender<MailMsg>,
    ) -> Self {
        Self {
            dir: config.data_dir.join("pickup"),
            max_size: config.limits.max_message_size,
            hostname: config.hostname.clone(),
            spool,
            ids,
            inbox,
        }
    }

    /// Reads the folder every `interval` until shutdown.
    pub async fn run(self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = tokio::fs::create_dir_all(self.dir.join("bad")).await {
            error!(folder = %self.dir.display(), "cannot make the pickup folder: {e}");
            return;
        }
        info!(folder = %self.dir.display(), "pickup folder watched");
        loop {
            self.scan().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn scan(&self) {
        let dir = self.dir.clone();
        let names = tokio::task::spawn_blocking(move || list(&dir)).await;
        let names = match names {
            Ok(Ok(names)) => names,
            Ok(Err(e)) => {
                warn!(folder = %self.dir.display(), "cannot read the pickup folder: {e}");
                return;
            }
            Err(_) => return,
        };
        for name in names {
            self.take(&name).await;
        }
    }

    /// Submits one file, or moves it to `bad/`. A queue that cannot take the message leaves
    /// the file where it is, for the next scan.
    async fn take(&self, name: &str) {
        let path = self.dir.join(name);
        let max = self.max_size;
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || read_limited(&path, max)
        })
        .await;
        let raw = match read {
            Ok(Ok(Ok(raw))) => raw,
            Ok(Ok(Err(unusable))) => return self.reject(name, &unusable).await,
            // Gone meanwhile (another process took it) or unreadable: try again next time.
            Ok(Err(e)) => {
                warn!(file = %path.display(), "cannot read a pickup file: {e}");
                return;
            }
            Err(_) => return,
        };
        let id = self.ids.next_id();
        let now_ms = postern_mailmsg::now_ms();
        let msg = match build(&raw, &self.hostname, &id.to_string(), now_ms) {
            Ok(mut msg) => {
                msg.id = Some(id);
                msg
            }
            Err(unusable) => return self.reject(name, &unusable).await,
        };
        if let Err(e) = self.spool.store(&msg).await {
            error!(queue_id = %id, file = %path.display(), "queue write failed; the file stays: {e}");
            return;
        }
        // The queue has the message (synced): the file can go. Should the process die before
        // this, the file is submitted again at the next start: a duplicate, never a loss.
        if let Err(e) = tokio::fs::remove_file(&path).await {
            error!(queue_id = %id, file = %path.display(), "cannot remove a submitted pickup file: {e}");
        }
        info!(queue_id = %id, file = name, from = %msg.sender_address(),
              recipients = msg.recipients.len(), size = msg.info.size, "message picked up");
        let _ = self.inbox.send(msg).await;
    }

    async fn reject(&self, name: &str, why: &Unusable) {
        let dir = self.dir.clone();
        let name = name.to_owned();
        let reason = why.0.clone();
        let moved = tokio::task::spawn_blocking(move || move_to_bad(&dir, &name, &reason)).await;
        match moved {
            Ok(Ok(to)) => warn!(file = %to.display(), reason = %why.0, "pickup file refused"),
            Ok(Err(e)) => error!(reason = %why.0, "cannot move a refused pickup file: {e}"),
            Err(_) => {}
        }
    }
}

/// The names of the regular files to take, oldest name first.
fn list(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

/// The file's content, refused on its length before a byte is read when it is over `max`.
fn read_limited(path: &Path, max: u64) -> std::io::Result<Result<Vec<u8>, Unusable>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let too_big = |len| {
        Unusable(format!(
            "over the message size limit: {len} octets, the limit is {max}"
        ))
    };
    if len > max {
        return Ok(Err(too_big(len)));
    }
    let mut raw = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // A file still growing is read up to one octet past the limit, no further.
    file.take(max + 1).read_to_end(&mut raw)?;
    if raw.len() as u64 > max {
        return Ok(Err(too_big(raw.len() as u64)));
    }
    Ok(Ok(raw))
}

/// Moves `dir/name` to `dir/bad/` (under a free name) with the reason beside it.
fn move_to_bad(dir: &Path, name: &str, reason: &str) -> std::io::Result<PathBuf> {
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad)?;
    let mut to = bad.join(name);
    let mut n = 1;
    while to.exists() {
        to = bad.join(format!("{name}.{n}"));
        n += 1;
    }
    let reason_file = PathBuf::from(format!("{}.reason", to.display()));
    std::fs::write(&reason_file, format!("{reason}\n"))?;
    std::fs::rename(dir.join(name), &to)?;
    Ok(to)
}

/// The message a file makes: envelope from the header, CRLF line ends, `Bcc:` removed, a
/// `Received:` field on top.
fn build(raw: &[u8], hostname: &str, id: &str, now_ms: u64) -> Result<MailMsg, Unusable> {
    if raw.contains(&0) {
        return Err(Unusable("binary content: the file holds NUL octets".into()));
    }
    if !starts_with_header(raw) {
        return Err(Unusable(
            "no header section: the file does not start with a header field".into(),
        ));
    }
    let parsed = MessageParser::default()
        .parse_headers(raw)
        .ok_or_else(|| Unusable("not an RFC 5322 message".into()))?;
    let sender = match parsed.header(HeaderName::ReturnPath) {
        Some(HeaderValue::Text(text)) => Some(text.trim_matches(['<', '>', ' ']).to_owned()),
        Some(HeaderValue::Address(a)) => first(a),
        _ => None,
    }
    .or_else(|| parsed.sender().and_then(first))
    .or_else(|| parsed.from().and_then(first))
    .ok_or_else(|| Unusable("no sender: no Return-Path:, Sender: or From: address".into()))?;
    let mut msg = MailMsg::default();
    for list in [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
    {
        for addr in list.iter() {
            if let Some(address) = addr.address().filter(|a| a.contains('@')) {
                msg.add_recipient(Recipient::new(address));
            }
        }
    }
    if msg.recipients.is_empty() {
        return Err(Unusable(
            "no recipients: no address in To:, Cc: or Bcc:".into(),
        ));
    }
    let mut content = Content::new(crlf(raw));
    content.remove_header("Bcc");
    let date = mail_builder::headers::date::Date::new((now_ms / 1000) as i64).to_rfc822();
    let trace = format!("from pickup by {hostname} with {PROTOCOL} id {id}; {date}");
    content
        .prepend_header("Received", &trace)
        .map_err(|e| Unusable(format!("cannot add the Received: field: {e}")))?;
    msg.sender = Some(Sender {
        address: sender,
        ..Sender::default()
    });
    msg.info.arrival_ms = now_ms;
    msg.info.size = content.len() as u64;
    msg.info.received_by = hostname.to_owned();
    msg.info.protocol = PROTOCOL.to_owned();
    msg.content = content;
    Ok(msg)
}

fn first(list: &Address<'_>) -> Option<String> {
    list.iter().find_map(|a| a.address()).map(str::to_owned)
}

/// Whether the first line is a header field (`Name:`), as RFC 5322 content starts.
fn starts_with_header(raw: &[u8]) -> bool {
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon]
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b':'),
        _ => false,
    }
}

/// Line ends as the queue keeps them: a file written with LF (as most tools write) gets CRLF.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(raw: &[u8]) -> String {
        build(raw, "mx.test", "ID", 0).unwrap_err().0
    }

    #[test]
    fn the_envelope_comes_from_the_header_and_bcc_is_removed() {
        let raw = b"From: Alice <alice@example.com>\nTo: bob@localhost, Carol <carol@example.org>\nCc: dave@localhost\nBcc: eve@localhost\nSubject: hi\n\nbody\n";
        let msg = build(raw, "mx.test", "ID", 0).unwrap();
        assert_eq!(msg.sender_address(), "alice@example.com");
        let to: Vec<_> = msg.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            to,
            [
                "bob@localhost",
                "carol@example.org",
                "dave@localhost",
                "eve@localhost"
            ]
        );
        let text = String::from_utf8(msg.content.bytes().to_vec()).unwrap();
        assert!(text.starts_with("Received: from pickup by mx.test with local-pickup id ID; "));
        assert!(!text.contains("Bcc"), "{text}");
        assert!(text.ends_with("Subject: hi\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn return_path_then_sender_then_from_give_the_sender() {
        let cases = [
            (
                "return-path first",
                "Return-Path: <rp@x.test>\nSender: s@x.test\nFrom: f@x.test\n",
                "rp@x.test",
            ),
            (
                "sender before from",
                "Sender: s@x.test\nFrom: f@x.test\n",
                "s@x.test",
            ),
            ("from alone", "From: f@x.test\n", "f@x.test"),
        ];
        for (name, head, want) in cases {
            let raw = format!("{head}To: b@localhost\n\nx\n");
            let msg = build(raw.as_bytes(), "h", "ID", 0).unwrap();
            assert_eq!(msg.sender_address(), want, "{name}");
        }
    }

    #[test]
    fn unusable_files_say_why() {
        assert!(reason(b"\x7fELF\x02\x01\x00\x00junk").contains("NUL"));
        assert!(reason(b"just some text\nwith lines\n").contains("no header section"));
        assert!(reason(b"From: a@x.test\nSubject: s\n\nbody\n").contains("no recipients"));
        assert!(reason(b"To: b@localhost\nSubject: s\n\nbody\n").contains("no sender"));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_on_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: 100 MB long, no data written, so a read of it all would show in the test's time.
        file.set_len(100 << 20).unwrap();
        let why = read_limited(&path, 1 << 20).unwrap().unwrap_err();
        assert_eq!(
            why.0,
            "over the message size limit: 104857600 octets, the limit is 1048576"
        );
    }
}
