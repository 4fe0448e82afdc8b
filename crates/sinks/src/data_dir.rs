//! The data folder, where sinks find the files their properties name by a relative path.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Set once by the binary from its configuration: the factories are made before any
/// configuration is read.
static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Sets the folder relative file properties are taken from: the data folder. The first call
/// wins.
pub fn set_data_dir(dir: &Path) {
    let _ = DATA_DIR.set(dir.to_owned());
}

/// `name` as a path: absolute as it is, else in the data folder (the current directory when
/// none was set).
pub(crate) fn resolve(name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.to_owned();
    }
    match DATA_DIR.get() {
        Some(dir) => dir.join(path),
        None => path.to_owned(),
    }
}
