//! `builtin:mailing-list` at `categorize`: a recipient that is a list's address is replaced by
//! the list's members, under the list's bounce address and with the RFC 2369 / RFC 8058 list
//! header fields. Lists live in a TOML file (property `file`, relative to the data folder) that
//! is read again when it changes; a file with errors is refused (logged with file and line)
//! and the last good version stays in force.
//!
//! # Layout
//!
//! - this file: the lists file, expansion, posting rights, moderation, bounce counting.
//! - `requests`: what reads the list state: the members in force, VERP senders, and the
//!   subscription requests by mail (`crate::list_subscribe`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use postern_mailmsg::{Fate, Value};
use postern_sink_api::{
    BlockingSink, Change, Context, Event, Instance, Outcome, Scope, SinkError, SinkFactory,
    SinkResult, SinkSpec, Verdict,
};
use serde::Deserialize;
use tracing::{error, info};

use crate::list_bounces::{State, failed_recipients, state_path, verp_member};
use crate::list_subscribe::request_for;

mod requests;

use crate::props;

/// The message property that records a moderated post was held: a released message carries
/// it, and is then expanded (releasing it is the moderator's approval).
const HELD: &str = "postern.list.held";

/// The message property naming the lists already expanded for the message (space-separated,
/// lower-case), so that lists naming each other do not expand forever.
const EXPANDED: &str = "postern.list.expanded";

/// The message property naming the VERP lists expanded for the message (space-separated,
/// lower-case): the members those lists added get their own envelope sender when they are
/// categorized in their turn (a sink's changes reach only the current recipient).
const VERP: &str = "postern.list.verp";

pub(crate) struct Factory;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    list: Vec<List>,
}

/// One `[[list]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    address: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    posting: Posting,
    #[serde(default)]
    moderated: bool,
    unsubscribe_url: Option<String>,
    /// Failed deliveries to a member (reported to the bounce address) before it is removed.
    #[serde(default = "default_threshold")]
    bounce_threshold: u32,
    /// Each member's copy goes with its own envelope sender, `LIST-bounces+member=domain@…`.
    #[serde(default)]
    verp: bool,
}

fn default_threshold() -> u32 {
    5
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Posting {
    #[default]
    Members,
    Anyone,
    Owners,
}

impl List {
    fn may_post(&self, sender: &str) -> bool {
        let among = |list: &[String]| list.iter().any(|a| a.eq_ignore_ascii_case(sender));
        match self.posting {
            Posting::Anyone => true,
            Posting::Members => among(&self.members) || among(&self.owners),
            Posting::Owners => among(&self.owners),
        }
    }

    fn is_owner(&self, sender: &str) -> bool {
        self.owners.iter().any(|a| a.eq_ignore_ascii_case(sender))
    }
}

/// Parses a lists file; the error names the file, line and problem.
fn parse(path: &str, text: &str) -> Result<Vec<List>, String> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        match line {
            Some(line) => format!("{path}:{line}: {}", e.message()),
            None => format!("{path}: {}", e.message()),
        }
    })?;
    for list in &file.list {
        if !list.address.contains('@') {
            let line = text
                .lines()
                .position(|l| l.contains(&list.address))
                .map_or(0, |i| i + 1);
            return Err(format!(
                "{path}:{line}: list address {:?} has no domain",
                list.address
            ));
        }
    }
    Ok(file.list)
}

/// The stamp (modification time, length) of the file last read, and the lists in force.
type Cached = (Option<(SystemTime, u64)>, Arc<Vec<List>>);

struct MailingList {
    path: PathBuf,
    cache: Mutex<Cached>,
    /// Serializes the read-modify-write of the state file.
    state: Mutex<()>,
}

impl MailingList {
    /// The lists in force: the file read again when it changed; the last good ones on error.
    fn lists(&self) -> Arc<Vec<List>> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0 == stamp {
            return cache.1.clone();
        }
        cache.0 = stamp;
        let name = self.path.display().to_string();
        match std::fs::read_to_string(&self.path)
            .map_err(|e| format!("{name}: cannot read: {e}"))
            .and_then(|text| parse(&name, &text))
        {
            Ok(lists) => cache.1 = Arc::new(lists),
            Err(e) => error!("lists file refused, the last good version stays in force: {e}"),
        }
        cache.1.clone()
    }
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "mailing-list"
    }

    fn summary(&self) -> &'static str {
        "expands mailing lists from a TOML file: members, posting rights, moderation, list headers, \
         VERP, bounces, subscription by mail"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["file"])
    }

    fn fits(&self, event: &Event) -> bool {
        matches!(event, Event::Categorize)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let file = props::text(&spec.properties, "file")?.unwrap_or("lists.toml".into());
        let path = crate::data_dir::resolve(&file);
        // Blocking: the lists file is read and the state file written and synced.
        Ok(Instance::Blocking(Arc::new(MailingList {
            path,
            cache: Mutex::new((None, Arc::new(Vec::new()))),
            state: Mutex::new(()),
        })))
    }
}

impl BlockingSink for MailingList {
    fn on_event(&self, ctx: &Context) -> SinkResult {
        self.expand(ctx)
    }
}

impl MailingList {
    fn expand(&self, ctx: &Context) -> SinkResult {
        let Some(rcpt) = ctx.current_recipient() else {
            return Ok(Outcome::next());
        };
        let lists = self.lists();
        if let Some((list, member)) = lists
            .iter()
            .find_map(|l| verp_member(&bounce_address(&l.address), &rcpt.original).map(|m| (l, m)))
        {
            // As RCPT gave it: sub-addressing may have cut the tag off since. The address names the member: the bounce counts against it whatever the report
            // says (or whether it is a report at all: some servers send plain text).
            return self.bounce(list, &rcpt.address, vec![member]);
        }
        if let Some(list) = lists
            .iter()
            .find(|l| bounce_address(&l.address).eq_ignore_ascii_case(&rcpt.address))
        {
            let failed = failed_recipients(ctx.message.content.bytes());
            return self.bounce(list, &rcpt.address, failed);
        }
        if let Some((list, request)) = lists
            .iter()
            .find_map(|l| request_for(&l.address, &rcpt.original).map(|r| (l, r)))
        {
            return self.request(ctx, list, request);
        }
        let Some(list) = lists
            .iter()
            .find(|l| l.address.eq_ignore_ascii_case(&rcpt.address))
        else {
            return self.verp_sender(ctx, &lists, &rcpt.original);
        };
        let list = &self.effective(list)?;
        let key = list.address.to_ascii_lowercase();
        let expanded = ctx
            .message
            .properties
            .get(EXPANDED)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if expanded.split(' ').any(|done| done == key) {
            // A list reached again through another list (two lists naming each other): its
            // members are already recipients, so this copy is dropped instead of looping.
            return Ok(
                Outcome::changes(vec![Change::RemoveRecipient(rcpt.address.clone())])
                    .with_verdict(Verdict::Consume),
            );
        }
        let sender = ctx.message.sender_address();
        let consume = |changes| Ok(Outcome::changes(changes).with_verdict(Verdict::Consume));
        if !list.may_post(sender) {
            let who = match list.posting {
                Posting::Owners => "its owners",
                _ => "its members",
            };
            return consume(vec![Change::FailRecipient(format!(
                "550 5.7.1 <{}>: only {who} may post to this list",
                list.address
            ))]);
        }
        let released = ctx.message.properties.get(HELD).is_some();
        if released && let Some(id) = ctx.message.id {
            // Released (`postern queue release` or an approval): no longer awaiting one.
            let id = id.to_string();
            self.state(|state| {
                if let Some(entry) = state.lists.get_mut(&key) {
                    entry.held.remove(&id);
                }
            })?;
        }
        if list.moderated && !list.is_owner(sender) && !released {
            if let Some(id) = ctx.message.id {
                // Recorded so that an owner's `approve ID` to LIST-request@ can release it.
                self.state(|state| {
                    state
                        .lists
                        .entry(key.clone())
                        .or_default()
                        .held
                        .insert(id.to_string())
                })?;
            }
            return consume(vec![
                Change::SetProperty {
                    scope: Scope::Message,
                    key: HELD.to_owned(),
                    value: Value::from(list.address.as_str()),
                },
                Change::SetFate(Fate::Hold),
            ]);
        }
        let (local, domain) = list.address.split_once('@').unwrap_or((&list.address, ""));
        let mut changes: Vec<Change> = list
            .members
            .iter()
            .map(|m| Change::AddRecipient(m.clone()))
            .collect();
        let mut unsubscribe = format!("<mailto:{local}-unsubscribe@{domain}>");
        if let Some(url) = &list.unsubscribe_url {
            unsubscribe = format!("<{url}>, {unsubscribe}");
        }
        changes.extend([
            Change::SetSender(bounce_address(&list.address)),
            header("List-Id", format!("<{local}.{domain}>")),
            header("List-Post", format!("<mailto:{}>", list.address)),
            header("List-Unsubscribe", unsubscribe),
        ]);
        if list.unsubscribe_url.is_some() {
            changes.push(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ));
        }
        changes.push(Change::SetProperty {
            scope: Scope::Message,
            key: EXPANDED.to_owned(),
            value: Value::from(format!("{expanded} {key}").trim()),
        });
        if list.verp {
            let verp = ctx.message.properties.get_str(VERP).unwrap_or("");
            changes.push(Change::SetProperty {
                scope: Scope::Message,
                key: VERP.to_owned(),
                value: Value::from(format!("{verp} {key}").trim()),
            });
        }
        changes.push(Change::RemoveRecipient(rcpt.address.clone()));
        consume(changes)
    }
}

impl MailingList {
    /// Runs `f` on the state file under the lock, writing it back when `f` changed it.
    fn state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, SinkError> {
        let _guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let path = state_path(&self.path);
        let mut state = State::load(&path).map_err(SinkError::Failed)?;
        let before = state.clone();
        let out = f(&mut state);
        if state != before {
            state.save(&path).map_err(SinkError::Failed)?;
        }
        Ok(out)
    }

    /// A message to the list's bounce address: each member a DSN reports as failed is counted,
    /// and removed at the threshold. The DSN itself is consumed (delivered nowhere).
    fn bounce(&self, list: &List, address: &str, failed: Vec<String>) -> SinkResult {
        let list = &self.effective(list)?;
        let removed = self.state(|state| {
            let entry = state
                .lists
                .entry(list.address.to_ascii_lowercase())
                .or_default();
            let mut removed = Vec::new();
            for member in failed {
                if !list.members.iter().any(|m| m.eq_ignore_ascii_case(&member)) {
                    continue;
                }
                let count = entry.bounces.entry(member.clone()).or_insert(0);
                *count += 1;
                if *count >= list.bounce_threshold && entry.removed.insert(member.clone()) {
                    removed.push(member);
                }
            }
            removed
        })?;
        for member in removed {
            info!(list = %list.address, member = %member, "member removed for bouncing");
        }
        Ok(
            Outcome::changes(vec![Change::RemoveRecipient(address.to_owned())])
                .with_verdict(Verdict::Consume),
        )
    }
}

/// `LIST-bounces@DOMAIN`: the envelope sender of the list's mail.
fn bounce_address(list: &str) -> String {
    let (local, domain) = list.split_once('@').unwrap_or((list, ""));
    format!("{local}-bounces@{domain}")
}

fn header(name: &str, value: String) -> Change {
    Change::SetHeader {
        name: name.to_owned(),
        value,
    }
}

#[cfg(test)]
#[path = "mailing_list_tests.rs"]
mod tests;
