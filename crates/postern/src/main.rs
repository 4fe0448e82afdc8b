//! `postern`: the server and its administration commands.
//!
//! # Layout
//! - `cli`: the command line.
//! - `serve`: `postern serve` — recovery, transport, listeners, shutdown.
//! - `check`: `postern check-config`; `postern config default` prints the embedded default.
//! - `binding`: `postern binding …`, the registry editor; `binding_view` prints it.
//! - `queue`: `postern queue …`: `check` verifies the spool.
//! - `user`: `postern user add|passwd|remove|list`, the AUTH user store.
//! - `setup`: what every command needs: the configuration with its overrides, logging, the
//!   sink catalog.
//!
//! # Design
//! The binary only wires the crates together; every decision lives in the crate of its role.
//! Exit codes: 0 success, 1 a runtime failure, 2 bad arguments or configuration.

mod binding;
mod binding_view;
mod check;
mod cli;
mod queue;
mod serve;
mod setup;
mod user;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::CheckConfig(args) => check::run(args),
        cli::Command::Binding(command) => binding::run(command),
        cli::Command::Config(cli::ConfigCommand::Default) => {
            print!("{}", postern_config::EMBEDDED);
            Ok(ExitCode::SUCCESS)
        }
        cli::Command::Queue(command) => queue::run(command),
        cli::Command::User(command) => user::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern: {e:#}");
            ExitCode::from(1)
        }
    }
}
