//! Script sinks: a binding's sink `script:PATH` names a [Rhai](https://rhai.rs) script that
//! defines `fn on_event(ctx)`. The script reads the event through `ctx`, asks for changes by
//! calling functions (`add_header`, `set_recipient`, `set_property`…) and returns a verdict
//! (`next()`, `reply(…)`, `reject(…)`…), which become the same [`Outcome`] a native sink returns.
//! `docs/sinks/script.md` is the script author's reference.
//!
//! # Layout
//! - `engine`: the sandboxed engine and its limits.
//! - `ctx`: what a script reads (`ctx.event`, `ctx.mail_from`, `ctx.header(name)`…).
//! - `changes`: the change functions, recorded as [`Change`]s.
//! - `verdict`: the verdict functions and the mapping of the return value.
//! - `script`: one script file, compiled once, reloaded when it changes, the last good version
//!   kept while an edit is broken.
//! - `sink`: the sink of one binding, run on the blocking pool.
//! - `error`: [`ScriptError`].
//!
//! # Design
//! One engine serves every script; it has no module resolver and no `eval`, so a script cannot
//! reach files, processes or the network, and limits on operations, call depth, expression
//! depth and the sizes of strings, arrays and maps stop a runaway script with an error — the
//! dispatcher then applies the binding's `on_error`. Compiled scripts are cached by path in
//! the factory, so every binding of one file, and a binding made afresh per event, share one
//! compilation. A relative path is taken from the data folder ([`set_data_dir`]).
//!
//! [`Outcome`]: postern_sink_api::Outcome
//! [`Change`]: postern_sink_api::Change

#![warn(missing_docs)]

mod changes;
mod ctx;
mod engine;
mod error;
mod script;
mod sink;
mod verdict;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use postern_sink_api::{Instance, SinkError, SinkFactory, SinkSpec};
use rhai::Engine;

pub use engine::{
    MAX_ARRAY_SIZE, MAX_CALL_LEVELS, MAX_EXPR_DEPTH, MAX_FUNCTION_EXPR_DEPTH, MAX_MAP_SIZE,
    MAX_OPERATIONS, MAX_STRING_SIZE,
};
pub use error::ScriptError;

use script::Script;
use sink::ScriptSink;

/// The folder relative script paths are taken from, set once by the binary from its
/// configuration (the factory is made before any configuration is read).
static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Sets the folder relative script paths are taken from: the data folder. The first call wins.
pub fn set_data_dir(dir: &Path) {
    let _ = DATA_DIR.set(dir.to_owned());
}

/// The factory of the `script` kind: one per catalog, serving every `script:PATH` binding.
pub struct Factory {
    engine: Arc<Engine>,
    /// The base of relative paths; `None`: the data folder given to [`set_data_dir`], else the
    /// current directory.
    base: Option<PathBuf>,
    scripts: Mutex<HashMap<PathBuf, Arc<Script>>>,
}

impl Default for Factory {
    fn default() -> Self {
        Self::new()
    }
}

impl Factory {
    /// A factory that takes relative paths from the data folder.
    pub fn new() -> Self {
        Self {
            engine: Arc::new(engine::sandbox()),
            base: None,
            scripts: Mutex::new(HashMap::new()),
        }
    }

    /// A factory that takes relative paths from `base`.
    pub fn with_base(base: impl Into<PathBuf>) -> Self {
        Self {
            base: Some(base.into()),
            ..Self::new()
        }
    }

    fn resolve(&self, target: &str) -> PathBuf {
        let path = Path::new(target);
        if path.is_absolute() {
            return path.to_owned();
        }
        match self.base.as_ref().or(DATA_DIR.get()) {
            Some(base) => base.join(path),
            None => path.to_owned(),
        }
    }

    /// The script at `path`. The first load of a path must succeed, or the binding is refused
    /// (`postern binding add`, `postern check` and a starting server each load afresh); a path
    /// already loaded is refreshed like at an event, keeping its last good version, so that a
    /// binding made afresh per event (`cache = false`) or a registry reload behaves as a cached
    /// sink does.
    fn script(&self, path: PathBuf) -> Result<Arc<Script>, ScriptError> {
        let mut scripts = match self.scripts.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(script) = scripts.get(&path) {
            script.current(&self.engine);
            return Ok(script.clone());
        }
        let script = Arc::new(Script::load(&self.engine, path.clone())?);
        scripts.insert(path, script.clone());
        Ok(script)
    }
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "script"
    }

    fn summary(&self) -> &'static str {
        "runs a Rhai script's on_event(ctx) (script:PATH, relative to the data folder)"
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        if spec.target.is_empty() {
            return Err(SinkError::Config(
                "script: needs a path (script:PATH)".into(),
            ));
        }
        let script = self
            .script(self.resolve(&spec.target))
            .map_err(|e| SinkError::Config(e.to_string()))?;
        Ok(Instance::Blocking(Arc::new(ScriptSink {
            engine: self.engine.clone(),
            script,
            props: Arc::new(ctx::properties_to_map(&spec.properties)),
        })))
    }
}
