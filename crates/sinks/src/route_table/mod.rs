//! `builtin:route-table` at `route`: chooses a recipient's next hop from a TOML table of rules
//! (by recipient domain or address, sender, header) — a smarthost over SMTP, an LMTP store,
//! local delivery, or drop. A recipient no rule matches is left to the default router.
//!
//! Properties: `file` (required): the table, relative to the data folder unless absolute.
//!
//! The file is read when the binding is made — an error there refuses the binding, naming the
//! file and line — and again whenever its modification time or size changes. A changed file
//! with an error is logged and ignored: the last good table stays in force.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Sink, SinkError, SinkFactory, SinkSpec,
};
use tracing::{info, warn};

use crate::{data_dir, props};

mod rules;

use rules::{Action, Subject, Table};

pub(crate) struct Factory;

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "route-table"
    }

    fn summary(&self) -> &'static str {
        "routes recipients by a TOML table of rules to a smarthost, an LMTP store, local delivery or nowhere"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["file"])
    }

    fn fits(&self, event: &Event) -> bool {
        *event == Event::Route
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let path = data_dir::resolve(&props::required(&spec.properties, "file")?);
        let (table, stamp) = load(&path).map_err(SinkError::Config)?;
        Ok(Instance::Async(Arc::new(RouteTable {
            path,
            state: Mutex::new(State {
                table: Arc::new(table),
                stamp,
            }),
        })))
    }
}

/// A file's modification time and size: a change of either means it is read again.
type Stamp = Option<(SystemTime, u64)>;

struct State {
    /// The last table that parsed.
    table: Arc<Table>,
    /// The file as last read (good or bad), so a bad file is reported once, not per event.
    stamp: Stamp,
}

struct RouteTable {
    path: PathBuf,
    state: Mutex<State>,
}

fn stamp(path: &std::path::Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads and parses the table; an error names the file and the line.
fn load(path: &std::path::Path) -> Result<(Table, Stamp), String> {
    let stamp = stamp(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("route table {}: {e}", path.display()))?;
    let table = rules::parse(&text).map_err(|why| format!("{}: {why}", path.display()))?;
    Ok((table, stamp))
}

impl RouteTable {
    /// The table in force, read again first if the file changed.
    fn table(&self) -> Arc<Table> {
        let now = stamp(&self.path);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now != state.stamp {
            state.stamp = now;
            match load(&self.path) {
                Ok((table, stamp)) => {
                    info!(file = %self.path.display(), rules = table.rules.len(), "route table reloaded");
                    state.table = Arc::new(table);
                    state.stamp = stamp;
                }
                Err(why) => warn!("{why}; the last good route table stays in force"),
            }
        }
        state.table.clone()
    }
}

impl Sink for RouteTable {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        let Some(rcpt) = ctx.current_recipient() else {
            return Call::Ready(Ok(Outcome::next()));
        };
        if rcpt.next_hop.is_some() {
            // A sink before this one chose already.
            return Call::Ready(Ok(Outcome::next()));
        }
        let table = self.table();
        let headers = |name: &str| ctx.message.content.header_values(name);
        let subject = Subject {
            recipient: &rcpt.address,
            sender: ctx.message.sender_address(),
            headers: &headers,
        };
        let change = match table.route(&subject) {
            None => return Call::Ready(Ok(Outcome::next())),
            Some((Action::NextHop(hop), _)) => Change::SetNextHop(hop.clone()),
            Some((Action::Local, _)) => {
                Change::SetNextHop(format!("local:{}", rcpt.domain().to_ascii_lowercase()))
            }
            Some((Action::Drop, line)) => {
                info!(recipient = %rcpt.address, line, "route table drops the recipient");
                Change::RemoveRecipient(rcpt.address.clone())
            }
        };
        Call::Ready(Ok(Outcome::changes(vec![change])))
    }
}
