//! The tracking log: what the `track` event's default sink writes. One JSON line per change of
//! a message's state goes to `DATA/log/track.jsonl`, which is rotated by size.
//!
//! Written through the sink host's JSON-lines writer (`postern_sink_host::jsonlines`): a
//! channel to a thread of its own, so a pass never waits for the disk, lines in the order
//! [`TrackLog::write`] was called, rotation by size.

use std::io;
use std::path::Path;
use std::time::SystemTime;

use postern_sink_host::jsonlines::JsonLines;

/// The file's name below `DATA/log`; rotated files get `.1`, `.2`, … (`.1` the newest).
pub(crate) const FILE_NAME: &str = "track.jsonl";

/// The version of the line format, written as `"v"` in every line. Raise it when a field
/// changes meaning or goes away; adding a field is compatible.
const WIRE_VERSION: u32 = 1;

/// One change of a message's state, as a line of the tracking log. A wire struct: renaming a
/// field here changes what readers of the log see.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct TrackRecord {
    /// When the change happened: RFC 3339, UTC, with milliseconds.
    pub(crate) time: String,
    pub(crate) queue_id: String,
    /// `received`, `queued`, `routed`, `delivered`, `deferred`, `bounced`, `expired`,
    /// `dsn-sent`, `held`, `quarantined`, `aborted` or `badmail`.
    pub(crate) state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_hop: Option<String>,
    /// The remote's reply, or the reason for the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reply: Option<String>,
    /// For `deferred`: when delivery is tried next (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_attempt: Option<String>,
    /// The binding whose sink decided the change, when a sink (not a default) decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) binding: Option<String>,
}

impl TrackRecord {
    /// A record of `state` for the message `queue_id` at `time`, the other fields empty.
    pub(crate) fn new(
        queue_id: impl Into<String>,
        state: impl Into<String>,
        time: SystemTime,
    ) -> Self {
        Self {
            time: rfc3339(time),
            queue_id: queue_id.into(),
            state: state.into(),
            ..Self::default()
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-12-03T09:05:04.123Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// A line as written: the record with the format's version in front.
#[derive(serde::Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    record: &'a TrackRecord,
}

/// The tracking log's writer: the shared JSON-lines writer on `track.jsonl`. Dropping it writes
/// out every record handed to it, so records are not lost at shutdown.
pub(crate) struct TrackLog(JsonLines);

impl TrackLog {
    /// Opens (creating them) `DATA/log` below `data_dir` and `track.jsonl` in it, appending to
    /// what is there. The file is rotated when a line would take it past `max_bytes`; `keep`
    /// rotated files are kept.
    pub(crate) fn open(data_dir: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        JsonLines::open(data_dir, FILE_NAME, max_bytes, keep, "track-log").map(Self)
    }

    /// Hands `record` to the writer; returns at once.
    pub(crate) fn write(&self, record: &TrackRecord) {
        self.0.write(&Line {
            v: WIRE_VERSION,
            record,
        });
    }

    /// Waits, without blocking the runtime, until every record written before is in the file.
    pub(crate) async fn flush(&self) {
        self.0.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn record(queue_id: &str, seq: usize) -> TrackRecord {
        TrackRecord {
            recipient: Some("bob@example.com".to_owned()),
            reply: Some(format!("250 2.0.0 ok {seq}")),
            ..TrackRecord::new(queue_id, "delivered", SystemTime::now())
        }
    }

    /// Every line of `file`, parsed.
    fn lines(file: &Path) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    fn seq(line: &serde_json::Value) -> usize {
        let reply = line["reply"].as_str().expect("a reply");
        reply
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    }

    #[tokio::test]
    async fn records_are_written_in_order_as_versioned_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrackLog::open(dir.path(), 1 << 20, 3).unwrap();
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let states = ["received", "queued", "routed", "deferred", "delivered"];
        for state in states {
            let mut record = TrackRecord::new("Q1", state, at);
            if state == "deferred" {
                record.reply = Some("451 4.3.0 later".to_owned());
                record.next_attempt = Some(rfc3339(at + Duration::from_secs(300)));
                record.binding = Some("greylist".to_owned());
            }
            log.write(&record);
        }
        log.flush().await;

        let lines = lines(&dir.path().join("log").join(FILE_NAME));
        let got: Vec<&str> = lines.iter().map(|l| l["state"].as_str().unwrap()).collect();
        assert_eq!(got, states);
        assert_eq!(lines[0]["v"], 1);
        assert_eq!(lines[0]["time"], "2027-01-15T08:00:00.123Z");
        assert_eq!(lines[0]["queue_id"], "Q1");
        assert!(
            lines[0].get("recipient").is_none(),
            "empty fields are left out"
        );
        assert_eq!(lines[3]["next_attempt"], "2027-01-15T08:05:00.123Z");
        assert_eq!(lines[3]["binding"], "greylist");
        assert_eq!(lines[3]["reply"], "451 4.3.0 later");
    }

    #[tokio::test]
    async fn rotation_keeps_keep_files_and_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let max_bytes = 1000;
        let log = TrackLog::open(dir.path(), max_bytes, 2).unwrap();
        for n in 0..100 {
            log.write(&record("Q1", n));
        }
        log.flush().await;

        let base = dir.path().join("log").join(FILE_NAME);
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", base.display()));
        assert!(numbered(2).exists() && !numbered(3).exists());
        let mut all = Vec::new();
        for file in [numbered(2), numbered(1), base.clone()] {
            assert!(fs::metadata(&file).unwrap().len() <= max_bytes, "{file:?}");
            all.extend(lines(&file).iter().map(seq));
        }
        assert_eq!(all.last(), Some(&99), "the newest record is in track.jsonl");
        let first = all[0];
        assert_eq!(
            all,
            (first..100).collect::<Vec<_>>(),
            "contiguous, oldest dropped"
        );
        assert!(first > 0);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_still_gets_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = TrackLog::open(dir.path(), 10, 1).unwrap();
        log.write(&record("Q1", 1));
        log.write(&record("Q1", 2));
        log.flush().await;
        let base = dir.path().join("log").join(FILE_NAME);
        assert_eq!(lines(&base).iter().map(seq).collect::<Vec<_>>(), [2]);
        let old = PathBuf::from(format!("{}.1", base.display()));
        assert_eq!(lines(&old).iter().map(seq).collect::<Vec<_>>(), [1]);
    }

    #[tokio::test]
    async fn reopening_appends_and_counts_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("log").join(FILE_NAME);
        {
            let log = TrackLog::open(dir.path(), 1 << 20, 1).unwrap();
            log.write(&record("Q1", 1));
            // Dropped here, which writes the record out.
        }
        let one_line = fs::metadata(&base).unwrap().len();
        let log = TrackLog::open(dir.path(), one_line * 2, 1).unwrap();
        log.write(&record("Q1", 2));
        log.write(&record("Q1", 3));
        log.flush().await;
        assert_eq!(lines(&base).iter().map(seq).collect::<Vec<_>>(), [3]);
        let old = PathBuf::from(format!("{}.1", base.display()));
        assert_eq!(lines(&old).iter().map(seq).collect::<Vec<_>>(), [1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_record_is_lost_when_tasks_write_at_once() {
        const TASKS: usize = 8;
        const EACH: usize = 500;
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(TrackLog::open(dir.path(), 1 << 30, 1).unwrap());
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..EACH {
                    log.write(&record(&format!("T{task}"), n));
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Dropping the last handle writes everything out: what shutdown relies on.
        drop(Arc::into_inner(log).expect("the only handle"));

        let lines = lines(&dir.path().join("log").join(FILE_NAME));
        assert_eq!(lines.len(), TASKS * EACH);
        for task in 0..TASKS {
            let id = format!("T{task}");
            let mine: Vec<usize> = lines
                .iter()
                .filter(|l| l["queue_id"] == id)
                .map(seq)
                .collect();
            assert_eq!(mine, (0..EACH).collect::<Vec<_>>(), "{id} in order");
        }
    }
}
