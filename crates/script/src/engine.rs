//! The sandboxed Rhai engine every script runs in, and its limits.
//!
//! Rhai has no file, process or network functions of its own; this build leaves out modules
//! (`no_module`: no `import`, no resolver that could read files) and `eval` is disabled, so a
//! script can only compute and call the functions of `ctx`, `changes` and `verdict`. The limits stop a script that
//! runs away: it gets an error, the sink fails, and the binding's `on_error` applies.

use rhai::{Engine, OptimizationLevel};

use crate::{changes, ctx, verdict};

/// Operations one call may perform (each expression, statement and loop turn counts). About
/// a tenth of a second of work in a release build: enough for a list of thousands of
/// addresses, and a bound on how long a runaway script holds a blocking thread.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Nested function calls.
pub const MAX_CALL_LEVELS: usize = 32;
/// Nesting of expressions, at top level and within functions.
pub const MAX_EXPR_DEPTH: usize = 64;
/// Nesting of expressions within a function.
pub const MAX_FUNCTION_EXPR_DEPTH: usize = 32;
/// The longest string a script may build, in bytes.
pub const MAX_STRING_SIZE: usize = 64 * 1024;
/// The most elements of an array.
pub const MAX_ARRAY_SIZE: usize = 10_000;
/// The most entries of an object map.
pub const MAX_MAP_SIZE: usize = 10_000;

/// Builds the engine: limits, the sandbox and the sink API.
pub(crate) fn sandbox() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FUNCTION_EXPR_DEPTH)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_optimization_level(OptimizationLevel::Simple)
        // Undeclared variables are typos: refuse them when the script is compiled.
        .set_strict_variables(true);
    // `eval` would compile text at run time, outside the checks made when the script loads.
    engine.disable_symbol("eval");
    // `print` and `debug` go to the server's log, not to its standard output.
    engine.on_print(|text| tracing::info!(target: "postern::script", "{text}"));
    engine.on_debug(|text, source, pos| {
        tracing::debug!(target: "postern::script", source = source.unwrap_or(""), %pos, "{text}");
    });
    ctx::register(&mut engine);
    changes::register(&mut engine);
    verdict::register(&mut engine);
    engine
}
