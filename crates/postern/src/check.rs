//! `postern check-config`: validates the configuration and the binding registry it names.

use std::process::ExitCode;

use anyhow::Result;
use postern_config::Overrides;

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
