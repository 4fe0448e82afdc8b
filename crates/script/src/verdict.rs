//! The verdict functions a script returns from: `next()`, `reply(…)`, `reject(…)`,
//! `tempfail(…)`, `consume()`, `disconnect(…)`.

use postern_sink_api::{EnhancedCode, Reply, Verdict};
use rhai::{Dynamic, Engine, EvalAltResult};

/// A verdict as a Rhai value.
#[derive(Debug, Clone)]
pub(crate) struct ScriptVerdict(pub(crate) Verdict);

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A reply from a script's code, enhanced code (`""` for none) and text.
pub(crate) fn build_reply(code: i64, enhanced: &str, text: &str) -> Fallible<Reply> {
    let code = u16::try_from(code)
        .ok()
        .filter(|c| (200..=599).contains(c))
        .ok_or_else(|| format!("reply code {code} is not between 200 and 599"))?;
    let enhanced = if enhanced.is_empty() {
        None
    } else {
        let parsed = EnhancedCode::parse(enhanced)
            .ok_or_else(|| format!("{enhanced:?} is not an enhanced status code (X.Y.Z)"))?;
        if u16::from(parsed.class) != code / 100 {
            return Err(format!(
                "enhanced status code {enhanced} does not match reply code {code}"
            )
            .into());
        }
        Some(parsed)
    };
    Ok(Reply::new(code, enhanced, text))
}

fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// What `on_event` returned, as a verdict: `()` means continue.
pub(crate) fn from_return(value: Dynamic) -> Result<Verdict, String> {
    if value.is_unit() {
        return Ok(Verdict::Continue);
    }
    let type_name = value.type_name();
    value
        .try_cast::<ScriptVerdict>()
        .map(|v| v.0)
        .ok_or_else(|| {
            format!(
                "on_event returned a {type_name}; return next(), reply(…), reject(…), \
                 tempfail(…), consume() or disconnect()"
            )
        })
}

pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptVerdict>("Verdict");
    engine
        .register_fn("next", || ScriptVerdict(Verdict::Continue))
        .register_fn("consume", || ScriptVerdict(Verdict::Consume))
        .register_fn(
            "reply",
            |code: i64, enhanced: &str, text: &str| -> Fallible<ScriptVerdict> {
                Ok(ScriptVerdict(Verdict::Reply(build_reply(
                    code, enhanced, text,
                )?)))
            },
        )
        .register_fn("reject", || ScriptVerdict(Verdict::Reject(None)))
        .register_fn("reject", |text: &str| {
            ScriptVerdict(Verdict::Reject(optional(text)))
        })
        .register_fn("tempfail", || ScriptVerdict(Verdict::TempFail(None)))
        .register_fn("tempfail", |text: &str| {
            ScriptVerdict(Verdict::TempFail(optional(text)))
        })
        .register_fn("disconnect", || ScriptVerdict(Verdict::Disconnect(None)))
        .register_fn(
            "disconnect",
            |code: i64, enhanced: &str, text: &str| -> Fallible<ScriptVerdict> {
                Ok(ScriptVerdict(Verdict::Disconnect(Some(build_reply(
                    code, enhanced, text,
                )?))))
            },
        );
}
