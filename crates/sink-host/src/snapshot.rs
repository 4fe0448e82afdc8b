//! The compiled registry: for each event, the ordered chain of sinks to call.
//!
//! A snapshot is made once per registry load and never changes; a reload builds a new one and
//! swaps it in whole. Each chain is sorted stably by (priority, registration order) with the
//! default sink at priority 16384, rules already parsed and cached sinks already made, so a
//! dispatch only walks a slice.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use postern_sink_api::{Concurrency, Event, Instance, SinkFactory, SinkSpec, Verb};
use tokio::sync::Mutex;

use crate::binding::{Binding, BindingId, SinkRef, priority};
use crate::catalog::Catalog;
use crate::decisions::DecisionLog;
use crate::isolation::Isolation;
use crate::rule::Rule;
use crate::stats::BindingStats;

/// How many instances a serialized sink gets.
const SERIALIZED_POOL: usize = 4;

/// How a binding's sink instance is had.
pub(crate) enum Slot {
    /// One instance made at load, shared by every call.
    Cached(Instance),
    /// A fresh instance per event (`cache = false`).
    PerEvent(Arc<dyn SinkFactory>, SinkSpec),
    /// Instances whose calls must not overlap, each behind its own lock.
    Pool(Vec<Mutex<Instance>>),
}

/// A binding ready to be called.
pub struct Bound {
    /// The binding as registered.
    pub binding: Binding,
    /// Its parsed rule.
    pub rule: Rule,
    /// Its counters (shared with earlier snapshots of the same binding).
    pub stats: Arc<BindingStats>,
    pub(crate) slot: Slot,
    /// Its concurrency limit and breaker (kept across reloads while their settings stay).
    pub(crate) isolation: Arc<Isolation>,
    /// Bound to a command verb, it is also in the EHLO chain (`SinkFactory::also_at_ehlo`).
    pub(crate) also_at_ehlo: bool,
}

/// One step of a chain.
#[derive(Clone)]
pub enum Entry {
    /// The event's default sink: the server's own behaviour.
    Default,
    /// A bound sink.
    Bound(Arc<Bound>),
}

/// A binding that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binding {binding:?}: {message}")]
pub struct CompileError {
    /// The binding's name.
    pub binding: String,
    /// What is wrong.
    pub message: String,
}

/// The compiled registry.
pub struct Snapshot {
    /// Counts loads, so logs can say which registry a session ran on.
    pub generation: u64,
    chains: HashMap<Event, Arc<[Entry]>>,
    /// The chain of a verb nobody bound by name: `inbound:*` bindings without a verb list.
    unknown_verb: Arc<[Entry]>,
    bound: Vec<Arc<Bound>>,
    /// Bindings that are registered but disabled (listed, never called).
    disabled: Vec<Binding>,
    /// Where the dispatcher records the bindings that fired; shared by every snapshot of a
    /// [`crate::Host`], empty (nothing recorded) until the server opens the log.
    pub(crate) decisions: Arc<OnceLock<Arc<DecisionLog>>>,
}

/// The event names that always have a chain (with their default sink).
fn standard_events() -> Vec<Event> {
    let mut events: Vec<Event> = Verb::STANDARD
        .iter()
        .filter_map(|v| Verb::parse(v))
        .map(|v| Event::Inbound(Some(v)))
        .collect();
    for name in [
        "session-start",
        "end-of-data",
        "session-end",
        "submission",
        "pre-categorize",
        "categorize",
        "post-categorize",
        "route",
        "store",
        "max-size",
        "track",
        "dns-resolve",
        "outbound:session-start",
        "outbound:message-start",
        "outbound:per-recipient",
        "outbound:before-data",
        "outbound:session-end",
        "response",
    ] {
        if let Ok(e) = Event::parse(name) {
            events.push(e);
        }
    }
    events
}

impl Snapshot {
    /// Compiles bindings (in registration order). `previous` lends its counters to bindings
    /// that survive a reload.
    pub fn compile(
        bindings: &[Binding],
        catalog: &Catalog,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Self, Vec<CompileError>> {
        let mut errors = Vec::new();
        let mut bound = Vec::new();
        let mut disabled = Vec::new();
        for binding in bindings {
            match compile_one(binding, catalog, previous) {
                Ok(b) if binding.enabled => bound.push(Arc::new(b)),
                Ok(_) => disabled.push(binding.clone()),
                Err(message) => errors.push(CompileError {
                    binding: binding.name.clone(),
                    message,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // (priority, registration index, entry); the default sink sorts after every binding of
        // equal priority registered before it — it has no registration index, so give it
        // usize::MAX within 16384 and let bindings at 16384 run first.
        let mut lists: HashMap<Event, Vec<(u16, usize, Entry)>> = HashMap::new();
        for event in standard_events() {
            lists.insert(
                event,
                vec![(priority::DEFAULT_SINK, usize::MAX, Entry::Default)],
            );
        }
        let mut unknown: Vec<(u16, usize, Entry)> =
            vec![(priority::DEFAULT_SINK, usize::MAX, Entry::Default)];
        for (index, b) in bound.iter().enumerate() {
            let item = || (b.binding.priority, index, Entry::Bound(b.clone()));
            match &b.binding.event {
                Event::Inbound(None) => match b.rule.verbs() {
                    Some(verbs) => {
                        for verb in verbs {
                            lists
                                .entry(Event::Inbound(Some(verb)))
                                .or_insert_with(unknown_defaults)
                                .push(item());
                        }
                    }
                    None => {
                        for (event, list) in lists.iter_mut() {
                            if matches!(event, Event::Inbound(Some(_))) {
                                list.push(item());
                            }
                        }
                        unknown.push(item());
                    }
                },
                event => {
                    if b.also_at_ehlo
                        && matches!(event, Event::Inbound(Some(v)) if v.as_str() != "EHLO")
                        && let Some(ehlo) = Verb::parse("EHLO")
                    {
                        lists
                            .entry(Event::Inbound(Some(ehlo)))
                            .or_insert_with(unknown_defaults)
                            .push(item());
                    }
                    let is_inbound = matches!(event, Event::Inbound(_));
                    lists
                        .entry(event.clone())
                        .or_insert_with(|| {
                            if is_inbound {
                                unknown_defaults()
                            } else {
                                Vec::new()
                            }
                        })
                        .push(item());
                }
            }
        }
        // A custom verb's chain made after `inbound:*` bindings were spread must get them too.
        let any_verb: Vec<(u16, usize, Entry)> = unknown
            .iter()
            .filter(|(_, _, e)| matches!(e, Entry::Bound(_)))
            .cloned()
            .collect();
        for (event, list) in lists.iter_mut() {
            let is_custom =
                matches!(event, Event::Inbound(Some(v)) if !Verb::STANDARD.contains(&v.as_str()));
            if is_custom {
                for item in &any_verb {
                    if !list.iter().any(|(_, i, _)| *i == item.1) {
                        list.push(item.clone());
                    }
                }
            }
        }
        let finish = |mut list: Vec<(u16, usize, Entry)>| -> Arc<[Entry]> {
            list.sort_by_key(|(p, i, _)| (*p, *i));
            list.into_iter().map(|(_, _, e)| e).collect()
        };
        Ok(Self {
            generation,
            chains: lists.into_iter().map(|(k, v)| (k, finish(v))).collect(),
            unknown_verb: finish(unknown),
            bound,
            disabled,
            decisions: Arc::default(),
        })
    }

    /// The chain for an event.
    pub fn chain(&self, event: &Event) -> &Arc<[Entry]> {
        // Verbs nobody bound by name (and that the server does not know) share one chain.
        self.chains.get(event).unwrap_or(&self.unknown_verb)
    }

    /// Whether any binding (beyond the default sink) would be called for `event`: a caller
    /// may skip preparing a context for an event nobody listens to.
    pub fn is_bound(&self, event: &Event) -> bool {
        self.chain(event)
            .iter()
            .any(|e| matches!(e, Entry::Bound(_)))
    }

    /// Every enabled binding, in registration order.
    pub fn bound(&self) -> &[Arc<Bound>] {
        &self.bound
    }

    /// Registered but disabled bindings.
    pub fn disabled(&self) -> &[Binding] {
        &self.disabled
    }

    /// The counters of a binding, if it is enabled in this snapshot.
    pub fn stats_of(&self, id: BindingId) -> Option<Arc<BindingStats>> {
        self.bound
            .iter()
            .find(|b| b.binding.id == id)
            .map(|b| b.stats.clone())
    }

    /// Every event that has a chain, sorted by name.
    pub fn event_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.chains.keys().map(|e| e.name().into_owned()).collect();
        names.sort_unstable();
        names
    }
}

fn unknown_defaults() -> Vec<(u16, usize, Entry)> {
    vec![(priority::DEFAULT_SINK, usize::MAX, Entry::Default)]
}

fn compile_one(
    binding: &Binding,
    catalog: &Catalog,
    previous: Option<&Snapshot>,
) -> Result<Bound, String> {
    let rule = Rule::parse(&binding.rule).map_err(|e| format!("rule: {e}"))?;
    let factory = catalog.factory(&binding.sink)?;
    if !factory.fits(&binding.event) {
        return Err(format!(
            "sink {} does not fit event {}",
            binding.sink, binding.event
        ));
    }
    if let Some(known) = factory.properties() {
        let unknown: Vec<&str> = binding
            .properties
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !known.contains(key))
            .collect();
        if !unknown.is_empty() {
            return Err(unknown_properties(&binding.sink, &unknown, known));
        }
    }
    let spec = SinkSpec {
        binding_id: binding.id.to_string(),
        binding_name: binding.name.clone(),
        event: binding.event.clone(),
        properties: binding.properties.clone(),
        target: binding.sink.target().to_owned(),
    };
    // Making one instance proves the properties are good even when the binding makes a
    // fresh one per event.
    let first = factory.create(&spec).map_err(|e| e.to_string())?;
    let slot = if !binding.cache {
        Slot::PerEvent(factory.clone(), spec)
    } else if factory.concurrency() == Concurrency::Serialized {
        let mut pool = vec![Mutex::new(first)];
        for _ in 1..SERIALIZED_POOL {
            pool.push(Mutex::new(
                factory.create(&spec).map_err(|e| e.to_string())?,
            ));
        }
        Slot::Pool(pool)
    } else {
        Slot::Cached(first)
    };
    let stats = previous
        .and_then(|p| p.stats_of(binding.id))
        .unwrap_or_default();
    let isolation = previous
        .and_then(|p| p.bound.iter().find(|b| b.binding.id == binding.id))
        .map(|b| b.isolation.clone())
        .filter(|i| {
            i.max_concurrency == binding.max_concurrency && i.breaker_policy == binding.breaker
        })
        .unwrap_or_else(|| Arc::new(Isolation::new(binding.max_concurrency, binding.breaker)));
    Ok(Bound {
        also_at_ehlo: factory.also_at_ehlo(),
        binding: binding.clone(),
        rule,
        stats,
        slot,
        isolation,
    })
}

/// The refusal of keys a sink does not read, listing the ones it does.
fn unknown_properties(sink: &SinkRef, unknown: &[&str], known: &[&str]) -> String {
    let quoted = |keys: &[&str]| {
        keys.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = if unknown.len() == 1 {
        "unknown property"
    } else {
        "unknown properties"
    };
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        quoted(known)
    };
    format!(
        "{what} {} for sink {sink} (its properties: {known})",
        quoted(unknown)
    )
}
