//! `builtin:archive`: keeps a copy of every message its binding matches, one archive per day
//! (UTC): `FOLDER/YYYY-MM-DD/` as a Maildir, or `FOLDER/YYYY-MM-DD.mbox`.
//!
//! Properties: `folder` (required; relative to DATA or absolute), `format` (`maildir`, the
//! default, or `mbox`), `retention` (optional, `30d`, `12w`…: day archives older than that are
//! removed, looked for on a write at most once a day).
//!
//! A copy is synced to disk before the sink returns: the Maildir file is written in `tmp/`,
//! synced and renamed into `new/`; an mbox is appended under a lock and synced. A copy that
//! cannot be written is a sink failure, so the binding's `on_error` decides whether the
//! message waits (`tempfail`) or goes on without its copy.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_sink_api::{
    BlockingSink, Context, Event, Instance, Outcome, SinkError, SinkFactory, SinkResult, SinkSpec,
};
use tracing::{info, warn};

use crate::props;

/// A relative `folder` is taken from the data folder (`crate::data_dir`).
pub(crate) struct Factory;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Maildir,
    Mbox,
}

struct Archive {
    folder: PathBuf,
    format: Format,
    retention_days: Option<i64>,
    /// The day (days since 1970) retention last ran, so that it runs once a day at most.
    pruned_day: Mutex<Option<i64>>,
    /// Serializes appends to an mbox: two copies must not interleave.
    mbox_lock: Mutex<()>,
    /// Makes Maildir names unique within the process.
    counter: AtomicU64,
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn summary(&self) -> &'static str {
        "keeps a copy of each message in a Maildir or mbox archive per day, with a retention"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["folder", "format", "retention"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Submission | Event::Store)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let folder = PathBuf::from(props::required(p, "folder")?.as_ref());
        if folder.as_os_str().is_empty() {
            return Err(SinkError::Config("property `folder` is empty".into()));
        }
        let folder = crate::data_dir::resolve(&folder.to_string_lossy());
        let format = match props::text(p, "format")?.as_deref().unwrap_or("maildir") {
            "maildir" => Format::Maildir,
            "mbox" => Format::Mbox,
            other => {
                return Err(SinkError::Config(format!(
                    "property `format`: {other:?} (maildir or mbox)"
                )));
            }
        };
        let retention_days = match props::text(p, "retention")? {
            None => None,
            Some(text) => Some(parse_retention(&text)?),
        };
        Ok(Instance::Blocking(Arc::new(Archive {
            folder,
            format,
            retention_days,
            pruned_day: Mutex::new(None),
            mbox_lock: Mutex::new(()),
            counter: AtomicU64::new(0),
        })))
    }
}

/// Whole days: an archive is a day, so a retention of hours would only mislead.
fn parse_retention(text: &str) -> Result<i64, SinkError> {
    let bad = || {
        SinkError::Config(format!(
            "property `retention`: {text:?} is not a number of days (`30d`, `12w`)"
        ))
    };
    let duration: Duration = humantime::parse_duration(text).map_err(|_| bad())?;
    let secs = duration.as_secs();
    if secs == 0 || !secs.is_multiple_of(86_400) {
        return Err(bad());
    }
    i64::try_from(secs / 86_400).map_err(|_| bad())
}

impl BlockingSink for Archive {
    fn on_event(&self, ctx: &Context) -> SinkResult {
        let now = now_secs();
        let today = now.div_euclid(86_400);
        let day = day_name(today);
        let msg = &ctx.message;
        let written = match self.format {
            Format::Maildir => self.write_maildir(&day, ctx, now),
            Format::Mbox => self.write_mbox(&day, ctx, now),
        };
        let path = written
            .map_err(|e| SinkError::Failed(format!("archive {}: {e}", self.folder.display())))?;
        info!(queue_id = ?msg.id, archive = %path.display(), "message archived");
        self.prune(today);
        Ok(Outcome::next())
    }
}

impl Archive {
    fn write_maildir(&self, day: &str, ctx: &Context, now: i64) -> std::io::Result<PathBuf> {
        let root = self.folder.join(day);
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(root.join(sub))?;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = ctx
            .message
            .id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "noid".into());
        let name = format!("{now}.{id}_{n}.P{}", std::process::id());
        let tmp = root.join("tmp").join(&name);
        let mut file = File::create(&tmp)?;
        file.write_all(ctx.message.content.bytes())?;
        file.sync_all()?;
        let new = root.join("new").join(&name);
        fs::rename(&tmp, &new)?;
        File::open(root.join("new"))?.sync_all()?;
        Ok(new)
    }

    fn write_mbox(&self, day: &str, ctx: &Context, now: i64) -> std::io::Result<PathBuf> {
        fs::create_dir_all(&self.folder)?;
        let path = self.folder.join(format!("{day}.mbox"));
        let entry = mbox_entry(
            ctx.message.sender_address(),
            now,
            ctx.message.content.bytes(),
        );
        let _guard = self.mbox_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(&entry)?;
        file.sync_all()?;
        Ok(path)
    }

    /// Removes day archives past the retention; errors are logged, never a failure of the
    /// copy that was just made.
    fn prune(&self, today: i64) {
        let Some(keep) = self.retention_days else {
            return;
        };
        {
            let mut pruned = self.pruned_day.lock().unwrap_or_else(|e| e.into_inner());
            if *pruned == Some(today) {
                return;
            }
            *pruned = Some(today);
        }
        let oldest_kept = today - keep + 1;
        let Ok(entries) = fs::read_dir(&self.folder) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stem = name.strip_suffix(".mbox").unwrap_or(name);
            // Only what this sink names: anything else in the folder is left alone.
            let Some(day) = parse_day(stem) else { continue };
            if day >= oldest_kept {
                continue;
            }
            let path = entry.path();
            let removed = if name.ends_with(".mbox") {
                fs::remove_file(&path)
            } else {
                fs::remove_dir_all(&path)
            };
            match removed {
                Ok(()) => {
                    info!(archive = %path.display(), "day archive past the retention removed")
                }
                Err(e) => warn!(archive = %path.display(), "cannot remove an old day archive: {e}"),
            }
        }
    }
}

/// One mbox entry (the mboxrd flavour): a `From ` line, the message with LF line ends and
/// every line that reads `From ` after any number of `>` quoted with one more `>`, then a blank
/// line.
fn mbox_entry(sender: &str, now: i64, content: &[u8]) -> Vec<u8> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    let mut out = Vec::with_capacity(content.len() + 128);
    out.extend_from_slice(format!("From {sender} {}\n", asctime(now)).as_bytes());
    for line in content.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if line[unquoted..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

fn now_secs() -> i64 {
    i64::try_from(postern_mailmsg::now_ms() / 1000).unwrap_or(i64::MAX)
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01.
fn day_name(day: i64) -> String {
    let t = mail_parser::DateTime::from_timestamp(day * 86_400);
    format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)
}

/// The day number of `YYYY-MM-DD`, if the text is exactly that.
fn parse_day(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u32>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let t = mail_parser::DateTime {
        year: u16::try_from(y).ok()?,
        month: m as u8,
        day: d as u8,
        hour: 0,
        minute: 0,
        second: 0,
        tz_before_gmt: false,
        tz_hour: 0,
        tz_minute: 0,
    };
    Some(t.to_timestamp().div_euclid(86_400))
}

/// The date of a `From ` line: `Thu Dec  3 12:00:00 2026`, in UTC.
fn asctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = mail_parser::DateTime::from_timestamp(secs);
    let weekday = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS[usize::from(t.month.clamp(1, 12)) - 1];
    format!(
        "{weekday} {month} {:>2} {:02}:{:02}:{:02} {}",
        t.day, t.hour, t.minute, t.second, t.year
    )
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
