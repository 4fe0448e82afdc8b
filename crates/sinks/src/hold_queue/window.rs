//! Delivery windows as pure functions of the time: `HH:MM-HH:MM` in a fixed offset from UTC,
//! crossing midnight when the end is not after the start.

/// Minutes in a day.
const DAY: i64 = 24 * 60;
const MINUTE_MS: i64 = 60_000;

/// A daily window `[start, end)` in minutes after midnight, in a time zone `offset` minutes
/// east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) offset: i64,
}

/// `HH:MM-HH:MM`; equal ends are refused (an empty or a whole-day window means no window).
pub(crate) fn parse(text: &str, offset: i64) -> Result<Window, String> {
    let invalid =
        || format!("invalid window {text:?}: expected HH:MM-HH:MM, such as \"22:00-06:00\"");
    let (a, b) = text.split_once('-').ok_or_else(invalid)?;
    let (start, end) = (clock(a).ok_or_else(invalid)?, clock(b).ok_or_else(invalid)?);
    if start == end {
        return Err(format!(
            "invalid window {text:?}: it opens and closes at the same time"
        ));
    }
    Ok(Window { start, end, offset })
}

fn clock(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.trim().len() == 5).then_some(h * 60 + m)
}

/// `UTC` (or `Z`), or a fixed offset `+HH:MM` / `-HH:MM`; minutes east of UTC.
pub(crate) fn offset(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Ok(0);
    }
    let sign: i64 = match t.chars().next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => 0,
    };
    match (sign, clock(t.get(1..).unwrap_or_default())) {
        (1 | -1, Some(minutes)) if minutes <= 14 * 60 => Ok(sign * minutes),
        _ => Err(format!(
            "invalid timezone {text:?}: expected \"UTC\" or an offset such as \"+02:00\""
        )),
    }
}

impl Window {
    /// Minutes after midnight, local to the window's zone, of `now_ms` (Unix milliseconds).
    fn minute_of_day(&self, now_ms: i64) -> i64 {
        (now_ms.div_euclid(MINUTE_MS) + self.offset).rem_euclid(DAY)
    }

    /// Whether the window is open at `now_ms`.
    pub(crate) fn is_open(&self, now_ms: i64) -> bool {
        let m = self.minute_of_day(now_ms);
        if self.start < self.end {
            self.start <= m && m < self.end
        } else {
            m >= self.start || m < self.end
        }
    }

    /// The next time (Unix milliseconds) the window opens after `now_ms`: `now_ms` itself when
    /// it is open.
    pub(crate) fn next_opening(&self, now_ms: i64) -> i64 {
        if self.is_open(now_ms) {
            return now_ms;
        }
        let m = self.minute_of_day(now_ms);
        let wait = (self.start - m).rem_euclid(DAY);
        let minute_start = now_ms - now_ms.rem_euclid(MINUTE_MS);
        minute_start + wait * MINUTE_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03 00:00 UTC.
    const MIDNIGHT: i64 = 1_796_256_000_000;

    fn at(h: i64, m: i64) -> i64 {
        MIDNIGHT + (h * 60 + m) * MINUTE_MS
    }

    #[test]
    fn windows_open_and_close_on_the_minute() {
        let night = parse("22:00-06:00", 0).unwrap();
        let day = parse("09:30-17:00", 0).unwrap();
        let cases = [
            ("night, before it", night, at(21, 59), false, at(22, 0)),
            ("night, at its start", night, at(22, 0), true, at(22, 0)),
            ("night, after midnight", night, at(3, 0), true, at(3, 0)),
            ("night, at its end", night, at(6, 0), false, at(22, 0)),
            ("day, before it", day, at(8, 0), false, at(9, 30)),
            ("day, inside", day, at(12, 0), true, at(12, 0)),
            (
                "day, after it: tomorrow",
                day,
                at(17, 0),
                false,
                at(24 + 9, 30),
            ),
        ];
        for (name, window, now, open, next) in cases {
            assert_eq!(window.is_open(now), open, "{name}");
            assert_eq!(window.next_opening(now), next, "{name}");
        }
    }

    #[test]
    fn an_offset_moves_the_window() {
        // 22:00-06:00 at +02:00 opens at 20:00 UTC.
        let w = parse("22:00-06:00", offset("+02:00").unwrap()).unwrap();
        assert!(!w.is_open(at(19, 59)));
        assert!(w.is_open(at(20, 0)));
        assert_eq!(w.next_opening(at(12, 0)), at(20, 0));
        let west = parse("22:00-06:00", offset("-05:00").unwrap()).unwrap();
        assert_eq!(west.next_opening(at(12, 0)), at(24 + 3, 0));
    }

    #[test]
    fn bad_texts_are_refused() {
        for text in ["22:00", "25:00-06:00", "22:00-22:00", "10-12", "22:00-6:00"] {
            assert!(parse(text, 0).is_err(), "{text}");
        }
        for text in ["CET", "+2", "+15:00", "local"] {
            assert!(offset(text).is_err(), "{text}");
        }
        assert_eq!(offset("utc"), Ok(0));
        assert_eq!(offset("-03:30"), Ok(-210));
    }
}
