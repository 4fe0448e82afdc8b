//! RCPT TO (RFC 5321 §4.1.1.3) with NOTIFY/ORCPT (RFC 3461): local users, relaying, limits.

use postern_mailmsg::{DsnNotify, RcptParams, Recipient};
use postern_sink_api::{Command, Reply};
use smtp_proto::{Error, Request};

use crate::defaults::{Staged, control_character, parse_request};
use crate::reply;
use crate::session::State;

pub(crate) fn rcpt(st: &State, command: &Command) -> (Reply, Staged) {
    let Some(sender) = st.msg.sender.as_ref() else {
        return (reply::bad_sequence("send MAIL first"), Staged::Nothing);
    };
    if st.chunks.is_some() {
        return (
            reply::bad_sequence("message transfer in progress"),
            Staged::Nothing,
        );
    }
    if let Some(reply) = control_character(command, false) {
        return (reply, Staged::Nothing);
    }
    let limits = &st.server.config.limits;
    if st.msg.recipients.len() >= limits.max_recipients {
        return (reply::too_many_recipients(), Staged::Nothing);
    }
    // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted; the parser wants a
    // domain, so the bare form is read here.
    let bare_postmaster = command
        .path()
        .is_some_and(|p| p.eq_ignore_ascii_case("postmaster"));
    let parsed = if bare_postmaster {
        let line = command.line.replacen(
            command.path().unwrap_or(""),
            "postmaster@postmaster.invalid",
            1,
        );
        parse_request(&line)
    } else {
        parse_request(&command.line)
    };
    let to = match parsed {
        Ok(Request::Rcpt { mut to }) => {
            if bare_postmaster {
                to.address = "postmaster".into();
            }
            to
        }
        Err(Error::InvalidRecipientAddress) => {
            return (reply::bad_address(false), Staged::Nothing);
        }
        Err(Error::UnsupportedParameter { param }) => {
            return (reply::unsupported_parameter(&param), Staged::Nothing);
        }
        _ => {
            return (
                reply::bad_arguments("RCPT TO:<address> [parameters]"),
                Staged::Nothing,
            );
        }
    };
    if to.address.is_empty() {
        return (reply::bad_address(false), Staged::Nothing);
    }
    if to.flags
        & (smtp_proto::RCPT_CONNEG | smtp_proto::RCPT_RRVS_REJECT | smtp_proto::RCPT_RRVS_CONTINUE)
        != 0
    {
        return (
            reply::unsupported_parameter("(an extension not offered)"),
            Staged::Nothing,
        );
    }
    if !sender.params.smtputf8 && !to.address.is_ascii() {
        return (reply::needs_smtputf8(), Staged::Nothing);
    }
    let config = &st.server.config;
    // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted.
    let address = if to.address.eq_ignore_ascii_case("postmaster") {
        let domain = config
            .domains
            .first()
            .map_or("localhost", |d| d.name.as_str());
        format!("postmaster@{domain}")
    } else {
        to.address
    };
    // The root's dot is not part of the domain (`alice@example.org.` is alice@example.org).
    let address = match address.strip_suffix('.') {
        Some(stripped) if stripped.contains('@') => stripped.to_owned(),
        _ => address,
    };
    let (local, domain) = postern_mailmsg::envelope::split_address(&address);
    if domain.is_empty() {
        return (reply::bad_address(false), Staged::Nothing);
    }
    match config.local_domain(domain) {
        Some(d) if !d.accepts(local) => {
            return (reply::unknown_user(&address), Staged::Nothing);
        }
        Some(_) => {}
        None if st.info.may_relay => {}
        None => return (reply::relay_denied(&address), Staged::Nothing),
    }
    if let Some(reply) = crate::guard::over_rate(
        st,
        &st.server.recipient_rates,
        limits.recipient_rate_per_ip,
        limits.recipient_rate_per_user,
        "recipients",
    ) {
        return (reply, Staged::Nothing);
    }
    let notify = DsnNotify {
        success: to.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
        failure: to.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
        delay: to.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
        never: to.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0,
    };
    let mut recipient = Recipient::new(address);
    recipient.params = RcptParams {
        notify,
        orcpt: to.orcpt,
    };
    (reply::recipient_ok(), Staged::Rcpt(recipient))
}
