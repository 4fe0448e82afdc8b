#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on a nightly toolchain,
# as `cargo fuzz build` does (without AddressSanitizer: the crates forbid unsafe code), for
# machines without cargo-fuzz. Prints the folder holding the target binaries.
set -euo pipefail
cd "$(dirname "$0")"
target=$(rustc +nightly -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# With --target, the flags reach the targets and not the build scripts.
cargo +nightly build --release --target "$target" --bins >&2
echo "$PWD/target/$target/release"
