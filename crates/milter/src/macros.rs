//! The Sendmail macros sent to a milter, per stage, from what the context knows. Milters read
//! them to decide (OpenDKIM signs for `{auth_authen}`, logs `i`, matches `{daemon_name}`).

use postern_sink_api::Context;

use crate::wire::cmd;

/// The macros of one stage, named as Sendmail names them.
pub(crate) fn for_stage(
    stage: u8,
    ctx: &Context,
    daemon_name: &str,
    rcpt: Option<&str>,
) -> Vec<(&'static str, String)> {
    let msg = &ctx.message;
    let session = ctx.session.as_deref();
    let queue_id = || msg.id.map(|id| id.to_string()).unwrap_or_default();
    match stage {
        cmd::CONNECT => {
            let mut out = vec![
                ("j", host_name(ctx)),
                ("{daemon_name}", daemon_name.to_owned()),
            ];
            if let Some(s) = session {
                out.push(("{if_addr}", s.local.ip().to_string()));
            }
            if let Some(ip) = client_ip(ctx) {
                out.push(("{client_addr}", ip.clone()));
                // Postern does no reverse lookup: Sendmail's form for an unnamed client.
                out.push(("{client_name}", format!("[{ip}]")));
            }
            out
        }
        cmd::HELO => tls(ctx),
        cmd::MAIL => {
            let mut out = vec![("i", queue_id())];
            let auth = session
                .and_then(|s| s.auth_user.clone())
                .or_else(|| msg.info.auth_user.clone());
            if let Some(user) = auth {
                out.push(("{auth_authen}", user));
            }
            out.push(("{mail_addr}", msg.sender_address().to_owned()));
            out.extend(tls(ctx));
            out
        }
        cmd::RCPT => vec![("{rcpt_addr}", rcpt.unwrap_or_default().to_owned())],
        cmd::DATA | cmd::EOH | cmd::BODYEOB => vec![("i", queue_id())],
        _ => Vec::new(),
    }
}

/// This server's name (`j`): the name written in Received fields.
pub(crate) fn host_name(ctx: &Context) -> String {
    let name = &ctx.message.info.received_by;
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name.clone()
    }
}

pub(crate) fn client_ip(ctx: &Context) -> Option<String> {
    ctx.session
        .as_ref()
        .map(|s| s.remote.ip())
        .or(ctx.message.info.remote_ip)
        .map(|ip| ip.to_string())
}

/// `{tls_version}` when the session is encrypted. Postern's message info carries the protocol
/// first (`TLSv1.3 …`); a session known only to be encrypted says `TLS`.
fn tls(ctx: &Context) -> Vec<(&'static str, String)> {
    let from_info = ctx
        .message
        .info
        .tls
        .as_deref()
        .and_then(|t| t.split_whitespace().next())
        .map(str::to_owned);
    let encrypted = ctx.session.as_ref().is_some_and(|s| s.tls);
    match from_info {
        Some(version) => vec![("{tls_version}", version)],
        None if encrypted => vec![("{tls_version}", "TLS".to_owned())],
        None => Vec::new(),
    }
}
