//! Printing bindings: a table for people, JSON for scripts.

use anyhow::Result;
use postern_sink_api::Event;
use postern_sink_host::{Binding, Catalog, Entry, SinkRef, Snapshot, priority};
use serde::Serialize;

/// One row of `binding list` / the object of `binding show --json` (a versioned shape of its own).
#[derive(Serialize)]
struct Row<'a> {
    event: String,
    position: usize,
    priority: u16,
    name: &'a str,
    id: String,
    sink: String,
    rule: &'a str,
    enabled: bool,
    mode: &'a str,
    cache: bool,
    on_error: &'a str,
    timeout_ms: u64,
    max_firings: Option<u64>,
    max_concurrency: Option<u32>,
    /// `FAILURES/SECONDS`.
    breaker: Option<String>,
    properties: &'a postern_mailmsg::Properties,
}

fn row<'a>(event: &Event, position: usize, b: &'a Binding) -> Row<'a> {
    Row {
        event: event.name().into_owned(),
        position,
        priority: b.priority,
        name: &b.name,
        id: b.id.to_string(),
        sink: b.sink.to_string(),
        rule: &b.rule,
        enabled: b.enabled,
        mode: b.mode.as_str(),
        cache: b.cache,
        on_error: b.on_error.as_str(),
        timeout_ms: b.timeout.as_millis() as u64,
        max_firings: b.max_firings,
        max_concurrency: b.max_concurrency,
        breaker: b.breaker.map(|p| p.to_string()),
        properties: &b.properties,
    }
}

/// Prints the effective order per event: what runs, in the order it runs.
pub(crate) fn list(
    bindings: &[Binding],
    snapshot: &Snapshot,
    only: Option<&Event>,
    all: bool,
    json: bool,
) -> Result<()> {
    let mut events: Vec<String> = snapshot
        .event_names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if let Some(event) = only {
        events = vec![event.name().into_owned()];
    }
    let defaults = Binding::new(
        "(default)",
        Event::SessionStart,
        postern_sink_host::SinkRef::Builtin("default".into()),
    );
    let mut rows: Vec<(String, Option<Row>)> = Vec::new();
    for name in &events {
        let Ok(event) = Event::parse(name) else {
            continue;
        };
        let chain = snapshot.chain(&event);
        let bound = chain.iter().any(|e| matches!(e, Entry::Bound(_)));
        if !bound && !all {
            continue;
        }
        for (position, entry) in chain.iter().enumerate() {
            match entry {
                Entry::Bound(b) => {
                    rows.push((name.clone(), Some(row(&event, position + 1, &b.binding))))
                }
                Entry::Default if all => {
                    let mut r = row(&event, position + 1, &defaults);
                    r.priority = priority::DEFAULT_SINK;
                    r.id = String::new();
                    r.sink = "(the server's own behaviour)".into();
                    rows.push((name.clone(), Some(r)));
                }
                Entry::Default => {}
            }
        }
    }
    // Disabled bindings run nowhere; they are listed after the chains.
    for b in bindings.iter().filter(|b| !b.enabled) {
        if only.is_none_or(|e| *e == b.event) {
            rows.push((b.event.name().into_owned(), Some(row(&b.event, 0, b))));
        }
    }
    if json {
        let list: Vec<&Row> = rows.iter().filter_map(|(_, r)| r.as_ref()).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no bindings (use --all to see the default sinks)");
        return Ok(());
    }
    let table: Vec<[String; 7]> = rows
        .iter()
        .filter_map(|(_, r)| r.as_ref())
        .map(|r| {
            let state = match (r.enabled, r.mode) {
                (false, _) => "disabled",
                (true, "shadow") => "shadow",
                _ => "enabled",
            };
            let position = if r.position == 0 {
                "-".to_owned()
            } else {
                r.position.to_string()
            };
            [
                r.event.clone(),
                position,
                r.priority.to_string(),
                r.name.to_owned(),
                r.sink.clone(),
                state.to_owned(),
                r.rule.to_owned(),
            ]
        })
        .collect();
    print_table(
        ["EVENT", "#", "PRIO", "NAME", "SINK", "STATE", "RULE"],
        &[false, true, true, false, false, false, false],
        &table,
    );
    Ok(())
}

/// Prints one binding.
pub(crate) fn show(b: &Binding, json: bool) -> Result<()> {
    let r = row(&b.event, 0, b);
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("id          {}", r.id);
    println!("name        {}", r.name);
    println!("event       {}", r.event);
    println!("sink        {}", r.sink);
    println!("priority    {}", r.priority);
    println!(
        "rule        {}",
        if r.rule.is_empty() {
            "(always)"
        } else {
            r.rule
        }
    );
    println!("enabled     {}", r.enabled);
    println!("mode        {}", r.mode);
    println!("cache       {}", r.cache);
    println!("timeout     {} ms", r.timeout_ms);
    println!("on_error    {}", r.on_error);
    if let Some(max) = r.max_firings {
        println!("max_firings {max}");
    }
    if let Some(max) = r.max_concurrency {
        println!("max_concurrency {max}");
    }
    if let Some(breaker) = &r.breaker {
        println!(
            "breaker     {breaker} (failures/seconds; cool-down {} s)",
            breaker.rsplit('/').next().unwrap_or("?")
        );
    }
    for (key, value) in b.properties.iter() {
        println!("prop        {key} = {value}");
    }
    Ok(())
}

/// Prints the event names.
pub(crate) fn events() {
    let width = Event::NAMES.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, original) in Event::NAMES {
        println!("{name:<width$} {original}");
    }
}

/// Prints rows under a header, each column as wide as its widest cell; `right` aligns numbers.
/// The last column is not padded. A reader that goes away (`| head`) ends the output quietly.
fn print_table<const N: usize>(header: [&str; N], right: &[bool; N], rows: &[[String; N]]) {
    use std::io::Write as _;
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut stdout = std::io::stdout().lock();
    let mut line = |cells: [&str; N]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else if right[i] {
                out.push_str(&format!("{cell:>w$}  ", w = widths[i]));
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        writeln!(stdout, "{}", out.trim_end())
    };
    if line(header).is_err() {
        return;
    }
    for row in rows {
        if line(row.each_ref().map(String::as_str)).is_err() {
            return;
        }
    }
}

/// Prints the built-in sinks, one a line: name, what it does, its properties.
pub(crate) fn sinks(catalog: &Catalog) {
    let rows: Vec<[String; 3]> = catalog
        .names()
        .into_iter()
        .filter_map(|name| {
            let factory = SinkRef::parse(&name)
                .ok()
                .and_then(|sink| catalog.factory(&sink).ok())?;
            let properties = match factory.properties() {
                Some([]) => "(none)".to_owned(),
                Some(keys) => keys.join(", "),
                None => "(any)".to_owned(),
            };
            Some([name, properties, factory.summary().to_owned()])
        })
        .collect();
    print_table(
        ["SINK", "PROPERTIES", "WHAT IT DOES"],
        &[false, false, false],
        &rows,
    );
}
