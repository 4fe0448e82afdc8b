//! `postern binding …`: edits the binding registry like the original smtpreg tool. Every change
//! is validated by compiling the whole registry as a server would, and written atomically under
//! a lock, so a bad argument exits 2 and leaves the registry as it was. A running server picks
//! the change up by itself.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use postern_config::Overrides;
use postern_mailmsg::Value;
use postern_sink_api::Event;
use postern_sink_host::{
    Binding, BreakerPolicy, Mode, OnError, SinkRef, Snapshot, edit, priority, registry,
};

use crate::binding_view;
use crate::cli::{AddArgs, BindingCommand, Common};
use crate::setup;

/// A refusal of the command's arguments: exit code 2, the registry untouched.
pub(crate) struct Usage(pub(crate) String);

pub(crate) fn run(command: BindingCommand) -> Result<ExitCode> {
    match execute(command) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Usage(message)) => {
            eprintln!("postern binding: {message}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Other(e)) => Err(e),
    }
}

pub(crate) enum Failure {
    Usage(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl From<Usage> for Failure {
    fn from(u: Usage) -> Self {
        Self::Usage(u.0)
    }
}

fn execute(command: BindingCommand) -> Result<(), Failure> {
    match command {
        BindingCommand::Add(args) => {
            let path = registry_path(&args.common)?;
            let binding = new_binding(&args)?;
            let id = binding.id;
            edit(&path, |list| {
                if list.iter().any(|b| b.name == binding.name) {
                    return Err(Usage(format!(
                        "a binding named {:?} exists already",
                        binding.name
                    )));
                }
                list.push(binding);
                Ok(())
            })?;
            println!("{id}");
        }
        BindingCommand::List(args) => {
            let path = registry_path(&args.common)?;
            let event = match &args.event {
                Some(name) => Some(Event::parse(name).map_err(|e| Usage(e.to_string()))?),
                None => None,
            };
            let bindings = load(&path)?;
            let snapshot = compile(&bindings)?;
            binding_view::list(&bindings, &snapshot, event.as_ref(), args.all, args.json)?;
        }
        BindingCommand::Show(args) => {
            let bindings = load(&registry_path(&args.common)?)?;
            let index = find(&bindings, &args.binding)?;
            binding_view::show(&bindings[index], args.json)?;
        }
        BindingCommand::Remove(args) => {
            let path = registry_path(&args.common)?;
            let mut removed = None;
            edit(&path, |list| {
                let index = find(list, &args.binding)?;
                removed = Some(list.remove(index));
                Ok(())
            })?;
            if let Some(b) = removed {
                println!("removed {:?} ({}, {} on {})", b.name, b.id, b.sink, b.event);
            }
        }
        BindingCommand::Enable(args) => set_enabled(&args, true)?,
        BindingCommand::Disable(args) => set_enabled(&args, false)?,
        BindingCommand::SetProp(args) => {
            let path = registry_path(&args.common)?;
            let (key, value) = property(&args.property)?;
            let mut name = String::new();
            edit(&path, |list| {
                let index = find(list, &args.binding)?;
                list[index].properties.set(key.clone(), value.clone());
                name.clone_from(&list[index].name);
                Ok(())
            })?;
            println!("set {key} = {value} on {name:?}");
        }
        BindingCommand::DelProp(args) => {
            let path = registry_path(&args.common)?;
            let mut name = String::new();
            edit(&path, |list| {
                let index = find(list, &args.binding)?;
                if list[index].properties.remove(&args.key).is_none() {
                    return Err(Usage(format!("binding has no property {:?}", args.key)));
                }
                name.clone_from(&list[index].name);
                Ok(())
            })?;
            println!("removed property {} from {name:?}", args.key);
        }
        BindingCommand::Events => binding_view::events(),
        BindingCommand::Sinks => binding_view::sinks(&setup::catalog()),
    }
    Ok(())
}

fn set_enabled(args: &crate::cli::TargetArgs, enable: bool) -> Result<(), Failure> {
    let path = registry_path(&args.common)?;
    let mut changed = None;
    edit(&path, |list| {
        let index = find(list, &args.binding)?;
        changed = Some((list[index].name.clone(), list[index].enabled != enable));
        list[index].enabled = enable;
        Ok(())
    })?;
    if let Some((name, changed)) = changed {
        let state = if enable { "enabled" } else { "disabled" };
        if changed {
            println!("{state} {name:?}");
        } else {
            println!("{name:?} was {state} already");
        }
    }
    Ok(())
}

/// The registry file the options name; says on standard error which one, and the data folder.
fn registry_path(common: &Common) -> Result<PathBuf, Failure> {
    let config = setup::config(None, common, Overrides::default()).map_err(Failure::Usage)?;
    setup::announce(&config);
    Ok(config.bindings_file)
}

fn load(path: &Path) -> Result<Vec<Binding>, Failure> {
    registry::load(path).map_err(|e| Failure::Usage(e.to_string()))
}

fn compile(bindings: &[Binding]) -> Result<Snapshot, Usage> {
    Snapshot::compile(bindings, &setup::catalog(), 0, None).map_err(|errors| {
        Usage(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Reads, changes, validates and writes the registry under an exclusive lock.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut Vec<Binding>) -> Result<(), Usage>,
) -> Result<(), Failure> {
    edit::edit(path, &setup::catalog(), |list| {
        change(list).map_err(|u| u.0)
    })
    .map_err(|e| match e {
        edit::EditError::Invalid(message) => Failure::Usage(message),
        edit::EditError::Io(message) => Failure::Other(anyhow::anyhow!(message)),
    })
}

/// Finds a binding by id or name.
fn find(bindings: &[Binding], key: &str) -> Result<usize, Usage> {
    edit::find(bindings, key).ok_or_else(|| Usage(format!("no binding with id or name {key:?}")))
}

fn new_binding(args: &AddArgs) -> Result<Binding, Usage> {
    let event = Event::parse(&args.event).map_err(|e| Usage(e.to_string()))?;
    let sink = SinkRef::parse(&args.sink).map_err(Usage)?;
    let mut binding = Binding::new(String::new(), event, sink);
    binding.name = match &args.name {
        Some(name) if name.trim().is_empty() => return Err(Usage("--name is empty".into())),
        Some(name) => name.clone(),
        None => {
            let sink = args.sink.rsplit(':').next().unwrap_or("sink");
            format!("{sink}-{}", &binding.id.to_string()[..8])
        }
    };
    binding.priority = priority::parse(&args.priority).ok_or_else(|| {
        Usage(format!(
            "--priority {:?}: a number 0-32767 or highest, high, medium, low, lowest",
            args.priority
        ))
    })?;
    binding.rule = args.rule.clone();
    for prop in &args.props {
        let (key, value) = property(prop)?;
        binding.properties.set(key, value);
    }
    binding.enabled = !args.disabled;
    binding.mode = if args.shadow {
        Mode::Shadow
    } else {
        Mode::Enforce
    };
    binding.cache = !args.no_cache;
    if let Some(t) = &args.timeout {
        binding.timeout =
            postern_config::parse_duration(t).map_err(|e| Usage(format!("--timeout: {e}")))?;
        if binding.timeout.is_zero() {
            return Err(Usage("--timeout must be more than zero".into()));
        }
    }
    if let Some(policy) = &args.on_error {
        binding.on_error = OnError::parse(policy).ok_or_else(|| {
            Usage(format!(
                "--on-error {policy:?}: tempfail, continue or reject"
            ))
        })?;
    }
    binding.expires = args
        .expires_in
        .map(|s| SystemTime::now() + Duration::from_secs(s));
    binding.max_firings = args.max_firings;
    if args.max_concurrency == Some(0) {
        return Err(Usage("--max-concurrency must be more than zero".into()));
    }
    binding.max_concurrency = args.max_concurrency;
    if let Some(text) = &args.breaker {
        binding.breaker =
            Some(BreakerPolicy::parse(text).map_err(|e| Usage(format!("--breaker {e}")))?);
    }
    Ok(binding)
}

/// Parses KEY=VALUE; numbers and true/false keep their type.
pub(crate) fn property(text: &str) -> Result<(String, Value), Usage> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| Usage(format!("property {text:?} is not KEY=VALUE")))?;
    edit::property_key(key).map_err(Usage)?;
    Ok((key.to_owned(), edit::property_value(value)))
}
