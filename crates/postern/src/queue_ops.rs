//! `postern queue list|show|retry|hold|release|delete|bounce`: through the running server's
//! admin API; `list` and `show` read the spool directly when no server runs, and the changing
//! commands then refuse (exit 1), since only the server may change a queue it may open.

use std::collections::HashMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use postern_config::{Config, Overrides};
use serde_json::{Value, json};

use crate::admin_client::{Api, Reach};
use crate::cli::{Common, QueueActArgs, QueueFilterArgs, QueueListArgs, QueueShowArgs};
use crate::setup;

/// What a changing command does, by its API path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Act {
    Retry,
    Hold,
    Release,
    Delete,
    Bounce,
}

impl Act {
    fn verb(self) -> &'static str {
        match self {
            Act::Retry => "retry",
            Act::Hold => "hold",
            Act::Release => "release",
            Act::Delete => "delete",
            Act::Bounce => "bounce",
        }
    }
}

fn load(common: &Common) -> Result<Config, ExitCode> {
    setup::config(None, common, Overrides::default()).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

fn query(filter: &QueueFilterArgs) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    for (key, value) in [
        ("state", &filter.state),
        ("sender", &filter.sender),
        ("recipient", &filter.recipient),
        ("domain", &filter.domain),
        ("older_than", &filter.older_than),
    ] {
        if let Some(value) = value {
            q.push((key, value.clone()));
        }
    }
    q
}

fn has_filter(filter: &QueueFilterArgs) -> bool {
    !query(filter).is_empty()
}

/// Every matching message through the API, page after page.
fn list_online(api: &Api, filter: &QueueFilterArgs) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for page in 1.. {
        let mut q = query(filter);
        q.push(("page", page.to_string()));
        q.push(("per_page", "1000".to_owned()));
        let answer = api.get("/v1/queue", &q)?;
        let messages = answer["messages"].as_array().cloned().unwrap_or_default();
        let done = messages.is_empty()
            || out.len() + messages.len() >= answer["total"].as_u64().unwrap_or(0) as usize;
        out.extend(messages);
        if done {
            break;
        }
    }
    Ok(out)
}

/// The spool read directly: the summaries and messages that pass the filter.
fn read_spool(
    config: &Config,
    filter: &QueueFilterArgs,
) -> Result<Vec<(postern_queue::QueuedMessage, postern_mailmsg::MailMsg)>> {
    let map: HashMap<String, String> = query(filter)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let filter = postern_admin::Filter::parse(&map).map_err(|e| {
        anyhow!(
            "--{}: {}",
            e.field.unwrap_or_default().replace('_', "-"),
            e.message
        )
    })?;
    let now = postern_mailmsg::now_ms();
    let all = postern_queue::read_offline(&config.data_dir.join("queue"))?;
    Ok(all
        .into_iter()
        .filter(|(m, msg)| filter.keeps(m, msg, now))
        .collect())
}

pub(crate) fn list(args: QueueListArgs) -> Result<ExitCode> {
    let config = match load(&args.common) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let messages = match Api::reach(&config)? {
        Reach::Running(api) => list_online(&api, &args.filter)?,
        Reach::NotRunning(_) => read_spool(&config, &args.filter)?
            .iter()
            .map(|(m, msg)| postern_admin::summary(m, Some(msg)))
            .collect(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"messages": messages, "total": messages.len()}))?
        );
    } else {
        print!("{}", table(&messages));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(messages: &[Value]) -> String {
    let mut out = format!(
        "{:<26}  {:<8}  {:<20}  {:>9}  {:<30}  {}\n",
        "ID", "STATE", "ARRIVAL", "SIZE", "SENDER", "RECIPIENTS"
    );
    for m in messages {
        let recipients: Vec<&str> = m["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let sender = m["sender"].as_str().unwrap_or("");
        out.push_str(&format!(
            "{:<26}  {:<8}  {:<20}  {:>9}  {:<30}  {}\n",
            m["id"].as_str().unwrap_or("?"),
            m["state"].as_str().unwrap_or("?"),
            m["arrival"].as_str().unwrap_or("?"),
            // As a number: a JSON value's Display ignores the column width.
            m["size"].as_u64().unwrap_or(0),
            if sender.is_empty() { "<>" } else { sender },
            recipients.join(", ")
        ));
    }
    out.push_str(&format!("{} message(s)\n", messages.len()));
    out
}

pub(crate) fn show(args: QueueShowArgs) -> Result<ExitCode> {
    let config = match load(&args.common) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let detail = match Api::reach(&config)? {
        Reach::Running(api) => api.get(&format!("/v1/queue/{}", urlish(&args.id)?), &[])?,
        Reach::NotRunning(_) => {
            let found = read_spool(&config, &QueueFilterArgs::default())?
                .into_iter()
                .find(|(m, _)| m.id.to_string().eq_ignore_ascii_case(&args.id));
            match found {
                Some((m, msg)) => postern_admin::detail(&m, &msg),
                None => return Err(anyhow!("no message {:?} in the queue", args.id)),
            }
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(std::slice::from_ref(&detail));
    out.truncate(out.rfind("1 message(s)").unwrap_or(out.len()));
    out.push_str(&format!(
        "next attempt: {}\n",
        detail["next_attempt"].as_str().unwrap_or("-")
    ));
    for r in detail["recipients_detail"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "recipient {} {}{}\n",
            r["address"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?"),
            r["reply"]
                .as_str()
                .map(|t| format!(": {t}"))
                .unwrap_or_default()
        ));
    }
    for h in detail["history"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{} {}\n",
            h["at"].as_str().unwrap_or("-"),
            h["what"].as_str().unwrap_or("")
        ));
    }
    out.push('\n');
    for h in detail["headers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}: {}\n",
            h[0].as_str().unwrap_or(""),
            h[1].as_str().unwrap_or("")
        ));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// A queue id as it goes in a path: letters and digits only, so nothing else reaches the URL.
fn urlish(id: &str) -> Result<&str> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(anyhow!("{id:?} is not a queue id"))
    }
}

pub(crate) fn act(args: QueueActArgs, what: Act) -> Result<ExitCode> {
    let config = match load(&args.common) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let selecting = has_filter(&args.filter) || args.all;
    if args.ids.is_empty() != selecting {
        eprintln!(
            "postern: name queue ids, or choose messages with filters (--state, --sender, --recipient, --domain, --older-than) or --all; not both"
        );
        return Ok(ExitCode::from(2));
    }
    let api = match Api::reach(&config)? {
        Reach::Running(api) => api,
        Reach::NotRunning(why) => {
            eprintln!("postern: {why}: only the running server changes its queue");
            return Ok(ExitCode::from(1));
        }
    };
    let ids: Vec<String> = if selecting {
        list_online(&api, &args.filter)?
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect()
    } else {
        for id in &args.ids {
            urlish(id)?;
        }
        args.ids.clone()
    };
    if ids.is_empty() {
        eprintln!("postern: no message matches");
        return Ok(ExitCode::SUCCESS);
    }
    if selecting && !args.yes && !confirm(what, ids.len())? {
        eprintln!("postern: nothing done");
        return Ok(ExitCode::from(1));
    }
    let bar = indicatif::ProgressBar::new(ids.len() as u64);
    if !std::io::stderr().is_terminal() || ids.len() == 1 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results = Vec::new();
    let mut failed = 0usize;
    for id in &ids {
        let answer = match what {
            Act::Delete => api.delete(&format!("/v1/queue/{id}")),
            _ => api.post(&format!("/v1/queue/{id}/{}", what.verb())),
        };
        match answer {
            Ok(body) => results.push(body),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("postern: {id}: {e}"));
                results.push(json!({"id": id, "error": e.to_string()}));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"results": results}))?
        );
    } else {
        for r in results.iter().filter(|r| r.get("error").is_none()) {
            let outcome = if r["deleted"] == true {
                "deleted"
            } else {
                r["state"].as_str().unwrap_or("?")
            };
            println!("{} {outcome}", r["id"].as_str().unwrap_or("?"));
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Asks on the terminal; without one, refuses (a script says --yes).
fn confirm(what: Act, n: usize) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(anyhow!(
            "{} {n} message(s): no terminal to confirm on; add --yes",
            what.verb()
        ));
    }
    eprint!("{} {n} message(s)? [y/N] ", what.verb());
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
