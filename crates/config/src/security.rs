//! The settings that defend the server: `[auth]` (SMTP AUTH, RFC 4954) and the abuse limits of
//! `[limits]` (rates per client address and per user, the greeting delay).

use std::time::Duration;

use toml::Spanned;

use crate::error::Problems;
use crate::raw::RawAuth;
use crate::units::{self, Amount};

/// `[auth]`: who may log in, and how failures are slowed down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Offer AUTH on a connection that is not encrypted. Off by default: PLAIN and LOGIN send
    /// the password in clear text.
    pub allow_plaintext: bool,
    /// Failed attempts from one client address before it is locked out.
    pub max_failures: u32,
    /// The wait before a failure's 535 reply: the first failure waits this long, each further
    /// one from the same address twice as long as the one before (at most 32 times).
    pub failure_delay: Duration,
    /// How long a locked-out address gets 454 4.7.0 for every AUTH.
    pub lockout: Duration,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            allow_plaintext: false,
            max_failures: 5,
            failure_delay: Duration::from_secs(1),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Validates `[auth]`.
pub(crate) fn auth(raw: RawAuth, problems: &mut Problems<'_>) -> Auth {
    let default = Auth::default();
    let max_failures = match raw.max_failures {
        None => default.max_failures,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => v,
            _ => {
                let message = format!("must be between 1 and {}, not {}", u32::MAX, n.get_ref());
                problems.at(n.span(), "auth.max_failures", message);
                default.max_failures
            }
        },
    };
    Auth {
        allow_plaintext: raw
            .allow_plaintext
            .map_or(default.allow_plaintext, |b| *b.get_ref()),
        max_failures,
        failure_delay: any_duration(
            raw.failure_delay,
            "auth.failure_delay",
            default.failure_delay,
            problems,
        ),
        lockout: any_duration(raw.lockout, "auth.lockout", default.lockout, problems),
    }
}

/// A duration where zero is meaningful (no wait).
pub(crate) fn any_duration(
    raw: Option<Spanned<Amount>>,
    field: &str,
    default: Duration,
    problems: &mut Problems<'_>,
) -> Duration {
    let Some(raw) = raw else { return default };
    units::duration(raw.get_ref()).unwrap_or_else(|why| {
        problems.at(raw.span(), field, why);
        default
    })
}

/// A rate limit of `[limits]`: a count per minute, at least 1; absent means no limit.
pub(crate) fn rate(
    raw: Option<Spanned<i64>>,
    name: &str,
    problems: &mut Problems<'_>,
) -> Option<u32> {
    let raw = raw?;
    let n = *raw.get_ref();
    match u32::try_from(n) {
        Ok(v) if v >= 1 => Some(v),
        _ => {
            problems.at(
                raw.span(),
                format!("limits.{name}"),
                format!(
                    "must be a count per minute between 1 and {}, not {n}",
                    u32::MAX
                ),
            );
            None
        }
    }
}
