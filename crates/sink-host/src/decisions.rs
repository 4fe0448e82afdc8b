//! The decision log: one JSON line per binding that fired (`DATA/log/decisions.jsonl`), with
//! its id, name, event, outcome and the changes it asked for, keyed by queue id. `postern trace`
//! merges it into a message's timeline.
//!
//! Written through [`JsonLines`] (a channel to a writer thread, rotation by size), so a dispatch
//! never waits for the disk. Events of the SMTP phase that happen before the message has a queue
//! id (connection, `HELO`, `MAIL`, `RCPT`) are held per session and written with the id when the
//! session knows it ([`DecisionLog::attach`], at `DATA`); a session that ends without a message
//! drops them ([`DecisionLog::session_closed`]).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use postern_sink_api::{Context, Outcome, Verdict};

use crate::jsonlines::JsonLines;
use crate::snapshot::{Bound, Snapshot};

/// The file's name below `DATA/log`; rotated files get `.1`, `.2`, … (`.1` the newest).
pub const FILE_NAME: &str = "decisions.jsonl";

/// The version of the line format, written as `"v"`. Raise it when a field changes meaning.
const WIRE_VERSION: u32 = 1;

/// Decisions held for one session before its message has an id; beyond this the oldest are
/// dropped, so a client looping on commands cannot grow the server's memory.
const PENDING_MAX: usize = 256;

/// One binding that fired on a message. A wire struct: renaming a field changes what readers of
/// the log see.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// When the call ended: RFC 3339, UTC, with milliseconds.
    pub time: String,
    /// The message's queue id (missing only while the session does not know it yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// The SMTP session the event happened in, for events of the SMTP phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// The event's name (`inbound:RCPT`, `categorize`, …).
    pub event: String,
    /// The binding's id.
    pub binding_id: String,
    /// The binding's name.
    pub binding: String,
    /// `ok` (the chain goes on), `reply` (the sink gave a verdict or reply: see `verdict`),
    /// `error`, `panic`, `timeout`, `busy` (too many calls in flight), `open` (circuit breaker)
    /// or `shadow` (a shadow binding: nothing applied).
    pub outcome: String,
    /// The verdict when it is not "continue": the reply given, a deferral or a rejection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Why the call gave no outcome, for `error`, `panic`, `timeout`, `busy` and `open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The changes the sink asked for, in order (for `shadow`: what it would have changed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// The recipient, for per-recipient events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

impl Decision {
    /// The current time as the log writes it.
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }
}

/// A line as written: the record with the format's version in front.
#[derive(serde::Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(flatten)]
    record: &'a Decision,
}

/// The decision log's writer.
pub struct DecisionLog {
    lines: JsonLines,
    /// Decisions of sessions whose message has no id yet, by session id.
    pending: Mutex<HashMap<u64, Vec<Decision>>>,
}

impl DecisionLog {
    /// Opens (creating them) `DATA/log/decisions.jsonl` below `data_dir`, rotated when a line
    /// would take it past `max_bytes`, keeping `keep` rotated files.
    pub fn open(data_dir: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        Ok(Self {
            lines: JsonLines::open(data_dir, FILE_NAME, max_bytes, keep, "decision-log")?,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Records one decision: written now when it names its message, held for its session
    /// until [`DecisionLog::attach`] otherwise.
    pub fn record(&self, decision: Decision) {
        match (&decision.queue_id, decision.session) {
            (None, Some(session)) => {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                let held = pending.entry(session).or_default();
                if held.len() >= PENDING_MAX {
                    held.remove(0);
                }
                held.push(decision);
            }
            _ => self.write(&decision),
        }
    }

    /// The session `session` now knows its message's id: writes the decisions held for it with
    /// that id. Called at `DATA`; a session's later messages get only their own decisions.
    pub fn attach(&self, session: u64, queue_id: &str) {
        let held = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.remove(&session)
        };
        for mut decision in held.into_iter().flatten() {
            decision.queue_id = Some(queue_id.to_owned());
            self.write(&decision);
        }
    }

    /// The session ended: what it still holds concerned no message and is dropped.
    pub fn session_closed(&self, session: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(&session);
    }

    /// Waits until every decision written before is in the file.
    pub async fn flush(&self) {
        self.lines.flush().await;
    }

    fn write(&self, record: &Decision) {
        self.lines.write(&Line {
            v: WIRE_VERSION,
            record,
        });
    }
}

/// Writes what a binding that fired did to the snapshot's decision log, when the server keeps
/// one. `failed` is the call's failure kind and reason, or `("shadow", "")` for a shadow binding.
pub(crate) fn record(
    snapshot: &Snapshot,
    bound: &Bound,
    ctx: &Context,
    outcome: &Outcome,
    failed: Option<(&'static str, String)>,
) {
    let Some(log) = snapshot.decisions.get() else {
        return;
    };
    let (kind, error) = match failed {
        Some(("shadow", _)) => ("shadow", None),
        Some((kind, reason)) => (kind, Some(reason)),
        None if outcome.verdict == Verdict::Continue => ("ok", None),
        None => ("reply", None),
    };
    let b = &bound.binding;
    log.record(Decision {
        time: Decision::now(),
        queue_id: ctx.message.id.as_ref().map(ToString::to_string),
        session: ctx.session.as_ref().map(|s| s.id),
        event: ctx.event.to_string(),
        binding_id: b.id.to_string(),
        binding: b.name.clone(),
        outcome: kind.to_owned(),
        verdict: (outcome.verdict != Verdict::Continue).then(|| verdict_text(&outcome.verdict)),
        error,
        changes: outcome.changes.iter().map(|c| format!("{c:?}")).collect(),
        recipient: ctx
            .recipient
            .and_then(|i| ctx.message.recipients.get(i))
            .map(|r| r.address.clone()),
    });
}

/// A verdict as the decision log says it.
fn verdict_text(verdict: &Verdict) -> String {
    let with = |word: &str, text: &Option<String>| match text {
        Some(text) => format!("{word} {text}"),
        None => word.to_owned(),
    };
    match verdict {
        Verdict::Continue => "continue".to_owned(),
        Verdict::Consume => "consume".to_owned(),
        Verdict::Reply(reply) => format!("reply {reply}"),
        Verdict::TempFail(text) => with("tempfail", text),
        Verdict::Reject(text) => with("reject", text),
        Verdict::Disconnect(reply) => match reply {
            Some(reply) => format!("disconnect {reply}"),
            None => "disconnect".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;

    fn decision(queue_id: Option<&str>, session: Option<u64>, binding: &str) -> Decision {
        Decision {
            time: Decision::now(),
            queue_id: queue_id.map(str::to_owned),
            session,
            event: "inbound:RCPT".to_owned(),
            binding_id: "b-1".to_owned(),
            binding: binding.to_owned(),
            outcome: "ok".to_owned(),
            ..Decision::default()
        }
    }

    fn lines(file: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[tokio::test]
    async fn decisions_before_the_id_are_written_with_it_once_known() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path(), 1 << 20, 2).unwrap();
        log.record(decision(None, Some(7), "early"));
        log.record(decision(None, Some(8), "other-session"));
        log.record(decision(Some("Q0"), None, "transport"));
        log.attach(7, "Q1");
        log.session_closed(8);
        log.attach(8, "Q2");
        log.record(decision(Some("Q1"), Some(7), "late"));
        log.flush().await;

        let got = lines(&dir.path().join("log").join(FILE_NAME));
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|l| {
                (
                    l["queue_id"].as_str().unwrap(),
                    l["binding"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [("Q0", "transport"), ("Q1", "early"), ("Q1", "late")],
            "a closed session's decisions are dropped"
        );
        assert_eq!(got[1]["v"], 1);
        assert_eq!(got[1]["session"], 7);
        assert!(got[0].get("changes").is_none(), "empty fields are left out");
    }

    #[tokio::test]
    async fn rotation_keeps_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::open(dir.path(), 500, 3).unwrap();
        for n in 0..100 {
            log.record(decision(Some(&format!("Q{n}")), None, "b"));
        }
        log.flush().await;
        let base = dir.path().join("log").join(FILE_NAME);
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", base.display()));
        assert!(numbered(3).exists() && !numbered(4).exists());
        assert_eq!(lines(&base).last().unwrap()["queue_id"], "Q99");
    }
}
