//! A `postern` binary with one native sink of its own, `rust:hello`: the stock command line,
//! plus the sink in the catalog of every command (`serve`, `binding add`, `sink try`, …).
//!
//! # Layout
//! - `hello`: the sink and its factory.
//! - this file: the binary, one builder call.

mod hello;

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    postern::Postern::builder()
        .rust_sink(Arc::new(hello::Factory))
        .run()
}
