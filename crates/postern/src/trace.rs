//! `postern trace QUEUE_ID`: what happened to a message, read from the logs under `DATA/log`,
//! whether or not a server runs and whether or not the message is still queued.
//!
//! The timeline is built from the track log (`DATA/log/track.jsonl` and its rotated files,
//! oldest first): every change of the message's state, each delivery attempt with its next hop
//! and the remote's reply, and the binding that decided where a sink, not a default, decided;
//! merged with the decision log (`DATA/log/decisions.jsonl`): every binding that fired on the
//! message, with its event, outcome and the changes it asked for.
//! [`load`] gives it as JSON for the admin API (`GET /v1/queue/{id}/trace`); the command prints
//! it for people, or the same JSON with `--json`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use postern_config::Overrides;

use crate::cli::TraceArgs;
use crate::setup;

/// The log files a trace reads, below `DATA/log`, and how many rotated copies to look for.
const TRACK_LOG: &str = "track.jsonl";
const DECISION_LOG: &str = postern_sink_host::decisions::FILE_NAME;
const ROTATED_MAX: usize = 100;

/// States of a recipient at a delivery attempt (the others concern the whole message).
const DELIVERY_STATES: [&str; 4] = ["delivered", "deferred", "bounced", "expired"];

/// The trace of message `id` from the logs below `data_dir`:
/// `{"id","entries":[{"at":"RFC3339","kind":"event|binding|delivery|state",...}],"final_state"}`,
/// or `None` when no log line names the message.
pub fn load(data_dir: &Path, id: &str) -> Option<Value> {
    let dir = data_dir.join("log");
    let mut entries: Vec<Value> = records(&dir, TRACK_LOG, id).map(entry).collect();
    entries.extend(records(&dir, DECISION_LOG, id).map(binding_entry));
    if entries.is_empty() {
        return None;
    }
    // Stable: lines written at the same millisecond keep the order of the log.
    entries.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
    let final_state = entries
        .iter()
        .rev()
        .find(|e| e["kind"] != "event" && e["kind"] != "binding")
        .and_then(|e| e["state"].as_str())
        .map(str::to_owned);
    Some(json!({ "id": id, "entries": entries, "final_state": final_state }))
}

/// The records of message `id` in the log `name` below `dir` and its rotated files, oldest
/// first.
fn records<'a>(
    dir: &Path,
    name: &str,
    id: &'a str,
) -> impl Iterator<Item = Map<String, Value>> + 'a {
    log_files(dir, name)
        .into_iter()
        .filter_map(|path| std::fs::File::open(path).ok())
        .flat_map(|file| BufReader::new(file).lines().map_while(Result::ok))
        // Cheap filter before parsing: most lines are about other messages.
        .filter(move |line| line.contains(id))
        .filter_map(|line| match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(record)) => Some(record),
            _ => None,
        })
        .filter(move |record| record.get("queue_id").and_then(Value::as_str) == Some(id))
}

/// One decision-log record (a binding that fired) as a timeline entry.
fn binding_entry(mut record: Map<String, Value>) -> Value {
    let at = record.remove("time").unwrap_or(Value::Null);
    record.remove("v");
    record.remove("queue_id");
    let mut out = Map::new();
    out.insert("at".into(), at);
    out.insert("kind".into(), "binding".into());
    out.extend(record);
    Value::Object(out)
}

/// One track-log record as a timeline entry.
fn entry(mut record: Map<String, Value>) -> Value {
    let state = record
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let kind = if state == "received" {
        "event"
    } else if DELIVERY_STATES.contains(&state.as_str()) && record.contains_key("recipient") {
        "delivery"
    } else {
        "state"
    };
    let at = record.remove("time").unwrap_or(Value::Null);
    record.remove("v");
    record.remove("queue_id");
    let mut out = Map::new();
    out.insert("at".into(), at);
    out.insert("kind".into(), kind.into());
    out.extend(record);
    Value::Object(out)
}

/// `DIR/NAME.N` … `DIR/NAME.1`, `DIR/NAME`: the rotated files oldest first, then the current.
fn log_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=ROTATED_MAX)
        .map(|n| dir.join(format!("{name}.{n}")))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(dir.join(name));
    files
}

/// `postern trace QUEUE_ID [--json]`.
pub(crate) fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let config = match setup::config(None, &args.common, Overrides::default()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(trace) = load(&config.data_dir, &args.id) else {
        eprintln!(
            "postern: no trace of {} in {}: the id is unknown, or its lines were rotated away",
            args.id,
            config.data_dir.join("log").display()
        );
        return Ok(ExitCode::from(1));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
    } else {
        print!("{}", render(&trace));
    }
    Ok(ExitCode::SUCCESS)
}

/// The timeline for people: one line per entry, then the final state.
fn render(trace: &Value) -> String {
    let mut out = format!("message {}\n", trace["id"].as_str().unwrap_or(""));
    for e in trace["entries"].as_array().into_iter().flatten() {
        let field = |k: &str| e.get(k).and_then(Value::as_str);
        if field("kind") == Some("binding") {
            out.push_str(&render_binding(e));
            continue;
        }
        let mut line = format!(
            "{}  {:<8} {:<10}",
            field("at").unwrap_or("?"),
            field("kind").unwrap_or(""),
            field("state").unwrap_or("")
        );
        if let Some(r) = field("recipient") {
            line.push_str(&format!(" <{r}>"));
        }
        if let Some(h) = field("next_hop") {
            line.push_str(&format!(" via {h}"));
        }
        if let Some(r) = field("reply") {
            line.push_str(&format!(": {r}"));
        }
        if let Some(n) = field("next_attempt") {
            line.push_str(&format!(" (next attempt {n})"));
        }
        if let Some(b) = field("binding") {
            line.push_str(&format!(" [binding {b}]"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "final state: {}\n",
        trace["final_state"].as_str().unwrap_or("unknown")
    ));
    out
}

/// A binding that fired, for people: when, the event, which binding, its outcome, then its
/// verdict, failure and changes.
fn render_binding(e: &Value) -> String {
    let field = |k: &str| e.get(k).and_then(Value::as_str);
    let mut line = format!(
        "{}  binding  {:<10} {} ({}): {}",
        field("at").unwrap_or("?"),
        field("event").unwrap_or(""),
        field("binding").unwrap_or(""),
        field("binding_id").unwrap_or(""),
        field("outcome").unwrap_or("")
    );
    if let Some(r) = field("recipient") {
        line.push_str(&format!(" <{r}>"));
    }
    if let Some(v) = field("verdict") {
        line.push_str(&format!(", {v}"));
    }
    if let Some(err) = field("error") {
        line.push_str(&format!(", {err}"));
    }
    let changes: Vec<&str> = e["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !changes.is_empty() {
        line.push_str(&format!(", changes: {}", changes.join("; ")));
    }
    line.push('\n');
    line
}
