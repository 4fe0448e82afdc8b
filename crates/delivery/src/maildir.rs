//! The Maildir store driver: `ROOT/<domain>/<local part>/{tmp,new,cur}`.
//!
//! A delivery writes `tmp/NAME` (a `Return-Path:` field, then the message), syncs it, links it
//! to `new/NAME`, removes the `tmp/` name and syncs `new/` — the message is durable in the
//! mailbox before the queue is told it was delivered.
//!
//! NAME is the same on every run for a message and recipient, which makes a delivery repeated
//! after a crash find the first one's file. Finding it costs one name lookup in `new/`, and the
//! `link(2)` into `new/` fails on a name that is there. Only when a reader has since moved the file
//! to `cur/` (renamed `NAME:2,FLAGS`) must `cur/` be listed, which costs in proportion to the
//! mailbox; so it is listed only for a message that arrived before this driver was made — one
//! that an earlier run of the server, which may have crashed mid-delivery, could have delivered.
//! A message accepted by this run has never been delivered before its first pass, and after a
//! pass the queue records which recipients were delivered, so those are not tried again.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use postern_mailmsg::MailMsg;

/// A delivery that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    /// The local part or domain cannot name a folder.
    #[error("mailbox name {0:?} is not usable as a folder name")]
    BadName(String),
    /// The message has no queue id (it never went through the queue).
    #[error("message has no queue id")]
    NoId,
    /// The recipient index is out of range.
    #[error("no recipient #{0}")]
    NoRecipient(usize),
    /// A file system operation failed (a temporary failure: the queue will retry).
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The message is now in `new/` under this path.
    New(PathBuf),
    /// An earlier run (before a crash) already delivered it; nothing was written.
    AlreadyThere(PathBuf),
}

/// Delivers into Maildirs below a root folder.
#[derive(Debug, Clone)]
pub struct Maildir {
    root: PathBuf,
    hostname: String,
    /// When this driver was made (Unix ms): messages that arrived earlier may have been
    /// delivered by an earlier run, and only they are looked for in `cur/`.
    started_ms: u64,
}

impl Maildir {
    /// A driver for mailboxes below `root`; `hostname` goes into file names.
    pub fn new(root: impl Into<PathBuf>, hostname: &str) -> Self {
        // A host name with '/' or ':' would break the Maildir name; the spec says to encode them.
        let hostname = hostname.replace('/', "\\057").replace(':', "\\072");
        Self {
            root: root.into(),
            hostname,
            started_ms: postern_mailmsg::now_ms(),
        }
    }

    /// The mailbox folder of an address.
    pub fn mailbox(&self, address: &str) -> Result<PathBuf, MaildirError> {
        let (local, domain) = postern_mailmsg::envelope::split_address(address);
        let domain = folder_name(domain)?;
        let local = folder_name(local)?;
        Ok(self.root.join(domain).join(local))
    }

    /// Delivers the message to recipient `index` (blocking I/O: call it from a blocking thread).
    pub fn deliver(&self, msg: &MailMsg, index: usize) -> Result<Delivered, MaildirError> {
        let id = msg.id.ok_or(MaildirError::NoId)?;
        let recipient = msg
            .recipients
            .get(index)
            .ok_or(MaildirError::NoRecipient(index))?;
        let mailbox = self.mailbox(&recipient.address)?;
        ensure_maildir(&mailbox)?;
        // Unique and the same on every run for this message and recipient.
        let name = format!(
            "{}.{id}_{index}.{}",
            msg.info.arrival_ms / 1000,
            self.hostname
        );
        let new = mailbox.join("new").join(&name);
        if new.exists() {
            return Ok(Delivered::AlreadyThere(new));
        }
        if msg.info.arrival_ms < self.started_ms
            && let Some(found) = read_already(&mailbox, &name)
        {
            return Ok(Delivered::AlreadyThere(found));
        }
        let tmp = mailbox.join("tmp").join(&name);
        write_synced(&tmp, msg, msg.sender_for(index))?;
        let linked = fs::hard_link(&tmp, &new);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(Delivered::AlreadyThere(new));
            }
            Err(source) => return Err(MaildirError::Io { path: new, source }),
        }
        sync_dir(&mailbox.join("new"))?;
        Ok(Delivered::New(new))
    }
}

/// A folder name from a local part or domain: lower case (both are compared without case when
/// a user is looked up), and nothing that could leave the folder.
fn folder_name(part: &str) -> Result<String, MaildirError> {
    let lower = part.to_lowercase();
    if lower.is_empty()
        || lower.starts_with('.')
        || lower.contains(['/', '\\', '\0'])
        || lower.len() > 255
    {
        return Err(MaildirError::BadName(part.to_owned()));
    }
    Ok(lower)
}

/// Finds a file of an earlier run that a reader has seen: in `cur/`, renamed `NAME:2,FLAGS`.
/// This lists the folder, so it is done only for messages an earlier run may have delivered.
fn read_already(mailbox: &Path, name: &str) -> Option<PathBuf> {
    let cur = fs::read_dir(mailbox.join("cur")).ok()?;
    cur.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == name || n.starts_with(&format!("{name}:")))
    })
}

fn ensure_maildir(mailbox: &Path) -> Result<(), MaildirError> {
    if mailbox.join("new").is_dir() && mailbox.join("tmp").is_dir() && mailbox.join("cur").is_dir()
    {
        return Ok(());
    }
    for sub in ["tmp", "new", "cur"] {
        let path = mailbox.join(sub);
        fs::create_dir_all(&path).map_err(|source| MaildirError::Io { path, source })?;
    }
    // The new folders' entries must be durable before a message is linked into them.
    sync_dir(mailbox)?;
    let mut up = mailbox.parent();
    for _ in 0..2 {
        if let Some(dir) = up {
            sync_dir(dir)?;
            up = dir.parent();
        }
    }
    Ok(())
}

fn write_synced(path: &Path, msg: &MailMsg, sender: &str) -> Result<(), MaildirError> {
    let io = |source| MaildirError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io)?;
    let header = format!("Return-Path: <{sender}>\r\n");
    file.write_all(header.as_bytes()).map_err(io)?;
    file.write_all(msg.content.bytes()).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), MaildirError> {
    postern_mailmsg::durable::sync_dir(dir).map_err(|source| MaildirError::Io {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_mailmsg::{Content, QueueId, Recipient, Sender};

    fn message() -> MailMsg {
        let mut msg = MailMsg {
            id: Some(QueueId::from_u128(42)),
            sender: Some(Sender {
                address: "a@example.com".into(),
                ..Sender::default()
            }),
            content: Content::new(b"Subject: t\r\n\r\nhello\r\n".to_vec()),
            ..MailMsg::default()
        };
        msg.recipients.push(Recipient::new("Bob@LocalHost"));
        msg
    }

    #[test]
    fn delivers_once_with_return_path() {
        let dir = tempfile::tempdir().unwrap();
        let driver = Maildir::new(dir.path(), "mx");
        let first = driver.deliver(&message(), 0).unwrap();
        let Delivered::New(path) = first else {
            panic!("{first:?}")
        };
        assert!(path.starts_with(dir.path().join("localhost/bob/new")));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("Return-Path: <a@example.com>\r\nSubject: t"));
        // A second run (recovery after a crash) finds it and writes nothing.
        assert!(matches!(
            driver.deliver(&message(), 0).unwrap(),
            Delivered::AlreadyThere(_)
        ));
        // Even after a reader moved it to cur/ with flags.
        let cur = dir.path().join("localhost/bob/cur").join(format!(
            "{}:2,S",
            path.file_name().unwrap().to_str().unwrap()
        ));
        fs::rename(&path, &cur).unwrap();
        assert!(matches!(
            driver.deliver(&message(), 0).unwrap(),
            Delivered::AlreadyThere(_)
        ));
        assert_eq!(
            fs::read_dir(dir.path().join("localhost/bob/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_message_of_this_run_is_not_looked_for_in_cur() {
        let dir = tempfile::tempdir().unwrap();
        let driver = Maildir::new(dir.path(), "mx");
        let mut fresh = message();
        fresh.info.arrival_ms = driver.started_ms;
        // A file of the same name in cur/ (which no delivery of this run can have put there) is
        // not looked for: the delivery does not list cur/.
        let mailbox = dir.path().join("localhost/bob");
        ensure_maildir(&mailbox).unwrap();
        let name = format!(
            "{}.{}_0.mx",
            fresh.info.arrival_ms / 1000,
            fresh.id.unwrap()
        );
        fs::write(mailbox.join("cur").join(format!("{name}:2,S")), "seen").unwrap();
        let Delivered::New(path) = driver.deliver(&fresh, 0).unwrap() else {
            panic!("cur/ was listed for a message of this run");
        };
        assert_eq!(path, mailbox.join("new").join(&name));
        // new/ is still checked: a second delivery writes nothing.
        assert_eq!(
            driver.deliver(&fresh, 0).unwrap(),
            Delivered::AlreadyThere(path)
        );
    }

    #[test]
    fn a_message_from_before_a_restart_is_found_in_cur() {
        let dir = tempfile::tempdir().unwrap();
        let earlier = Maildir::new(dir.path(), "mx");
        let mut msg = message();
        msg.info.arrival_ms = earlier.started_ms;
        let Delivered::New(path) = earlier.deliver(&msg, 0).unwrap() else {
            panic!("first delivery")
        };
        let seen = path.parent().unwrap().with_file_name("cur").join(format!(
            "{}:2,S",
            path.file_name().unwrap().to_str().unwrap()
        ));
        fs::rename(&path, &seen).unwrap();
        // The server restarts: a new driver, started after the message arrived.
        let later = Maildir {
            started_ms: msg.info.arrival_ms + 1,
            ..earlier
        };
        assert_eq!(
            later.deliver(&msg, 0).unwrap(),
            Delivered::AlreadyThere(seen)
        );
    }

    #[test]
    fn refuses_names_that_leave_the_folder() {
        let driver = Maildir::new("/nonexistent", "mx");
        for bad in [
            "../x@localhost",
            ".hidden@localhost",
            "a/b@localhost",
            "x@../etc",
        ] {
            assert!(driver.mailbox(bad).is_err(), "{bad}");
        }
    }
}
