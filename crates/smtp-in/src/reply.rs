//! Every reply the inbound session sends on its own, in one place (handlers hold no reply text).

use postern_sink_api::{EnhancedCode, Reply};

const fn esc(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(class, subject, detail))
}

/// `220 HOST ESMTP Postern`.
pub(crate) fn greeting(host: &str) -> Reply {
    Reply::new(220, None, format!("{host} ESMTP Postern"))
}

/// `221 2.0.0 Bye`.
pub(crate) fn bye() -> Reply {
    Reply::new(221, esc(2, 0, 0), "Bye")
}

/// `250 2.0.0 OK`.
pub(crate) fn ok() -> Reply {
    Reply::new(250, esc(2, 0, 0), "OK")
}

/// The HELO reply.
pub(crate) fn helo(host: &str, client: &str) -> Reply {
    Reply::new(250, None, format!("{host} greets {client}"))
}

/// `250 2.1.0 Sender OK`.
pub(crate) fn sender_ok() -> Reply {
    Reply::new(250, esc(2, 1, 0), "Sender OK")
}

/// `250 2.1.5 Recipient OK`.
pub(crate) fn recipient_ok() -> Reply {
    Reply::new(250, esc(2, 1, 5), "Recipient OK")
}

/// `354 …`.
pub(crate) fn start_data() -> Reply {
    Reply::new(354, None, "End data with <CR><LF>.<CR><LF>")
}

/// `250 2.0.0 Ok: queued as ID`.
pub(crate) fn queued(id: &str) -> Reply {
    Reply::new(250, esc(2, 0, 0), format!("Ok: queued as {id}"))
}

/// `250 2.0.0 N octets received` (a BDAT chunk that is not the last).
pub(crate) fn chunk_received(size: usize) -> Reply {
    Reply::new(250, esc(2, 0, 0), format!("{size} octets received"))
}

/// `252 2.5.0` for VRFY (RFC 5321 §3.5.3: no address verification is offered).
pub(crate) fn cannot_verify() -> Reply {
    Reply::new(
        252,
        esc(2, 5, 0),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

/// `214 2.0.0` with the commands.
pub(crate) fn help() -> Reply {
    Reply::multiline(
        214,
        esc(2, 0, 0),
        vec![
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP".into(),
            "See RFC 5321".into(),
        ],
    )
}

/// `500 5.5.2 Line too long`.
pub(crate) fn line_too_long() -> Reply {
    Reply::new(500, esc(5, 5, 2), "Line too long")
}

/// `500 5.5.2 Syntax error` (NUL bytes, a missing verb).
pub(crate) fn syntax_error() -> Reply {
    Reply::new(500, esc(5, 5, 2), "Syntax error, command unrecognized")
}

/// `500 5.5.1 Unknown command`.
pub(crate) fn unknown_command() -> Reply {
    Reply::new(500, esc(5, 5, 1), "Command unrecognized")
}

/// `501 5.5.4` with the syntax expected.
pub(crate) fn bad_arguments(syntax: &str) -> Reply {
    Reply::new(501, esc(5, 5, 4), format!("Syntax: {syntax}"))
}

/// `502 5.5.1 Command not implemented`.
pub(crate) fn not_implemented() -> Reply {
    Reply::new(502, esc(5, 5, 1), "Command not implemented")
}

/// `220 2.0.0 Ready to start TLS` (RFC 3207 §4).
pub(crate) fn ready_to_start_tls() -> Reply {
    Reply::new(220, esc(2, 0, 0), "Ready to start TLS")
}

/// `503 5.5.1` for STARTTLS in a session that is already encrypted.
pub(crate) fn tls_already_active() -> Reply {
    Reply::new(503, esc(5, 5, 1), "TLS already active")
}

/// `530 5.7.0 Must issue a STARTTLS command first` (RFC 3207 §4).
pub(crate) fn must_starttls_first() -> Reply {
    Reply::new(530, esc(5, 7, 0), "Must issue a STARTTLS command first")
}

/// `530 5.7.0 Authentication required` (RFC 4954 §6).
pub(crate) fn authentication_required() -> Reply {
    Reply::new(530, esc(5, 7, 0), "Authentication required")
}

/// `503 5.5.1 Bad sequence of commands` with a hint.
pub(crate) fn bad_sequence(hint: &str) -> Reply {
    Reply::new(
        503,
        esc(5, 5, 1),
        format!("Bad sequence of commands: {hint}"),
    )
}

/// `553 5.1.7` / `553 5.1.3` for a path that is not an address.
pub(crate) fn bad_address(sender: bool) -> Reply {
    if sender {
        Reply::new(553, esc(5, 1, 7), "Bad sender address syntax")
    } else {
        Reply::new(553, esc(5, 1, 3), "Bad recipient address syntax")
    }
}

/// `501 5.1.7` / `501 5.1.3` for an address with a control character (a bare CR, DEL, …).
pub(crate) fn control_in_address(sender: bool) -> Reply {
    let code = if sender { esc(5, 1, 7) } else { esc(5, 1, 3) };
    Reply::new(
        501,
        code,
        "Control characters are not allowed in an address",
    )
}

/// `553 5.6.7` for a UTF-8 address without SMTPUTF8 (RFC 6531 §3.5).
pub(crate) fn needs_smtputf8() -> Reply {
    Reply::new(553, esc(5, 6, 7), "Non-ASCII address requires SMTPUTF8")
}

/// `555 5.5.4` for a MAIL/RCPT parameter that is not supported.
pub(crate) fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(555, esc(5, 5, 4), format!("Unsupported parameter {param}"))
}

/// `552 5.3.4` for a message over the size limit.
pub(crate) fn too_big(limit: u64) -> Reply {
    Reply::new(
        552,
        esc(5, 3, 4),
        format!("Message size exceeds fixed limit of {limit} octets"),
    )
}

/// `452 4.5.3 Too many recipients`.
pub(crate) fn too_many_recipients() -> Reply {
    Reply::new(452, esc(4, 5, 3), "Too many recipients")
}

/// `550 5.1.1` for an unknown local user.
pub(crate) fn unknown_user(address: &str) -> Reply {
    Reply::new(
        550,
        esc(5, 1, 1),
        format!("<{address}>: Recipient address rejected: User unknown"),
    )
}

/// `550 5.7.1` relay denied.
pub(crate) fn relay_denied(address: &str) -> Reply {
    Reply::new(
        550,
        esc(5, 7, 1),
        format!("<{address}>: Relay access denied"),
    )
}

/// `554 5.5.1 No valid recipients`.
pub(crate) fn no_recipients() -> Reply {
    Reply::new(554, esc(5, 5, 1), "No valid recipients")
}

/// `550 5.6.0` for content refused by the anti-smuggling and line rules.
pub(crate) fn bad_content(why: &str) -> Reply {
    Reply::new(550, esc(5, 6, 0), format!("Message refused: {why}"))
}

/// `451 4.3.0` when the queue could not store the message.
pub(crate) fn queue_failed() -> Reply {
    Reply::new(
        451,
        esc(4, 3, 0),
        "Temporary failure writing the queue, try again later",
    )
}

/// `452 4.3.1` when the memory budget for messages in transfer is used up.
pub(crate) fn no_memory() -> Reply {
    Reply::new(
        452,
        esc(4, 3, 1),
        "Insufficient system resources, try again later",
    )
}

/// `452 4.3.1` at MAIL while free space on the queue's file system is below its reserve
/// (RFC 3463 4.3.1, mail system full): the client tries again later; delivery goes on.
pub(crate) fn insufficient_storage() -> Reply {
    Reply::new(452, esc(4, 3, 1), "Insufficient system storage")
}

/// `421 4.4.2` after an idle or command timeout.
pub(crate) fn timeout(host: &str) -> Reply {
    Reply::new(
        421,
        esc(4, 4, 2),
        format!("{host} Timeout, closing connection"),
    )
}

/// `421 4.7.0` after too many errors.
pub(crate) fn too_many_errors(host: &str) -> Reply {
    Reply::new(
        421,
        esc(4, 7, 0),
        format!("{host} Too many errors, closing connection"),
    )
}

/// `421 4.7.0` when the server holds too many connections.
pub(crate) fn too_many_connections(host: &str, from_you: bool) -> Reply {
    let text = if from_you {
        "Too many connections from your address, try again later"
    } else {
        "Too many connections, try again later"
    };
    Reply::new(421, esc(4, 7, 0), format!("{host} {text}"))
}

/// `421 4.3.2` when the server shuts down.
pub(crate) fn shutting_down(host: &str) -> Reply {
    Reply::new(
        421,
        esc(4, 3, 2),
        format!("{host} Service shutting down, try again later"),
    )
}

/// `334 CHALLENGE`: an AUTH challenge, base64 (empty for PLAIN's request for credentials).
pub(crate) fn challenge(base64: &str) -> Reply {
    Reply::new(334, None, base64)
}

/// `235 2.7.0` (RFC 4954 §6).
pub(crate) fn auth_ok() -> Reply {
    Reply::new(235, esc(2, 7, 0), "Authentication successful")
}

/// `535 5.7.8` (RFC 4954 §6): wrong user name or password.
pub(crate) fn auth_failed() -> Reply {
    Reply::new(535, esc(5, 7, 8), "Authentication credentials invalid")
}

/// `454 4.7.0` for a client address locked out after too many failures.
pub(crate) fn auth_locked() -> Reply {
    Reply::new(
        454,
        esc(4, 7, 0),
        "Too many failed authentications from your address, try again later",
    )
}

/// `454 4.7.0` (RFC 4954 §6) when the user store cannot be read.
pub(crate) fn auth_unavailable() -> Reply {
    Reply::new(454, esc(4, 7, 0), "Temporary authentication failure")
}

/// `501 5.7.0` (RFC 4954 §4): the client answered a challenge with `*`.
pub(crate) fn auth_cancelled() -> Reply {
    Reply::new(501, esc(5, 7, 0), "Authentication canceled")
}

/// `501 5.5.2` (RFC 4954 §4): a response that is not base64, or not what the mechanism
/// expects.
pub(crate) fn auth_bad_response(why: &str) -> Reply {
    Reply::new(501, esc(5, 5, 2), format!("Cannot decode response: {why}"))
}

/// `500 5.5.6` (RFC 4954 §4): a response line longer than the server takes.
pub(crate) fn auth_line_too_long() -> Reply {
    Reply::new(
        500,
        esc(5, 5, 6),
        "Authentication exchange line is too long",
    )
}

/// `538 5.7.11` (RFC 4954 §6): AUTH on a connection that is not encrypted.
pub(crate) fn auth_needs_tls() -> Reply {
    Reply::new(
        538,
        esc(5, 7, 11),
        "Encryption required for requested authentication mechanism",
    )
}

/// `504 5.5.4` (RFC 4954 §6): a mechanism not offered.
pub(crate) fn auth_unknown_mechanism() -> Reply {
    Reply::new(504, esc(5, 5, 4), "Unrecognized authentication type")
}

/// `450 4.7.1` when a client address or user sends faster than its rate limit.
pub(crate) fn rate_limited(what: &str) -> Reply {
    Reply::new(
        450,
        esc(4, 7, 1),
        format!("Rate limit exceeded: too many {what}, try again later"),
    )
}

/// `554 5.5.0` to a client that talked before the greeting (it is not speaking SMTP).
pub(crate) fn early_talker(host: &str) -> Reply {
    Reply::new(
        554,
        esc(5, 5, 0),
        format!("{host} Protocol error: talking before the greeting"),
    )
}
