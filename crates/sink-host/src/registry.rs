//! The registry file: the bindings, read and written as versioned TOML (`bindings.toml`).
//!
//! The file is written atomically (a temporary file, synced, renamed over the old one, the
//! folder synced; the file keeps its permissions), so a reader — the CLI or a running server — sees the old list or the new one,
//! never half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_mailmsg::Properties;
use postern_sink_api::Event;
use serde::{Deserialize, Serialize};

use crate::binding::{Binding, BindingId, BreakerPolicy, Mode, OnError, SinkRef, priority};

/// The newest format version this build reads and writes. Version 2 added `max_concurrency`
/// and `breaker`; a registry that uses neither is still written as version 1, so an older
/// build reads it.
const VERSION: u32 = 2;

/// The oldest version this build reads.
const OLDEST: u32 = 1;

/// A registry that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the registry's shape.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A binding in the file is invalid.
    #[error("{path}: binding {binding:?}: {message}")]
    Binding {
        /// The file.
        path: PathBuf,
        /// The binding's name (or its position when it has none).
        binding: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u32,
    #[serde(default, rename = "binding")]
    bindings: Vec<BindingV1>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingV1 {
    id: String,
    name: String,
    event: String,
    sink: String,
    priority: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    rule: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "yes")]
    cache: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_firings: Option<u64>,
    /// Version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<u32>,
    /// Version 2: `FAILURES/SECONDS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    breaker: Option<String>,
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    properties: Properties,
}

fn yes() -> bool {
    true
}

/// Reads the bindings of a registry file; a missing file is an empty registry.
pub fn load(path: &Path) -> Result<Vec<Binding>, RegistryError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RegistryError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(&text, path)
}

/// Parses registry text (`path` only names the file in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Binding>, RegistryError> {
    let file: FileV1 = toml::from_str(text).map_err(|e| RegistryError::Syntax {
        path: path.to_owned(),
        message: describe_toml_error(text, &e),
    })?;
    if !(OLDEST..=VERSION).contains(&file.version) {
        return Err(RegistryError::Syntax {
            path: path.to_owned(),
            message: format!(
                "version {} is not supported (this build reads {OLDEST} to {VERSION})",
                file.version
            ),
        });
    }
    let mut out: Vec<Binding> = Vec::with_capacity(file.bindings.len());
    for (i, raw) in file.bindings.into_iter().enumerate() {
        let label = if raw.name.is_empty() {
            format!("#{}", i + 1)
        } else {
            raw.name.clone()
        };
        let binding = from_wire(raw, file.version).map_err(|message| RegistryError::Binding {
            path: path.to_owned(),
            binding: label.clone(),
            message,
        })?;
        if out
            .iter()
            .any(|b| b.name == binding.name || b.id == binding.id)
        {
            return Err(RegistryError::Binding {
                path: path.to_owned(),
                binding: label,
                message: "name or id used twice".into(),
            });
        }
        out.push(binding);
    }
    Ok(out)
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}

fn from_wire(raw: BindingV1, version: u32) -> Result<Binding, String> {
    if version < 2 {
        for (field, used) in [
            ("max_concurrency", raw.max_concurrency.is_some()),
            ("breaker", raw.breaker.is_some()),
        ] {
            if used {
                return Err(format!(
                    "field `{field}` needs `version = 2` at the top of the file"
                ));
            }
        }
    }
    if raw.max_concurrency == Some(0) {
        return Err("field `max_concurrency`: must be more than zero".into());
    }
    let breaker = match raw.breaker.as_deref() {
        None => None,
        Some(t) => Some(BreakerPolicy::parse(t).map_err(|e| format!("field `breaker`: {e}"))?),
    };
    let id: BindingId = raw.id.parse().map_err(|e| format!("field `id`: {e}"))?;
    if raw.name.trim().is_empty() {
        return Err("field `name`: empty".into());
    }
    let event = Event::parse(&raw.event).map_err(|e| format!("field `event`: {e}"))?;
    let sink = SinkRef::parse(&raw.sink).map_err(|e| format!("field `sink`: {e}"))?;
    if raw.priority > priority::LOWEST {
        return Err(format!(
            "field `priority`: {} is above {}",
            raw.priority,
            priority::LOWEST
        ));
    }
    if raw.timeout_ms == Some(0) {
        return Err("field `timeout_ms`: must be more than zero".into());
    }
    let on_error = match raw.on_error.as_deref() {
        None => OnError::default(),
        Some(t) => OnError::parse(t)
            .ok_or_else(|| format!("field `on_error`: {t:?} (tempfail, continue, reject)"))?,
    };
    let mode = match raw.mode.as_deref() {
        None => Mode::default(),
        Some(t) => {
            Mode::parse(t).ok_or_else(|| format!("field `mode`: {t:?} (enforce, shadow)"))?
        }
    };
    Ok(Binding {
        id,
        name: raw.name,
        event,
        sink,
        priority: raw.priority,
        rule: raw.rule,
        enabled: raw.enabled,
        properties: raw.properties,
        cache: raw.cache,
        timeout: raw
            .timeout_ms
            .map_or(crate::binding::DEFAULT_TIMEOUT, Duration::from_millis),
        on_error,
        mode,
        expires: raw.expires.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        max_firings: raw.max_firings,
        max_concurrency: raw.max_concurrency,
        breaker,
    })
}

fn to_wire(b: &Binding) -> BindingV1 {
    BindingV1 {
        id: b.id.to_string(),
        name: b.name.clone(),
        event: b.event.name().into_owned(),
        sink: b.sink.to_string(),
        priority: b.priority,
        rule: b.rule.clone(),
        enabled: b.enabled,
        cache: b.cache,
        timeout_ms: (b.timeout != crate::binding::DEFAULT_TIMEOUT)
            .then_some(b.timeout.as_millis() as u64),
        on_error: (b.on_error != OnError::default()).then(|| b.on_error.as_str().to_owned()),
        mode: (b.mode != Mode::default()).then(|| b.mode.as_str().to_owned()),
        expires: b
            .expires
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        max_firings: b.max_firings,
        max_concurrency: b.max_concurrency,
        breaker: b.breaker.map(|p| p.to_string()),
        properties: b.properties.clone(),
    }
}

/// Renders bindings as registry text.
pub fn render(bindings: &[Binding]) -> Result<String, String> {
    let needs_v2 = bindings
        .iter()
        .any(|b| b.max_concurrency.is_some() || b.breaker.is_some());
    let file = FileV1 {
        version: if needs_v2 { VERSION } else { OLDEST },
        bindings: bindings.iter().map(to_wire).collect(),
    };
    let body = toml::to_string(&file).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Postern binding registry. Managed by `postern binding …`; edits by hand are read too.\n{body}"
    ))
}

/// Writes the bindings atomically.
pub fn save(path: &Path, bindings: &[Binding]) -> Result<(), RegistryError> {
    let io = |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    };
    let text = render(bindings).map_err(|message| RegistryError::Syntax {
        path: path.to_owned(),
        message,
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    // A temporary file beside the registry (same file system, so the rename is atomic); it is
    // removed if anything fails before the rename. It keeps the registry's permissions (a new
    // registry is readable by all, as a server running as another user must read it), not the
    // private ones of a temporary file.
    let permissions = fs::metadata(path)
        .map(|m| m.permissions())
        .ok()
        .or_else(default_permissions);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".bindings.").suffix(".tmp");
    if let Some(permissions) = permissions {
        builder.permissions(permissions);
    }
    let mut file = builder.tempfile_in(dir).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    postern_mailmsg::durable::sync_dir(dir).map_err(io)?;
    Ok(())
}

/// The permissions of a new registry file: `rw-r--r--`.
#[cfg(unix)]
fn default_permissions() -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(fs::Permissions::from_mode(0o644))
}

/// Elsewhere the temporary file's own permissions stand.
#[cfg(not(unix))]
fn default_permissions() -> Option<fs::Permissions> {
    None
}

/// The modification time of the registry file, to notice changes (`None` when it is missing).
pub fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bindings.toml");
        let mut b = Binding::new(
            "deny",
            Event::parse("inbound:MAIL").unwrap(),
            SinkRef::Builtin("reply".into()),
        );
        b.rule = "MAIL FROM=*@spam.example".into();
        b.properties.set("code", 550);
        b.properties.set("text", "go away");
        b.mode = Mode::Shadow;
        b.max_firings = Some(3);
        b.timeout = Duration::from_millis(250);
        save(&path, std::slice::from_ref(&b)).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back, vec![b]);
    }

    #[cfg(unix)]
    #[test]
    fn a_save_keeps_the_registry_readable_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bindings.toml");
        save(&path, &[]).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o644);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        save(&path, &[]).unwrap();
        assert_eq!(mode(&path), 0o640, "an administrator's choice is kept");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["bindings.toml"]);
    }

    #[test]
    fn isolation_settings_are_written_as_version_2_and_refused_in_version_1() {
        let mut b = Binding::new(
            "slow",
            Event::parse("inbound:EHLO").unwrap(),
            SinkRef::Builtin("delay".into()),
        );
        let plain = render(std::slice::from_ref(&b)).unwrap();
        assert!(plain.contains("version = 1"), "{plain}");
        b.max_concurrency = Some(4);
        b.breaker = BreakerPolicy::parse("5/60").ok();
        let text = render(std::slice::from_ref(&b)).unwrap();
        assert!(text.contains("version = 2"), "{text}");
        assert!(text.contains("max_concurrency = 4") && text.contains("breaker = \"5/60\""));
        assert_eq!(parse(&text, Path::new("b.toml")).unwrap(), vec![b]);
        let err = parse(
            &text.replace("version = 2", "version = 1"),
            Path::new("b.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("field `max_concurrency` needs `version = 2`"),
            "{err}"
        );
        let err = parse(&text.replace("5/60", "5"), Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `breaker`"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_empty_registry() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("none.toml")).unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_binding_and_field() {
        let text = "version = 1\n[[binding]]\nid = \"6f1c2a55-4b0e-4f7e-9d7c-0a1b2c3d4e5f\"\nname = \"x\"\nevent = \"on-nothing\"\nsink = \"builtin:log\"\npriority = 1\n";
        let err = parse(text, Path::new("b.toml")).unwrap_err().to_string();
        assert!(
            err.contains("binding \"x\"") && err.contains("field `event`"),
            "{err}"
        );
        let err = parse("version = 1\n[[binding]]\nbogus = 1\n", Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}
