//! `postern queue …`: `check` looks after the spool without a server; the others are in
//! `queue_ops`. `check` reads every segment as
//! a start would, holds the log against the checkpoint and prints what it finds; it changes
//! nothing (the next start cuts a torn tail and keeps damaged segments in `queue/damaged/`).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Result;
use postern_config::Overrides;
use postern_queue::{QueueError, Report};
use serde_json::json;

use crate::cli::{QueueCheckArgs, QueueCommand};
use crate::queue_ops::Act;
use crate::setup;

pub(crate) fn run(command: QueueCommand) -> Result<ExitCode> {
    match command {
        QueueCommand::Check(args) => check(args),
        QueueCommand::List(args) => crate::queue_ops::list(args),
        QueueCommand::Show(args) => crate::queue_ops::show(args),
        QueueCommand::Retry(args) => crate::queue_ops::act(args, Act::Retry),
        QueueCommand::Hold(args) => crate::queue_ops::act(args, Act::Hold),
        QueueCommand::Release(args) => crate::queue_ops::act(args, Act::Release),
        QueueCommand::Delete(args) => crate::queue_ops::act(args, Act::Delete),
        QueueCommand::Bounce(args) => crate::queue_ops::act(args, Act::Bounce),
    }
}

fn check(args: QueueCheckArgs) -> Result<ExitCode> {
    let config = match setup::config(None, &args.common, Overrides::default()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let dir = config.data_dir.join("queue");
    let report = match postern_queue::check(&dir) {
        Ok(report) => report,
        Err(error @ QueueError::Locked(_)) => {
            eprintln!("postern: {error}: stop the server to check its queue");
            return Ok(ExitCode::from(2));
        }
        Err(error) => {
            eprintln!(
                "postern: cannot check the queue in {}: {error}",
                dir.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&report))?);
    } else {
        print!("{}", human(&report));
    }
    Ok(if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn human(report: &Report) -> String {
    let mut out = String::new();
    let records: usize = report.segments.iter().map(|s| s.records).sum();
    let _ = writeln!(
        out,
        "queue {}: {} segment(s), {records} record(s), {} live message(s){}",
        report.dir.display(),
        report.segments.len(),
        report.live,
        if report.checkpoint {
            ""
        } else {
            " (no checkpoint: a segment cut at a record boundary cannot be told from a whole one)"
        }
    );
    for s in &report.segments {
        let _ = writeln!(
            out,
            "  segment {}: {} record(s), log {} octets, file {} octets",
            s.path.display(),
            s.records,
            s.log_len,
            s.file_len
        );
    }
    if let Some((path, offset)) = &report.torn_tail {
        let _ = writeln!(
            out,
            "torn tail (a write a crash interrupted, never acknowledged): {} from octet {offset}; \
             the next start cuts it",
            path.display()
        );
    }
    if report.intact() {
        let _ = writeln!(out, "intact: every acknowledged record can be read");
    } else {
        let lost: usize = report.damage.iter().map(|d| d.lost.len()).sum();
        let _ = writeln!(
            out,
            "DAMAGED: {} range(s) of acknowledged records cannot be read; {lost} message(s) lost",
            report.damage.len()
        );
        for d in &report.damage {
            let _ = writeln!(
                out,
                "  segment {} octets {}..{}: {}",
                d.segment.display(),
                d.start,
                d.end,
                d.reason
            );
            for id in &d.lost {
                let _ = writeln!(out, "    lost {id}");
            }
        }
        let _ = writeln!(
            out,
            "the next start keeps a copy of each damaged segment in {} and starts with the rest",
            report.dir.join("damaged").display()
        );
    }
    for path in &report.kept {
        let _ = writeln!(out, "kept from earlier damage: {}", path.display());
    }
    out
}

fn to_json(report: &Report) -> serde_json::Value {
    json!({
        "dir": report.dir,
        "intact": report.intact(),
        "checkpoint": report.checkpoint,
        "live": report.live,
        "segments": report.segments.iter().map(|s| json!({
            "number": s.number,
            "path": s.path,
            "records": s.records,
            "log_len": s.log_len,
            "file_len": s.file_len,
        })).collect::<Vec<_>>(),
        "torn_tail": report.torn_tail.as_ref().map(|(path, offset)| json!({
            "segment": path,
            "offset": offset,
        })),
        "damage": report.damage.iter().map(|d| json!({
            "segment": d.segment,
            "number": d.number,
            "start": d.start,
            "end": d.end,
            "reason": d.reason,
            "lost": d.lost.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "kept": report.kept,
    })
}
