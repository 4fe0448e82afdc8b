//! The stock `postern` binary: the library with no sinks of its own beyond the built-in ones.
//! A binary with native sinks of its own is the same line with `.rust_sink(…)` calls (see
//! `examples/custom-sink`).

use std::process::ExitCode;

fn main() -> ExitCode {
    postern::Postern::builder().run()
}
