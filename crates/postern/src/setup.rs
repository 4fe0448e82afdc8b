//! What every command needs: the configuration with its overrides, logging, the sink catalog,
//! and the line that says which registry and data folder a command used.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use postern_config::{Config, DiskReserve, LogFormat, Overrides};
use postern_queue::SpoolOptions;
use postern_sink_api::SinkFactory;
use postern_sink_host::Catalog;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::cli::Common;

/// Loads the configuration (file or embedded default) and applies the command-line overrides.
/// A bad configuration gives every error (file, line, field), one a line; a bad override names
/// its option.
pub(crate) fn config(
    file: Option<&PathBuf>,
    common: &Common,
    overrides: Overrides,
) -> Result<Config, String> {
    let mut config = match file.or(common.config.as_ref()) {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::embedded_default(),
    };
    let overrides = Overrides {
        data_dir: common.data_dir.clone().or(overrides.data_dir),
        ..overrides
    };
    config
        .apply_overrides(&overrides)
        .map_err(|why| format!("--hostname: {why}"))?;
    // Relative `script:PATH` bindings are taken from the data folder.
    postern_script::set_data_dir(&config.data_dir);
    // And the files built-in sinks name by a relative path (`builtin:route-table`'s `file`).
    postern_sinks::set_data_dir(&config.data_dir);
    Ok(config)
}

/// Says on standard error which configuration, registry file and data folder a command used, so
/// that a command run in the wrong folder shows it.
pub(crate) fn announce(config: &Config) {
    eprintln!(
        "postern: configuration {}, registry {}, data folder {}",
        config.source,
        config.bindings_file.display(),
        config.data_dir.display()
    );
}

/// Where the log level came from, to name it in an error.
enum LevelSource {
    Option,
    Environment,
    File,
}

/// Starts logging to standard error, as text or JSON, at the level of `--log-level`, else
/// `RUST_LOG`, else the configuration. Lines are written by a background thread, so a slow
/// standard error never blocks the runtime's threads; the guard flushes it when dropped.
pub(crate) fn logging(config: &Config, option: Option<&str>) -> Result<WorkerGuard, String> {
    let (directive, source) = match (option, std::env::var("RUST_LOG")) {
        (Some(level), _) => (level.to_owned(), LevelSource::Option),
        (None, Ok(env)) if !env.trim().is_empty() => (env, LevelSource::Environment),
        _ => (config.log.level.clone(), LevelSource::File),
    };
    if let Err(why) = postern_config::check_log_level(&directive) {
        return Err(match source {
            LevelSource::Option => format!("--log-level: {why}"),
            LevelSource::Environment => format!("RUST_LOG: {why}"),
            LevelSource::File => format!("{}: field `log.level`: {why}", config.source),
        });
    }
    let filter = EnvFilter::try_new(directive.trim()).map_err(|e| e.to_string())?;
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(guard)
}

/// The spool's options from `[queue]`.
pub(crate) fn spool_options(config: &Config) -> SpoolOptions {
    let disk_reserve = match config.queue.disk_reserve {
        None => postern_queue::DiskReserve::default(),
        Some(DiskReserve::Octets(octets)) => postern_queue::DiskReserve::octets(octets),
        Some(DiskReserve::Percent(percent)) => postern_queue::DiskReserve::percent(percent),
    };
    SpoolOptions {
        segment_size: config.queue.segment_size,
        disk_reserve,
        ..SpoolOptions::default()
    }
}

/// Native sinks given to the library's builder (`rust:NAME`), for the whole process.
static RUST_SINKS: OnceLock<Vec<Arc<dyn SinkFactory>>> = OnceLock::new();

/// Sets the native sinks of this process; the first call wins.
pub(crate) fn set_rust_sinks(factories: Vec<Arc<dyn SinkFactory>>) {
    let _ = RUST_SINKS.set(factories);
}

/// Every sink this binary can make: enough to check bindings, which opens no socket.
pub(crate) fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for factory in postern_sinks::all() {
        catalog.add_builtin(factory);
    }
    add_other_kinds(&mut catalog);
    catalog
}

/// The catalog of a running server: the mail authentication sinks name the results after
/// `hostname` and resolve through `[dns] servers`, like delivery.
pub(crate) fn serving_catalog(config: &Config) -> Catalog {
    let env = postern_sinks::Env::new(config.hostname.clone(), config.dns.servers.clone());
    let mut catalog = Catalog::new();
    for factory in postern_sinks::with_env(env) {
        catalog.add_builtin(factory);
    }
    add_other_kinds(&mut catalog);
    catalog
}

/// The kinds whose target varies by binding, and the native sinks of a library build.
fn add_other_kinds(catalog: &mut Catalog) {
    catalog.add_kind(Arc::new(postern_script::Factory::new()));
    catalog.add_kind(Arc::new(postern_http_sink::Factory::new()));
    catalog.add_kind(postern_milter::factory());
    for factory in RUST_SINKS.get().into_iter().flatten() {
        catalog.add_rust(factory.clone());
    }
}
