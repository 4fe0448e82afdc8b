//! Changing the registry file as `postern binding …` and the admin API both do: read it under an
//! exclusive lock, change the list, compile the whole registry as a server would, and only then
//! write it (atomically). A change that does not compile leaves the file as it was.

use std::fs::File;
use std::path::Path;

use postern_mailmsg::Value;

use crate::{Binding, BindingId, Catalog, Snapshot, registry};

/// Why an edit was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The change is not valid (unknown binding, bad rule, unknown property…): nothing written.
    #[error("{0}")]
    Invalid(String),
    /// The file or its lock could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// Reads, changes, validates against `catalog` and writes the registry at `path`.
pub fn edit<T>(
    path: &Path,
    catalog: &Catalog,
    change: impl FnOnce(&mut Vec<Binding>) -> Result<T, String>,
) -> Result<T, EditError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| EditError::Io(format!("creating {}: {e}", dir.display())))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = File::create(&lock_path).map_err(|e| {
        EditError::Io(format!(
            "creating the lock file {}: {e}",
            lock_path.display()
        ))
    })?;
    lock.lock()
        .map_err(|e| EditError::Io(format!("locking {}: {e}", lock_path.display())))?;
    let mut bindings = registry::load(path).map_err(|e| EditError::Invalid(e.to_string()))?;
    let out = change(&mut bindings).map_err(EditError::Invalid)?;
    validate(&bindings, catalog).map_err(EditError::Invalid)?;
    registry::save(path, &bindings).map_err(|e| EditError::Io(e.to_string()))?;
    Ok(out)
}

/// Compiles the bindings as a server would; the errors joined by `; `.
pub fn validate(bindings: &[Binding], catalog: &Catalog) -> Result<(), String> {
    Snapshot::compile(bindings, catalog, 0, None)
        .map(|_| ())
        .map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// The position of the binding with this id or name.
pub fn find(bindings: &[Binding], key: &str) -> Option<usize> {
    let by_id = key.parse::<BindingId>().ok();
    bindings
        .iter()
        .position(|b| Some(b.id) == by_id || b.name == key)
}

/// Checks a property key: letters, digits, `_ - .`.
pub fn property_key(key: &str) -> Result<(), String> {
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(format!(
            "property key {key:?} must be letters, digits, _ - ."
        ));
    }
    Ok(())
}

/// A property value from its text form: numbers and true/false keep their type.
pub fn property_value(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        Value::Int(n)
    } else if text == "true" || text == "false" {
        Value::Bool(text == "true")
    } else {
        Value::Text(text.to_owned())
    }
}
