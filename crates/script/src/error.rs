//! Why a script could not be loaded.

use std::path::PathBuf;

/// A script that cannot be used: unreadable, not Rhai, or without `on_event`.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The file could not be read.
    #[error("script {}: {source}", path.display())]
    Read {
        /// The resolved path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse; line and column are 1-based.
    #[error("script {}:{line}:{column}: {message}", path.display())]
    Syntax {
        /// The resolved path.
        path: PathBuf,
        /// The line of the error.
        line: usize,
        /// The column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// The script parses but does not define the entry point.
    #[error("script {}: defines no `fn on_event(ctx)`", path.display())]
    NoEntryPoint {
        /// The resolved path.
        path: PathBuf,
    },
}
