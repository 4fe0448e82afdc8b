//! The host: holds the current snapshot of the registry and swaps in a new one when the
//! registry file changes, without disturbing sessions in flight (they keep the `Arc` they took).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use postern_mailmsg::PropertyBag;
use tracing::{error, info};

use crate::catalog::Catalog;
use crate::decisions::DecisionLog;
use crate::registry;
use crate::snapshot::Snapshot;

/// A registry that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    /// Some bindings do not compile.
    #[error("{path}: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Compile {
        /// The file.
        path: PathBuf,
        /// One error per bad binding.
        errors: Vec<crate::snapshot::CompileError>,
    },
}

/// The registry in force, and how to reload it.
pub struct Host {
    current: ArcSwap<Snapshot>,
    catalog: Catalog,
    path: PathBuf,
    generation: AtomicU64,
    /// The server-wide property bag every protocol sink sees.
    pub server_props: PropertyBag,
    /// The decision log, once the server opened it; every snapshot shares it.
    decisions: Arc<OnceLock<Arc<DecisionLog>>>,
}

impl Host {
    /// Loads the registry at `path` (a missing file is an empty registry).
    pub fn load(path: &Path, catalog: Catalog) -> Result<Self, LoadError> {
        let decisions = Arc::<OnceLock<Arc<DecisionLog>>>::default();
        let mut snapshot = build(path, &catalog, 1, None)?;
        snapshot.decisions = decisions.clone();
        Ok(Self {
            current: ArcSwap::from_pointee(snapshot),
            catalog,
            path: path.to_owned(),
            generation: AtomicU64::new(1),
            server_props: PropertyBag::new(),
            decisions,
        })
    }

    /// Records every binding that fires into `log` from now on (the first call wins: the
    /// server has one decision log).
    pub fn record_decisions_into(&self, log: Arc<DecisionLog>) {
        let _ = self.decisions.set(log);
    }

    /// The decision log, once set.
    pub fn decisions(&self) -> Option<&DecisionLog> {
        self.decisions.get().map(|d| d.as_ref())
    }

    /// The snapshot in force; a session keeps the one it took for its whole life.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The catalog of sinks.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again and swaps the new snapshot in; on error the old one stays.
    pub fn reload(&self) -> Result<u64, LoadError> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = self.current.load();
        let mut snapshot = build(&self.path, &self.catalog, generation, Some(&previous))?;
        snapshot.decisions = self.decisions.clone();
        let count = snapshot.bound().len();
        self.current.store(Arc::new(snapshot));
        info!(generation, bindings = count, path = %self.path.display(), "binding registry loaded");
        Ok(generation)
    }

    /// Polls the file every `period` and reloads it when it changed. A registry that fails to
    /// load is logged and the last good one stays in force.
    pub fn watch(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let host = self.clone();
        tokio::spawn(async move {
            let mut seen = stamp(&host.path);
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let now = stamp(&host.path);
                if now == seen {
                    continue;
                }
                seen = now;
                if let Err(e) = host.reload() {
                    error!(path = %host.path.display(), "binding registry not reloaded, the last good one stays in force: {e}");
                }
            }
        })
    }
}

/// What identifies a version of the file: modification time and length (a rename by
/// `binding add` changes at least one of them, even within one clock tick, through the inode's
/// new length or time).
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn build(
    path: &Path,
    catalog: &Catalog,
    generation: u64,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, LoadError> {
    let bindings = registry::load(path)?;
    Snapshot::compile(&bindings, catalog, generation, previous).map_err(|errors| {
        LoadError::Compile {
            path: path.to_owned(),
            errors,
        }
    })
}
