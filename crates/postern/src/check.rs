//! `postern check-config`: validates the configuration and the binding registry it names.

use std::process::ExitCode;

use anyhow::Result;
use postern_config::{Config, ConfigError, Overrides};
use postern_smtp_in::{Tls, TlsError};

use crate::cli::CheckArgs;
use crate::setup;

pub(crate) fn run(args: CheckArgs) -> Result<ExitCode> {
    let config = match setup::config(args.file.as_ref(), &args.common, Overrides::default()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    setup::announce(&config);
    if let Some(error) = certificate_problem(&config) {
        eprintln!("{error}");
        return Ok(ExitCode::from(2));
    }
    if let Some(errors) = alias_problems(&config) {
        eprintln!("{errors}");
        return Ok(ExitCode::from(2));
    }
    let registry = postern_sink_host::registry::load(&config.bindings_file)
        .map_err(|e| e.to_string())
        .and_then(|bindings| {
            postern_sink_host::Snapshot::compile(&bindings, &setup::catalog(), 0, None)
                .map(|s| s.bound().len() + s.disabled().len())
                .map_err(|errors| {
                    errors
                        .iter()
                        .map(|e| format!("{}: {e}", config.bindings_file.display()))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
        });
    match registry {
        Ok(count) => {
            println!(
                "{}: ok ({} listener(s), {} local domain(s), {count} binding(s))",
                config.source,
                config.listeners.len(),
                config.domains.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// A configured certificate the listeners cannot get: every mode needs one (`smtp` offers
/// STARTTLS with it; `submission` and `submissions` cannot work without it). Without `[tls]`
/// the self-signed default applies, made at the first start.
fn certificate_problem(config: &Config) -> Option<ConfigError> {
    let files = config.tls.files.as_ref()?;
    let (certificate, key) = config.tls_files()?;
    let error = Tls::check(&certificate, &key).err()?;
    let on_key = match &error {
        TlsError::Read { path, .. } => *path == key,
        TlsError::NoKey { .. } | TlsError::Unusable { .. } => true,
        TlsError::NoCertificate { .. } | TlsError::SelfSigned { .. } => false,
    };
    let (field, position) = if on_key {
        ("tls.key", files.key_at)
    } else {
        ("tls.certificate", files.certificate_at)
    };
    let needing = config
        .listeners
        .iter()
        .map(|l| format!("{} on {}", l.mode.as_str(), l.address))
        .collect::<Vec<_>>()
        .join(", ");
    Some(ConfigError {
        origin: config.source.clone(),
        position: Some(position),
        field: Some(field.to_owned()),
        message: format!("{error}; the listeners ({needing}) need this certificate"),
    })
}

/// Every problem of every domain's aliases file, one line each (file, line, what is wrong).
fn alias_problems(config: &Config) -> Option<String> {
    let lines: Vec<String> = config
        .domains
        .iter()
        .filter_map(|domain| domain.aliases.as_ref())
        .filter_map(|file| file.check().err())
        .flatten()
        .map(|e| e.to_string())
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}
