//! `builtin:hold-queue` at `post-categorize`: holds the messages its binding's rule matches,
//! for an administrator's approval (`mode=approval`: the queue state Held) or for delivery inside
//! a daily window (`window=22:00-06:00`, `timezone=UTC` or `+HH:MM`).
//!
//! A message waiting for its window is an ordinary deferred message whose next attempt is the
//! window's opening (the message property `postern.next_attempt`, which the transport honours):
//! the scheduler wakes it, and no task waits per message. The sink marks what it held, so that
//! when the message comes back — released by an administrator, or the window open — it goes on
//! instead of being held again: a held message that is released goes at once.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use postern_mailmsg::{Fate, Value};
use postern_sink_api::{
    Call, Change, Context, Event, Instance, Outcome, Scope, Sink, SinkError, SinkFactory, SinkSpec,
    Verdict,
};

use crate::props;

mod window;

use window::Window;

/// The message property the transport reads as the time of the next attempt after this
/// deferral (Unix milliseconds), in place of the retry schedule's.
const NEXT_ATTEMPT: &str = "postern.next_attempt";
/// This sink's mark of a message it deferred to a window: the opening it waits for.
const NOT_BEFORE: &str = "hold-queue.until";
/// This sink's mark of a message it held for approval.
const HELD: &str = "hold-queue.held";

pub(crate) struct Factory;

enum Mode {
    Approval,
    Window(Window, String),
}

struct HoldQueue(Mode);

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "hold-queue"
    }

    fn summary(&self) -> &'static str {
        "holds matching messages for approval, or until a daily delivery window opens"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(&["mode", "window", "timezone"])
    }

    fn fits(&self, event: &Event) -> bool {
        *event == Event::PostCategorize
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        let p = &spec.properties;
        let mode = props::text(p, "mode")?;
        let window = props::text(p, "window")?;
        let zone = props::text(p, "timezone")?;
        let mode = match (mode.as_deref(), window) {
            (Some("approval"), None) if zone.is_none() => Mode::Approval,
            (Some("window") | None, Some(text)) => {
                let offset = window::offset(zone.as_deref().unwrap_or("UTC"))
                    .map_err(|why| SinkError::Config(format!("property `timezone`: {why}")))?;
                let w = window::parse(&text, offset)
                    .map_err(|why| SinkError::Config(format!("property `window`: {why}")))?;
                let zone = zone.map_or_else(|| "UTC".to_owned(), |z| z.into_owned());
                Mode::Window(w, format!("{text} {zone}"))
            }
            (Some("approval"), _) => {
                return Err(SinkError::Config(
                    "mode=approval takes no `window` or `timezone`".into(),
                ));
            }
            (Some(other), _) if other != "window" => {
                return Err(SinkError::Config(format!(
                    "property `mode`: {other:?} is not \"approval\" or \"window\""
                )));
            }
            _ => {
                return Err(SinkError::Config(
                    "give mode=approval, or window=HH:MM-HH:MM (and optionally timezone)".into(),
                ));
            }
        };
        Ok(Instance::Async(Arc::new(HoldQueue(mode))))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Sink for HoldQueue {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        let props = &ctx.message.properties;
        let outcome = match &self.0 {
            Mode::Approval => {
                if props.get(HELD).and_then(Value::as_bool) == Some(true) {
                    // Held before and released since.
                    Outcome::next()
                } else {
                    Outcome::changes(vec![set(HELD, true.into()), Change::SetFate(Fate::Hold)])
                }
            }
            Mode::Window(window, label) => decide(window, label, props.get(NOT_BEFORE), now_ms()),
        };
        Call::Ready(Ok(outcome))
    }
}

/// The window's decision at `now`: go on when the window is open, or when the message was
/// deferred to an opening that has not come yet (only a release brings it back that early);
/// otherwise defer it to the next opening.
fn decide(window: &Window, label: &str, mark: Option<&Value>, now: i64) -> Outcome {
    let released_early = mark
        .and_then(Value::as_int)
        .is_some_and(|until| now < until);
    if window.is_open(now) || released_early {
        return Outcome::next();
    }
    let opening = window.next_opening(now);
    Outcome::changes(vec![
        set(NOT_BEFORE, opening.into()),
        set(NEXT_ATTEMPT, opening.into()),
    ])
    .with_verdict(Verdict::TempFail(Some(format!(
        "451 4.3.2 held for the delivery window {label}"
    ))))
}

fn set(key: &str, value: Value) -> Change {
    Change::SetProperty {
        scope: Scope::Message,
        key: key.to_owned(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_waits_for_the_window_unless_released() {
        let w = window::parse("22:00-06:00", 0).unwrap();
        let noon = 1_796_256_000_000 + 12 * 3_600_000;
        let opening = 1_796_256_000_000 + 22 * 3_600_000;
        let held = decide(&w, "22:00-06:00 UTC", None, noon);
        assert!(matches!(held.verdict, Verdict::TempFail(_)), "{held:?}");
        assert!(held.changes.iter().any(|c| matches!(
            c,
            Change::SetProperty { key, value, .. } if key == NOT_BEFORE && value.as_int() == Some(opening)
        )));
        let mark = Value::from(opening);
        // Back before the opening: an administrator released it.
        let released = decide(&w, "", Some(&mark), noon + 60_000);
        assert!(
            matches!(released.verdict, Verdict::Continue),
            "{released:?}"
        );
        // Woken at the opening: the window is open.
        assert!(matches!(
            decide(&w, "", Some(&mark), opening).verdict,
            Verdict::Continue
        ));
    }
}
