//! MAIL FROM (RFC 5321 §4.1.1.2) with the parameters of SIZE (RFC 1870), BODY (RFC 6152),
//! SMTPUTF8 (RFC 6531) and RET/ENVID (RFC 3461).

use std::borrow::Cow;

use postern_mailmsg::{Body, DsnRet, MailParams, Sender};
use postern_sink_api::{Command, Reply};
use smtp_proto::{Error, Request};

use crate::defaults::{Staged, control_character, parse_request};
use crate::reply;
use crate::session::State;

/// MAIL flags of extensions this server does not advertise.
const UNOFFERED: u64 = smtp_proto::MAIL_BODY_BINARYMIME
    | smtp_proto::MAIL_REQUIRETLS
    | smtp_proto::MAIL_CONPERM
    | smtp_proto::MAIL_BY_NOTIFY
    | smtp_proto::MAIL_BY_RETURN
    | smtp_proto::MAIL_BY_TRACE;

pub(crate) fn mail(st: &State, command: &Command) -> (Reply, Staged) {
    if st.info.helo.is_none() {
        return (
            reply::bad_sequence("send EHLO or HELO first"),
            Staged::Nothing,
        );
    }
    if st.msg.sender.is_some() {
        return (
            reply::bad_sequence("sender already specified"),
            Staged::Nothing,
        );
    }
    if let Some(reply) = crate::role::mail_refusal(st) {
        return (reply, Staged::Nothing);
    }
    if let Some(reply) = control_character(command, true) {
        return (reply, Staged::Nothing);
    }
    if !st.server.spool.accepting() {
        // Below the disk reserve: no new mail until space is freed (the spool logs that once).
        return (reply::insufficient_storage(), Staged::Nothing);
    }
    let declared = declared_size(&command.args);
    // `smtp-proto` refuses some long SIZE values and misreads others: it reads a neutral one.
    let line = match declared {
        Some((_, digits))
            if digits.len() > EXACT_DIGITS && command.line.ends_with(command.args.as_str()) =>
        {
            // The arguments end the line; the digits are a slice of them.
            let args_at = command.line.len() - command.args.len();
            let at = args_at + (digits.as_ptr() as usize - command.args.as_ptr() as usize);
            let mut line = command.line.clone();
            line.replace_range(at..at + digits.len(), "0");
            Cow::Owned(line)
        }
        _ => Cow::Borrowed(command.line.as_str()),
    };
    let from = match parse_request(&line) {
        Ok(Request::Mail { from }) => from,
        Ok(_) | Err(Error::SyntaxError { .. }) | Err(Error::UnknownCommand) => {
            return (
                reply::bad_arguments("MAIL FROM:<address> [parameters]"),
                Staged::Nothing,
            );
        }
        Err(Error::InvalidSenderAddress) => return (reply::bad_address(true), Staged::Nothing),
        Err(Error::UnsupportedParameter { param }) => {
            return (reply::unsupported_parameter(&param), Staged::Nothing);
        }
        Err(Error::InvalidParameter { param }) => {
            return (
                reply::bad_arguments(&format!("MAIL FROM:<address> [parameters], bad {param}")),
                Staged::Nothing,
            );
        }
        Err(_) => return (reply::syntax_error(), Staged::Nothing),
    };
    if from.flags & UNOFFERED != 0
        || from.by != 0
        || from.hold_for != 0
        || from.hold_until != 0
        || from.mt_priority != 0
        || from.mtrk.is_some()
        || from.solicit.is_some()
        || from.trans_id.is_some()
        || (from.auth.is_some() && !crate::auth::offered(st))
    {
        return (
            reply::unsupported_parameter("(an extension not offered)"),
            Staged::Nothing,
        );
    }
    let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
    if !smtputf8 && !from.address.is_ascii() {
        return (reply::needs_smtputf8(), Staged::Nothing);
    }
    let body = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
        Body::EightBitMime
    } else {
        Body::SevenBit
    };
    let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
        Some(DsnRet::Full)
    } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
        Some(DsnRet::Headers)
    } else {
        None
    };
    let size = declared.map_or(from.size as u64, |(size, _)| size);
    let sender = Sender {
        address: from.address,
        params: MailParams {
            size: (size > 0).then_some(size),
            body,
            smtputf8,
            ret,
            envid: from.env_id,
        },
    };
    let limits = &st.server.config.limits;
    if let Some(reply) = crate::guard::over_rate(
        st,
        &st.server.message_rates,
        limits.message_rate_per_ip,
        limits.message_rate_per_user,
        "messages",
    ) {
        return (reply, Staged::Nothing);
    }
    let limit = limits.max_message_size;
    if size > limit {
        // Over the limit: the max-size event decides (its default sink refuses).
        return (reply::too_big(limit), Staged::Oversize(sender));
    }
    (reply::sender_ok(), Staged::Mail(sender, None))
}

/// The most digits `smtp-proto` reads exactly in a size.
const EXACT_DIGITS: usize = usize::MAX.ilog10() as usize;

/// The value of the SIZE parameter (RFC 1870) and its digits, read here because `smtp-proto`
/// reads only so many digits exactly and then starts over, so a `SIZE=` of 21 digits could pass
/// for a small size. A value too large for a `u64` is `u64::MAX`: over any limit.
fn declared_size(args: &str) -> Option<(u64, &str)> {
    // Parameters follow the path; the first `>` after its `<` ends it.
    let open = args.find('<')?;
    let close = args[open..].find('>')? + open;
    let value = args[close + 1..]
        .split_ascii_whitespace()
        .find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.eq_ignore_ascii_case("SIZE").then_some(value)
        })?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((value.parse().unwrap_or(u64::MAX), value))
}

#[cfg(test)]
mod tests {
    use super::declared_size;

    #[test]
    fn size_values_past_twenty_digits_saturate() {
        let cases: &[(&str, &str, Option<u64>)] = &[
            ("none", "FROM:<a@b>", None),
            ("plain", "FROM:<a@b> SIZE=1000", Some(1000)),
            ("lower case", "FROM:<a@b> size=7 BODY=8BITMIME", Some(7)),
            (
                "u64::MAX",
                "FROM:<a@b> SIZE=18446744073709551615",
                Some(u64::MAX),
            ),
            (
                "21 digits",
                "FROM:<a@b> SIZE=100000000000000000000",
                Some(u64::MAX),
            ),
            (
                "23 digits",
                "FROM:<a@b> SIZE=10000000000000000000001",
                Some(u64::MAX),
            ),
            ("not a number", "FROM:<a@b> SIZE=1x", None),
        ];
        for (name, args, want) in cases {
            assert_eq!(declared_size(args).map(|(size, _)| size), *want, "{name}");
        }
    }
}
