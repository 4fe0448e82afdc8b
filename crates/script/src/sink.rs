//! The sink of one `script:PATH` binding: runs the script's `on_event(ctx)` and turns what it
//! did into an outcome.

use std::sync::Arc;

use postern_sink_api::{BlockingSink, Context, Outcome, SinkError, SinkResult};
use rhai::{CallFnOptions, Dynamic, Engine, Map, Scope};

use crate::changes::Collector;
use crate::ctx::ScriptCtx;
use crate::script::Script;
use crate::verdict;

/// A binding's script sink. It is a [`BlockingSink`]: a call is pure computation bounded by
/// [`crate::MAX_OPERATIONS`], but that bound is up to a tenth of a second, far too long to hold
/// one of the runtime's few threads, where every session and delivery would wait behind it. On
/// the blocking pool a slow script delays only its own event.
pub(crate) struct ScriptSink {
    pub(crate) engine: Arc<Engine>,
    pub(crate) script: Arc<Script>,
    pub(crate) props: Arc<Map>,
}

impl ScriptSink {
    /// Runs `on_event` once. Errors (a limit reached, a runtime error, a bad return value)
    /// name the script and, where Rhai knows it, the line.
    pub(crate) fn run(&self, ctx: Arc<Context>) -> SinkResult {
        let ast = self.script.current(&self.engine);
        let collector = Collector::default();
        let options = CallFnOptions::new()
            .eval_ast(false)
            .rewind_scope(true)
            .with_tag(Dynamic::from(collector.clone()));
        let arg = ScriptCtx::new(ctx, self.props.clone());
        let returned = self
            .engine
            .call_fn_with_options::<Dynamic>(options, &mut Scope::new(), &ast, "on_event", (arg,))
            .map_err(|e| {
                SinkError::Failed(format!("script {}: {e}", self.script.path().display()))
            })?;
        let verdict = verdict::from_return(returned).map_err(|e| {
            SinkError::Failed(format!("script {}: {e}", self.script.path().display()))
        })?;
        Ok(Outcome {
            verdict,
            changes: collector.take(),
        })
    }
}

impl BlockingSink for ScriptSink {
    fn on_event(&self, ctx: &Context) -> SinkResult {
        self.run(Arc::new(ctx.clone()))
    }
}
