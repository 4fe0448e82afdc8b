//! EHLO and HELO (RFC 5321 §4.1.1.1): the client names itself; EHLO lists the extensions.

use postern_sink_api::{Command, Context, Reply};
use smtp_proto::Request;

use crate::defaults::{Staged, parse_request};
use crate::reply;
use crate::session::State;

/// The EHLO reply: greeting line, then one keyword a line (RFC 5321 §4.1.1.1).
pub(crate) fn ehlo(st: &State, ctx: &Context, command: &Command) -> (Reply, Staged) {
    let Ok(Request::Ehlo { host }) = parse_request(&command.line) else {
        return (reply::bad_arguments("EHLO domain"), Staged::Nothing);
    };
    let server = &st.server;
    let mut lines = vec![
        format!("{} greets {host}", server.hostname),
        "PIPELINING".to_owned(),
        format!("SIZE {}", server.config.limits.max_message_size),
        "8BITMIME".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
        "SMTPUTF8".to_owned(),
        "CHUNKING".to_owned(),
        "DSN".to_owned(),
        "HELP".to_owned(),
    ];
    if crate::starttls::offered(st) {
        lines.push("STARTTLS".to_owned());
    }
    if crate::auth::offered(st) {
        lines.push(format!("AUTH {}", crate::auth::MECHANISMS));
    }
    // Keywords sinks added before this default sink ran (those after append themselves).
    lines.extend(ctx.ehlo_keywords.iter().cloned());
    (
        Reply::multiline(250, None, lines),
        Staged::Helo {
            name: host,
            esmtp: true,
        },
    )
}

/// HELO: plain SMTP.
pub(crate) fn helo(st: &State, command: &Command) -> (Reply, Staged) {
    let Ok(Request::Helo { host }) = parse_request(&command.line) else {
        return (reply::bad_arguments("HELO domain"), Staged::Nothing);
    };
    (
        reply::helo(&st.server.hostname, &host),
        Staged::Helo {
            name: host,
            esmtp: false,
        },
    )
}
