//! What every command needs: the configuration with its overrides, logging, the sink catalog.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use postern_config::{Config, DiskReserve, LogFormat, Overrides};
use postern_queue::SpoolOptions;
use postern_sink_host::Catalog;
use tracing_subscriber::EnvFilter;

use crate::cli::Common;

/// Loads the configuration (file or embedded default) and applies the command-line overrides.
/// A bad configuration gives every error (file, line, field), one a line.
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
    config.apply_overrides(&overrides);
    Ok(config)
}

/// Starts logging to standard error, as text or JSON, at the configured level (`RUST_LOG`
/// overrides it).
pub(crate) fn logging(config: &Config) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => EnvFilter::try_new(directive),
        _ => EnvFilter::try_new(&config.log.level),
    }
    .with_context(|| format!("log level {:?}", config.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
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

/// Every sink this binary can make.
pub(crate) fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for factory in postern_sinks::all() {
        catalog.add_builtin(factory);
    }
    catalog
}
