//! `postern sink try`: runs one sink once against a synthetic context, with no server, and
//! prints its outcome as JSON — how a sink author tries a sink in seconds.
//!
//! The sink is made from the same catalog as the server's, through a one-binding registry
//! compiled like a real one (so a bad property or a sink that does not fit the event is refused
//! the same way), and called through the dispatcher's own path with the binding's timeout. Its
//! outcome is printed, never applied. Exit 0 when the sink ran, 1 when it failed (error, panic,
//! timeout), 2 for a usage error.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use postern_mailmsg::{Content, MailMsg, PropertyBag, Recipient, Sender};
use postern_sink_api::{
    Change, Command, Context, Event, EventKind, Outcome, Reply, Scope, SessionInfo, Verdict,
};
use postern_sink_host::{Binding, SinkRef, Snapshot};
use serde_json::{Value as Json, json};

use crate::binding::property;
use crate::cli::TryArgs;
use crate::setup;

/// The version of the printed JSON.
const OUTPUT_VERSION: u32 = 1;

pub(crate) fn run(args: &TryArgs) -> Result<ExitCode> {
    let (bound, ctx) = match prepare(args) {
        Ok(ready) => ready,
        Err(message) => {
            eprintln!("postern sink try: {message}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let result = runtime.block_on(async { bound.bound()[0].call_once(&ctx).await });
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let binding = &bound.bound()[0].binding;
    let mut out = json!({
        "version": OUTPUT_VERSION,
        "event": binding.event.name(),
        "sink": binding.sink.to_string(),
        "elapsed_ms": elapsed_ms,
    });
    let code = match result {
        Ok(outcome) => {
            out["ran"] = json!(true);
            out["outcome"] = outcome_json(&outcome);
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("postern sink try: sink {reason}");
            out["ran"] = json!(false);
            out["error"] = json!(format!("sink {reason}"));
            ExitCode::from(1)
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    // A blocking sink still running past its timeout keeps its thread; the process ends anyway.
    runtime.shutdown_background();
    Ok(code)
}

/// The one-binding snapshot and the context, or a usage error.
fn prepare(args: &TryArgs) -> Result<(Snapshot, Context), String> {
    let event = Event::parse(&args.event).map_err(|e| format!("--event: {e}"))?;
    let sink = SinkRef::parse(&args.sink).map_err(|e| format!("--sink: {e}"))?;
    let mut binding = Binding::new("try", event.clone(), sink);
    for prop in &args.props {
        let (key, value) = property(prop).map_err(|u| format!("--prop: {}", u.0))?;
        binding.properties.set(key, value);
    }
    if let Some(t) = &args.timeout {
        binding.timeout =
            postern_config::parse_duration(t).map_err(|e| format!("--timeout: {e}"))?;
        if binding.timeout.is_zero() {
            return Err("--timeout must be more than zero".into());
        }
    }
    let snapshot = Snapshot::compile(&[binding], &setup::catalog(), 0, None).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let ctx = context(args, event)?;
    Ok((snapshot, ctx))
}

/// A context as the server would build it for the event, from the options.
fn context(args: &TryArgs, event: Event) -> Result<Context, String> {
    let mut message = MailMsg::default();
    if let Some(from) = &args.mail_from {
        message.sender = Some(Sender {
            address: from.clone(),
            ..Sender::default()
        });
    }
    for rcpt in &args.rcpts {
        message.add_recipient(Recipient::new(rcpt.clone()));
    }
    if let Some(path) = &args.message {
        let raw = std::fs::read(path).map_err(|e| format!("--message {}: {e}", path.display()))?;
        message.content = Content::new(raw);
    }
    let command = match (&args.command, &event) {
        (Some(line), _) => {
            let command = Command::parse(line)
                .ok_or_else(|| format!("--command {line:?} does not start with a verb"))?;
            if let Event::Inbound(Some(verb)) = &event
                && *verb != command.verb
            {
                return Err(format!(
                    "--command {line:?} is not a {verb} command (the event is {})",
                    event.name()
                ));
            }
            Some(command)
        }
        (None, Event::Inbound(Some(verb))) => Command::parse(&default_line(verb.as_str(), args)),
        (None, Event::Inbound(None)) => {
            return Err("--event inbound:* needs --command (the command line to try)".into());
        }
        (None, _) => None,
    };
    let server = PropertyBag::new();
    let mut ctx = Context::new(event.clone(), server);
    let protocol = event.kind() != EventKind::Transport;
    ctx.command = command.map(Arc::new);
    ctx.session = Some(Arc::new(SessionInfo {
        id: 1,
        remote: args.remote,
        local: SocketAddr::from(([127, 0, 0, 1], 25)),
        helo: Some(args.helo.clone()),
        esmtp: true,
        tls: false,
        auth_user: None,
        may_relay: false,
    }));
    ctx.session_props = protocol.then(PropertyBag::new);
    if !message.recipients.is_empty() && per_recipient(&event) {
        ctx.recipient = Some(0);
    }
    ctx.message = Arc::new(message);
    Ok(ctx)
}

/// The command line of an inbound event when `--command` is not given.
fn default_line(verb: &str, args: &TryArgs) -> String {
    match verb {
        "EHLO" | "HELO" => format!("{verb} {}", args.helo),
        "MAIL" => format!("MAIL FROM:<{}>", args.mail_from.as_deref().unwrap_or("")),
        "RCPT" => format!(
            "RCPT TO:<{}>",
            args.rcpts.first().map_or("", String::as_str)
        ),
        other => other.to_owned(),
    }
}

/// Events the server raises once per recipient.
fn per_recipient(event: &Event) -> bool {
    matches!(
        event.name().as_ref(),
        "categorize" | "route" | "store" | "outbound:per-recipient"
    )
}

fn reply_json(reply: &Reply) -> Json {
    json!({
        "code": reply.code,
        "enhanced": reply.enhanced.map(|e| e.to_string()),
        "text": reply.lines.join("\n"),
    })
}

fn outcome_json(outcome: &Outcome) -> Json {
    let verdict = match &outcome.verdict {
        Verdict::Continue => json!({ "type": "continue" }),
        Verdict::Consume => json!({ "type": "consume" }),
        Verdict::Reply(r) => json!({ "type": "reply", "reply": reply_json(r) }),
        Verdict::TempFail(text) => json!({ "type": "tempfail", "text": text }),
        Verdict::Reject(text) => json!({ "type": "reject", "text": text }),
        Verdict::Disconnect(r) => {
            json!({ "type": "disconnect", "reply": r.as_ref().map(reply_json) })
        }
    };
    let changes: Vec<Json> = outcome.changes.iter().map(change_json).collect();
    json!({ "verdict": verdict, "changes": changes })
}

fn scope(scope: Scope) -> &'static str {
    match scope {
        Scope::Server => "server",
        Scope::Session => "session",
        Scope::Message => "message",
        Scope::Recipient => "recipient",
    }
}

fn change_json(change: &Change) -> Json {
    match change {
        Change::SetReply(r) => json!({ "type": "set-reply", "reply": reply_json(r) }),
        Change::AddEhloKeyword(k) => json!({ "type": "add-ehlo-keyword", "keyword": k }),
        Change::AddHeader { name, value } => {
            json!({ "type": "add-header", "name": name, "value": value })
        }
        Change::PrependHeader { name, value } => {
            json!({ "type": "prepend-header", "name": name, "value": value })
        }
        Change::SetHeader { name, value } => {
            json!({ "type": "set-header", "name": name, "value": value })
        }
        Change::RemoveHeader(name) => json!({ "type": "remove-header", "name": name }),
        Change::ReplaceBody(body) => json!({
            "type": "replace-body",
            "body": String::from_utf8_lossy(body),
        }),
        Change::AddRecipient(a) => json!({ "type": "add-recipient", "address": a }),
        Change::RemoveRecipient(a) => json!({ "type": "remove-recipient", "address": a }),
        Change::SetRecipientAddress(a) => json!({ "type": "set-recipient", "address": a }),
        Change::SetNextHop(h) => json!({ "type": "set-next-hop", "next_hop": h }),
        Change::FailRecipient(r) => json!({ "type": "fail-recipient", "reason": r }),
        Change::SetProperty {
            scope: s,
            key,
            value,
        } => json!({
            "type": "set-property",
            "scope": scope(*s),
            "key": key,
            "value": value,
        }),
        Change::RemoveProperty { scope: s, key } => {
            json!({ "type": "remove-property", "scope": scope(*s), "key": key })
        }
        Change::SetFate(fate) => json!({ "type": "set-fate", "fate": fate.as_str() }),
        Change::SetCommand(line) => json!({ "type": "set-command", "command": line }),
        Change::AddCommand(line) => json!({ "type": "add-command", "command": line }),
        Change::SetHosts(hosts) => json!({ "type": "set-hosts", "hosts": hosts }),
        Change::InsertHeader { index, name, value } => {
            json!({ "type": "insert-header", "index": index, "name": name, "value": value })
        }
        Change::ChangeHeader { name, index, value } => {
            json!({ "type": "change-header", "name": name, "index": index, "value": value })
        }
        Change::SetSender(address) => json!({ "type": "set-sender", "address": address }),
        Change::SetClient(info) => json!({
            "type": "set-client",
            "address": info.remote.to_string(),
            "helo": info.helo,
            "esmtp": info.esmtp,
            "login": info.auth_user,
        }),
    }
}
