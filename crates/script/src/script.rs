//! A script file: compiled once, recompiled when it changes on disk, and the last version that
//! compiled kept in force while an edit is broken.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rhai::{AST, Engine};

use crate::error::ScriptError;

/// What identifies one version of the file without reading it: a `stat` per event is the
/// whole cost of noticing an edit.
type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// Reads and compiles a script, checking that it defines `on_event(ctx)`.
pub(crate) fn compile(engine: &Engine, path: &Path) -> Result<AST, ScriptError> {
    let source = fs::read_to_string(path).map_err(|source| ScriptError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut ast = engine.compile(&source).map_err(|e| ScriptError::Syntax {
        path: path.to_owned(),
        line: e.1.line().unwrap_or(0),
        column: e.1.position().unwrap_or(0),
        message: e.0.to_string(),
    })?;
    if !ast
        .iter_functions()
        .any(|f| f.name == "on_event" && f.params.len() == 1)
    {
        return Err(ScriptError::NoEntryPoint {
            path: path.to_owned(),
        });
    }
    ast.set_source(path.display().to_string());
    Ok(ast)
}

struct State {
    /// The version in force.
    ast: Arc<AST>,
    /// The stamp of the file last seen: a version that failed to load is not retried (nor
    /// logged again) until the file changes once more.
    seen: Option<Stamp>,
}

/// One script file, shared by every binding that names it.
pub(crate) struct Script {
    path: PathBuf,
    state: Mutex<State>,
}

impl Script {
    /// Loads the file; an error here refuses the binding.
    pub(crate) fn load(engine: &Engine, path: PathBuf) -> Result<Self, ScriptError> {
        let before = stamp(&path);
        let ast = compile(engine, &path)?;
        Ok(Self {
            state: Mutex::new(State {
                ast: Arc::new(ast),
                seen: before,
            }),
            path,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The version to run: the file as it is now if it changed and compiles, else the last
    /// good one.
    pub(crate) fn current(&self, engine: &Engine) -> Arc<AST> {
        let now = stamp(&self.path);
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now == state.seen {
            return state.ast.clone();
        }
        state.seen = now;
        match compile(engine, &self.path) {
            Ok(ast) => {
                tracing::info!(script = %self.path.display(), "script reloaded");
                state.ast = Arc::new(ast);
            }
            Err(e) => {
                tracing::warn!(
                    script = %self.path.display(),
                    "{e}; the last version that loaded stays in force"
                );
            }
        }
        state.ast.clone()
    }
}
