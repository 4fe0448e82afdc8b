//! The verbs with no state of their own: RSET, NOOP, QUIT, VRFY, HELP, the ones not offered
//! (EXPN, and AUTH until it is configured), and unknown verbs.

use postern_sink_api::{Command, Reply};

use crate::defaults::Staged;
use crate::reply;

/// RFC 5321 §4.1.1.5: RSET takes no parameters.
pub(crate) fn rset(command: &Command) -> (Reply, Staged) {
    if !command.args.trim().is_empty() {
        return (reply::bad_arguments("RSET"), Staged::Nothing);
    }
    (reply::ok(), Staged::Reset)
}

pub(crate) fn noop() -> (Reply, Staged) {
    (reply::ok(), Staged::Nothing)
}

pub(crate) fn quit() -> (Reply, Staged) {
    (reply::bye(), Staged::Quit)
}

/// RFC 5321 §3.5.3: 252 when the server will not verify but will accept.
pub(crate) fn vrfy(command: &Command) -> (Reply, Staged) {
    if command.args.trim().is_empty() {
        return (reply::bad_arguments("VRFY <address>"), Staged::Nothing);
    }
    (reply::cannot_verify(), Staged::Nothing)
}

pub(crate) fn help() -> (Reply, Staged) {
    (reply::help(), Staged::Nothing)
}

pub(crate) fn not_implemented() -> (Reply, Staged) {
    (reply::not_implemented(), Staged::Nothing)
}

/// A verb no sink answered: 500 5.5.1.
pub(crate) fn unknown() -> (Reply, Staged) {
    (reply::unknown_command(), Staged::Nothing)
}
