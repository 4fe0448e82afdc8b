//! Durations and sizes as an administrator writes them: `"30s"`, `"5m"`, `"25M"`, or a plain
//! integer (seconds for a duration, octets for a size).

use std::time::Duration;

/// A duration or a size before interpretation: the TOML integer or string it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Amount {
    /// A TOML integer: seconds for a duration, octets for a size.
    Integer(i64),
    /// A string with a unit (`"250ms"`, `"25M"`).
    Text(String),
}

/// Interprets a duration: an integer of seconds, or digits followed by `ms`, `s`, `m`, `h` or `d`.
pub(crate) fn duration(amount: &Amount) -> Result<Duration, String> {
    match amount {
        Amount::Integer(seconds) => u64::try_from(*seconds)
            .map(Duration::from_secs)
            .map_err(|_| format!("invalid duration {seconds}: must not be negative")),
        Amount::Text(text) => duration_text(text),
    }
}

/// Interprets a duration given on the command line, where only text with a unit is possible.
pub(crate) fn duration_option(text: &str) -> Result<Duration, String> {
    if !text.trim().is_empty() && text.trim().bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid duration {text:?}: missing unit: write for example {}s or {}ms",
            text.trim(),
            text.trim()
        ));
    }
    duration_text(text)
}

fn duration_text(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(invalid(
            "expected a whole number followed by ms, s, m, h or d, such as \"30s\"",
        ));
    }
    let n: u64 = number.parse().map_err(|_| invalid("number too large"))?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => {
            return Err(invalid(
                "missing unit: write for example \"30s\", or an integer of seconds without quotes",
            ));
        }
        other => {
            return Err(invalid(&format!(
                "unknown unit `{other}` (use ms, s, m, h or d)"
            )));
        }
    };
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| invalid("too large"))
}

/// Interprets a size in octets: an integer, or digits followed by `k`/`K`, `M`, `G` or `T`, or
/// `KiB`, `MiB`, `GiB`, `TiB` (all powers of 1024), in either case for the
/// one-letter ones. This is the one size syntax of Postern: the configuration and binding rules
/// (`SIZE>10M`) both use it.
pub(crate) fn size(amount: &Amount) -> Result<u64, String> {
    match amount {
        Amount::Integer(octets) => u64::try_from(*octets)
            .map_err(|_| format!("invalid size {octets}: must not be negative")),
        Amount::Text(text) => size_text(text),
    }
}

fn size_text(text: &str) -> Result<u64, String> {
    let invalid = |why: &str| format!("invalid size {text:?}: {why}");
    let (number, suffix) = split_number(text);
    if number.is_empty() {
        return Err(invalid(
            "expected a whole number of octets, optionally followed by k, M or G, such as \"25M\"",
        ));
    }
    let n: u64 = number.parse().map_err(|_| invalid("number too large"))?;
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "m" | "M" | "MiB" => 1 << 20,
        "g" | "G" | "GiB" => 1 << 30,
        "t" | "T" | "TiB" => 1 << 40,
        other => {
            return Err(invalid(&format!(
                "unknown suffix `{other}` (use k, M, G or T in either case, or KiB, MiB, GiB, TiB; all are powers of 1024)"
            )));
        }
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| invalid("too large"))
}

/// Splits leading ASCII digits from the unit after them; blanks around either are ignored.
fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    (number, unit.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Amount {
        Amount::Text(s.to_owned())
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Amount, Option<Duration>)] = &[
            (
                "milliseconds",
                text("250ms"),
                Some(Duration::from_millis(250)),
            ),
            ("seconds", text("30s"), Some(Duration::from_secs(30))),
            ("minutes", text("5m"), Some(Duration::from_secs(300))),
            ("hours", text("1h"), Some(Duration::from_secs(3600))),
            (
                "surrounding blanks",
                text(" 2s "),
                Some(Duration::from_secs(2)),
            ),
            (
                "integer seconds",
                Amount::Integer(45),
                Some(Duration::from_secs(45)),
            ),
            ("zero is a value", Amount::Integer(0), Some(Duration::ZERO)),
            ("negative integer", Amount::Integer(-1), None),
            ("no unit", text("30"), None),
            ("unknown unit", text("5 minutes"), None),
            ("days", text("5d"), Some(Duration::from_secs(5 * 86_400))),
            ("weeks are not a unit", text("1w"), None),
            ("no number", text("ms"), None),
            ("fraction", text("1.5s"), None),
            ("empty", text(""), None),
            ("overflow", text("99999999999999999999s"), None),
            ("overflow on multiply", text("18446744073709551615h"), None),
        ];
        for (name, amount, want) in cases {
            assert_eq!(duration(amount).ok(), *want, "case {name}");
        }
    }

    #[test]
    fn a_command_line_duration_without_unit_says_how_to_write_one_there() {
        let why = duration_option("5").unwrap_err();
        assert!(why.contains("5s") && !why.contains("quotes"), "{why}");
        assert_eq!(duration_option("5s"), Ok(Duration::from_secs(5)));
        assert!(duration_option("5x").is_err());
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, Amount, Option<u64>)] = &[
            ("integer octets", Amount::Integer(1000), Some(1000)),
            ("digits without suffix", text("1000"), Some(1000)),
            ("lower k", text("10k"), Some(10 * 1024)),
            ("upper K", text("10K"), Some(10 * 1024)),
            ("mega", text("25M"), Some(26_214_400)),
            ("giga", text("1G"), Some(1 << 30)),
            ("gibi", text("1GiB"), Some(1 << 30)),
            ("mebi", text("3MiB"), Some(3 << 20)),
            ("negative integer", Amount::Integer(-5), None),
            (
                "lower m is mega too, as in rules",
                text("25m"),
                Some(26_214_400),
            ),
            ("lower g", text("2g"), Some(2 << 30)),
            ("blank before the suffix", text("10 M"), Some(10 << 20)),
            ("tera", text("2T"), Some(2 << 40)),
            ("unknown suffix", text("25P"), None),
            ("unit with B", text("25MB"), None),
            ("no number", text("M"), None),
            ("overflow", text("99999999999G"), None),
        ];
        for (name, amount, want) in cases {
            assert_eq!(size(amount).ok(), *want, "case {name}");
        }
    }
}
