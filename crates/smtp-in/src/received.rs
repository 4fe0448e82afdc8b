//! The `Received:` trace field (RFC 5321 §4.4) a message gets when it is accepted.

use postern_mailmsg::MailMsg;
use postern_sink_api::SessionInfo;

/// The session property naming the client's host name when a trusted proxy forwarded it
/// (`builtin:xclient`'s `NAME`).
pub(crate) const CLIENT_NAME: &str = "xclient.name";

/// Builds the value of the Received: field for a message arriving in a session, on one line
/// (well under the 998-octet line limit) so it needs no folding.
///
/// A client a trusted proxy forwarded is named instead of the proxy: by XCLIENT, through the
/// session (`name` is its host name), or by XFORWARD, through the message properties
/// `xforward.addr`, `xforward.name`, `xforward.helo` and `xforward.proto`.
pub(crate) fn value(
    msg: &MailMsg,
    session: &SessionInfo,
    name: Option<&str>,
    tls: Option<&str>,
    by: &str,
    now_secs: i64,
) -> String {
    let forwarded = |key: &str| msg.properties.get_str(key);
    let helo = forwarded("xforward.helo")
        .or(session.helo.as_deref())
        .unwrap_or("unknown");
    let name = forwarded("xforward.name").or(name);
    let ip = forwarded("xforward.addr")
        .and_then(|a| a.parse().ok())
        .unwrap_or(session.remote.ip());
    let ip = match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPv6:{v6}"),
        },
        v4 => v4.to_string(),
    };
    let protocol = match forwarded("xforward.proto") {
        Some(proto) if proto.eq_ignore_ascii_case("SMTP") => "SMTP",
        Some(proto) if proto.eq_ignore_ascii_case("ESMTP") => "ESMTP",
        _ => protocol(session, msg),
    };
    let name = name.map(|n| format!("{n} ")).unwrap_or_default();
    let id = msg.id.map(|id| id.to_string()).unwrap_or_default();
    let date = mail_builder::headers::date::Date::new(now_secs).to_rfc822();
    // RFC 5321 §4.4: a "for" clause only names the recipient when there is exactly one, so a
    // message to several does not reveal the Bcc recipients to the others.
    let recipient = match msg.recipients.as_slice() {
        [only] => format!(" for <{}>", only.address),
        _ => String::new(),
    };
    // The TLS version and cipher go in a comment, where Postfix and Sendmail put them.
    let tls = match tls.and_then(|t| t.split_once(' ')) {
        Some((version, cipher)) => format!(" (using {version} with cipher {cipher})"),
        None => String::new(),
    };
    format!(
        "from {helo} ({name}[{ip}]){tls} by {by} (Postern) with {protocol} id {id}{recipient}; {date}"
    )
}

/// The protocol name of RFC 3848 (`SMTP`, `ESMTP`, `UTF8SMTP`, with `S` for TLS and `A` for AUTH).
pub(crate) fn protocol(session: &SessionInfo, msg: &MailMsg) -> &'static str {
    let utf8 = msg.sender.as_ref().is_some_and(|s| s.params.smtputf8);
    match (
        session.esmtp,
        utf8,
        session.tls,
        session.auth_user.is_some(),
    ) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, true, false) => "ESMTPS",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(tls: bool, auth: bool) -> SessionInfo {
        SessionInfo {
            id: 1,
            remote: "192.0.2.7:40000".parse().unwrap(),
            local: "192.0.2.1:25".parse().unwrap(),
            helo: Some("client.test".into()),
            esmtp: true,
            tls,
            auth_user: auth.then(|| "alice".into()),
            may_relay: false,
        }
    }

    #[test]
    fn tls_sessions_say_esmtps_and_record_version_and_cipher() {
        let msg = MailMsg::default();
        let cases = [
            ("clear", session(false, false), None, " with ESMTP id", ""),
            (
                "tls",
                session(true, false),
                Some("TLSv1.3 TLS_AES_256_GCM_SHA384"),
                " with ESMTPS id",
                "([192.0.2.7]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384) by mx.test",
            ),
            (
                "tls and auth",
                session(true, true),
                Some("TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
                " with ESMTPSA id",
                "(using TLSv1.2 with cipher TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
            ),
        ];
        for (name, info, tls, protocol, comment) in cases {
            let value = value(&msg, &info, None, tls, "mx.test", 0);
            assert!(value.contains(protocol), "{name}: {value}");
            assert!(value.contains(comment), "{name}: {value}");
            assert_eq!(value.contains("using"), tls.is_some(), "{name}: {value}");
        }
    }

    #[test]
    fn a_forwarded_client_is_named() {
        let mut msg = MailMsg::default();
        let value = value(
            &msg,
            &session(false, false),
            Some("c.example"),
            None,
            "mx",
            0,
        );
        assert!(
            value.starts_with("from client.test (c.example [192.0.2.7])"),
            "{value}"
        );
        msg.properties.set("xforward.addr", "2001:db8::5");
        msg.properties.set("xforward.helo", "orig.example");
        msg.properties.set("xforward.proto", "SMTP");
        let value = super::value(&msg, &session(false, false), None, None, "mx", 0);
        assert!(
            value.starts_with("from orig.example ([IPv6:2001:db8::5]) by mx (Postern) with SMTP"),
            "{value}"
        );
    }
}
