//! MAIL FROM (RFC 5321 §4.1.1.2) with the parameters of SIZE (RFC 1870), BODY (RFC 6152),
//! SMTPUTF8 (RFC 6531) and RET/ENVID (RFC 3461).

use postern_mailmsg::{Body, DsnRet, MailParams, Sender};
use postern_sink_api::{Command, Reply};
use smtp_proto::{Error, Request};

use crate::defaults::{Staged, parse_request};
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
    if !st.server.spool.accepting() {
        // Below the disk reserve: no new mail until space is freed (the spool logs that once).
        return (reply::insufficient_storage(), Staged::Nothing);
    }
    let from = match parse_request(&command.line) {
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
        || from.auth.is_some()
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
    let sender = Sender {
        address: from.address,
        params: MailParams {
            size: (from.size > 0).then_some(from.size as u64),
            body,
            smtputf8,
            ret,
            envid: from.env_id,
        },
    };
    let limit = st.server.config.limits.max_message_size;
    if from.size as u64 > limit {
        // Over the limit: the max-size event decides (its default sink refuses).
        return (reply::too_big(limit), Staged::Oversize(sender));
    }
    (reply::sender_ok(), Staged::Mail(sender, None))
}
