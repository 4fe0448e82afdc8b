//! `postern`: the server and its administration commands, as a library — so a program can build
//! its own `postern` binary with native sinks of its own (`rust:NAME`).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::sync::Arc;
//! # use postern::sink_api::{Instance, SinkError, SinkFactory, SinkSpec};
//! # struct MyFactory;
//! # impl SinkFactory for MyFactory {
//! #     fn name(&self) -> &'static str { "mine" }
//! #     fn create(&self, _: &SinkSpec) -> Result<Instance, SinkError> { unimplemented!() }
//! # }
//!
//! fn main() -> ExitCode {
//!     // The same command line as the stock binary; `rust:mine` can now be bound.
//!     postern::Postern::builder()
//!         .rust_sink(Arc::new(MyFactory))
//!         .run()
//! }
//! ```
//!
//! # Layout
//! - `cli`: the command line.
//! - `serve`: `postern serve` — recovery, transport, listeners, shutdown.
//! - `admin`: the admin listener of `serve` (token, address line, the API's state).
//! - `check`: `postern check-config`; `postern config default` prints the embedded default.
//! - `binding`: `postern binding …`, the registry editor; `binding_view` prints it.
//! - `queue`: `postern queue …`: `check` verifies the spool; `queue_ops`: `list`, `show` and
//!   the changing commands, through the admin API (or the spool when no server runs).
//! - `status`: `postern status`; `admin_client`: the way to the running server's admin API.
//! - `sink_try`: `postern sink try`, one sink run once offline.
//! - `user`: `postern user add|passwd|remove|list`, the AUTH user store.
//! - `setup`: what every command needs: the configuration with its overrides, logging, the
//!   sink catalog.
//! - this file: [`Postern`] and its [`Builder`], the public entry point; `main.rs` only calls it.
//!
//! # Design
//! The binary only wires the crates together; every decision lives in the crate of its role.
//! Exit codes: 0 success, 1 a runtime failure, 2 bad arguments or configuration. The native
//! sinks a builder is given join the catalog of every command of the process — `serve`, the
//! checks of `binding add` and `check-config`, `binding sinks`, `sink try` — so a binding to
//! `rust:NAME` is validated and served by the binary that has the sink compiled in.

#![warn(missing_docs)]

mod admin;
mod admin_client;
mod binding;
mod binding_view;
mod check;
mod cli;
mod queue;
mod queue_ops;
mod serve;
mod setup;
mod sink_try;
mod status;
mod user;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use postern_sink_api::SinkFactory;

/// The sink API a native sink is written against (the `postern-sink-api` crate).
pub use postern_sink_api as sink_api;

/// Postern as a library: `Postern::builder().rust_sink(…).run()`.
pub struct Postern;

impl Postern {
    /// A builder with no extra sinks: `run` behaves as the stock binary.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Collects native sinks, then runs a command line.
#[derive(Default)]
pub struct Builder {
    rust: Vec<Arc<dyn SinkFactory>>,
}

impl Builder {
    /// Adds a native sink, bound as `rust:NAME` where NAME is its factory's
    /// [`name`](SinkFactory::name). A later factory of the same name replaces an earlier one.
    pub fn rust_sink(mut self, factory: Arc<dyn SinkFactory>) -> Self {
        self.rust.push(factory);
        self
    }

    /// Parses the process's command line (the stock binary's: `serve`, `binding …`, `sink try`,
    /// …) and runs it; returns the exit code to end the process with.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// As [`run`](Self::run), with the command line given (the first item is the program name).
    /// The sinks join the catalog for the whole process: only the first builder of a process
    /// that runs sets them.
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        setup::set_rust_sinks(self.rust);
        let cli = match cli::Cli::try_parse_from(args) {
            Ok(cli) => cli,
            // Help and version go to standard output with 0, usage errors to standard error
            // with 2, as clap's own `parse` does.
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
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
            cli::Command::Status(args) => status::run(args),
            cli::Command::Sink(cli::SinkCommand::Try(args)) => sink_try::run(&args),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("postern: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}
